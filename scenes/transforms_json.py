"""nerfstudio / instant-ngp captures: one ``transforms.json`` for all frames.

Intrinsics ``fl_x fl_y cx cy w h`` (or ``camera_angle_x``/``camera_angle_y``) and OpenCV
distortion ``k1 k2 p1 p2`` sit at the top level and may be overridden per frame; each frame has
a ``file_path`` (relative to the JSON's folder), an OpenGL camera-to-world
``transform_matrix`` and optionally a ``mask_path`` (zero = not part of the scene).
``aabb_scale`` scales the scene box of 360-degree captures. Files written by `fieldfit process`
also hold ``fieldfit_normalization`` (the poses are already normalised, see
:mod:`.capture`) and per-frame ``fieldfit_near_far`` depth bounds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .blender import _image_path, _number, _pose, read_transforms
from .capture import CaptureFrame, load_capture
from .images import SceneError
from .nerf_scene import NerfScene, SceneOptions

SUPPORTED_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL")
DISTORTION_KEYS = ("k1", "k2", "p1", "p2")


def _image_size(path: Path, where: str) -> tuple[int, int]:
    import imageio.v3 as iio

    if not path.exists():
        raise SceneError(f"{where}: image {path} not found")
    try:
        shape = iio.improps(path).shape
    except Exception:  # imageio raises many types for unreadable files
        raise SceneError(f"{where}: {path} is not a readable image") from None
    return int(shape[1]), int(shape[0])


def _frame(root: Path, meta: dict, frame: dict, where: str) -> CaptureFrame:
    def value(key: str) -> float | None:
        own = _number(frame, key, Path(where))
        return own if own is not None else _number(meta, key, Path(where))

    image = _image_path(root, frame, where)
    where = f"{where} ({frame['file_path']})"
    w, h = value("w"), value("h")
    width, height = (int(w), int(h)) if w and h else _image_size(image, where)
    fx, fy = value("fl_x"), value("fl_y")
    if fx is None:
        angle = value("camera_angle_x")
        if angle is None or not 0 < angle < math.pi:
            raise SceneError(f"{where}: needs fl_x or camera_angle_x in (0, pi)")
        fx = 0.5 * width / math.tan(0.5 * angle)
    if fy is None:
        angle = value("camera_angle_y")
        fy = 0.5 * height / math.tan(0.5 * angle) if angle else fx
    if not fx > 0 or not fy > 0:
        raise SceneError(f"{where}: focal lengths fl_x={fx}, fl_y={fy} must be > 0")
    cx, cy = value("cx"), value("cy")
    pose = np.eye(4)
    pose[:3] = _pose(frame, where).numpy()
    mask = frame.get("mask_path")
    near_far = frame.get("fieldfit_near_far")
    return CaptureFrame(image=image, c2w=pose, fx=fx, fy=fy,
                        cx=width / 2 if cx is None else cx, cy=height / 2 if cy is None else cy,
                        width=width, height=height,
                        distortion=tuple(value(k) or 0.0 for k in DISTORTION_KEYS),
                        mask=None if mask is None else root / mask,
                        near_far=None if near_far is None else tuple(near_far))


def load_transforms_json(path: Path, options: SceneOptions) -> NerfScene:
    """The capture described by ``path`` (a ``transforms.json``)."""
    path = Path(path)
    meta = read_transforms(path)
    model = meta.get("camera_model", "OPENCV")
    if model not in SUPPORTED_MODELS:
        raise SceneError(f"{path}: camera_model {model} is not supported (use one of "
                         f"{', '.join(SUPPORTED_MODELS)})")
    frames = []
    for i, frame in enumerate(meta["frames"]):
        if not isinstance(frame, dict):
            raise SceneError(f"{path}: frame {i}: expected an object with file_path and "
                             "transform_matrix")
        frames.append(_frame(path.parent, meta, frame, f"{path}: frame {i}"))
    aabb_scale = _number(meta, "aabb_scale", path) or 1.0
    if not aabb_scale > 0:
        raise SceneError(f"{path}: aabb_scale={aabb_scale} must be > 0")
    return load_capture(frames, path.parent, options, kind="transforms",
                        normalization=meta.get("fieldfit_normalization"),
                        aabb_scale=aabb_scale)
