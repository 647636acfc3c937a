"""Rendering rays of a field given as point functions: sampling, then compositing.

The field never sees a ray: this module turns point functions ``f(points, directions)`` into the
per-sample closures the marcher and compositor take, in the style of nerfacc.

Two schedules give the same samples and image. With nerfacc (CUDA), samples are chosen with a
density-only pass and then rendered, as nerfacc does. The torch and cpp backends evaluate colour
and density together, front to back in rounds (:func:`render_front_to_back`), so no sample is
evaluated twice: on a CPU, where field queries dominate the cost, this is the cheaper order.
Every function takes the renderer ``backend`` by name (:func:`.backends.get_renderer`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .backends import get_renderer
from .cameras import Rays
from .occupancy import OccupancyGrid
from .packed import RaySamples
from .volume import RenderOutput, SampleFn, composite

# (points (n, 3), directions (n, 3)[, times (n, 1)]) -> densities (n,)
PointDensityFn = Callable[..., torch.Tensor]
# (points (n, 3), directions (n, 3)[, times (n, 1)]) -> (colours (n, 3), densities (n,))
PointRadianceFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]
"""Point functions take the samples' times as a third argument where the rays carry times
(a dynamic scene), and only points and directions otherwise."""


def generator_device(generator: torch.Generator | None) -> torch.device:
    """The device ``generator`` draws on (the CPU for None: torch's default generator)."""
    return torch.device("cpu") if generator is None else generator.device


@dataclass
class MarchOptions:
    """How rays are sampled."""

    step_size: float
    """distance between samples (world units)"""
    near: float = 0.0
    """distance where marching may start"""
    far: float = 1e10
    """distance where it stops"""
    early_stop_eps: float = 1e-4
    """stop a ray once its transmittance is below this"""
    alpha_thre: float = 0.0
    """skip samples more transparent than this (capped at the grid's mean occupancy)"""
    stratified: bool = False
    """jitter each ray's sample lattice by up to one step (training)"""
    skip_empty: bool = True
    """skip unoccupied cells (False: march the whole box)"""


def _as_alpha_fn(rgb_sigma_fn: SampleFn | None, rgb_alpha_fn: SampleFn | None,
                 caller: str) -> SampleFn:
    """The sample closure giving opacities: ``rgb_alpha_fn``, or ``rgb_sigma_fn`` with
    ``alpha = 1 - exp(-sigma dt)``; exactly one is given."""
    if (rgb_sigma_fn is None) == (rgb_alpha_fn is None):
        raise ValueError(f"{caller}: give exactly one of rgb_sigma_fn and rgb_alpha_fn")
    if rgb_alpha_fn is not None:
        return rgb_alpha_fn

    def alpha_fn(t_starts, t_ends, ray_indices):
        rgbs, sigmas = rgb_sigma_fn(t_starts, t_ends, ray_indices)
        return rgbs, 1.0 - torch.exp(-sigmas * (t_ends - t_starts))

    return alpha_fn


def render_front_to_back(samples: RaySamples, n_rays: int, rgb_sigma_fn: SampleFn | None = None,
                         background: torch.Tensor | None = None, early_stop_eps: float = 1e-4,
                         alpha_thre: float = 0.0, rgb_alpha_fn: SampleFn | None = None,
                         backend: str = "auto") -> RenderOutput:
    """Render packed samples, evaluating the sample closure once per sample, front to back
    (:func:`.marching.front_to_back`), and compositing the visible ones.

    Exactly one of ``rgb_sigma_fn`` / ``rgb_alpha_fn`` is given (as in :func:`render_samples`).
    The same image and gradients as :func:`.marching.filter_visible` followed by
    :func:`render_samples`, without the separate density pass. ``n_queries`` of the output
    counts the evaluated samples that were not composited.
    """
    alpha_fn = _as_alpha_fn(rgb_sigma_fn, rgb_alpha_fn, "render_front_to_back")
    renderer = get_renderer(backend, samples.t_starts.device)
    return renderer.render_front_to_back(samples, n_rays, alpha_fn, background, early_stop_eps,
                                         alpha_thre)


def render_samples(samples: RaySamples, n_rays: int, rgb_sigma_fn: SampleFn | None = None,
                   rgb_alpha_fn: SampleFn | None = None,
                   background: torch.Tensor | None = None, backend: str = "auto") -> RenderOutput:
    """Render packed samples with a closure giving colour and density (or opacity) per sample.

    Exactly one of ``rgb_sigma_fn`` / ``rgb_alpha_fn`` is given; each takes
    ``(t_starts, t_ends, ray_indices)`` and returns ``(rgbs (n, 3), sigmas or alphas (n,))``.
    """
    if (rgb_sigma_fn is None) == (rgb_alpha_fn is None):
        raise ValueError("render_samples: give exactly one of rgb_sigma_fn and rgb_alpha_fn")
    renderer = get_renderer(backend, samples.t_starts.device)
    idx = samples.ray_indices
    if rgb_sigma_fn is not None:
        rgbs, sigmas = rgb_sigma_fn(samples.t_starts, samples.t_ends, idx)
        weights = renderer.weights_from_density(samples, sigmas, n_rays)[0]
    else:
        rgbs, alphas = rgb_alpha_fn(samples.t_starts, samples.t_ends, idx)
        weights = renderer.weights_from_alpha(alphas, idx, n_rays)[0]
    return composite(samples, weights, rgbs, n_rays, background)


def render_rays(rays: Rays, grid: OccupancyGrid, options: MarchOptions,
                density_fn: PointDensityFn, radiance_fn: PointRadianceFn,
                background: torch.Tensor | None = None,
                generator: torch.Generator | None = None, backend: str = "auto") -> RenderOutput:
    """Volume-render ``rays`` through ``grid`` with a field's point functions (differentiable).

    ``density_fn`` chooses the samples where the backend samples with a density pass
    (nerfacc); the front-to-back backends need only ``radiance_fn``. ``background`` is (3,) or
    (n_rays, 3) (None: black); ``generator`` drives the stratified jitter. ``n_queries`` of the
    output counts field evaluations that were not composited. Rays with ``times`` hand each
    sample its ray's time as a third argument of the point functions.
    """
    n_rays = len(rays)
    origins, directions, views = rays.origins, rays.directions, rays.view_directions
    times = None if rays.times is None else rays.times[:, None]
    near = torch.full((n_rays,), options.near, device=origins.device)
    if options.stratified:
        jitter = torch.rand(n_rays, generator=generator, device=generator_device(generator))
        jitter = jitter.to(origins.device)
        near = near + jitter * options.step_size
    far = torch.full_like(near, options.far)

    def inputs(t_starts, t_ends, ray_indices):
        """The point functions' arguments at the samples."""
        mids = 0.5 * (t_starts + t_ends)
        points = origins[ray_indices] + mids[:, None] * directions[ray_indices]
        if times is None:
            return points, views[ray_indices]
        return points, views[ray_indices], times[ray_indices]

    def rgb_sigma_fn(t_starts, t_ends, ray_indices):
        return radiance_fn(*inputs(t_starts, t_ends, ray_indices))

    march = {"early_stop_eps": options.early_stop_eps, "alpha_thre": options.alpha_thre,
             "skip_empty": options.skip_empty, "backend": backend}
    if not get_renderer(backend, origins.device).density_pass or not options.skip_empty:
        samples = grid.sample(origins, directions, options.step_size, near, far, **march)
        return render_front_to_back(samples, n_rays, rgb_sigma_fn, background,
                                    options.early_stop_eps,
                                    grid.capped_alpha_thre(options.alpha_thre), backend=backend)
    queries = 0

    def sigma_fn(t_starts, t_ends, ray_indices):
        nonlocal queries
        queries += len(t_starts)
        return density_fn(*inputs(t_starts, t_ends, ray_indices))

    samples = grid.sample(origins, directions, options.step_size, near, far, sigma_fn=sigma_fn,
                          **march)
    out = render_samples(samples, n_rays, rgb_sigma_fn=rgb_sigma_fn, background=background,
                         backend=backend)
    out.n_queries = queries
    return out
