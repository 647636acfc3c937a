"""Ray marching with empty-space skipping and early ray termination (pure PyTorch reference).

Samples sit on a lattice anchored at each ray's near plane: interval k is
``[near + k * step, near + (k + 1) * step]``; it is kept when its midpoint lies inside the box,
before the far plane, in an occupied cell of the occupancy grid. This is nerfacc's
``traverse_grids`` rule (without cone stepping), so both backends give the same samples.
Everything is vectorised over packed samples; the only loop is over the rounds of
:func:`front_to_back`, whose length grows geometrically.
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


BLOCKS = (16, 4)
"""cells per side of the blocks a march may skip whole when none of their cells is occupied
(coarsest first: a ray crosses big empty regions, e.g. around a floater that makes the occupied
box the whole scene box, 16 cells at a time)"""


def occupied_blocks(binaries: torch.Tensor) -> list[torch.Tensor]:
    """Per block size f of :data:`BLOCKS`, (C^3,) bool, C = ceil(R / f), flat as the cells:
    whether each f^3 block of ``binaries`` (R, R, R) holds an occupied cell."""
    cells = binaries[None, None].float()
    return [(torch.nn.functional.max_pool3d(cells, f, ceil_mode=True) > 0).reshape(-1)
            for f in BLOCKS]


def occupied_box(binaries: torch.Tensor, aabb: torch.Tensor) -> torch.Tensor:
    """(6,) the smallest box of whole cells holding every occupied cell of ``binaries``
    (R, R, R) over ``aabb``; an empty box behind every ray when none is occupied."""
    res = binaries.shape[0]
    cell = (aabb[3:] - aabb[:3]) / res
    lo, hi = [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        used = torch.nonzero(binaries.any(dim=others))[:, 0]
        if len(used) == 0:
            return torch.cat([aabb[:3], aabb[:3]]) - 1.0  # nothing occupied: no hits
        lo.append(used[0])
        hi.append(used[-1] + 1)
    lo_t, hi_t = torch.stack(lo).to(aabb.dtype), torch.stack(hi).to(aabb.dtype)
    return torch.cat([aabb[:3] + lo_t * cell, aabb[:3] + hi_t * cell])


def march_rays(origins: torch.Tensor, directions: torch.Tensor, aabb: torch.Tensor,
               binaries: torch.Tensor | None, near_planes: torch.Tensor,
               far_planes: torch.Tensor, step_size: float,
               box: torch.Tensor | None = None) -> RaySamples:
    """Uniform samples inside the box, skipping unoccupied cells.

    Args:
        origins, directions: (n_rays, 3), unit directions.
        binaries: (R, R, R) bool occupancy, or None to keep every sample in the box.
        near_planes, far_planes: (n_rays,) where the lattice starts / the ray stops.
        box: (6,) :func:`occupied_box` of ``binaries`` where the caller keeps it (None:
            computed here).
    Returns:
        Packed intervals of length ``step_size``, sorted by ray and distance.
    """
    n_rays = origins.shape[0]
    # only the box around the occupied cells can hold samples: march just through it
    if binaries is None:
        box = aabb
    elif box is None:
        box = occupied_box(binaries, aabb)
    t_min, t_max, hits = ray_aabb_intersect(origins, directions, box)
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


def front_to_back(samples: RaySamples, n_rays: int,
                  alpha_of: Callable[[torch.Tensor], torch.Tensor],
                  early_stop_eps: float = 1e-4, first_round: int = 16):
    """Visit each ray's samples front to back, in rounds, until its transmittance falls below
    ``early_stop_eps``.

    Round r takes the next ``first_round * 2**r`` samples of every ray still alive, so samples
    far behind a surface are never evaluated and the number of rounds grows only with the log
    of the ray length.

    Args:
        alpha_of: evaluates the samples at (k,) indices into ``samples`` and returns their
            (k,) opacities (only their values steer the visit).
    Returns:
        visited (m,) sample indices in packed order, the transmittance (m,) before each, and
        the (m,) permutation that puts the concatenated rounds into that order.
    """
    starts, counts = segment_counts(samples.ray_indices, n_rays)
    rank = torch.arange(len(samples), device=counts.device) - starts[samples.ray_indices]
    log_trans = torch.zeros(n_rays, dtype=torch.float64, device=counts.device)
    visited, trans = [], []
    alive, lo, size = counts > 0, 0, first_round
    while bool(alive.any()):
        hi = lo + size
        chosen = torch.nonzero(alive[samples.ray_indices] & (rank >= lo) & (rank < hi))[:, 0]
        log_pass = torch.log(torch.clamp(1.0 - alpha_of(chosen).detach(), min=1e-10))
        rays = samples.ray_indices[chosen]
        before = log_trans[rays] + exclusive_cumsum(log_pass, rays, n_rays)
        visited.append(chosen)
        trans.append(torch.exp(before).to(log_pass.dtype))
        log_trans.index_add_(0, rays, log_pass.double())
        alive &= (torch.exp(log_trans) >= early_stop_eps) & (counts > hi)
        lo, size = hi, 2 * size
    if not visited:
        empty = torch.zeros(0, dtype=torch.int64, device=counts.device)
        return empty, torch.zeros(0, device=counts.device), empty
    visited_all = torch.cat(visited)
    order = torch.argsort(visited_all)
    return visited_all[order], torch.cat(trans)[order], order


def filter_visible(samples: RaySamples, n_rays: int, sigma_fn: DensityFn | None = None,
                   alpha_fn: DensityFn | None = None, early_stop_eps: float = 1e-4,
                   alpha_thre: float = 0.0, first_round: int = 16) -> RaySamples:
    """Drop samples that cannot contribute: those behind the point where transmittance falls
    below ``early_stop_eps`` (early ray termination) and those with alpha < ``alpha_thre``.

    Samples are evaluated front to back (:func:`front_to_back`); the result equals evaluating
    every sample at once and masking with :func:`.volume.visible_samples`.
    """
    if (sigma_fn is None) == (alpha_fn is None):
        raise ValueError("filter_visible: give exactly one of sigma_fn and alpha_fn")
    alphas = torch.zeros_like(samples.t_starts)

    def alpha_of(chosen: torch.Tensor) -> torch.Tensor:
        sub = samples.select(chosen)
        if sigma_fn is not None:
            sigmas = sigma_fn(sub.t_starts, sub.t_ends, sub.ray_indices)
            alphas[chosen] = 1.0 - torch.exp(-sigmas * (sub.t_ends - sub.t_starts))
        else:
            alphas[chosen] = alpha_fn(sub.t_starts, sub.t_ends, sub.ray_indices)
        return alphas[chosen]

    visited, trans, _ = front_to_back(samples, n_rays, alpha_of, early_stop_eps, first_round)
    keep = visible_samples(trans, alphas[visited], early_stop_eps, alpha_thre)
    return samples.select(visited[keep])
