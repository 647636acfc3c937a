"""Camera paths for videos: nerfstudio's ``camera_path`` JSON (read and write) and smooth
paths through keyframes.

The JSON is the one nerfstudio's viewer exports and ``ns-render camera-path`` reads:
``render_width``, ``render_height``, ``fps``, ``seconds``, ``camera_type`` ("perspective"),
``keyframes`` and ``camera_path``: one entry per rendered frame with ``camera_to_world`` (16
numbers, row-major 4x4, OpenGL axes, in the scene's normalised frame), ``fov`` (vertical field of
view, degrees), ``aspect`` and, here, ``time`` (seconds). A file with only keyframes is
interpolated (:func:`interpolate_path`) to ``fps * seconds`` frames.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .cameras import Cameras


@dataclass
class CameraPath:
    """Frames of a video: cameras (one image size) and their times in seconds."""

    cameras: Cameras
    fps: float
    times: torch.Tensor
    """(n,) seconds"""


def resized(cameras: Cameras, width: int, height: int) -> Cameras:
    """The same cameras for images of ``width`` x ``height`` (intrinsics scaled per axis)."""
    sx, sy = width / cameras.width, height / cameras.height
    return Cameras(cameras.c2w, cameras.fx * sx, cameras.fy * sy, cameras.cx * sx,
                   cameras.cy * sy, int(width), int(height), cameras.times)


def interpolate_path(keyframes: Cameras, n_frames: int, cycle: bool = False) -> Cameras:
    """``n_frames`` cameras on a smooth curve through ``keyframes`` (in order): cubic splines
    (scipy) of the centres and intrinsics and a rotation spline of the orientations;
    ``cycle`` closes the loop."""
    from scipy.interpolate import CubicSpline
    from scipy.spatial.transform import Rotation, RotationSpline

    if len(keyframes) == 1:
        return keyframes[torch.zeros(n_frames, dtype=torch.int64)]
    columns = [keyframes.c2w.double().numpy()] + [
        x.double().numpy() for x in (keyframes.fx, keyframes.fy, keyframes.cx, keyframes.cy)]
    if cycle:  # back to the first keyframe
        columns = [np.concatenate([x, x[:1]]) for x in columns]
    c2w, *intrinsics = columns
    knots = np.arange(len(c2w), dtype=np.float64)
    t = np.linspace(0, knots[-1], n_frames, endpoint=not cycle)
    bc = "periodic" if cycle else ("natural" if len(knots) == 2 else "not-a-knot")
    rotations = RotationSpline(knots, Rotation.from_matrix(c2w[:, :, :3]))(t).as_matrix()
    centres = CubicSpline(knots, c2w[:, :, 3], axis=0, bc_type=bc)(t)
    poses = torch.from_numpy(np.concatenate([rotations, centres[:, :, None]], axis=2)).float()
    fx, fy, cx, cy = (torch.from_numpy(CubicSpline(knots, x, bc_type=bc)(t)).float()
                      for x in intrinsics)
    return Cameras(poses, fx, fy, cx, cy, keyframes.width, keyframes.height)


def _camera_entry(cameras: Cameras, i: int, time: float) -> dict:
    c2w = torch.cat([cameras.c2w[i], torch.tensor([[0.0, 0.0, 0.0, 1.0]])]).double()
    fov = math.degrees(2 * math.atan(cameras.height / (2 * float(cameras.fy[i]))))
    return {"camera_to_world": c2w.reshape(-1).tolist(), "fov": fov,
            "aspect": cameras.width / cameras.height, "time": time}


def _keyframe_entry(entry: dict) -> dict:
    """nerfstudio names a keyframe's camera-to-world ``matrix``."""
    return {"matrix": entry.pop("camera_to_world"), **entry}


def save_camera_path(path: str | Path, cameras: Cameras, fps: float,
                     keyframes: Cameras | None = None) -> None:
    """Write ``cameras`` (the frames, one per 1 / ``fps`` s) as nerfstudio camera_path JSON;
    ``keyframes`` (default: the frames themselves) are stored as the keyframes."""
    n = len(cameras)
    keys = cameras if keyframes is None else keyframes
    data = {
        "camera_type": "perspective", "render_width": cameras.width,
        "render_height": cameras.height, "fps": fps, "seconds": n / fps,
        "is_cycle": False, "smoothness_value": 0.0,
        "keyframes": [_keyframe_entry(_camera_entry(keys, i, i / max(len(keys) - 1, 1) * n / fps))
                      for i in range(len(keys))],
        "camera_path": [_camera_entry(cameras, i, i / fps) for i in range(n)],
    }
    Path(path).write_text(json.dumps(data, indent=1))


def _matrix(value, where: str) -> torch.Tensor:
    if isinstance(value, str):  # nerfstudio's viewer stores keyframe matrices as strings
        value = json.loads(value)
    try:
        matrix = torch.tensor(value, dtype=torch.float64).reshape(4, 4)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{where}: expected 16 numbers (a 4x4 camera-to-world)") from None
    if not torch.isfinite(matrix).all():
        raise ValueError(f"{where}: non-finite camera-to-world")
    return matrix


def _cameras_from_entries(entries: list, key: str, width: int, height: int,
                          where: str) -> Cameras:
    poses, focal = [], []
    for i, entry in enumerate(entries):
        here = f"{where} {i}"
        if not isinstance(entry, dict) or key not in entry or "fov" not in entry:
            raise ValueError(f"{here}: needs {key} and fov")
        fov = float(entry["fov"])
        if not 0 < fov < 180:
            raise ValueError(f"{here}: fov {fov} must be in (0, 180) degrees")
        poses.append(_matrix(entry[key], here)[:3])
        focal.append(0.5 * height / math.tan(math.radians(fov) / 2))
    f = torch.tensor(focal, dtype=torch.float32)
    ones = torch.ones_like(f)
    return Cameras(torch.stack(poses).float(), f, f.clone(), ones * width / 2, ones * height / 2,
                   width, height)


def load_camera_path(path: str | Path) -> CameraPath:
    """The frames of a nerfstudio camera_path JSON (interpolated from its keyframes when it has
    no ``camera_path``); ValueError naming the file and entry for malformed input."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable camera path JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with camera_path or keyframes")
    try:
        width, height = int(data["render_width"]), int(data["render_height"])
        fps = float(data.get("fps", 24))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: needs render_width and render_height") from None
    if width < 1 or height < 1 or not fps > 0:
        raise ValueError(f"{path}: render size and fps must be > 0")
    if data.get("camera_type", "perspective") != "perspective":
        raise ValueError(f"{path}: camera_type {data['camera_type']!r} is not supported "
                         "(perspective only)")
    frames = data.get("camera_path")
    if frames:
        cameras = _cameras_from_entries(frames, "camera_to_world", width, height,
                                        f"{path}: camera_path")
        times = [float(f.get("time", i / fps)) for i, f in enumerate(frames)]
        return CameraPath(cameras, fps, torch.tensor(times))
    keys = data.get("keyframes")
    if not keys:
        raise ValueError(f"{path}: no camera_path and no keyframes")
    keyframes = _cameras_from_entries(keys, "matrix", width, height, f"{path}: keyframe")
    n = max(1, round(float(data.get("seconds", len(keys) / fps)) * fps))
    cameras = interpolate_path(keyframes, n, cycle=bool(data.get("is_cycle", False)))
    return CameraPath(cameras, fps, torch.arange(n) / fps)
