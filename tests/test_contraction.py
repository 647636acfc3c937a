"""Scene contraction (closed form) and the multi-level occupancy grid for unbounded scenes."""

from __future__ import annotations

import torch
from fieldfit.renderers.contraction import contract
from fieldfit.renderers.marching import march_rays, ray_aabb_intersect
from fieldfit.renderers.occupancy import MultiLevelOccupancyGrid, OccupancyConfig


def test_contraction_is_identity_inside_the_unit_ball():
    x = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1) * torch.rand(500, 1)
    torch.testing.assert_close(contract(x), x, rtol=0, atol=0)


def test_contraction_outside_matches_the_closed_form_and_stays_below_2():
    direction = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    radius = 1 + torch.rand(500, 1) * 1e3
    out = contract(direction * radius)
    torch.testing.assert_close(out, (2 - 1 / radius) * direction)
    assert (out.norm(dim=-1) < 2).all() and (out.norm(dim=-1) > 1).all()
    far = contract(torch.tensor([[1e12, 0.0, 0.0]]))
    torch.testing.assert_close(far, torch.tensor([[2.0, 0.0, 0.0]]))


def test_contraction_is_continuous_with_unit_slope_across_the_sphere():
    direction = torch.nn.functional.normalize(torch.randn(100, 3, dtype=torch.float64), dim=-1)
    eps = 1e-6
    inner, outer = contract(direction * (1 - eps)), contract(direction * (1 + eps))
    assert (outer - inner).norm(dim=-1).max() < 3 * eps  # no jump, slope 1 radially
    # radial derivative d|c|/dr = 1 / r^2 outside: finite differences
    r = torch.tensor([1.5, 3.0, 10.0], dtype=torch.float64)[:, None]
    h = 1e-5
    slope = (contract(direction[:3] * (r + h)) - contract(direction[:3] * (r - h))).norm(
        dim=-1) / (2 * h)
    torch.testing.assert_close(slope, 1 / r[:, 0] ** 2)


def grid(levels: int = 3, resolution: int = 8) -> MultiLevelOccupancyGrid:
    return MultiLevelOccupancyGrid(torch.tensor([-1.0, -1, -1, 1, 1, 1]),
                                   OccupancyConfig(resolution=resolution), levels=levels)


def rays(n: int = 64):
    gen = torch.Generator().manual_seed(0)
    origins = torch.rand(n, 3, generator=gen) * 1.6 - 0.8
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    return origins, directions


def test_levels_tile_each_ray_with_doubling_steps():
    g = grid()
    origins, directions = rays()
    zeros, far = torch.zeros(len(origins)), torch.full((len(origins),), 1e10)
    samples = g.sample(origins, directions, 0.05, zeros, far, skip_empty=False)
    one = march_rays(origins, directions, g.level_aabb(0), None, zeros, far, 0.05)
    exit_outer = ray_aabb_intersect(origins, directions, g.level_aabb(2))[1]
    for ray in range(len(origins)):
        mine = samples.ray_indices == ray
        starts, ends = samples.t_starts[mine], samples.t_ends[mine]
        assert starts[0] == 0  # rays start inside the finest box
        torch.testing.assert_close(starts[1:], ends[:-1])  # no gaps, no overlaps
        torch.testing.assert_close(ends[-1], exit_outer[ray])  # up to the outer box
        widths = ends - starts
        assert widths.max() <= 0.2 + 1e-6 and widths.min() > 0  # at most the coarsest step
        # inside the finest box: the one-level lattice
        lattice = one.t_starts[one.ray_indices == ray]
        torch.testing.assert_close(starts[:len(lattice)], lattice)


def test_empty_cells_are_skipped_per_level():
    g = grid(levels=2, resolution=4)
    g.binaries[0] = False  # the finest level empty: only the outer shell is sampled
    origins, directions = rays(16)
    zeros = torch.zeros(len(origins))
    samples = g.sample(origins, directions, 0.05, zeros, torch.full_like(zeros, 1e10))
    points = samples.points(origins, directions)
    assert len(samples) > 0 and (points.abs().amax(-1) >= 1 - 1e-5).all()
    assert g.occupied(points).all()
    assert not g.occupied(torch.zeros(1, 3)).any()


def test_coarse_cells_see_world_points_and_weigh_occupancy_by_their_step():
    g = grid(levels=3, resolution=4)
    r3 = 4**3
    cells = torch.tensor([0, r3 + 5, 2 * r3 + 63])
    points = g.cell_centers_jittered(cells, torch.Generator().manual_seed(0))
    for cell, point in zip(cells.tolist(), points, strict=True):
        box = g.level_aabb(cell // r3)
        assert ((point >= box[:3]) & (point <= box[3:])).all()
    torch.testing.assert_close(g.step_factor(cells), torch.tensor([1.0, 2.0, 4.0]))
    g.update(step=0, occupancy_fn=lambda x: torch.full((len(x),), 0.004),
             generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(g.occs.reshape(3, -1).mean(1), torch.tensor([0.004, 0.008,
                                                                            0.016]))
