"""Keyframes from the viewer saved as a camera path in nerfstudio's ``camera_path.json``
format, which ``fieldfit render --path FILE.json`` reads.

The file holds the ``keyframes`` (``camera_to_world``: a 4x4 OpenGL camera-to-world matrix as
16 row-major floats, ``fov``: vertical field of view in degrees, ``aspect``: width / height) and
the ``camera_path`` interpolated between them at ``fps`` frames per second over ``seconds``,
each frame with the same three keys, plus ``render_height``, ``render_width``, ``fps`` and
``seconds``, as nerfstudio's viewer writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..io import write_json


@dataclass
class Keyframe:
    """One camera of a path."""

    c2w: np.ndarray
    """(3, 4) or (4, 4) OpenGL camera-to-world matrix"""
    fov: float
    """vertical field of view (degrees)"""
    aspect: float
    """width / height"""


def _matrix_4x4(c2w: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :4] = np.asarray(c2w, dtype=np.float64)[:3, :4]
    return out


def _entry(c2w: np.ndarray, fov: float, aspect: float) -> dict:
    return {"camera_to_world": _matrix_4x4(c2w).reshape(-1).tolist(), "fov": float(fov),
            "aspect": float(aspect)}


def interpolate(keyframes: list[Keyframe], n_frames: int) -> list[Keyframe]:
    """``n_frames`` cameras through the keyframes at even spacing: positions, fov and aspect
    linear, rotations by spherical linear interpolation (scipy's Slerp)."""
    if not keyframes:
        raise ValueError("a camera path needs at least one keyframe")
    if len(keyframes) == 1 or n_frames == 1:
        return [keyframes[0]] * n_frames
    knots = np.arange(len(keyframes), dtype=np.float64)
    times = np.linspace(0.0, knots[-1], n_frames)
    matrices = np.stack([_matrix_4x4(k.c2w) for k in keyframes])
    rotations = Slerp(knots, Rotation.from_matrix(matrices[:, :3, :3]))(times).as_matrix()
    positions = np.stack([np.interp(times, knots, matrices[:, i, 3]) for i in range(3)], -1)
    fovs = np.interp(times, knots, [k.fov for k in keyframes])
    aspects = np.interp(times, knots, [k.aspect for k in keyframes])
    return [Keyframe(np.concatenate([r, p[:, None]], axis=1), f, a)
            for r, p, f, a in zip(rotations, positions, fovs, aspects, strict=True)]


def write_camera_path(path: Path, keyframes: list[Keyframe], render_height: int,
                      seconds: float = 4.0, fps: float = 24.0) -> Path:
    """Write ``keyframes`` and the path through them (``seconds * fps`` frames) to ``path``."""
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"camera path: seconds {seconds} and fps {fps} must be > 0")
    frames = interpolate(keyframes, max(round(seconds * fps), 1))
    data = {
        "camera_type": "perspective",
        "render_height": int(render_height),
        "render_width": round(render_height * keyframes[0].aspect),
        "fps": float(fps),
        "seconds": float(seconds),
        "keyframes": [_entry(k.c2w, k.fov, k.aspect) for k in keyframes],
        "camera_path": [_entry(k.c2w, k.fov, k.aspect) for k in frames],
    }
    write_json(Path(path), data)
    return Path(path)
