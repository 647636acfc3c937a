"""pycolmap recovers the cameras of a procedural scene rendered by the project."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from fieldfit.renderers import focal_from_fov, image_rays, look_at, make_cameras
from fieldfit.scenes.procedural_scene import CAMERA_ANGLE_X, CAMERA_DISTANCE, cast_rays

from fieldfit.process import align_similarity, process

pycolmap = pytest.importorskip("pycolmap")

SIZE = 256
RINGS, PER_RING = (20.0, 40.0), 19  # elevations (degrees); views 10 degrees apart
VIEWS = len(RINGS) * PER_RING
BACKDROP_RADIUS = 5.0


def backdrop(origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """(n, 3) colour of a sphere of radius 5 around the scene, seen from inside: 3D cells of
    side 0.35 with a pseudo-random grey level each, so every patch has sharp corners and
    differs from the others (the shapes alone are too smooth and too repetitive for SIFT)."""
    b = (origins * directions).sum(-1)
    c = (origins * origins).sum(-1) - BACKDROP_RADIUS**2
    p = origins + (-b + torch.sqrt(b * b - c))[:, None] * directions
    cell = torch.floor(p / 0.35)
    noise = torch.frac(torch.sin(cell @ torch.tensor([12.9898, 78.233, 37.719])) * 43758.5453)
    return (0.1 + 0.8 * noise)[:, None].expand(-1, 3)


def capture_cameras():
    """Two rings of cameras over half a turn around the procedural scene, looking at its
    centre (SIFT needs neighbouring views within about 15 degrees)."""
    eyes = [CAMERA_DISTANCE * torch.tensor([
        math.cos(math.radians(e)) * math.cos(a), math.cos(math.radians(e)) * math.sin(a),
        math.sin(math.radians(e))])
        for e in RINGS for a in np.linspace(0, math.pi, PER_RING).tolist()]
    poses = torch.stack([look_at(eye, torch.zeros(3), torch.tensor([0.0, 0, 1])) for eye in eyes])
    focal = focal_from_fov(CAMERA_ANGLE_X, SIZE)
    return make_cameras(poses, focal, focal, SIZE / 2, SIZE / 2, SIZE, SIZE)


def write_views(folder) -> tuple:
    """PNGs of the procedural shapes in front of the backdrop; their (n, 3) true centres and
    focal length in pixels."""
    import imageio.v3 as iio

    cameras = capture_cameras()
    fine = cameras.scaled(2)  # rendered at twice the size, then averaged: antialiased
    folder.mkdir()
    for i in range(VIEWS):
        rays = image_rays(fine, i)
        color, depth = cast_rays(rays.origins, rays.directions)
        color = torch.where(torch.isfinite(depth)[:, None], color,
                            backdrop(rays.origins, rays.directions))
        color = torch.nn.functional.avg_pool2d(color.reshape(1, 2 * SIZE, 2 * SIZE, 3)
                                               .permute(0, 3, 1, 2), 2)[0].permute(1, 2, 0)
        image = (color.numpy() * 255 + 0.5).astype(np.uint8)
        iio.imwrite(folder / f"view_{i:02d}.png", image)
    return cameras.centers.double().numpy(), float(cameras.fx[0])


@pytest.mark.slow
def test_every_view_registers_with_true_centres_and_focal(tmp_path):
    centres, focal = write_views(tmp_path / "photos")
    summary = process(tmp_path / "photos", tmp_path / "data", camera_model="SIMPLE_PINHOLE")
    assert summary.registered == VIEWS
    model = pycolmap.Reconstruction(tmp_path / "data" / "sparse" / "0")
    names = sorted((im.name, im.projection_center()) for im in model.images.values())
    recovered = np.stack([c for _, c in names])
    truth = centres[[int(n[5:7]) for n, _ in names]]
    scale, rotation, shift = align_similarity(recovered, truth)
    error = np.linalg.norm(scale * recovered @ rotation.T + shift - truth, axis=1)
    scene_size = np.linalg.norm(truth[:, None] - truth[None], axis=-1).max()
    assert error.max() < 0.01 * scene_size
    meta = json.loads((tmp_path / "data" / "transforms.json").read_text())
    assert abs(meta["fl_x"] / focal - 1) < 0.02
    assert abs(meta["cx"] - SIZE / 2) < 0.02 * SIZE and abs(meta["cy"] - SIZE / 2) < 0.02 * SIZE
    print(f"centre error max {error.max() / scene_size:.2e} of the scene size, focal "
          f"{meta['fl_x']:.2f} vs {focal:.2f}")
