"""Posed image collections for radiance fields, and the loader that picks the format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from fieldfit.renderers import Cameras, Rays, pixel_rays, rays_to_ndc
from fieldfit.renderers.contraction import contracted_aabb

from .images import SceneError, load_image


@dataclass
class SceneOptions:
    """How a scene folder is read."""

    downscale: int = 1
    """shrink images (and intrinsics) by this integer factor (area averaging)"""
    background: Literal["white", "black"] = "white"
    """colour that transparent pixels are composited on for evaluation"""
    bound: float = 1.5
    """Blender scenes: half-size of the box around the origin that holds the scene"""
    llff_factor: int = 8
    """LLFF scenes: read images_N for this N (1: images/)"""
    eval_holdout: int = 8
    """LLFF scenes and captures (COLMAP models, transforms.json): every N-th image (sorted by
    name, from the first) is a test view"""
    ndc: bool = True
    """LLFF scenes: march in normalised device coordinates (forward-facing captures)"""
    scene_contraction: Literal["auto", "on", "off"] = "auto"
    """unbounded scenes: contract space outside the unit ball into a ball of radius 2
    (mip-NeRF 360) with a multi-level occupancy grid; auto = on for 360-degree captures
    (COLMAP models, transforms.json), off for Blender and forward-facing (NDC) scenes"""

    def __post_init__(self) -> None:
        if self.downscale < 1:
            raise SceneError(f"--downscale {self.downscale}: must be >= 1")
        if not self.bound > 0:
            raise SceneError(f"--bound {self.bound}: must be > 0")
        if self.llff_factor < 1:
            raise SceneError(f"--llff-factor {self.llff_factor}: must be >= 1")
        if self.eval_holdout < 2:
            raise SceneError(f"--eval-holdout {self.eval_holdout}: must be >= 2")


@dataclass
class SceneSplit:
    """Images of one split with their cameras."""

    colors: torch.Tensor
    """(n, H, W, 3) colour premultiplied by alpha, in [0, 1]"""
    alphas: torch.Tensor | None
    """(n, H, W, 1) coverage for images with transparency, else None"""
    cameras: Cameras
    names: list[str]
    """image file names, for messages"""

    def __len__(self) -> int:
        return self.colors.shape[0]

    def composited(self, background: torch.Tensor) -> torch.Tensor:
        """(n, H, W, 3) images over a (3,) background."""
        if self.alphas is None:
            return self.colors
        return self.colors + (1.0 - self.alphas) * background

    def downscaled(self, factor: int) -> SceneSplit:
        """Area-averaged images (premultiplied colour and alpha average correctly)."""
        if factor == 1:
            return self
        h, w = self.colors.shape[1] // factor, self.colors.shape[2] // factor
        if h < 1 or w < 1:
            raise SceneError(f"--downscale {factor}: images of {self.colors.shape[2]}x"
                             f"{self.colors.shape[1]} would vanish")

        def shrink(x):
            return F.interpolate(x.permute(0, 3, 1, 2), size=(h, w), mode="area").permute(
                0, 2, 3, 1).contiguous()

        cams = self.cameras.scaled(w / self.cameras.width)
        alphas = None if self.alphas is None else shrink(self.alphas)
        return SceneSplit(shrink(self.colors), alphas, cams, self.names)


@dataclass
class NerfScene:
    """A posed image collection ready for radiance-field fitting."""

    splits: dict[str, SceneSplit]
    """'train' and 'test' (and 'val' where present)"""
    aabb: torch.Tensor
    """(2, 3) box holding the scene (in NDC for forward-facing scenes)"""
    background: torch.Tensor
    """(3,) background of transparent pixels at evaluation"""
    ndc: bool
    """rays are warped into normalised device coordinates"""
    source: Path
    kind: str
    """blender, llff, colmap, transforms"""
    contracted: bool = False
    """unbounded: the field lives in contracted space (``aabb`` is [-2, 2]^3 there) and world
    space is marched through a multi-level occupancy grid over [-1, 1]^3 x 2^l"""
    options: SceneOptions | None = None
    """how the folder was read (set by :func:`load_nerf_scene`)"""

    @property
    def dynamic(self) -> bool:
        """The frames carry times (a D-NeRF-layout scene whose content moves)."""
        return self.splits["train"].cameras.times is not None

    def rays(self, split: str, camera_ids: torch.Tensor, cols: torch.Tensor,
             rows: torch.Tensor) -> Rays:
        """Rays through pixel centres of cameras of ``split`` (warped into NDC if needed)."""
        cameras = self.splits[split].cameras
        return self.camera_rays(cameras, camera_ids, cols, rows)

    def camera_rays(self, cameras: Cameras, camera_ids: torch.Tensor, cols: torch.Tensor,
                    rows: torch.Tensor) -> Rays:
        """Rays of any cameras of this scene (e.g. a render path), in the scene's space."""
        rays = pixel_rays(cameras, camera_ids, cols, rows)
        return rays_to_ndc(rays, cameras, camera_ids) if self.ndc else rays


def load_nerf_scene(path: str | Path, options: SceneOptions | None = None) -> NerfScene:
    """Read a Blender-format (``transforms_*.json``), LLFF (``poses_bounds.npy``),
    nerfstudio / instant-ngp (``transforms.json``) or COLMAP (``sparse/0``) folder."""
    options = options or SceneOptions()
    path = Path(path)
    if not path.exists():
        raise SceneError(f"{path}: no such folder")
    scene = _load_by_format(path, options)
    if options.scene_contraction == "on" and not scene.contracted:
        if scene.ndc:
            raise SceneError(f"--scene-contraction on: {path} is a forward-facing scene "
                             "marched in NDC; add --no-ndc to contract it instead")
        if scene.dynamic:
            raise SceneError(f"--scene-contraction on: {path} is a dynamic scene, which is "
                             "fitted in its box")
        scene.contracted, scene.aabb = True, contracted_aabb()
    scene.options = options
    return scene


def _load_by_format(path: Path, options: SceneOptions) -> NerfScene:
    from .blender import load_blender
    from .colmap import find_colmap_model, load_colmap
    from .llff import load_llff
    from .transforms_json import load_transforms_json

    if not path.is_dir():
        raise SceneError(f"{path}: not a folder (give the scene folder holding "
                         "transforms_train.json, poses_bounds.npy, transforms.json or sparse/)")
    if (path / "transforms_train.json").exists():
        return load_blender(path, options)
    if (path / "poses_bounds.npy").exists():
        return load_llff(path, options)
    if (path / "transforms.json").exists():
        return load_transforms_json(path / "transforms.json", options)
    if find_colmap_model(path) is not None:
        return load_colmap(path, options)
    raise SceneError(f"{path}: none of transforms_train.json (Blender format), poses_bounds.npy "
                     "(LLFF), transforms.json (nerfstudio / instant-ngp) or a COLMAP model "
                     "(sparse/0/cameras.bin or .txt) found; for photos without poses run "
                     "`fieldfit process`")


def read_frame_image(image_path: Path, where: str) -> torch.Tensor:
    """(H, W, 4) straight RGBA of one frame (alpha 1 for opaque images); errors name ``where``
    (the file and frame that refer to the image)."""
    if not image_path.exists():
        raise SceneError(f"{where}: image {image_path} not found")
    try:
        image = load_image(image_path, alpha="keep")
    except SceneError as err:
        raise SceneError(f"{where}: {err}") from None
    if image.shape[-1] == 1:
        image = image.expand(-1, -1, 3)
    if image.shape[-1] == 3:
        image = torch.cat([image, torch.ones_like(image[..., :1])], dim=-1)
    return image


def stack_frames(images: list[torch.Tensor], wheres: list[str]) -> tuple[torch.Tensor,
                                                                         torch.Tensor | None]:
    """Premultiplied (n, H, W, 3) colours and (n, H, W, 1) alphas (None if all opaque);
    SceneError naming the first frame whose size differs from the first one."""
    h, w = images[0].shape[:2]
    for image, where in zip(images, wheres, strict=True):
        if image.shape[:2] != (h, w):
            raise SceneError(f"{where}: image is {image.shape[1]}x{image.shape[0]}, but "
                             f"{wheres[0]} is {w}x{h}; all images must have one size")
    rgba = torch.stack(images)
    alphas = rgba[..., 3:4]
    colors = rgba[..., :3] * alphas
    return colors, (None if bool((alphas == 1).all()) else alphas)


def check_poses(poses: torch.Tensor, wheres: list[str], tol: float = 1e-2) -> None:
    """SceneError naming the first (3, 4) pose that is non-finite or not rigid."""
    eye = torch.eye(3, dtype=poses.dtype)
    for pose, where in zip(poses, wheres, strict=True):
        if not torch.isfinite(pose).all():
            raise SceneError(f"{where}: camera pose has non-finite values")
        rot = pose[:3, :3]
        if (rot.T @ rot - eye).abs().max() > tol or torch.det(rot) < 0:
            raise SceneError(f"{where}: camera pose is not rigid (its rotation part is not "
                             "orthonormal with determinant +1)")
