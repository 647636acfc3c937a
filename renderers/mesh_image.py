"""A shaded picture of a triangle mesh, ray cast orthographically through libigl's AABB tree
(no OpenGL context needed, so it runs on a headless machine)."""

from __future__ import annotations

import math

import numpy as np

BACKGROUND = 1.0
FRONT = np.array([0.72, 0.76, 0.84])
BACK = np.array([0.85, 0.45, 0.35])
"""colour of back faces seen through holes or of inverted surfaces"""
BACK_COSINE = -0.2
"""a hit is a back face below this cosine to the viewer: grazing hits on a silhouette, where
a ray meets the edge between a front and a back face, stay front-coloured"""


def view_direction(azimuth: float, elevation: float) -> np.ndarray:
    """(3,) unit vector from the object towards the viewer; y is up, angles in degrees."""
    az, el = math.radians(azimuth), math.radians(elevation)
    return np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])


def shade_mesh(vertices: np.ndarray, faces: np.ndarray, size: int = 512,
               azimuth: float = 30.0, elevation: float = 20.0) -> np.ndarray:
    """(size, size, 3) float image in [0, 1] of the mesh, framed by its bounding sphere.

    Lambert shading from a light beside the viewer; faces seen from behind are drawn in a
    warm colour, so holes and inverted parts show. An empty mesh gives a blank image.
    """
    import igl

    image = np.full((size, size, 3), BACKGROUND)
    if len(faces) == 0:
        return image
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    lo, hi = v.min(0), v.max(0)
    centre, radius = (lo + hi) / 2, max(np.linalg.norm(hi - lo) / 2, 1e-12)
    towards_viewer = view_direction(azimuth, elevation)
    right = np.cross([0.0, 1.0, 0.0], towards_viewer)
    right = right / max(np.linalg.norm(right), 1e-12) if np.linalg.norm(right) > 1e-6 else \
        np.array([1.0, 0.0, 0.0])
    up = np.cross(towards_viewer, right)
    s = (np.arange(size) + 0.5) / size * 2 - 1
    rows, cols = np.meshgrid(-s, s, indexing="ij")  # rows go downwards
    plane = (cols.reshape(-1, 1) * right + rows.reshape(-1, 1) * up) * radius
    origins = centre + 2 * radius * towards_viewer + plane
    directions = np.broadcast_to(-towards_viewer, origins.shape).copy()
    tree = igl.AABB()
    tree.init(v, f)
    hit_face, _, _ = tree.intersect_ray_first(v, f, origins, directions)
    hit = hit_face >= 0
    tri = v[f[hit_face[hit]]]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-30)
    light = towards_viewer + 0.5 * up + 0.3 * right
    light /= np.linalg.norm(light)
    facing = normals @ towards_viewer >= BACK_COSINE
    lambert = np.abs(normals @ light)
    colour = np.where(facing[:, None], FRONT, BACK) * (0.25 + 0.75 * lambert[:, None])
    image.reshape(-1, 3)[hit] = colour
    return image
