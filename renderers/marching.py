"""Ray marching with empty-space skipping and early ray termination (pure PyTorch reference).

Samples sit on a lattice anchored at each ray's near plane: interval k is
``[near + k * step, near + (k + 1) * step]``; it is kept when its midpoint lies inside the box,
before the far plane, in an occupied cell of the occupancy grid. This is nerfacc's
``traverse_grids`` rule (without cone stepping), so both backends give the same samples.
Everything is vectorised over packed samples; the only loop is over rounds of the early-
termination filter, whose length grows geometrically.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .packed import RaySamples, exclusive_cumsum, segment_counts
from .volume import visible_samples

# (t_starts, t_ends, ray_indices) -> (n,) densities or opacities
DensityFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def ray_aabb_intersect(origins: torch.Tensor, directions: torch.Tensor, aabb: torch.Tensor):
    """Entry and exit distances of rays through a box (slab method).

    Args:
        origins, directions: (n_rays, 3).
        aabb: (6,) box as (min x, min y, min z, max x, max y, max z).
    Returns:
        t_min, t_max (n_rays,) and hits (n_rays,) bool (the box lies at least partly ahead).
    """
    tiny = torch.full_like(directions, 1e-12)
    safe = torch.where(directions.abs() < 1e-12, torch.copysign(tiny, directions), directions)
    t1 = (aabb[:3] - origins) / safe
    t2 = (aabb[3:] - origins) / safe
    t_min = torch.minimum(t1, t2).amax(dim=-1)
    t_max = torch.maximum(t1, t2).amin(dim=-1)
    return t_min, t_max, (t_max > t_min) & (t_max > 0)


def cell_indices(points: torch.Tensor, aabb: torch.Tensor, resolution: int) -> torch.Tensor:
    """(n,) flat index ``(i * R + j) * R + k`` of the grid cell holding each (n, 3) point
    (x along i, as nerfacc); points outside the box are clamped to the border cells."""
    unit = (points - aabb[:3]) / (aabb[3:] - aabb[:3])
    ijk = (unit * resolution).floor().long().clamp(0, resolution - 1)
    return (ijk[:, 0] * resolution + ijk[:, 1]) * resolution + ijk[:, 2]


def march_rays(origins: torch.Tensor, directions: torch.Tensor, aabb: torch.Tensor,
               binaries: torch.Tensor | None, near_planes: torch.Tensor,
               far_planes: torch.Tensor, step_size: float) -> RaySamples:
    """Uniform samples inside the box, skipping unoccupied cells.

    Args:
        origins, directions: (n_rays, 3), unit directions.
        binaries: (R, R, R) bool occupancy, or None to keep every sample in the box.
        near_planes, far_planes: (n_rays,) where the lattice starts / the ray stops.
    Returns:
        Packed intervals of length ``step_size``, sorted by ray and distance.
    """
    n_rays = origins.shape[0]
    t_min, t_max, hits = ray_aabb_intersect(origins, directions, aabb)
    t_lo = torch.maximum(t_min, near_planes)
    t_hi = torch.minimum(t_max, far_planes)
    # lattice indices whose midpoint near + (k + 0.5) * step lies in [t_lo, t_hi)
    k_first = torch.ceil((t_lo - near_planes) / step_size - 0.5)
    k_end = torch.ceil((t_hi - near_planes) / step_size - 0.5)
    counts = torch.where(hits & (t_hi > t_lo), (k_end - k_first).clamp(min=0), 0).long()
    ray_indices = torch.repeat_interleave(torch.arange(n_rays, device=origins.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    k = k_first[ray_indices] + (torch.arange(ray_indices.shape[0], device=origins.device)
                                - starts[ray_indices])
    t_starts = near_planes[ray_indices] + k * step_size
    samples = RaySamples(ray_indices, t_starts, t_starts + step_size)
    if binaries is None:
        return samples
    cells = cell_indices(samples.points(origins, directions), aabb, binaries.shape[0])
    return samples.select(binaries.reshape(-1)[cells])


def filter_visible(samples: RaySamples, n_rays: int, sigma_fn: DensityFn | None = None,
                   alpha_fn: DensityFn | None = None, early_stop_eps: float = 1e-4,
                   alpha_thre: float = 0.0, first_round: int = 16) -> RaySamples:
    """Drop samples that cannot contribute: those behind the point where transmittance falls
    below ``early_stop_eps`` (early ray termination) and those with alpha < ``alpha_thre``.

    Rays are evaluated front to back in rounds of ``first_round``, then twice as many samples
    each round, and rays that have terminated leave; so samples far behind a surface are never
    evaluated. The result equals evaluating every sample at once and masking.
    """
    if (sigma_fn is None) == (alpha_fn is None):
        raise ValueError("filter_visible: give exactly one of sigma_fn and alpha_fn")
    starts, counts = segment_counts(samples.ray_indices, n_rays)
    rank = torch.arange(len(samples), device=counts.device) - starts[samples.ray_indices]
    log_trans = torch.zeros(n_rays, dtype=torch.float64, device=counts.device)
    keep = torch.zeros(len(samples), dtype=torch.bool, device=counts.device)
    alive, lo, size = counts > 0, 0, first_round
    while bool(alive.any()):
        hi = lo + size
        chosen = torch.nonzero(alive[samples.ray_indices] & (rank >= lo) & (rank < hi))[:, 0]
        sub = samples.select(chosen)
        if sigma_fn is not None:
            tau = sigma_fn(sub.t_starts, sub.t_ends, sub.ray_indices) * (sub.t_ends - sub.t_starts)
            alphas, log_pass = 1.0 - torch.exp(-tau), -tau
        else:
            alphas = alpha_fn(sub.t_starts, sub.t_ends, sub.ray_indices)
            log_pass = torch.log(torch.clamp(1.0 - alphas, min=1e-10))
        before = log_trans[sub.ray_indices] + exclusive_cumsum(log_pass, sub.ray_indices, n_rays)
        keep[chosen] = visible_samples(torch.exp(before), alphas, early_stop_eps, alpha_thre)
        log_trans.index_add_(0, sub.ray_indices, log_pass.double())
        alive &= (torch.exp(log_trans) >= early_stop_eps) & (counts > hi)
        lo, size = hi, 2 * size
    return samples.select(keep)


@torch.no_grad()
def sample_along_rays(origins: torch.Tensor, directions: torch.Tensor, aabb: torch.Tensor,
                      binaries: torch.Tensor | None, step_size: float,
                      near_planes: torch.Tensor, far_planes: torch.Tensor,
                      sigma_fn: DensityFn | None = None, alpha_fn: DensityFn | None = None,
                      early_stop_eps: float = 1e-4, alpha_thre: float = 0.0) -> RaySamples:
    """March (:func:`march_rays`) then, given a density or opacity closure, keep the visible
    samples (:func:`filter_visible`). Not differentiable: the samples are positions only."""
    samples = march_rays(origins, directions, aabb, binaries, near_planes, far_planes, step_size)
    if sigma_fn is None and alpha_fn is None:
        return samples
    return filter_visible(samples, origins.shape[0], sigma_fn, alpha_fn, early_stop_eps,
                          alpha_thre)
