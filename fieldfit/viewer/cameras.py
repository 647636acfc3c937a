"""Camera conversion between viser's and fieldfit's conventions.

viser poses a camera by a unit quaternion ``wxyz`` and a ``position`` in the OpenCV axes (x
right, y down, z forward), with a vertical field of view ``fov`` (radians) and ``aspect`` =
width / height. fieldfit's cameras (:mod:`fieldfit.renderers.cameras`) hold camera-to-world
matrices in the OpenGL axes (x right, y up, z backwards), so the two rotations differ by a
half-turn about the camera's x axis: ``R_gl = R_cv @ diag(1, -1, -1)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from fieldfit.renderers import Cameras, focal_from_fov, make_cameras

_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def c2w_from_viser(wxyz: np.ndarray, position: np.ndarray) -> np.ndarray:
    """(3, 4) OpenGL camera-to-world matrix of a viser pose (``wxyz`` (4,), ``position`` (3,))."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64)
    rotation = Rotation.from_quat([x, y, z, w]).as_matrix() @ _FLIP_YZ  # scipy: xyzw order
    return np.concatenate([rotation, np.asarray(position, np.float64).reshape(3, 1)], axis=1)


def viser_from_c2w(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The viser pose (``wxyz`` (4,), ``position`` (3,)) of a (3, 4) or (4, 4) OpenGL
    camera-to-world matrix."""
    c2w = np.asarray(c2w, dtype=np.float64)
    x, y, z, w = Rotation.from_matrix(c2w[:3, :3] @ _FLIP_YZ).as_quat()
    return np.array([w, x, y, z]), c2w[:3, 3].copy()


def fov_of(cameras: Cameras, index: int = 0) -> float:
    """Vertical field of view (radians) of camera ``index``."""
    return 2.0 * math.atan(0.5 * cameras.height / float(cameras.fy[index]))


def viewer_cameras(c2w: np.ndarray, fov: float, aspect: float, height: int) -> Cameras:
    """One fieldfit camera ``height`` pixels high with viser's vertical ``fov`` (radians) and
    ``aspect`` (width / height), centred principal point."""
    height = max(int(height), 1)
    width = max(round(height * aspect), 1)
    focal = focal_from_fov(fov, height)
    pose = torch.as_tensor(np.asarray(c2w)[None, :3, :4], dtype=torch.float32)
    return make_cameras(pose, focal, focal, width / 2.0, height / 2.0, width, height)
