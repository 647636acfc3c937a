"""Captures with recovered poses (COLMAP models, nerfstudio / instant-ngp ``transforms.json``).

A capture is a list of :class:`CaptureFrame` (image file, OpenGL camera-to-world pose, pinhole
intrinsics with OpenCV distortion ``k1 k2 p1 p2``, optional mask and depth bounds). Poses are
normalised once (:func:`normalize_capture`), by the kind of capture:

- forward-facing (every camera looks within 60 degrees of the mean viewing direction): as for
  LLFF, the mean camera becomes the identity and the depth bounds are scaled so the nearest
  scene content lies at depth 1 / 0.75; rays are warped into NDC;
- 360 degrees (the cameras surround what they look at): the mean camera up vector becomes +z,
  the point nearest to every optical axis becomes the origin and the farthest camera centre
  lies at distance 1; by default space is contracted (``--scene-contraction``, mip-NeRF 360),
  else the scene sits in the box [-1, 1]^3 (times ``aabb_scale``).

Distorted images are undistorted once, when loaded, into pinhole images with the same
intrinsics (each output pixel samples the input where the distortion model sends it, bilinear),
so rays stay pinhole rays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fieldfit.renderers import Cameras
from fieldfit.renderers.contraction import contracted_aabb

from .images import SceneError, load_image
from .llff import BOUND_FACTOR, normalize_llff_poses
from .nerf_scene import (
    NerfScene,
    SceneOptions,
    SceneSplit,
    check_poses,
    read_frame_image,
    stack_frames,
)

FORWARD_FACING_DEGREES = 60.0


@dataclass
class CaptureFrame:
    """One photo of a capture. Intrinsics in pixels of an image ``width`` x ``height``."""

    image: Path
    c2w: np.ndarray
    """(4, 4) camera-to-world, OpenGL axes (x right, y up, looking down -z)"""
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """OpenCV k1, k2, p1, p2"""
    mask: Path | None = None
    """image whose zero pixels are not part of the scene (they become transparent)"""
    near_far: tuple[float, float] | None = None
    """depth range of the scene content seen by this camera (world units)"""

    def where(self) -> str:
        return str(self.image)


def distort(x: torch.Tensor, y: torch.Tensor, k: tuple[float, float, float, float]):
    """OpenCV's radial-tangential model on normalised image coordinates (n,), (n,)."""
    k1, k2, p1, p2 = k
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def undistort_image(image: torch.Tensor, frame: CaptureFrame) -> torch.Tensor:
    """(H, W, C) pinhole image with the frame's intrinsics from the distorted ``image``."""
    h, w = image.shape[:2]
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                                torch.arange(w, dtype=torch.float64), indexing="ij")
    x = (cols + 0.5 - frame.cx) / frame.fx
    y = (rows + 0.5 - frame.cy) / frame.fy
    xd, yd = distort(x, y, frame.distortion)
    u, v = xd * frame.fx + frame.cx, yd * frame.fy + frame.cy  # pixel units, centres at +0.5
    grid = torch.stack([2 * u / w - 1, 2 * v / h - 1], dim=-1).float()[None]
    out = F.grid_sample(image.permute(2, 0, 1)[None], grid, mode="bilinear",
                        padding_mode="border", align_corners=False)
    return out[0].permute(1, 2, 0)


def downscaled_copies(frames: list[CaptureFrame], factor: int) -> list[CaptureFrame] | None:
    """The frames with their images (and masks) read from the ``images_{factor}`` (and
    ``masks_{factor}``) folders beside theirs, nerfstudio's layout that `fieldfit process`
    writes, when every frame has its copy; None otherwise (the full images are then downscaled
    on load)."""
    if factor == 1:
        return None

    def copy(path: Path) -> Path:
        return path.parent.with_name(f"{path.parent.name}_{factor}") / path.name

    out = []
    for frame in frames:
        image, mask = copy(frame.image), None if frame.mask is None else copy(frame.mask)
        if not image.exists() or (mask is not None and not mask.exists()):
            return None
        out.append(replace(frame, image=image, mask=mask))
    return out


def _read(frame: CaptureFrame) -> tuple[torch.Tensor, CaptureFrame]:
    """(H, W, 4) straight RGBA (undistorted, mask as alpha) and the frame with intrinsics
    scaled to the image file's size (files may be downscaled copies)."""
    image = read_frame_image(frame.image, frame.where())
    h, w = image.shape[:2]
    if (w, h) != (frame.width, frame.height):
        sx, sy = w / frame.width, h / frame.height
        frame = replace(frame, fx=frame.fx * sx, fy=frame.fy * sy, cx=frame.cx * sx,
                        cy=frame.cy * sy, width=w, height=h)
    if frame.mask is not None:
        if not frame.mask.exists():
            raise SceneError(f"{frame.where()}: mask {frame.mask} not found")
        mask = load_image(frame.mask, alpha="drop")[..., :1]
        if mask.shape[:2] != (h, w):
            raise SceneError(f"{frame.mask}: mask is {mask.shape[1]}x{mask.shape[0]}, image "
                             f"{frame.image} is {w}x{h}")
        image = torch.cat([image[..., :3], image[..., 3:] * (mask > 0.5).float()], dim=-1)
    if any(frame.distortion):
        image = undistort_image(image, frame)
    return image, frame


def is_forward_facing(c2w: np.ndarray) -> bool:
    """Whether every camera of (n, 4, 4) looks within 60 degrees of the mean direction."""
    forward = -c2w[:, :3, 2]
    mean = forward.sum(0)
    if np.linalg.norm(mean) < 1e-9:
        return False
    cos = forward @ (mean / np.linalg.norm(mean))
    return bool(cos.min() > math.cos(math.radians(FORWARD_FACING_DEGREES)))


def focus_point(c2w: np.ndarray) -> np.ndarray:
    """(3,) the point nearest (least squares) to every camera's optical axis."""
    origins, dirs = c2w[:, :3, 3], -c2w[:, :3, 2]
    projector = np.eye(3)[None] - dirs[:, :, None] * dirs[:, None, :]  # onto each axis' normal
    return np.linalg.lstsq(projector.sum(0), (projector @ origins[:, :, None]).sum(0),
                           rcond=None)[0][:, 0]


def _rotation_to_z(up: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking the unit vector ``up`` onto +z (Rodrigues)."""
    z = np.array([0.0, 0.0, 1.0])
    axis, cos = np.cross(up, z), float(up @ z)
    if np.linalg.norm(axis) < 1e-12:
        return np.eye(3) if cos > 0 else np.diag([1.0, -1.0, -1.0])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + k + k @ k / (1 + cos)


def normalize_capture(c2w: np.ndarray, near_far: np.ndarray | None):
    """Normalised (n, 4, 4) poses, (n, 2) bounds (or None) and a JSON-able record of the choice.

    Forward-facing captures with depth bounds get LLFF's normalisation; all others the 360
    normalisation of the module docstring. ``new = scale * (rotation @ old + translation)``
    for camera centres (the record's ``transform`` is that 4x4 similarity).
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    if is_forward_facing(c2w) and near_far is not None:
        gl = c2w[:, :3]
        raw = np.concatenate([-gl[:, :, 1:2], gl[:, :, 0:1], gl[:, :, 2:4],
                              np.zeros((len(gl), 3, 1))], axis=2)  # LLFF: down, right, back
        array = np.concatenate([raw.reshape(-1, 15), near_far], axis=1)
        poses, bounds = normalize_llff_poses(array)
        new = np.concatenate([poses.numpy(), np.tile([[[0, 0, 0, 1.0]]], (len(gl), 1, 1))], 1)
        # the similarity that normalize_llff_poses applied, read off the first camera
        scale = float(1.0 / (near_far.min() * BOUND_FACTOR))
        rotation = new[0, :3, :3] @ c2w[0, :3, :3].T
        translation = new[0, :3, 3] / scale - rotation @ c2w[0, :3, 3]
        kind, bounds_np = "forward-facing", bounds.numpy()
    else:
        up = c2w[:, :3, 1].mean(0)
        rotation = _rotation_to_z(up / max(np.linalg.norm(up), 1e-12))
        rotated = c2w.copy()
        rotated[:, :3, :] = rotation @ c2w[:, :3, :]
        translation = -focus_point(rotated) if len(c2w) > 1 else -rotated[0, :3, 3]
        centres = rotated[:, :3, 3] + translation
        scale = 1.0 / max(float(np.linalg.norm(centres, axis=1).max()), 1e-9)
        new = rotated.copy()
        new[:, :3, 3] = centres * scale
        kind = "360"
        bounds_np = None if near_far is None else near_far * scale
    transform = np.eye(4)
    transform[:3, :3], transform[:3, 3] = scale * rotation, scale * translation
    record = {"kind": kind, "scale": scale, "transform": transform.tolist()}
    return new, bounds_np, record


def _holdout_split(n: int, holdout: int) -> tuple[list[int], list[int]]:
    """LLFF's rule: frame indices ``i % holdout == 0`` are test views (at least one)."""
    test = [i for i in range(n) if i % holdout == 0]
    train = [i for i in range(n) if i % holdout != 0] or test
    return train, test


def load_capture(frames: list[CaptureFrame], root: Path, options: SceneOptions, kind: str,
                 normalization: dict | None = None, aabb_scale: float = 1.0) -> NerfScene:
    """A NerfScene of ``frames`` (sorted by image name); poses are normalised unless
    ``normalization`` says they already are (files written by `fieldfit process`)."""
    if not frames:
        raise SceneError(f"{root}: no frames")
    frames = sorted(frames, key=lambda f: f.image.name)
    factor = options.downscale
    copies = downscaled_copies(frames, factor)
    if copies is not None:  # _read scales the intrinsics to the copies' size
        frames, factor = copies, 1
    read = [_read(f) for f in frames]
    images, frames = [r[0] for r in read], [r[1] for r in read]
    wheres = [f.where() for f in frames]
    colors, alphas = stack_frames(images, wheres)
    c2w = np.stack([f.c2w for f in frames])
    check_poses(torch.from_numpy(c2w[:, :3]), wheres)
    bounds = (np.array([f.near_far for f in frames], dtype=np.float64)
              if all(f.near_far is not None for f in frames) else None)
    if normalization is None:
        c2w, bounds, normalization = normalize_capture(c2w, bounds)
    forward = normalization["kind"] == "forward-facing"
    ndc = forward and options.ndc
    height, width = colors.shape[1:3]

    def intrinsic(name: str) -> torch.Tensor:
        return torch.tensor([getattr(f, name) for f in frames], dtype=torch.float32)

    cameras = Cameras(torch.from_numpy(c2w[:, :3]).float(), intrinsic("fx"), intrinsic("fy"),
                      intrinsic("cx"), intrinsic("cy"), width, height)
    train, test = _holdout_split(len(frames), options.eval_holdout)
    splits = {}
    for name, sel in (("train", train), ("test", test)):
        index = torch.tensor(sel)
        splits[name] = SceneSplit(colors[index], None if alphas is None else alphas[index],
                                  cameras[index], [frames[i].image.name for i in sel]
                                  ).downscaled(factor)
    if ndc:
        aabb = torch.tensor([[-1.5, -1.5, -1.0], [1.5, 1.5, 1.0]])
    elif forward:
        reach = float(np.linalg.norm(c2w[:, :3, 3], axis=1).max()
                      + (bounds.max() if bounds is not None else 1.0))
        aabb = torch.tensor([[-reach] * 3, [reach] * 3])
    elif options.scene_contraction == "off":
        b = float(aabb_scale)
        aabb = torch.tensor([[-b] * 3, [b] * 3])
    else:
        aabb = contracted_aabb()
    background = torch.full((3,), 1.0 if options.background == "white" else 0.0)
    return NerfScene(splits, aabb, background, ndc=ndc, source=root, kind=kind,
                     contracted=not forward and options.scene_contraction != "off")
