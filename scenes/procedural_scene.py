"""A procedural Blender-format scene: textured analytic shapes, ray-cast exactly.

Two spheres and a rotated box inside [-1, 1]^3 with procedural textures (a latitude-longitude
checker, a 3D checker, smooth colour waves) under fixed diffuse lighting, so colour does not
depend on the view. Pixels are supersampled for antialiased colour and coverage (alpha); the
depth along each pixel's central ray is saved beside each image as ``<name>_depth.npy``
(infinity where the ray misses), so tests know the geometry exactly. Nothing is downloaded.

The dynamic version (D-NeRF's layout: every frame has a ``time`` in [0, 1]) moves the same
shapes: the large sphere slides along y, the small one grows (its texture stretching with it)
and the box turns about z, each texture attached to its shape.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fieldfit.renderers import (
    Cameras,
    focal_from_fov,
    look_at,
    make_cameras,
    pixel_rays,
    ray_aabb_intersect,
)

CAMERA_ANGLE_X = 0.69  # radians, as in NeRF-synthetic
CAMERA_DISTANCE = 3.2
LIGHT = F.normalize(torch.tensor([0.6, 0.3, 1.0]), dim=0)

SPHERES = ((torch.tensor([-0.05, 0.1, 0.15]), 0.55), (torch.tensor([-0.5, -0.55, -0.4]), 0.32))
BOX_CENTER = torch.tensor([0.5, 0.45, -0.45])
BOX_HALF = torch.tensor([0.28, 0.22, 0.3])
BOX_ANGLE = 0.5  # radians about z


def _rotation_z(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


BOX_ROTATION = _rotation_z(BOX_ANGLE)  # local -> world


@dataclass(frozen=True)
class Shapes:
    """The scene's shapes at one moment."""

    spheres: tuple[tuple[torch.Tensor, float], ...]
    """(centre (3,), radius) of each sphere"""
    box_rotation: torch.Tensor
    """(3, 3) box-local -> world rotation (the box centre is fixed)"""


def shapes_at(time: float | None = None) -> Shapes:
    """The static scene (``time`` None), or the dynamic scene at ``time`` in [0, 1]."""
    if time is None:
        return Shapes(SPHERES, BOX_ROTATION)
    (c0, r0), (c1, r1) = SPHERES
    slide = torch.tensor([0.0, 0.5 * (2.0 * time - 1.0), 0.0])
    return Shapes(((c0 + slide, r0), (c1, r1 * (0.7 + 0.6 * time))),
                  _rotation_z(BOX_ANGLE + 1.2 * time))


def _sphere_hits(o, d, center, radius):
    """(n,) distance to the first hit of a sphere (inf: miss) and (n, 3) unit normals there."""
    oc = o - center
    b = (oc * d).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - radius**2)
    t = -b - torch.sqrt(disc.clamp(min=0))
    t = torch.where((disc > 0) & (t > 0), t, torch.inf)
    normal = F.normalize(o + t.clamp(max=1e6)[:, None] * d - center, dim=-1)
    return t, normal


def _box_hits(o, d, rotation):
    """First hit of the box turned by ``rotation``: (n,) distance (inf: miss) and (n, 3) world
    normals."""
    local_o = (o - BOX_CENTER) @ rotation
    local_d = d @ rotation
    aabb = torch.cat([-BOX_HALF, BOX_HALF])
    t_min, _, hit = ray_aabb_intersect(local_o, local_d, aabb)
    t = torch.where(hit & (t_min > 0), t_min, torch.inf)
    p = local_o + t.clamp(max=1e6)[:, None] * local_d
    face = (p.abs() / BOX_HALF).argmax(-1)
    local_n = F.one_hot(face, 3).float() * torch.sign(p)
    return t, local_n @ rotation.T


def _albedo(shapes: Shapes, shape: int, p: torch.Tensor) -> torch.Tensor:
    """(n, 3) texture colour of shape ``shape`` (0, 1: spheres; 2: box) at world points."""
    if shape == 0:  # latitude-longitude checker
        q = F.normalize(p - shapes.spheres[0][0], dim=-1)
        lon = torch.atan2(q[:, 1], q[:, 0]) / (2 * math.pi) * 12
        lat = torch.acos(q[:, 2].clamp(-1, 1)) / math.pi * 6
        odd = ((lon.floor() + lat.floor()) % 2)[:, None]
        return odd * torch.tensor([0.95, 0.55, 0.1]) + (1 - odd) * torch.tensor([0.95, 0.92, 0.8])
    if shape == 1:  # smooth colour waves, stretched with the sphere's radius
        (c0, r0), (c1, r1) = SPHERES[1], shapes.spheres[1]
        q = c0 + (p - c1) * (r0 / r1)
        return 0.5 + 0.4 * torch.sin(7.0 * q + torch.tensor([0.0, 2.0, 4.0]))
    local = (p - BOX_CENTER) @ shapes.box_rotation
    odd = ((local / 0.1).floor().sum(-1) % 2)[:, None]
    return odd * torch.tensor([0.1, 0.3, 0.85]) + (1 - odd) * torch.tensor([0.9, 0.95, 1.0])


def cast_rays(origins: torch.Tensor, directions: torch.Tensor, time: float | None = None):
    """Exact ray casting of the scene (at ``time`` for the dynamic scene).

    Returns:
        (n, 3) shaded colour (0 where the ray misses), (n,) distance to the first hit (inf where
        it misses).
    """
    shapes = shapes_at(time)
    hits = [_sphere_hits(origins, directions, c, r) for c, r in shapes.spheres]
    hits.append(_box_hits(origins, directions, shapes.box_rotation))
    ts = torch.stack([t for t, _ in hits])  # (3, n)
    depth, which = ts.min(0)
    points = origins + depth.clamp(max=1e6)[:, None] * directions
    color = torch.zeros_like(origins)
    for shape, (_, normal) in enumerate(hits):
        sel = (which == shape) & torch.isfinite(depth)
        shade = 0.35 + 0.65 * (normal[sel] @ LIGHT).clamp(min=0)
        color[sel] = _albedo(shapes, shape, points[sel]) * shade[:, None]
    return color, depth


def scene_sdf(points: torch.Tensor, time: float | None = None) -> torch.Tensor:
    """(n,) signed distance of (n, 3) points to the union of the shapes (exact outside the
    box's edges; a bound near them)."""
    shapes = shapes_at(time)
    d = [(points - c).norm(dim=-1) - r for c, r in shapes.spheres]
    q = ((points - BOX_CENTER) @ shapes.box_rotation).abs() - BOX_HALF
    d.append(q.clamp(min=0).norm(dim=-1) + q.amax(-1).clamp(max=0))
    return torch.stack(d).amin(0)


def render_view(cameras: Cameras, index: int, supersample: int = 3):
    """(H, W, 4) straight RGBA and (H, W) central-ray depth of camera ``index`` (at its time,
    where the cameras have times)."""
    time = None if cameras.times is None else float(cameras.times[index])
    h, w, s = cameras.height, cameras.width, supersample
    rows, cols = torch.meshgrid(torch.arange(h * s), torch.arange(w * s), indexing="ij")
    ids = torch.full((h * w * s * s,), index, dtype=torch.int64)
    sub_cols = (cols.reshape(-1) + 0.5) / s - 0.5  # sub-pixel centres in pixel units
    sub_rows = (rows.reshape(-1) + 0.5) / s - 0.5
    rays = pixel_rays(cameras, ids, sub_cols, sub_rows)
    color, depth = cast_rays(rays.origins, rays.directions, time)
    hit = torch.isfinite(depth).float()[:, None]

    def pool(x):
        return F.avg_pool2d(x.reshape(h * s, w * s, -1).permute(2, 0, 1)[None], s)[0]

    premult, alpha = pool(color * hit), pool(hit)
    rgb = premult / alpha.clamp(min=1e-6)
    rgba = torch.cat([rgb, alpha]).permute(1, 2, 0).clamp(0, 1)
    centre = pixel_rays(cameras, ids[: h * w], torch.arange(w).repeat(h),
                        torch.arange(h).repeat_interleave(w))
    return rgba, cast_rays(centre.origins, centre.directions, time)[1].reshape(h, w)


def procedural_cameras(n: int, size: int, test: bool) -> Cameras:
    """Cameras on a sphere of radius 3.2 looking at the origin (world z up): training views
    spread over the upper hemisphere (a Fibonacci spiral), test views on a ring at 30 deg."""
    eyes = []
    for i in range(n):
        if test:
            azimuth, elevation = 2 * math.pi * (i + 0.5) / n, math.radians(30)
        else:
            azimuth = i * math.pi * (3 - math.sqrt(5))
            elevation = math.asin(-0.15 + 1.1 * (i + 0.5) / n * 0.95)
        eyes.append(CAMERA_DISTANCE * torch.tensor([
            math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation)]))
    up = torch.tensor([0.0, 0.0, 1.0])
    poses = torch.stack([look_at(e, torch.zeros(3), up) for e in eyes])
    focal = focal_from_fov(CAMERA_ANGLE_X, size)
    return make_cameras(poses, focal, focal, size / 2, size / 2, size, size)


def frame_times(n: int, n_times: int) -> torch.Tensor:
    """(n,) times of a dynamic scene's frames: frame i at the (i mod n_times)-th of
    ``n_times`` moments evenly spread over [0, 1], so each moment is seen from cameras all
    around (``n_times`` = n: every frame at its own moment, as in D-NeRF's monocular data)."""
    return (torch.arange(n) % n_times) / max(n_times - 1, 1)


def write_procedural_scene(out: str | Path, size: int = 64, n_train: int = 40,
                           n_test: int = 8, supersample: int = 3, n_times: int = 0) -> Path:
    """Write a Blender-format scene (``transforms_{train,test}.json``, RGBA PNGs and depth
    maps) of ``size`` x ``size`` images into ``out``; returns ``out``. ``n_times`` > 0 writes
    the dynamic scene: frames at that many moments (:func:`frame_times`), each with its
    ``time``."""
    import imageio.v3 as iio

    out = Path(out)
    for split, n in (("train", n_train), ("test", n_test)):
        (out / split).mkdir(parents=True, exist_ok=True)
        cameras = procedural_cameras(n, size, test=split == "test")
        if n_times:
            cameras.times = frame_times(n, n_times)
        frames = []
        for i in range(n):
            rgba, depth = render_view(cameras, i, supersample)
            iio.imwrite(out / split / f"r_{i}.png", (rgba.numpy() * 255 + 0.5).astype(np.uint8))
            np.save(out / split / f"r_{i}_depth.npy", depth.numpy())
            pose = torch.cat([cameras.c2w[i], torch.tensor([[0.0, 0.0, 0.0, 1.0]])])
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": pose.tolist()})
            if n_times:
                frames[-1]["time"] = float(cameras.times[i])
        meta = {"camera_angle_x": CAMERA_ANGLE_X, "frames": frames}
        (out / f"transforms_{split}.json").write_text(json.dumps(meta, indent=1))
    return out
