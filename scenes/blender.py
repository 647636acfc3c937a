"""Blender-format scenes (NeRF-synthetic): ``transforms_{train,val,test}.json`` + images.

Each JSON holds the intrinsics (``camera_angle_x``, or ``fl_x``/``fl_y``/``cx``/``cy`` in
pixels) and ``frames``, each with a ``file_path`` (relative to the folder, the ``.png`` suffix
optional) and a camera-to-world ``transform_matrix`` in the OpenGL convention. Frames of a
dynamic scene (D-NeRF's layout) also carry a ``time`` in [0, 1], the moment the image was taken.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from fieldfit.renderers import focal_from_fov, make_cameras

from .images import SceneError
from .nerf_scene import (
    NerfScene,
    SceneOptions,
    SceneSplit,
    check_poses,
    read_frame_image,
    stack_frames,
)

SPLITS = ("train", "val", "test")


def read_transforms(path: Path) -> dict:
    """The parsed JSON; SceneError naming ``path`` when it is unreadable or has no frames."""
    try:
        meta = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise SceneError(f"{path}: not a text file") from None
    except json.JSONDecodeError as err:
        raise SceneError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise SceneError(f"{path}: expected a JSON object with 'frames'")
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise SceneError(f"{path}: no frames")
    return meta


def _number(meta: dict, key: str, path: Path) -> float | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SceneError(f"{path}: {key}={value!r} is not a finite number")
    return float(value)


def _intrinsics(meta: dict, path: Path, width: int, height: int) -> tuple[float, ...]:
    """(fx, fy, cx, cy) in pixels of an image of ``width`` x ``height``."""
    angle_x, fl_x = _number(meta, "camera_angle_x", path), _number(meta, "fl_x", path)
    if fl_x is None:
        if angle_x is None:
            raise SceneError(f"{path}: needs camera_angle_x or fl_x (focal length)")
        if not 0 < angle_x < math.pi:
            raise SceneError(f"{path}: camera_angle_x={angle_x} must be in (0, pi); the focal "
                             "length must be > 0")
        fl_x = focal_from_fov(angle_x, width)
    fl_y = _number(meta, "fl_y", path)
    angle_y = _number(meta, "camera_angle_y", path)
    if fl_y is None:
        fl_y = focal_from_fov(angle_y, height) if angle_y is not None else fl_x
    for name, value in (("fl_x", fl_x), ("fl_y", fl_y)):
        if not value > 0:
            raise SceneError(f"{path}: focal length {name}={value} must be > 0")
    cx, cy = _number(meta, "cx", path), _number(meta, "cy", path)
    return fl_x, fl_y, width / 2 if cx is None else cx, height / 2 if cy is None else cy


def _pose(frame: dict, where: str) -> torch.Tensor:
    matrix = frame.get("transform_matrix")
    try:
        pose = torch.tensor(matrix, dtype=torch.float64)
    except (TypeError, ValueError):
        raise SceneError(f"{where}: transform_matrix must be a 4x4 array of numbers") from None
    if pose.shape not in ((4, 4), (3, 4)):
        raise SceneError(f"{where}: transform_matrix has shape {tuple(pose.shape)}, "
                         "expected 4x4")
    return pose[:3]


def _image_path(root: Path, frame: dict, where: str) -> Path:
    name = frame.get("file_path")
    if not isinstance(name, str) or not name:
        raise SceneError(f"{where}: missing file_path")
    path = root / name
    return path if path.suffix else path.with_suffix(".png")


def _times(frames: list[dict], path: Path) -> torch.Tensor | None:
    """(n,) frame times of a dynamic scene, or None when no frame has one; SceneError naming
    the first frame without a time (when others have one) or with one outside [0, 1]."""
    if not any("time" in frame for frame in frames):
        return None
    times = []
    for i, frame in enumerate(frames):
        value = frame.get("time")
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise SceneError(f"{path}: frame {i}: time={value!r}; in a dynamic scene every "
                             "frame needs a time in [0, 1]")
        times.append(float(value))
    return torch.tensor(times)


def load_split(root: Path, split: str) -> SceneSplit:
    """One ``transforms_{split}.json`` with its images (and frame times, if it has them)."""
    path = root / f"transforms_{split}.json"
    meta = read_transforms(path)
    images, poses, wheres, names = [], [], [], []
    for i, frame in enumerate(meta["frames"]):
        where = f"{path}: frame {i}"
        if not isinstance(frame, dict):
            raise SceneError(f"{where}: expected an object with file_path and transform_matrix")
        image_path = _image_path(root, frame, where)
        where = f"{where} ({frame['file_path']})"
        poses.append(_pose(frame, where))
        images.append(read_frame_image(image_path, where))
        wheres.append(where)
        names.append(image_path.name)
    poses_t = torch.stack(poses)
    check_poses(poses_t, wheres)
    colors, alphas = stack_frames(images, wheres)
    height, width = colors.shape[1:3]
    fx, fy, cx, cy = _intrinsics(meta, path, width, height)
    cameras = make_cameras(poses_t.float(), fx, fy, cx, cy, width, height)
    cameras.times = _times(meta["frames"], path)
    return SceneSplit(colors, alphas, cameras, names)


def load_blender(root: Path, options: SceneOptions) -> NerfScene:
    """A Blender-format folder: train split plus test (or val) split; the scene box is the
    cube of half-size ``options.bound`` around the origin."""
    root = Path(root)
    present = [s for s in SPLITS if (root / f"transforms_{s}.json").exists()]
    if "train" not in present:
        raise SceneError(f"{root / 'transforms_train.json'}: not found")
    if "test" not in present and "val" not in present:
        raise SceneError(f"{root}: needs transforms_test.json or transforms_val.json for "
                         "evaluation")
    splits = {s: load_split(root, s).downscaled(options.downscale) for s in present}
    if "test" not in splits:
        splits["test"] = splits["val"]
    timed = [s for s, split in splits.items() if split.cameras.times is not None]
    untimed = [s for s in splits if s not in timed]
    if timed and untimed:
        raise SceneError(f"{root}: frames of {', '.join(timed)} carry a time but those of "
                         f"{', '.join(untimed)} do not; a dynamic scene needs times in every "
                         "split")
    b = options.bound
    aabb = torch.tensor([[-b, -b, -b], [b, b, b]])
    background = torch.full((3,), 1.0 if options.background == "white" else 0.0)
    return NerfScene(splits, aabb, background, ndc=False, source=root, kind="blender")
