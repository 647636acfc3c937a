"""NeuS SDF -> opacity against its closed form, and rendering an analytic SDF."""

from __future__ import annotations

import math

import torch
from fieldfit.renderers import MarchOptions, OccupancyConfig, OccupancyGrid, Rays
from fieldfit.renderers.neus import Sharpness, neus_alpha, render_sdf_rays, sdf_occupancy


def logistic_cdf(x, s):
    return 1.0 / (1.0 + math.exp(-s * x))


def test_alpha_matches_the_neus_formula_on_a_linear_sdf():
    """Along a ray entering a plane head-on, f(t) = c - t, the midpoint estimates of the
    interval ends are exact, so alpha is NeuS Eq. 13 with the true end values."""
    c, s, dt = 0.37, 40.0, 0.02
    starts = torch.arange(0.0, 0.8, dt, dtype=torch.float64)
    mids = starts + dt / 2
    alpha = neus_alpha(c - mids, torch.full_like(mids, -1.0), torch.full_like(mids, dt),
                       torch.tensor(s, dtype=torch.float64))
    for a, t in zip(alpha.tolist(), starts.tolist(), strict=True):
        prev, nxt = logistic_cdf(c - t, s), logistic_cdf(c - t - dt, s)
        # up to the 1e-5 that keeps the division finite
        assert abs(a - max((prev - nxt) / prev, 0.0)) <= 2e-5 / prev
    # the transmittance telescopes to Phi(f_end) / Phi(f_start) and the weights peak at t = c
    trans = torch.cumprod(1 - alpha, 0)
    want = logistic_cdf(c - starts[-1].item() - dt, s) / logistic_cdf(c, s)
    assert abs(trans[-1].item() - want) < 1e-3
    weights = alpha * torch.cat([torch.ones(1, dtype=alpha.dtype), trans[:-1]])
    assert abs(mids[weights.argmax()].item() - c) <= dt


def test_alpha_is_zero_leaving_the_surface():
    sdf = torch.linspace(-0.2, 0.2, 9)
    alpha = neus_alpha(sdf, torch.full_like(sdf, 0.8), torch.full_like(sdf, 0.05),
                       torch.tensor(50.0))
    assert alpha.max() == 0
    # NeuS's anneal start (ratio 0) still gives intervals facing away some opacity
    early = neus_alpha(sdf, torch.full_like(sdf, 0.8), torch.full_like(sdf, 0.05),
                       torch.tensor(50.0), cos_anneal_ratio=0.0)
    assert early.max() > 0.01


def test_sharpness_and_occupancy():
    sharpness = Sharpness()
    torch.testing.assert_close(sharpness(), torch.tensor(math.exp(3.0)))
    sharpness().backward()
    assert sharpness.variance.grad is not None
    sdf = torch.tensor([-0.3, -0.05, 0.0, 0.05, 0.3])
    s, step = 100.0, 0.01
    occ = sdf_occupancy(sdf, torch.tensor(s), step=step)
    # opaque at the surface and just inside (1 - e^{-s step} for a logistic tail), empty
    # outside; deep inside the 1e-5 of the denominator wins, as no ray gets there anyway
    assert occ[1] > 0.3 and occ[2] > 0.3 and occ[3] < occ[2] and occ[-1] < 1e-3
    assert abs(occ[1].item() - (1 - math.exp(-s * step))) < 1e-2


def test_rendering_an_analytic_sphere():
    """Rays down -z onto a sphere of radius r: opaque inside its silhouette, empty outside,
    depth at the front surface."""
    r = 0.5
    xy = torch.stack(torch.meshgrid(torch.linspace(-0.7, 0.7, 15), torch.linspace(-0.7, 0.7, 15),
                                    indexing="ij"), -1).reshape(-1, 2)
    origins = torch.cat([xy, torch.full((len(xy), 1), 2.0)], dim=1)
    directions = torch.tensor([0.0, 0.0, -1.0]).expand_as(origins).contiguous()
    grid = OccupancyGrid(torch.tensor([-1.0, -1, -1, 1, 1, 1]), OccupancyConfig(resolution=8))

    def field(points, views):
        norm = points.norm(dim=-1, keepdim=True)
        return torch.tensor([1.0, 0.0, 0.0]).expand_as(points), norm[:, 0] - r, points / norm

    out, grads = render_sdf_rays(Rays(origins, directions), grid,
                                 MarchOptions(step_size=0.002, skip_empty=False), field,
                                 torch.tensor(3000.0))
    radial = xy.norm(dim=-1)
    hit, miss = radial < r - 0.03, radial > r + 0.01
    opacity = out.opacity[:, 0]
    assert (opacity[hit] > 0.99).all() and (opacity[miss] < 1e-3).all()
    depth = out.depth[hit, 0] / opacity[hit]
    torch.testing.assert_close(depth, 2.0 - (r * r - radial[hit] ** 2).sqrt(), atol=5e-3,
                               rtol=0)
    torch.testing.assert_close(out.rgb[hit], torch.tensor([1.0, 0.0, 0.0]).expand(
        int(hit.sum()), 3), atol=1e-2, rtol=0)
    # every evaluated sample has a gradient; rays stop inside the sphere (early termination)
    assert grads.shape == (out.n_samples + out.n_queries, 3)
    full, _ = render_sdf_rays(Rays(origins, directions), grid,
                              MarchOptions(step_size=0.002, skip_empty=False, early_stop_eps=0.0),
                              field, torch.tensor(3000.0))
    assert full.n_samples > out.n_samples + out.n_queries
    torch.testing.assert_close(out.rgb, full.rgb, atol=2e-4, rtol=0)
    torch.testing.assert_close(out.opacity, full.opacity, atol=2e-4, rtol=0)
