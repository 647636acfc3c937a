"""Rendering rays of a field given as point functions: sampling, then compositing.

The field never sees a ray: this module turns point functions ``f(points, directions)`` into the
per-sample closures the marcher and compositor take, in the style of nerfacc.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .cameras import Rays
from .occupancy import OccupancyGrid
from .volume import RenderOutput, render_samples

# (points (n, 3), directions (n, 3)) -> densities (n,)
PointDensityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (points (n, 3), directions (n, 3)) -> (colours (n, 3), densities (n,))
PointRadianceFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


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


def render_rays(rays: Rays, grid: OccupancyGrid, options: MarchOptions,
                density_fn: PointDensityFn, radiance_fn: PointRadianceFn,
                background: torch.Tensor | None = None,
                generator: torch.Generator | None = None, backend: str = "auto") -> RenderOutput:
    """Volume-render ``rays`` through ``grid``: visible samples are found with ``density_fn``
    (no gradient), then coloured and composited with ``radiance_fn`` (differentiable).

    ``background`` is (3,) or (n_rays, 3) (None: black); ``generator`` drives the stratified
    jitter.
    """
    n_rays = len(rays)
    origins, directions, views = rays.origins, rays.directions, rays.view_directions
    near = torch.full((n_rays,), options.near, device=origins.device)
    if options.stratified:
        jitter = torch.rand(n_rays, generator=generator).to(origins.device)
        near = near + jitter * options.step_size
    far = torch.full_like(near, options.far)

    def points(t_starts, t_ends, ray_indices):
        mids = 0.5 * (t_starts + t_ends)
        return origins[ray_indices] + mids[:, None] * directions[ray_indices]

    queries = 0

    def sigma_fn(t_starts, t_ends, ray_indices):
        nonlocal queries
        queries += len(t_starts)
        return density_fn(points(t_starts, t_ends, ray_indices), views[ray_indices])

    def rgb_sigma_fn(t_starts, t_ends, ray_indices):
        return radiance_fn(points(t_starts, t_ends, ray_indices), views[ray_indices])

    samples = grid.sample(origins, directions, options.step_size, near, far, sigma_fn=sigma_fn,
                          early_stop_eps=options.early_stop_eps, alpha_thre=options.alpha_thre,
                          skip_empty=options.skip_empty, backend=backend)
    out = render_samples(samples, n_rays, rgb_sigma_fn=rgb_sigma_fn, background=background,
                         backend=backend)
    out.n_queries = queries
    return out
