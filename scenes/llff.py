"""LLFF forward-facing captures: ``poses_bounds.npy`` + ``images_N/`` (Mildenhall et al. 2019).

``poses_bounds.npy`` holds one row of 17 numbers per image: a 3x5 matrix (rotation columns
pointing down, right and backwards, the camera centre, and height, width, focal length of the
full-size images) followed by the near and far depth bounds. The loader follows the NeRF
paper's processing: axes to OpenGL (right, up, backwards), scale so the nearest bound is 1/0.75,
recentre on the mean pose, and (by default) march in normalised device coordinates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fieldfit.renderers import make_cameras

from .images import SceneError
from .nerf_scene import (
    NerfScene,
    SceneOptions,
    SceneSplit,
    check_poses,
    read_frame_image,
    stack_frames,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BOUND_FACTOR = 0.75  # the nearest scene content ends up at depth 1 / 0.75


def read_poses_bounds(path: Path) -> np.ndarray:
    """(N, 17) float64 array; SceneError naming ``path`` when unreadable or malformed."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise SceneError(f"{path}: not a readable .npy array ({err})") from None
    if array.ndim != 2 or array.shape[1] != 17 or array.shape[0] == 0:
        raise SceneError(f"{path}: expected shape (N, 17) (a 3x5 pose and 2 bounds per image), "
                         f"got {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise SceneError(f"{path}: expected numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    bad = np.nonzero(~np.isfinite(array).all(axis=1))[0]
    if len(bad):
        raise SceneError(f"{path}: row {bad[0]} has non-finite values")
    if (array[:, 15:] <= 0).any():
        raise SceneError(f"{path}: depth bounds must be > 0")
    return array


def _mean_pose(poses: torch.Tensor) -> torch.Tensor:
    """(3, 4) average camera: mean centre, mean viewing axis, mean up."""
    center = poses[:, :, 3].mean(0)
    back = F.normalize(poses[:, :, 2].sum(0), dim=0)
    right = F.normalize(torch.linalg.cross(poses[:, :, 1].sum(0), back), dim=0)
    up = torch.linalg.cross(back, right)
    return torch.stack([right, up, back, center], dim=1)


def _to_4x4(pose: torch.Tensor) -> torch.Tensor:
    bottom = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=pose.dtype).expand(*pose.shape[:-2], 1, 4)
    return torch.cat([pose, bottom], dim=-2)


def normalize_llff_poses(array: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, 4) OpenGL camera-to-world poses, scaled and recentred, and (N, 2) bounds."""
    raw = torch.from_numpy(array[:, :15].reshape(-1, 3, 5))
    bounds = torch.from_numpy(array[:, 15:].copy())
    down, right, back = raw[:, :, 0], raw[:, :, 1], raw[:, :, 2]
    poses = torch.stack([right, -down, back, raw[:, :, 3]], dim=-1)
    scale = 1.0 / (bounds.min() * BOUND_FACTOR)
    poses[:, :, 3] *= scale
    bounds = bounds * scale
    recentred = torch.linalg.inv(_to_4x4(_mean_pose(poses))) @ _to_4x4(poses)
    return recentred[:, :3], bounds


def _image_files(root: Path, factor: int) -> list[Path]:
    folder = root / ("images" if factor == 1 else f"images_{factor}")
    if not folder.is_dir():
        found = sorted(p.name for p in root.glob("images*") if p.is_dir())
        raise SceneError(f"{folder}: not found (--llff-factor {factor}); image folders here: "
                         f"{found or 'none'}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SceneError(f"{folder}: no images")
    return files


def load_llff(root: Path, options: SceneOptions) -> NerfScene:
    """An LLFF folder; every ``eval_holdout``-th image is a test view."""
    root = Path(root)
    path = root / "poses_bounds.npy"
    array = read_poses_bounds(path)
    files = _image_files(root, options.llff_factor)
    if len(files) != len(array):
        raise SceneError(f"{path}: {len(array)} poses but {len(files)} images in "
                         f"{files[0].parent}")
    wheres = [f"{path}: row {i} ({f.name})" for i, f in enumerate(files)]
    colors, _ = stack_frames([read_frame_image(f, w) for f, w in zip(files, wheres,
                                                                     strict=True)], wheres)
    full_width, focal = array[0, 9], array[0, 14]  # hwf column: height, width, focal
    if not focal > 0 or not full_width > 0:
        raise SceneError(f"{path}: focal length and image width must be > 0")
    poses, bounds = normalize_llff_poses(array)
    check_poses(poses, wheres)
    height, width = colors.shape[1:3]
    cameras = make_cameras(poses.float(), focal * width / full_width,
                           focal * width / full_width, width / 2, height / 2, width, height)
    ids = torch.arange(len(files))
    test = ids[ids % options.eval_holdout == 0]
    train = ids[ids % options.eval_holdout != 0]
    splits = {name: SceneSplit(colors[sel], None, cameras[sel],
                               [files[i].name for i in sel.tolist()]).downscaled(
                                   options.downscale)
              for name, sel in (("train", train), ("test", test))}
    if options.ndc:
        aabb = torch.tensor([[-1.5, -1.5, -1.0], [1.5, 1.5, 1.0]])
    else:
        reach = float(poses[:, :, 3].norm(dim=-1).max() + bounds.max())
        aabb = torch.tensor([[-reach] * 3, [reach] * 3])
    return NerfScene(splits, aabb, torch.zeros(3), ndc=options.ndc, source=root, kind="llff")
