"""Volume rendering of packed samples against closed forms and a dense per-ray loop."""

from __future__ import annotations

import math

import pytest
import torch
from fieldfit.renderers import (
    RaySamples,
    composite,
    exclusive_cumsum,
    render_samples,
    weights_from_alpha,
    weights_from_density,
)


def constant_density_samples(sigma: float, length: float, n: int):
    t = torch.linspace(0, length, n + 1, dtype=torch.float64)
    samples = RaySamples(torch.zeros(n, dtype=torch.int64), t[:-1], t[1:])
    return samples, torch.full((n,), sigma, dtype=torch.float64)


def test_transmittance_of_constant_density_is_exponential():
    sigma, length, n = 3.0, 2.0, 64
    samples, sigmas = constant_density_samples(sigma, length, n)
    weights, trans, alphas = weights_from_density(samples, sigmas, 1)
    torch.testing.assert_close(trans, torch.exp(-sigma * samples.t_starts))
    torch.testing.assert_close(weights.sum(), torch.tensor(1 - math.exp(-sigma * length),
                                                           dtype=torch.float64))
    # the opacity route gives the same transmittance: prod (1 - alpha) = exp(-sum sigma dt)
    weights_a, trans_a = weights_from_alpha(alphas, samples.ray_indices, 1)
    torch.testing.assert_close(trans_a, trans)
    torch.testing.assert_close(weights_a, weights)


def test_weights_sum_to_opacity_and_background_fills_the_rest():
    samples, sigmas, rgbs, n_rays = random_packed(seed=3)
    weights = weights_from_density(samples, sigmas, n_rays)[0]
    out = composite(samples, weights, rgbs, n_rays, background=torch.tensor([0.2, 0.5, 1.0]))
    per_ray = torch.zeros(n_rays).index_add(0, samples.ray_indices, weights)
    torch.testing.assert_close(out.opacity[:, 0], per_ray)
    assert (out.opacity <= 1 + 1e-6).all()
    empty = torch.bincount(samples.ray_indices, minlength=n_rays) == 0
    assert empty.any()
    torch.testing.assert_close(out.rgb[empty], torch.tensor([[0.2, 0.5, 1.0]]).expand(
        int(empty.sum()), 3))


def random_packed(seed: int, n_rays: int = 7):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 9, (n_rays,), generator=g)
    counts[2] = 0  # a ray without samples
    ray_indices = torch.repeat_interleave(torch.arange(n_rays), counts)
    dt = torch.rand(len(ray_indices), generator=g) * 0.3 + 0.05
    t_ends = torch.zeros_like(dt)
    for r in range(n_rays):  # consecutive intervals along each ray
        sel = ray_indices == r
        t_ends[sel] = 1.0 + torch.cumsum(dt[sel], 0)
    samples = RaySamples(ray_indices, t_ends - dt, t_ends)
    sigmas = torch.rand(len(dt), generator=g) * 6
    rgbs = torch.rand(len(dt), 3, generator=g)
    return samples, sigmas, rgbs, n_rays


def dense_loop(samples, values, rgbs, n_rays, from_alpha: bool):
    """Reference compositing, one ray and one sample at a time."""
    rgb, opacity, depth = [], [], []
    for r in range(n_rays):
        idx = torch.nonzero(samples.ray_indices == r)[:, 0].tolist()
        trans, c, a, d = 1.0, torch.zeros(3), 0.0, 0.0
        for i in idx:
            dt = samples.t_ends[i] - samples.t_starts[i]
            alpha = values[i] if from_alpha else 1 - torch.exp(-values[i] * dt)
            w = trans * alpha
            c = c + w * rgbs[i]
            a = a + w
            d = d + w * 0.5 * (samples.t_starts[i] + samples.t_ends[i])
            trans = trans * (1 - alpha)
        rgb.append(c)
        opacity.append(torch.as_tensor(a).reshape(1))
        depth.append(torch.as_tensor(d).reshape(1))
    return torch.stack(rgb), torch.stack(opacity), torch.stack(depth)


@pytest.mark.parametrize("from_alpha", [False, True])
def test_packed_rendering_matches_dense_loop_values_and_gradients(from_alpha):
    samples, sigmas, rgbs, n_rays = random_packed(seed=5)
    values = 1 - torch.exp(-sigmas * 0.2) if from_alpha else sigmas
    leaves = [values.clone().requires_grad_(), rgbs.clone().requires_grad_()]
    ref_leaves = [values.clone().requires_grad_(), rgbs.clone().requires_grad_()]

    def closure(t_starts, t_ends, ray_indices):
        return leaves[1], leaves[0]

    kwargs = {"rgb_alpha_fn" if from_alpha else "rgb_sigma_fn": closure}
    out = render_samples(samples, n_rays, **kwargs, backend="torch")
    ref = dense_loop(samples, ref_leaves[0], ref_leaves[1], n_rays, from_alpha)
    for got, want in zip((out.rgb, out.opacity, out.depth), ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    probe = torch.randn(n_rays, 5, generator=torch.Generator().manual_seed(1))
    loss = (torch.cat([out.rgb, out.opacity, out.depth], 1) * probe).sum()
    ref_loss = (torch.cat(ref, 1) * probe).sum()
    grads = torch.autograd.grad(loss, leaves)
    ref_grads = torch.autograd.grad(ref_loss, ref_leaves)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_exclusive_cumsum_is_per_ray():
    ray_indices = torch.tensor([0, 0, 0, 2, 2, 3])
    values = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0, 5.0])
    torch.testing.assert_close(exclusive_cumsum(values, ray_indices, 4),
                               torch.tensor([0.0, 1.0, 3.0, 0.0, 10.0, 0.0]))


def test_render_samples_needs_exactly_one_closure():
    samples, sigmas, rgbs, n_rays = random_packed(seed=1)
    with pytest.raises(ValueError, match="exactly one"):
        render_samples(samples, n_rays)
