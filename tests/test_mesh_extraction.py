"""Marching cubes, mesh metrics, SDF losses and spatial gradients against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from fieldfit.fields.gradient import spatial_gradient
from fieldfit.losses import clipped_sdf_bce, eikonal, mape, normal_alignment
from fieldfit.renderers.mesh import (
    MeshResolutionError,
    check_resolution,
    extract_mesh,
    marching_cubes,
)
from fieldfit.renderers.mesh_image import shade_mesh
from fieldfit.scenes.meshes import contains
from scipy import integrate

from fieldfit.mesh_metrics import occupancy_iou, surface_metrics

BOUNDS = torch.tensor([[-1.0] * 3, [1.0] * 3])
RADIUS = 0.5123  # off the grid, so no vertex value is exactly 0


def sphere_sdf(x: torch.Tensor) -> torch.Tensor:
    return x.norm(dim=-1) - RADIUS


@pytest.mark.parametrize("resolution", [48, 128])
def test_marching_cubes_of_a_sphere(resolution):
    vertices, faces = extract_mesh(sphere_sdf, resolution, BOUNDS, chunk=10_000)
    mesh = trimesh.Trimesh(vertices, faces)
    h = 2.0 / resolution
    assert mesh.is_watertight and mesh.volume > 0  # closed and outward
    # vertices are linear interpolations of a curved function along edges: error O(h^2 / r)
    np.testing.assert_allclose(np.linalg.norm(vertices, axis=1), RADIUS, atol=h * h / RADIUS)
    area = 4 * math.pi * RADIUS**2
    assert abs(mesh.area - area) / area < 2 * (h / RADIUS) ** 2


def test_narrow_band_equals_dense_marching_cubes():
    """The sparse evaluation gives exactly the mesh of the fully sampled grid."""
    calls = []

    def sdf(x):
        calls.append(len(x))
        return torch.maximum(sphere_sdf(x), 0.3 - x[:, 0].abs())  # two caps: sharp rims

    resolution = 96
    vertices, faces = extract_mesh(sdf, resolution, BOUNDS)
    axis = torch.linspace(-1, 1, resolution + 1, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    dense = sdf(grid.float()).reshape((resolution + 1,) * 3).numpy()
    want_v, want_f = marching_cubes(dense, BOUNDS)
    np.testing.assert_allclose(vertices[faces], want_v[want_f], atol=1e-6)
    assert sum(calls[:-1]) < 0.3 * (resolution + 1) ** 3


def test_empty_field_gives_empty_mesh():
    vertices, faces = extract_mesh(lambda x: x.norm(dim=-1) + 1.0, 32, BOUNDS)
    assert vertices.shape == (0, 3) and faces.shape == (0, 3)
    assert (shade_mesh(vertices, faces, 16) == 1.0).all()


def test_resolution_too_large_for_memory():
    with pytest.raises(MeshResolutionError, match=r"resolution 2048: .* use a resolution of 256"):
        check_resolution(2048, memory=2**30)
    check_resolution(256, memory=2**30)


def test_shaded_picture_shows_the_mesh():
    sphere = trimesh.creation.icosphere(3)
    image = shade_mesh(sphere.vertices, sphere.faces, 64)
    covered = (image < 1.0).any(-1)
    # orthographic framing by the bounding sphere: the disc covers pi r^2 of (2 R)^2, R = sqrt(3)
    assert abs(covered.mean() - math.pi / 12) < 0.03
    assert image[32, 32].max() < 1.0 and (image[0, 0] == 1.0).all()


# -- metrics ---------------------------------------------------------------------------
def test_identical_meshes_score_perfectly():
    mesh = trimesh.creation.torus(0.6, 0.2)
    m = surface_metrics(mesh.vertices, mesh.faces, mesh.vertices, mesh.faces, 20_000, 0.01)
    assert m["chamfer_l1"] < 1e-9 and m["nae_deg"] < 1e-3
    assert m["fscore"] == m["precision"] == m["recall"] == 1.0
    inside = np.random.default_rng(0).random(1000) < 0.3
    assert occupancy_iou(inside, inside) == 1.0


def test_shifted_sphere_matches_closed_forms():
    r, d, tau = 0.6, 0.05, 0.03
    a = trimesh.creation.icosphere(5, radius=r)
    b = a.copy()
    b.apply_translation([d, 0, 0])
    m = surface_metrics(a.vertices, a.faces, b.vertices, b.faces, 50_000, tau, seed=1)

    # a point at angle theta from the shift axis (cos theta = u, uniform on the sphere) lies
    # |sqrt(r^2 + d^2 - 2 r d u) - r| from the other sphere
    def dist(u):
        return abs(math.sqrt(r * r + d * d - 2 * r * d * u) - r)

    def angle(u):  # between the normal at p and the other sphere's normal at its closest point
        return math.degrees(math.acos((r - d * u) / math.sqrt(r * r + d * d - 2 * r * d * u)))

    chamfer = integrate.quad(dist, -1, 1)[0] / 2
    nae = integrate.quad(angle, -1, 1)[0] / 2
    recall = integrate.quad(lambda u: float(dist(u) < tau), -1, 1, points=[0.0], limit=200)[0] / 2
    assert m["chamfer_l1"] == pytest.approx(chamfer, rel=0.02)
    assert m["nae_deg"] == pytest.approx(nae, rel=0.02)
    assert m["recall"] == pytest.approx(recall, abs=0.01)
    # IoU of two balls: lens volume pi (4r + d)(2r - d)^2 / 12
    lens = math.pi * (4 * r + d) * (2 * r - d) ** 2 / 12
    iou = lens / (2 * 4 / 3 * math.pi * r**3 - lens)
    p = np.random.default_rng(2).uniform(-1, 1, (200_000, 3)) * (r + d)
    inside_a, inside_b = contains(a.vertices, a.faces, p), contains(b.vertices, b.faces, p)
    assert occupancy_iou(inside_a, inside_b) == pytest.approx(iou, abs=0.005)


def test_empty_prediction_scores_zero():
    mesh = trimesh.creation.icosphere(2)
    m = surface_metrics(np.zeros((0, 3)), np.zeros((0, 3), np.int64), mesh.vertices, mesh.faces)
    assert m["fscore"] == 0.0 and m["chamfer_l1"] is None


# -- losses and gradients ----------------------------------------------------------------
def test_sdf_losses_closed_form():
    pred = torch.tensor([0.1, -0.2, 0.5])
    target = torch.tensor([0.0, -0.25, 1.0])
    want = (0.1 / 0.01 + 0.05 / 0.26 + 0.5 / 1.01) / 3
    torch.testing.assert_close(mape(pred, target), torch.tensor(want))
    # labels (clip(sdf, +-0.1) + 0.1) / 0.2 = 0.5, 0, 1
    labels = torch.tensor([0.5, 0.0, 1.0])
    p = torch.sigmoid(pred)
    want = -(labels * torch.log(p) + (1 - labels) * torch.log(1 - p)).mean()
    torch.testing.assert_close(clipped_sdf_bce(pred, target), want)
    grads = torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(eikonal(grads), torch.tensor((16.0 + 0.0) / 2))
    normals = torch.tensor([[0.6, 0.8, 0.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(normal_alignment(grads, normals), torch.tensor(0.5))


def test_finite_difference_gradient_matches_autograd():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.Softplus(), torch.nn.Linear(32, 1))
    net = net.double()

    def fn(x):
        return net(x)[:, 0]

    x = torch.rand(50, 3, dtype=torch.float64)
    v_ad, g_ad = spatial_gradient(fn, x, "autograd")
    v_fd, g_fd = spatial_gradient(fn, x, "finite_difference", step=1e-4)
    torch.testing.assert_close(v_ad, v_fd)
    torch.testing.assert_close(g_fd, g_ad, rtol=1e-6, atol=1e-7)
    # analytic check of the autograd path: grad |x| = x / |x|
    _, g = spatial_gradient(lambda p: p.norm(dim=-1), x + 0.1)
    torch.testing.assert_close(g, (x + 0.1) / (x + 0.1).norm(dim=-1, keepdim=True))
    # the eikonal term on finite differences trains the parameters through first derivatives
    eikonal(g_fd).backward()
    assert net[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="gradient method"):
        spatial_gradient(fn, x, "spline")
