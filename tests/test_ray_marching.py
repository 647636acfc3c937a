"""Ray/box intersection, lattice marching, early termination and the occupancy grid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda
from fieldfit.renderers import (
    MarchOptions,
    OccupancyConfig,
    OccupancyGrid,
    Rays,
    filter_visible,
    march_rays,
    ray_aabb_intersect,
    render_front_to_back,
    render_rays,
    render_samples,
    visible_samples,
    weights_from_density,
)
from fieldfit.renderers.marching import cell_indices

AABB = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0], dtype=torch.float64)


def random_rays(n: int, seed: int, dtype=torch.float64) -> Rays:
    g = torch.Generator().manual_seed(seed)
    origins = torch.randn(n, 3, generator=g, dtype=dtype) * 2.5
    targets = torch.rand(n, 3, generator=g, dtype=dtype) * 1.6 - 0.8
    return Rays(origins, F.normalize(targets - origins, dim=-1))


def test_ray_aabb_intersect_matches_dense_search():
    rays = random_rays(64, seed=0)
    t = torch.linspace(-15, 15, 30001, dtype=torch.float64)
    points = rays.origins[:, None] + t[None, :, None] * rays.directions[:, None]
    inside = ((points >= -1) & (points <= 1)).all(-1)
    t_min, t_max, hits = ray_aabb_intersect(rays.origins, rays.directions, AABB)
    ahead = inside & (t > 0)
    assert torch.equal(hits, ahead.any(1))
    for r in torch.nonzero(inside.any(1))[:, 0].tolist():
        ts = t[inside[r]]
        assert abs(t_min[r] - ts.min()) < 2e-3 and abs(t_max[r] - ts.max()) < 2e-3


def reference_march(rays, binaries, near, far, step):
    """Per ray, per lattice point: keep interval k if its midpoint is in the box, before far,
    and in an occupied cell."""
    res = binaries.shape[0]
    out = []
    for r in range(len(rays)):
        o, d = rays.origins[r], rays.directions[r]
        for k in range(int((12 - near[r]) / step)):
            mid = near[r] + (k + 0.5) * step
            p = o + mid * d
            if mid >= far[r] or not ((p >= -1) & (p <= 1)).all():
                continue
            cell = ((p + 1) / 2 * res).floor().long().clamp(0, res - 1)
            if binaries[cell[0], cell[1], cell[2]]:
                out.append((r, float(near[r] + k * step)))
    return out


@pytest.mark.parametrize("pattern", ["scattered", "corner"])
def test_march_rays_matches_per_ray_reference(pattern):
    rays = random_rays(24, seed=1)
    g = torch.Generator().manual_seed(2)
    binaries = torch.rand(6, 6, 6, generator=g) < 0.4
    if pattern == "corner":  # only a block of cells is occupied: marching skips the rest
        binaries[:2], binaries[:, 4:], binaries[:, :, :1] = False, False, False
    near = torch.rand(24, generator=g, dtype=torch.float64) * 0.3
    far = torch.full((24,), 4.0, dtype=torch.float64)
    far[:5] = 3.0  # some rays stop inside the box
    samples = march_rays(rays.origins, rays.directions, AABB, binaries, near, far, 0.05)
    ref = reference_march(rays, binaries, near, far, 0.05)
    assert len(samples) == len(ref) > 20
    assert samples.ray_indices.tolist() == [r for r, _ in ref]
    torch.testing.assert_close(samples.t_starts, torch.tensor([t for _, t in ref],
                                                              dtype=torch.float64))
    torch.testing.assert_close(samples.t_ends - samples.t_starts,
                               torch.full((len(ref),), 0.05, dtype=torch.float64))


def ball_density(points: torch.Tensor, radius: float = 0.5, sharpness: float = 0.005):
    """A ball of density 60 and radius ``radius`` at the origin, with a soft edge."""
    return 60.0 * torch.sigmoid((radius - points.norm(dim=-1)) / sharpness)


def test_early_termination_rounds_equal_a_single_masked_pass():
    rays = random_rays(40, seed=4, dtype=torch.float32)
    near, far = torch.zeros(40), torch.full((40,), 1e10)
    samples = march_rays(rays.origins, rays.directions, AABB.float(), None, near, far, 0.01)

    def sigma_fn(t_starts, t_ends, ray_indices):
        mids = 0.5 * (t_starts + t_ends)
        return ball_density(rays.origins[ray_indices] + mids[:, None] * rays.directions[
            ray_indices])

    kept = filter_visible(samples, 40, sigma_fn=sigma_fn, early_stop_eps=1e-3, alpha_thre=0.01,
                          first_round=4)
    _, trans, alphas = weights_from_density(samples, sigma_fn(*samples[1:], samples[0]), 40)
    mask = visible_samples(trans, alphas, 1e-3, 0.01)
    assert len(kept) < mask.numel() // 2  # rays through the ball stop early
    assert torch.equal(kept.ray_indices, samples.ray_indices[mask])
    assert torch.equal(kept.t_starts, samples.t_starts[mask])


def test_front_to_back_rendering_equals_filter_then_render():
    rays = random_rays(48, seed=6, dtype=torch.float32)
    near, far = torch.zeros(48), torch.full((48,), 1e10)
    samples = march_rays(rays.origins, rays.directions, AABB.float(), None, near, far, 0.01)
    scale = torch.tensor(1.3, requires_grad=True)
    tint = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)

    def rgb_sigma_fn(t_starts, t_ends, ray_indices):
        mids = 0.5 * (t_starts + t_ends)
        p = rays.origins[ray_indices] + mids[:, None] * rays.directions[ray_indices]
        return torch.sigmoid(p * tint), ball_density(p) * scale

    def sigma_fn(t_starts, t_ends, ray_indices):
        return rgb_sigma_fn(t_starts, t_ends, ray_indices)[1]

    results = []
    for fast in (True, False):
        if fast:
            out = render_front_to_back(samples, 48, rgb_sigma_fn, torch.ones(3), 1e-3, 0.02)
        else:
            with torch.no_grad():
                kept = filter_visible(samples, 48, sigma_fn=sigma_fn, early_stop_eps=1e-3,
                                      alpha_thre=0.02)
            out = render_samples(kept, 48, rgb_sigma_fn=rgb_sigma_fn, background=torch.ones(3))
        grads = torch.autograd.grad((out.rgb * torch.arange(3.0)).sum() + out.depth.sum(),
                                    [scale, tint])
        results.append((out, grads))
    (fast, fast_grads), (ref, ref_grads) = results
    assert fast.n_samples == ref.n_samples and fast.n_queries > 0
    assert (ref.opacity > 0.99).sum() > 5
    torch.testing.assert_close(fast.rgb, ref.rgb)
    torch.testing.assert_close(fast.depth, ref.depth)
    for a, b in zip(fast_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b)


def updated_ball_grid(resolution: int, radius: float = 0.5) -> OccupancyGrid:
    """The grid after four full updates with the occupancy of a ball of ``radius``."""
    grid = OccupancyGrid(AABB.float(), OccupancyConfig(resolution=resolution,
                                                       warmup_steps=10**6))
    for step in range(4):
        grid.update(step, lambda x: ball_density(x, radius) * 0.005,
                    torch.Generator().manual_seed(step))
    return grid


def test_occupancy_grid_of_a_sphere_marks_cells_outside_empty():
    res = 32
    grid = updated_ball_grid(res)
    occupied = grid.binaries[0]
    cells = torch.arange(res**3)
    ijk = torch.stack([cells // res**2, (cells // res) % res, cells % res], -1).float()
    lo = -1 + ijk * (2 / res)
    nearest = torch.clamp(torch.zeros(3), lo, lo + 2 / res)  # closest point of each cell
    farthest = torch.where(lo.abs() > (lo + 2 / res).abs(), lo, lo + 2 / res)
    outside = nearest.norm(dim=-1) > 0.5 + 0.15  # no point of the cell is near the ball
    inside = farthest.norm(dim=-1) < 0.5 - 0.1  # every point of the cell is in the ball
    flat = occupied.reshape(-1)
    assert outside.sum() > 20000 and inside.sum() > 500
    assert not flat[outside].any()
    assert flat[inside].all()
    assert torch.equal(grid.occupied(lo + 1 / res), flat)  # point query agrees with the cells


def test_occupancy_update_takes_the_max_of_a_cell_drawn_twice(monkeypatch):
    # an indexed assignment would keep either duplicate, depending on the threads' timing
    grid = OccupancyGrid(AABB.float(), OccupancyConfig(resolution=8))
    grid.occs.fill_(0.5)
    cells = torch.tensor([5, 9, 5, 5, 9] * 20000)  # enough rows for a parallel assignment
    values = torch.tensor([0.2, 0.3, 0.9, 0.1, 0.25] * 20000)
    monkeypatch.setattr(grid, "_cells_to_update", lambda step, generator: cells)
    monkeypatch.setattr(grid, "cell_centers_jittered", lambda c, generator: torch.zeros(len(c), 3))
    grid.update(100, lambda x: values, torch.Generator())
    want = torch.full((8**3,), 0.5)
    decay = grid.config.ema_decay
    want[5], want[9] = max(0.5 * decay, 0.9), max(0.5 * decay, 0.3)
    assert torch.equal(grid.occs, want)


def test_cell_indices_follow_nerfacc_layout():
    point = torch.tensor([[-0.99, 0.01, 0.99]])  # cell (0, 2, 3) of a 4^3 grid
    assert cell_indices(point, AABB.float(), 4).item() == (0 * 4 + 2) * 4 + 3


def render_ball(grid, skip_empty: bool, early_stop_eps: float):
    """32 x 32 orthographic-ish view of a coloured ball."""
    u, v = torch.meshgrid(torch.linspace(-0.9, 0.9, 32), torch.linspace(-0.9, 0.9, 32),
                          indexing="ij")
    origins = torch.stack([u.reshape(-1), v.reshape(-1), torch.full((1024,), 3.0)], -1)
    directions = F.normalize(torch.tensor([0.05, 0.02, -1.0]).expand(1024, 3), dim=-1)

    def density_fn(points, dirs):
        return ball_density(points)

    def radiance_fn(points, dirs):
        return torch.sigmoid(4 * points + dirs), ball_density(points)

    options = MarchOptions(step_size=0.005, early_stop_eps=early_stop_eps, skip_empty=skip_empty)
    return render_rays(Rays(origins, directions), grid, options, density_fn, radiance_fn,
                       background=torch.ones(3))


def test_skipping_and_early_stop_do_not_change_the_image():
    # A converged grid marks every cell that holds density: its occupancy bounds the density
    # over the cell, modelled here by a ball grown by one cell diagonal.
    res = 64
    grid = updated_ball_grid(res, radius=0.5 + 3**0.5 * 2 / res)
    full = render_ball(grid, skip_empty=False, early_stop_eps=0.0)
    fast = render_ball(grid, skip_empty=True, early_stop_eps=1e-4)
    assert fast.n_samples < full.n_samples / 10
    assert (full.opacity > 0.99).sum() > 100 and (full.opacity < 0.01).sum() > 100
    torch.testing.assert_close(fast.rgb, full.rgb, atol=1e-3, rtol=0)
    torch.testing.assert_close(fast.opacity, full.opacity, atol=1e-3, rtol=0)


@requires_cuda
def test_nerfacc_matches_the_reference_on_cuda():
    pytest.importorskip("nerfacc")
    grid = updated_ball_grid(64).cuda()
    rays = random_rays(4096, seed=7, dtype=torch.float32)
    rays = Rays(rays.origins.cuda(), rays.directions.cuda())
    near, far = torch.zeros(4096, device="cuda"), torch.full((4096,), 1e10, device="cuda")

    def sigma_fn(t_starts, t_ends, ray_indices):
        mids = 0.5 * (t_starts + t_ends)
        return ball_density(rays.origins[ray_indices] + mids[:, None] * rays.directions[
            ray_indices])

    from fieldfit.renderers import get_renderer

    nerfacc = get_renderer("nerfacc", torch.device("cuda"))
    results = {}
    for backend in ("torch", "nerfacc"):  # each backend's own sampling and weights
        samples = grid.sample(rays.origins, rays.directions, 0.005, near, far, sigma_fn=sigma_fn,
                              backend=backend)
        sigmas = sigma_fn(*samples[1:], samples[0])
        weights = (weights_from_density(samples, sigmas, 4096) if backend == "torch" else
                   nerfacc.weights_from_density(samples, sigmas, 4096))[0]
        results[backend] = (samples, torch.zeros(4096, device="cuda").index_add(
            0, samples.ray_indices, weights))
    (ref, ref_opacity), (fast, fast_opacity) = results["torch"], results["nerfacc"]
    assert abs(len(fast) - len(ref)) <= 0.002 * len(ref)
    torch.testing.assert_close(fast_opacity, ref_opacity, atol=2e-3, rtol=0)
    # the same samples where both agree on the lattice (boundary cases may differ in float32)
    common = torch.isin(ref.t_starts * 1e4 // 1 + ref.ray_indices * 1e6,
                        fast.t_starts * 1e4 // 1 + fast.ray_indices * 1e6)
    assert common.float().mean() > 0.99
