"""Pinhole cameras and rays in the OpenGL convention.

A camera-to-world matrix ``c2w`` (3, 4) holds the camera axes as columns: x right, y up, and z
*backwards*, so the camera looks down its -z axis; the last column is the camera centre. Pixel
``(col, row)`` covers ``[col, col + 1) x [row, row + 1)``; rays go through pixel centres, with
rows counted downwards from the top of the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Rays:
    """A batch of rays in world space."""

    origins: torch.Tensor
    """(n_rays, 3)"""
    directions: torch.Tensor
    """(n_rays, 3) unit vectors along which samples are placed"""
    viewdirs: torch.Tensor | None = None
    """(n_rays, 3) unit viewing directions for view-dependent colour, where they differ from
    ``directions`` (rays warped into NDC); None means ``directions``"""
    times: torch.Tensor | None = None
    """(n_rays,) moment in [0, 1] each ray saw a dynamic scene; None for a static one"""

    def __len__(self) -> int:
        return self.origins.shape[0]

    @property
    def view_directions(self) -> torch.Tensor:
        return self.directions if self.viewdirs is None else self.viewdirs

    def select(self, index: torch.Tensor | slice) -> Rays:
        """The rays at ``index`` (a slice, an index or a boolean mask)."""
        view = None if self.viewdirs is None else self.viewdirs[index]
        times = None if self.times is None else self.times[index]
        return Rays(self.origins[index], self.directions[index], view, times)

    def split(self, size: int) -> list[Rays]:
        """Consecutive chunks of at most ``size`` rays."""
        return [self.select(slice(i, i + size)) for i in range(0, len(self), size)]

    def to(self, device: torch.device) -> Rays:
        """The rays on ``device``."""
        view = None if self.viewdirs is None else self.viewdirs.to(device)
        times = None if self.times is None else self.times.to(device)
        return Rays(self.origins.to(device), self.directions.to(device), view, times)


@dataclass
class Cameras:
    """``n`` pinhole cameras sharing one image size; intrinsics in pixels."""

    c2w: torch.Tensor
    """(n, 3, 4) camera-to-world matrices (OpenGL axes)"""
    fx: torch.Tensor
    """(n,) focal lengths along x"""
    fy: torch.Tensor
    """(n,) focal lengths along y"""
    cx: torch.Tensor
    """(n,) principal point, columns"""
    cy: torch.Tensor
    """(n,) principal point, rows"""
    width: int
    height: int
    times: torch.Tensor | None = None
    """(n,) moment in [0, 1] each camera saw a dynamic scene (D-NeRF's frame ``time``); None
    for a static scene"""

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, index) -> Cameras:
        index = torch.as_tensor(index).reshape(-1)
        return Cameras(self.c2w[index], self.fx[index], self.fy[index], self.cx[index],
                       self.cy[index], self.width, self.height,
                       None if self.times is None else self.times[index])

    @property
    def centers(self) -> torch.Tensor:
        """(n, 3) camera centres."""
        return self.c2w[:, :, 3]

    def scaled(self, factor: float) -> Cameras:
        """The same cameras for images resized by ``factor`` (0.5: half the pixels per side)."""
        width, height = round(self.width * factor), round(self.height * factor)
        sx, sy = width / self.width, height / self.height
        return Cameras(self.c2w, self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy,
                       width, height, self.times)


def make_cameras(c2w: torch.Tensor, fx: float, fy: float, cx: float, cy: float, width: int,
                 height: int) -> Cameras:
    """Cameras with shared intrinsics; ``c2w`` (n, 3, 4) or (n, 4, 4)."""
    c2w = c2w[:, :3, :4].float()
    full = torch.ones(c2w.shape[0])
    return Cameras(c2w, full * fx, full * fy, full * cx, full * cy, int(width), int(height))


def focal_from_fov(fov: float, size: int) -> float:
    """Focal length in pixels of a field of view ``fov`` (radians) spanning ``size`` pixels."""
    return 0.5 * size / math.tan(0.5 * fov)


def pixel_rays(cameras: Cameras, camera_ids: torch.Tensor, cols: torch.Tensor,
               rows: torch.Tensor) -> Rays:
    """Rays through the centres of pixels ``(cols, rows)`` of cameras ``camera_ids``.

    Args:
        camera_ids: (n_rays,) int64 indices into ``cameras``.
        cols, rows: (n_rays,) pixel indices (or float pixel positions of the pixel's corner).
    Returns:
        Rays with unit directions (and the cameras' times, where they have them).
    """
    u = (cols.float() + 0.5 - cameras.cx[camera_ids]) / cameras.fx[camera_ids]
    v = (rows.float() + 0.5 - cameras.cy[camera_ids]) / cameras.fy[camera_ids]
    local = torch.stack([u, -v, -torch.ones_like(u)], dim=-1)  # y up, looking down -z
    c2w = cameras.c2w[camera_ids]
    directions = F.normalize((c2w[:, :, :3] @ local.unsqueeze(-1)).squeeze(-1), dim=-1)
    times = None if cameras.times is None else cameras.times[camera_ids]
    return Rays(c2w[:, :, 3].contiguous(), directions, times=times)


def image_rays(cameras: Cameras, index: int) -> Rays:
    """All (height * width) rays of camera ``index``, row-major from the top-left pixel."""
    rows, cols = torch.meshgrid(torch.arange(cameras.height), torch.arange(cameras.width),
                                indexing="ij")
    ids = torch.full((cameras.height * cameras.width,), index, dtype=torch.int64)
    return pixel_rays(cameras, ids, cols.reshape(-1), rows.reshape(-1))


def rays_to_ndc(rays: Rays, cameras: Cameras, camera_ids: torch.Tensor,
                near: float = 1.0) -> Rays:
    """Warp forward-facing rays into normalised device coordinates (Mildenhall et al. 2020).

    The world's camera-facing half-space ``z < -near`` maps into the cube [-1, 1]^3 (depth to
    infinity maps to z' -> 1). Origins move onto the near plane (z' = -1); directions are
    normalised after the warp; ``viewdirs`` keep the world directions for colour.
    """
    o, d = rays.origins, rays.directions
    t = -(near + o[:, 2]) / d[:, 2]
    o = o + t[:, None] * d
    ax = -2.0 * cameras.fx[camera_ids] / cameras.width
    ay = -2.0 * cameras.fy[camera_ids] / cameras.height
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = d.unbind(-1)
    origins = torch.stack([ax * ox / oz, ay * oy / oz, 1.0 + 2.0 * near / oz], dim=-1)
    directions = torch.stack(
        [ax * (dx / dz - ox / oz), ay * (dy / dz - oy / oz), -2.0 * near / oz], dim=-1)
    return Rays(origins, F.normalize(directions, dim=-1), rays.directions, rays.times)


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """(3, 4) camera-to-world matrix of a camera at ``eye`` looking at ``target``."""
    back = F.normalize(eye - target, dim=0)
    right = F.normalize(torch.linalg.cross(up, back), dim=0)
    true_up = torch.linalg.cross(back, right)
    return torch.stack([right, true_up, back, eye], dim=1)


def orbit_path(cameras: Cameras, n_frames: int, center: torch.Tensor | None = None) -> Cameras:
    """A turntable: ``n_frames`` cameras circling ``center`` about the cameras' mean up axis,
    at their mean distance and elevation, with the intrinsics of camera 0."""
    center = torch.zeros(3) if center is None else center
    up = F.normalize(cameras.c2w[:, :, 1].mean(0), dim=0)
    offsets = cameras.centers - center
    radius = offsets.norm(dim=-1).mean()
    height = (offsets @ up).mean().clamp(-0.95 * radius, 0.95 * radius)
    ring = torch.sqrt(radius**2 - height**2)
    # an orthonormal basis (a, b) of the plane perpendicular to ``up``, a towards camera 0
    a = offsets[0] - (offsets[0] @ up) * up
    a = F.normalize(a if a.norm() > 1e-6 else torch.linalg.cross(up, torch.eye(3)[0]), dim=0)
    b = torch.linalg.cross(up, a)
    angles = torch.arange(n_frames) * (2 * math.pi / n_frames)
    poses = [look_at(center + height * up + ring * (math.cos(t) * a + math.sin(t) * b),
                     center, up) for t in angles.tolist()]
    return _with_intrinsics_of(cameras, torch.stack(poses))


def spiral_path(cameras: Cameras, n_frames: int, radius_scale: float = 0.5) -> Cameras:
    """A circle in the image plane of the mean camera, for forward-facing captures: each frame
    keeps the mean orientation and moves by a fraction of the cameras' spread."""
    mean = cameras.c2w.mean(0)
    u, _, vh = torch.linalg.svd(mean[:, :3])
    rotation = u @ vh  # the mean orientation projected back onto rotations
    center = mean[:, 3]
    local = (cameras.centers - center) @ rotation  # camera offsets in the mean camera's axes
    rx, ry = (local[:, :2].abs().quantile(0.9, dim=0) * radius_scale).tolist()
    angles = torch.arange(n_frames) * (2 * math.pi / n_frames)
    poses = []
    for t in angles.tolist():
        eye = center + rotation @ torch.tensor([rx * math.cos(t), ry * math.sin(t), 0.0])
        poses.append(torch.cat([rotation, eye[:, None]], dim=1))
    return _with_intrinsics_of(cameras, torch.stack(poses))


def _with_intrinsics_of(cameras: Cameras, c2w: torch.Tensor) -> Cameras:
    n = c2w.shape[0]
    return Cameras(c2w, cameras.fx[:1].expand(n).clone(), cameras.fy[:1].expand(n).clone(),
                   cameras.cx[:1].expand(n).clone(), cameras.cy[:1].expand(n).clone(),
                   cameras.width, cameras.height)
