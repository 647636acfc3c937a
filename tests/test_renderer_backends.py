"""Every registered renderer backend against the PyTorch reference: the same samples, and the
same images and gradients; the C++ compositor's gradients against finite differences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fieldfit.renderers import (
    OccupancyConfig,
    OccupancyGrid,
    RaySamples,
    Renderer,
    get_renderer,
    march_rays,
    render_front_to_back,
    renderer_names,
)
from fieldfit.renderers.backends import renderer_runs_on

AABB = torch.tensor([-1.0, -0.8, -1.2, 1.1, 0.9, 1.0])


def cpu_backends() -> list[str]:
    return [name for name in renderer_names() if name != "auto" and renderer_runs_on(name, "cpu")]


def load(name: str) -> Renderer:
    try:
        return get_renderer(name, torch.device("cpu"))
    except RuntimeError as err:  # a C++ backend without a compiler
        pytest.skip(str(err))


def rays(n: int, seed: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    origins = torch.randn(n, 3, generator=g, dtype=dtype) * 2.5
    targets = torch.rand(n, 3, generator=g, dtype=dtype) * 1.6 - 0.8
    near = torch.rand(n, generator=g, dtype=dtype) * 0.02
    return origins, F.normalize(targets - origins, dim=-1), near


def shell_grid(resolution: int = 24) -> OccupancyGrid:
    """Occupied cells: a shell around the origin (not convex, so rays re-enter it)."""
    grid = OccupancyGrid(AABB, OccupancyConfig(resolution=resolution))
    cells = torch.arange(resolution**3)
    radius = grid.cell_points(cells, torch.full((len(cells), 3), 0.5)).norm(dim=-1)
    grid.binaries.copy_(((radius > 0.35) & (radius < 0.8)).reshape(grid.binaries.shape))
    return grid


@pytest.mark.parametrize("name", cpu_backends())
def test_every_backend_marches_the_reference_samples(name):
    renderer = load(name)
    grid = shell_grid()
    origins, directions, near = rays(600, seed=1)
    far = torch.where(torch.arange(600) % 5 == 0, torch.tensor(2.5), torch.tensor(1e10))
    got = renderer.march(origins, directions, grid.aabb, grid.binaries[0], near, far, 0.01)
    want = march_rays(origins, directions, grid.aabb, grid.binaries[0], near, far, 0.01)
    assert len(want) > 10000
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


def assert_reference_march(renderer, grid, origins, directions, near, far, step, at_least):
    got = renderer.march(origins, directions, grid.aabb, grid.binaries[0], near, far, step)
    want = march_rays(origins, directions, grid.aabb, grid.binaries[0], near, far, step)
    assert len(want) > at_least
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


def block_cells(blocks: torch.Tensor, size: int) -> torch.Tensor:
    """(B, B, B) bool blocks -> (B * size,) * 3 cells, each block's cells all set or all not."""
    for axis in range(3):
        blocks = blocks.repeat_interleave(size, axis)
    return blocks


def hard_rays(seed: int, faces: torch.Tensor, g: torch.Generator, inside: float):
    """900 random rays, rays along the axes (both ways) from 3 units behind the 300 ``faces``
    points, and rays in random directions from the points ``faces * inside``."""
    origins, directions, near = rays(900, seed=seed)
    axis = torch.eye(3).repeat(100, 1) * torch.where(torch.arange(300) % 2 == 0, 1.0, -1.0)[
        :, None]
    origins = torch.cat([origins, faces - 3 * axis, faces * inside])
    directions = torch.cat([directions, axis, F.normalize(torch.randn(300, 3, generator=g),
                                                          dim=-1)])
    near = torch.cat([near, torch.zeros(600)])
    return origins, directions, near, torch.full_like(near, 1e10)


@pytest.mark.parametrize("name", cpu_backends())
def test_every_backend_marches_the_reference_samples_on_hard_rays(name):
    # sparse random cells (a ray crosses many empty cells between occupied ones), rays along
    # the axes (zero direction components) and on the cells' faces, origins inside the box
    grid = OccupancyGrid(AABB, OccupancyConfig(resolution=32))
    g = torch.Generator().manual_seed(3)
    grid.binaries.copy_(torch.rand(grid.binaries.shape, generator=g) < 0.08)
    faces = AABB[:3] + (AABB[3:] - AABB[:3]) * torch.randint(0, 33, (300, 3), generator=g) / 32
    assert_reference_march(load(name), grid, *hard_rays(2, faces, g, 0.3), 0.004, 20000)


@pytest.mark.parametrize("name", cpu_backends())
def test_every_backend_marches_the_reference_samples_through_empty_blocks(name):
    # occupied cells only in a few 4^3 blocks (a resolution that is no multiple of 4 or 16, so
    # the border blocks are partial): a ray skips the empty blocks whole in the C++ march; rays
    # along the axes on the blocks' faces and from inside the box
    renderer = load(name)
    res = 38
    grid = OccupancyGrid(AABB, OccupancyConfig(resolution=res))
    g = torch.Generator().manual_seed(4)
    blocks = torch.rand(10, 10, 10, generator=g) < 0.15
    cells = block_cells(blocks, 4)[:res, :res, :res]
    grid.binaries.copy_(cells & (torch.rand(res, res, res, generator=g) < 0.4))
    faces = AABB[:3] + (AABB[3:] - AABB[:3]) * 4 * torch.randint(0, 10, (300, 3), generator=g) / res
    ray_set = hard_rays(5, faces, g, 0.5)
    for step in (0.003, 0.05):  # many samples per block, and fewer than one
        assert_reference_march(renderer, grid, *ray_set, step, 2000)


@pytest.mark.parametrize("name", cpu_backends())
def test_every_backend_samples_fresh_grids_of_one_size(name):
    # grids made one after another reuse each other's memory: what a backend keeps between
    # ray batches (the occupied box and blocks) must follow the grid, not its address
    renderer = load(name)
    origins, directions, near = rays(500, seed=6)
    far = torch.full_like(near, 1e10)
    for seed in range(6):
        grid = OccupancyGrid(AABB, OccupancyConfig(resolution=32))
        g = torch.Generator().manual_seed(seed)
        blocks = torch.rand(8, 8, 8, generator=g) < 0.2
        grid.binaries.copy_(block_cells(blocks, 4)[None])
        got = renderer.sample(grid, origins, directions, 0.01, near, far, None, None, 1e-4, 0.0)
        want = march_rays(origins, directions, grid.aabb, grid.binaries[0], near, far, 0.01)
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a, b)
        del grid


def ball_closure(origins, directions, leaves, from_alpha: bool):
    """Colour and density (or opacity) of a lumpy ball, depending on the parameters
    ``leaves`` = (scale, tint)."""
    scale, tint = leaves

    def fn(t_starts, t_ends, ray_indices):
        mids = 0.5 * (t_starts + t_ends)
        p = origins[ray_indices] + mids[:, None] * directions[ray_indices]
        sigma = 40 * torch.sigmoid(30 * (0.45 - p.norm(dim=-1))) * scale * (1 + 0.5 * p[:, 0])
        rgb = torch.sigmoid(p * tint)
        if from_alpha:  # opacities with exact ones (alpha = 1) in the core
            return rgb, torch.clamp(1.5 * (1 - torch.exp(-sigma * (t_ends - t_starts))), max=1)
        return rgb, sigma

    return fn


def render_with(name, samples, origins, directions, from_alpha, eps, thre):
    leaves = [torch.tensor(1.3, dtype=origins.dtype, requires_grad=True),
              torch.tensor([0.5, -1.0, 2.0], dtype=origins.dtype, requires_grad=True)]
    fn = ball_closure(origins, directions, leaves, from_alpha)
    out = render_front_to_back(samples, len(origins), background=torch.tensor([0.2, 0.5, 1.0]),
                               early_stop_eps=eps, alpha_thre=thre, backend=name,
                               **{"rgb_alpha_fn" if from_alpha else "rgb_sigma_fn": fn})
    probe = torch.randn(len(origins), 5, generator=torch.Generator().manual_seed(3))
    loss = (torch.cat([out.rgb, out.opacity, out.depth], 1) * probe).sum()
    return out, torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("name", cpu_backends())
@pytest.mark.parametrize(("from_alpha", "eps", "thre"), [(False, 1e-3, 0.02), (True, 1e-4, 0.0),
                                                         (False, 0.0, 0.0)])
def test_every_backend_renders_the_reference_values_and_gradients(name, from_alpha, eps, thre):
    load(name)
    origins, directions, near = rays(300, seed=2)
    samples = march_rays(origins, directions, AABB, None, near, torch.full_like(near, 1e10),
                         0.01)
    out, grads = render_with(name, samples, origins, directions, from_alpha, eps, thre)
    ref, ref_grads = render_with("torch", samples, origins, directions, from_alpha, eps, thre)
    assert (ref.opacity > 0.99).sum() > 20 and (ref.opacity < 0.01).sum() > 20
    assert out.n_samples == ref.n_samples and out.n_queries == ref.n_queries
    assert (ref.n_queries > 0) == (eps > 0)
    for key in ("rgb", "opacity", "depth"):
        torch.testing.assert_close(getattr(out, key), getattr(ref, key), rtol=1e-5, atol=2e-5)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_cpp_compositing_gradients_match_finite_differences():
    load("cpp")
    from fieldfit.renderers.backends import _Composite

    g = torch.Generator().manual_seed(4)
    counts = torch.tensor([5, 0, 7, 3, 6])
    ray_indices = torch.repeat_interleave(torch.arange(5), counts)
    starts = torch.cumsum(counts, 0) - counts
    t = torch.rand(len(ray_indices), generator=g, dtype=torch.float64).sort().values
    samples = RaySamples(ray_indices, t, t + 0.05)
    rows = torch.randperm(len(samples), generator=g)  # visited in any order
    rows[starts[2] + 5:starts[2] + 7] = -1  # the end of ray 2 is not visited
    m = int((rows >= 0).sum())
    rows[rows >= 0] = torch.arange(m)[torch.randperm(m, generator=g)]
    alphas = (torch.rand(m, generator=g, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    rgbs = torch.rand(m, 3, generator=g, dtype=torch.float64, requires_grad=True)

    def fn(a, c):
        return _Composite.apply(a, c, samples.t_mids, starts, counts, rows, 0.05, 0.15)[:3]

    kept = _Composite.apply(alphas, rgbs, samples.t_mids, starts, counts, rows, 0.05, 0.15)[3]
    assert 0 < int(kept.sum()) < m  # some samples are dropped (dim or late)
    assert torch.autograd.gradcheck(fn, (alphas, rgbs))


def test_renderer_names_are_checked():
    with pytest.raises(ValueError, match="unknown renderer backend"):
        get_renderer("vulkan", torch.device("cpu"))
    with pytest.raises(ValueError, match="runs on"):
        get_renderer("nerfacc", torch.device("cpu"))
    assert get_renderer("auto", torch.device("cpu")).name in ("cpp", "torch")


def test_auto_falls_back_to_the_reference_when_the_kernels_do_not_build(monkeypatch):
    from fieldfit.renderers import backends

    def broken():
        raise RuntimeError("C++ renderer kernels did not build: no compiler")

    monkeypatch.setattr(backends.RENDERERS, "auto_choice", {})
    monkeypatch.setattr(backends.RENDERERS, "loaded", {})
    monkeypatch.setitem(backends.RENDERERS.loaders, "cpp", (broken, ("cpu",)))
    assert type(get_renderer("auto", torch.device("cpu"))) is Renderer
