"""Pinhole rays in the OpenGL convention, NDC warping and camera paths."""

from __future__ import annotations

import math

import torch
from fieldfit.renderers import (
    Rays,
    image_rays,
    look_at,
    make_cameras,
    orbit_path,
    pixel_rays,
    rays_to_ndc,
    spiral_path,
)


def test_rays_of_a_known_camera_by_hand():
    # camera at (0, 0, 4), axes aligned with the world: it looks down -z at the origin
    c2w = torch.tensor([[[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4]]])
    cams = make_cameras(c2w, fx=2.0, fy=2.0, cx=2.0, cy=1.0, width=4, height=2)
    rays = image_rays(cams, 0)
    # pixel (col 0, row 0): centre (0.5, 0.5) -> (-0.75, +0.25, -1) (rows go down, y goes up)
    torch.testing.assert_close(rays.directions[0],
                               torch.tensor([-0.75, 0.25, -1.0]) / math.sqrt(1.625))
    # pixel (col 3, row 1): centre (3.5, 1.5) -> (0.75, -0.25, -1)
    torch.testing.assert_close(rays.directions[7],
                               torch.tensor([0.75, -0.25, -1.0]) / math.sqrt(1.625))
    torch.testing.assert_close(rays.origins, torch.tensor([[0.0, 0, 4]]).expand(8, 3))


def test_rotated_camera_looks_down_its_minus_z_axis():
    # rotated 90 degrees about world y: camera z axis -> world +x, so it looks towards -x
    c2w = torch.tensor([[[0.0, 0, 1, 5], [0, 1, 0, 0], [-1, 0, 0, 0]]])
    cams = make_cameras(c2w, fx=10.0, fy=10.0, cx=0.5, cy=0.5, width=1, height=1)
    rays = pixel_rays(cams, torch.tensor([0]), torch.tensor([0]), torch.tensor([0]))
    torch.testing.assert_close(rays.directions, torch.tensor([[-1.0, 0, 0]]))
    # a pixel right of centre points towards camera x = world -z
    off = pixel_rays(cams, torch.tensor([0]), torch.tensor([1]), torch.tensor([0]))
    assert off.directions[0, 2] < 0 and off.directions[0, 0] < 0


def test_look_at_and_orbit_point_at_the_target():
    eye, target = torch.tensor([1.0, -3.0, 2.0]), torch.tensor([0.2, 0.1, -0.3])
    pose = look_at(eye, target, torch.tensor([0.0, 0, 1]))
    rot = pose[:, :3]
    torch.testing.assert_close(rot.T @ rot, torch.eye(3), atol=1e-6, rtol=0)
    assert torch.det(rot) > 0
    forward = -rot[:, 2]
    torch.testing.assert_close(forward, (target - eye) / (target - eye).norm())
    cams = make_cameras(pose[None], 50.0, 50.0, 20.0, 20.0, 40, 40)
    path = orbit_path(cams, 12)
    centre_rays = pixel_rays(path, torch.arange(12), torch.full((12,), 19.5),
                             torch.full((12,), 19.5))  # 19.5 + 0.5 = principal point
    to_origin = -centre_rays.origins / centre_rays.origins.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(centre_rays.directions, to_origin, atol=1e-5, rtol=0)
    torch.testing.assert_close(path.centers.norm(dim=-1), eye.norm().expand(12))


def test_ndc_rays_pass_through_projected_points():
    g = torch.Generator().manual_seed(0)
    eyes = torch.randn(5, 3, generator=g) * 0.2
    poses = torch.stack([look_at(e, e + torch.tensor([0.1, 0.0, -1.0]), torch.tensor([0.0, 1, 0]))
                         for e in eyes])
    cams = make_cameras(poses, 40.0, 45.0, 16.0, 12.0, 32, 24)
    ids = torch.arange(5)
    rays = pixel_rays(cams, ids, torch.tensor([3, 9, 16, 20, 30]), torch.tensor([2, 5, 12, 1, 23]))
    ndc = rays_to_ndc(rays, cams, ids, near=1.0)
    for t in (2.5, 7.0, 40.0):
        p = rays.origins + t * rays.directions  # world points in front of the near plane
        projected = torch.stack([-2 * 40.0 / 32 * p[:, 0] / p[:, 2],
                                 -2 * 45.0 / 24 * p[:, 1] / p[:, 2],
                                 1 + 2 * 1.0 / p[:, 2]], -1)
        along = projected - ndc.origins
        cross = torch.linalg.cross(along, ndc.directions)
        torch.testing.assert_close(cross, torch.zeros_like(cross), atol=1e-5, rtol=0)
        assert ((along * ndc.directions).sum(-1) > 0).all()
    torch.testing.assert_close(ndc.origins[:, 2], torch.full((5,), -1.0))
    assert torch.equal(ndc.viewdirs, rays.directions)


def test_spiral_path_keeps_the_mean_orientation():
    poses = torch.stack([look_at(torch.tensor([x, y, 0.0]), torch.tensor([x, y, -1.0]),
                                 torch.tensor([0.0, 1, 0])) for x, y in
                         [(-0.2, 0.1), (0.2, -0.1), (0.1, 0.2), (-0.1, -0.2)]])
    path = spiral_path(make_cameras(poses, 30.0, 30.0, 10.0, 10.0, 20, 20), 8)
    torch.testing.assert_close(path.c2w[:, :, :3], torch.eye(3).expand(8, 3, 3), atol=1e-5,
                               rtol=0)
    assert path.centers[:, 2].abs().max() < 1e-6 and path.centers[:, :2].abs().max() > 0.01


def test_rays_split_and_select():
    rays = Rays(torch.arange(30.0).reshape(10, 3), torch.ones(10, 3))
    parts = rays.split(4)
    assert [len(p) for p in parts] == [4, 4, 2]
    assert torch.equal(parts[2].origins, rays.origins[8:])
    assert rays.view_directions is rays.directions


def test_every_exported_renderer_name_exists():
    import fieldfit.renderers as renderers

    missing = [name for name in renderers.__all__ if not hasattr(renderers, name)]
    assert not missing
