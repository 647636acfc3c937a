"""Occupancy grid for empty-space skipping (Instant-NGP; nerfacc's ``OccGridEstimator``).

A cube of R^3 cells over the scene box keeps an exponential moving average of each cell's
occupancy (density at a random point of the cell times the render step, i.e. roughly the
opacity of one step there). Cells whose average exceeds a threshold are marked occupied; the ray
marcher samples only those. The buffers use nerfacc's layout so the CUDA path reads them as is,
and they live in the model's state dict, so checkpoints carry the grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .backends import get_renderer
from .marching import (
    DensityFn,
    cell_indices,
    filter_visible,
    march_rays,
    occupied_blocks,
    occupied_box,
    ray_aabb_intersect,
)
from .packed import RaySamples


@dataclass
class OccupancyConfig:
    """Occupancy-grid schedule. nerfacc's defaults are 128^3, every 16 steps, threshold 0.01,
    decay 0.95, 256 warm-up steps and a quarter of the cells per update; fieldfit evaluates
    fewer cells per update, because on a CPU each cell costs as much as a training sample."""

    resolution: int = 128
    """cells per side"""
    threshold: float = 0.01
    """occupancy (density x step) above which a cell is occupied (capped at the mean)"""
    ema_decay: float = 0.95
    """decay of the moving average at each evaluation of a cell"""
    update_every: int = 16
    """training steps between updates"""
    warmup_steps: int = 64
    """during warm-up every cell is evaluated at each update"""
    fraction: float = 0.125
    """after warm-up: cells drawn uniformly per update, and as many occupied cells, as a
    fraction of all cells"""

    def __post_init__(self) -> None:
        if self.resolution < 1 or self.update_every < 1 or self.warmup_steps < 0:
            raise ValueError("occupancy grid: resolution and update_every must be >= 1")
        if not 0 < self.fraction <= 1 or not 0 < self.ema_decay < 1 or self.threshold < 0:
            raise ValueError("occupancy grid: need 0 < fraction <= 1, 0 < ema_decay < 1 and "
                             "threshold >= 0")


class OccupancyGrid(nn.Module):
    """R^3 occupancy over ``aabb`` (6,); ``occs`` (R^3,) averages and ``binaries``
    (1, R, R, R) bool, flat index ``(i * R + j) * R + k`` with i along x."""

    def __init__(self, aabb: torch.Tensor, config: OccupancyConfig | None = None):
        super().__init__()
        self.config = config or OccupancyConfig()
        r = self.config.resolution
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).reshape(6))
        self.register_buffer("occs", torch.zeros(r**3))
        self.register_buffer("binaries", torch.ones(1, r, r, r, dtype=torch.bool))

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def _derived(self, name: str, sources: tuple[torch.Tensor, ...], make: Callable[[], Any]):
        """``make()``, kept outside the module's state and made again only after one of the
        ``sources`` tensors changed (an update, a loaded state dict): every ray batch asks for
        the values derived from the grid, and deriving them scans all R^3 cells."""
        version = tuple((t._version, t.data_ptr()) for t in sources)
        cached = self.__dict__.get(name)
        if cached is None or cached[0] != version:
            cached = self.__dict__[name] = (version, make())
        return cached[1]

    def occupied_box(self) -> torch.Tensor:
        """(6,) :func:`.marching.occupied_box` of the grid (kept until the grid changes)."""
        return self._derived("_box", (self.binaries, self.aabb),
                             lambda: occupied_box(self.binaries[0], self.aabb))

    def occupied_blocks(self) -> list[torch.Tensor]:
        """:func:`.marching.occupied_blocks` of the grid (kept until the grid changes)."""
        return self._derived("_blocks", (self.binaries,),
                             lambda: occupied_blocks(self.binaries[0]))

    def step_factor(self, cells: torch.Tensor) -> torch.Tensor | float:
        """Render step in the flat ``cells`` (n,) relative to the base step (1 here)."""
        return 1.0

    def cell_points(self, cells: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """(n, 3) world points at ``offsets`` (n, 3) in [0, 1) inside the flat ``cells`` (n,)."""
        r = self.resolution
        ijk = torch.stack([cells // (r * r), (cells // r) % r, cells % r], dim=-1)
        unit = (ijk.float() + offsets) / r
        return self.aabb[:3] + unit * (self.aabb[3:] - self.aabb[:3])

    def cell_centers_jittered(self, cells: torch.Tensor, generator: torch.Generator):
        """(n, 3) a uniformly random world point inside each of the flat ``cells`` (n,)."""
        u = torch.rand(len(cells), 3, generator=generator, device=generator.device)
        return self.cell_points(cells, u.to(cells.device))

    def _cells_to_update(self, step: int, generator: torch.Generator) -> torch.Tensor:
        n_cells = self.occs.shape[0]
        if step < self.config.warmup_steps:
            return torch.arange(n_cells, device=self.occs.device)
        n = max(1, int(n_cells * self.config.fraction))
        uniform = torch.randint(n_cells, (n,), generator=generator, device=generator.device)
        uniform = uniform.to(self.occs.device)
        occupied = torch.nonzero(self.binaries.reshape(-1))[:, 0]
        if len(occupied) > n:
            pick = torch.randint(len(occupied), (n,), generator=generator,
                                 device=generator.device)
            occupied = occupied[pick.to(occupied.device)]
        return torch.cat([uniform, occupied])

    @torch.no_grad()
    def update(self, step: int, occupancy_fn: Callable[[torch.Tensor], torch.Tensor],
               generator: torch.Generator) -> None:
        """One EMA update: ``occupancy_fn`` maps (n, 3) world points to (n,) occupancies."""
        cells = self._cells_to_update(step, generator)
        occ = occupancy_fn(self.cell_centers_jittered(cells, generator)).reshape(-1)
        occ = occ * self.step_factor(cells)
        # A cell drawn more than once takes the max of its samples. (An indexed assignment
        # `occs[cells] = ...` keeps an arbitrary one of the duplicates, which one depending
        # on the threads' timing: runs would not repeat.)
        best = torch.zeros_like(self.occs).scatter_reduce_(0, cells, occ.to(self.occs.dtype),
                                                          "amax", include_self=False)
        hit = torch.zeros_like(self.occs, dtype=torch.bool).index_fill_(0, cells, True)
        self.occs.copy_(torch.where(hit, torch.maximum(self.occs * self.config.ema_decay, best),
                                    self.occs))
        positive = self.occs[self.occs > 0]
        threshold = min(positive.mean().item(), self.config.threshold) if len(positive) else 0.0
        self.binaries.copy_((self.occs > threshold).reshape(self.binaries.shape))

    def maybe_update(self, step: int, occupancy_fn: Callable[[torch.Tensor], torch.Tensor]) -> bool:
        """:meth:`update` on every ``update_every``-th step, with randomness seeded by ``step``
        (so a resumed run repeats it); returns whether it ran."""
        if step % self.config.update_every:
            return False
        self.update(step, occupancy_fn, torch.Generator().manual_seed(step))
        return True

    def occupied(self, points: torch.Tensor) -> torch.Tensor:
        """(n,) bool: each (n, 3) point is inside the box and in an occupied cell."""
        lo, hi = self.aabb[:3], self.aabb[3:]
        inside = ((points >= lo) & (points <= hi)).all(dim=-1)
        return inside & self.binaries.reshape(-1)[cell_indices(points, self.aabb,
                                                              self.resolution)]

    def capped_alpha_thre(self, alpha_thre: float) -> float:
        """``alpha_thre`` capped at the mean occupancy, as nerfacc does, so a young field (all
        occupancies small) keeps its samples."""
        return min(alpha_thre, self._derived("_mean", (self.occs,),
                                             lambda: self.occs.mean().item()))

    @torch.no_grad()
    def sample(self, origins: torch.Tensor, directions: torch.Tensor, step_size: float,
               near_planes: torch.Tensor, far_planes: torch.Tensor,
               sigma_fn: DensityFn | None = None, alpha_fn: DensityFn | None = None,
               early_stop_eps: float = 1e-4, alpha_thre: float = 0.0, skip_empty: bool = True,
               backend: str = "auto") -> RaySamples:
        """Packed samples along rays through occupied cells, without the invisible ones.

        ``alpha_thre`` is capped (:meth:`capped_alpha_thre`). ``skip_empty=False``
        marches the whole box (the reference for tests). The renderer ``backend``
        (:func:`.backends.get_renderer`) does the work.
        """
        if sigma_fn is not None or alpha_fn is not None:
            alpha_thre = self.capped_alpha_thre(alpha_thre)
        return get_renderer(backend, origins.device).sample(
            self, origins, directions, step_size, near_planes, far_planes, sigma_fn, alpha_fn,
            early_stop_eps, alpha_thre, skip_empty)

    def extra_repr(self) -> str:
        c = self.config
        return (f"resolution={c.resolution}, threshold={c.threshold}, "
                f"every={c.update_every}, warmup={c.warmup_steps}")


class MultiLevelOccupancyGrid(OccupancyGrid):
    """``levels`` grids of R^3 cells for unbounded scenes (nerfacc's ``OccGridEstimator``
    layout: ``occs`` (levels * R^3,), ``binaries`` (levels, R, R, R)). Level l covers the base
    box ``aabb`` scaled by 2^l about its centre and is marched with steps 2^l times the base
    step, only where no finer level lies, so samples grow sparser with distance. Always the
    PyTorch marcher (nerfacc's estimator would march with cone steps instead)."""

    def __init__(self, aabb: torch.Tensor, config: OccupancyConfig | None = None,
                 levels: int = 5):
        super().__init__(aabb, config)
        r = self.config.resolution
        self.levels = levels
        self.occs = torch.zeros(levels * r**3)
        self.binaries = torch.ones(levels, r, r, r, dtype=torch.bool)

    def level_aabb(self, level: int) -> torch.Tensor:
        """(6,) the box of ``level``."""
        centre, half = (self.aabb[:3] + self.aabb[3:]) / 2, (self.aabb[3:] - self.aabb[:3]) / 2
        return torch.cat([centre - half * 2**level, centre + half * 2**level])

    def step_factor(self, cells: torch.Tensor) -> torch.Tensor:
        return 2.0 ** (cells // self.resolution**3).float()

    def cell_points(self, cells: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        r3 = self.resolution**3
        level, local = cells // r3, cells % r3
        unit = (super().cell_points(local, offsets) - self.aabb[:3]) / (
            self.aabb[3:] - self.aabb[:3])  # in [0, 1]^3 of the cell's level
        centre, half = (self.aabb[:3] + self.aabb[3:]) / 2, (self.aabb[3:] - self.aabb[:3]) / 2
        return centre + (2 * unit - 1) * half * (2.0 ** level.float())[:, None]

    def occupied(self, points: torch.Tensor) -> torch.Tensor:
        """(n,) bool: each point is in an occupied cell of the finest level holding it."""
        result = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
        done = torch.zeros_like(result)
        for level in range(self.levels):
            box = self.level_aabb(level)
            inside = ((points >= box[:3]) & (points <= box[3:])).all(dim=-1) & ~done
            cells = cell_indices(points[inside], box, self.resolution)
            result[inside] = self.binaries[level].reshape(-1)[cells]
            done |= inside
        return result

    @torch.no_grad()
    def sample(self, origins: torch.Tensor, directions: torch.Tensor, step_size: float,
               near_planes: torch.Tensor, far_planes: torch.Tensor,
               sigma_fn: DensityFn | None = None, alpha_fn: DensityFn | None = None,
               early_stop_eps: float = 1e-4, alpha_thre: float = 0.0, skip_empty: bool = True,
               backend: str = "auto") -> RaySamples:
        """Packed samples of every level: the level's lattice of steps 2^l x ``step_size``
        clipped to its box and cut around the finer level's box, so each ray's intervals tile
        it without gaps or overlaps; (given a closure) then only the visible ones, as
        :meth:`OccupancyGrid.sample`."""
        parts = [self._level_samples(level, origins, directions, step_size * 2**level,
                                     near_planes, far_planes, skip_empty)
                 for level in range(self.levels)]
        ray_indices = torch.cat([p.ray_indices for p in parts])
        t_starts = torch.cat([p.t_starts for p in parts])
        t_ends = torch.cat([p.t_ends for p in parts])
        order = torch.argsort(t_starts, stable=True)
        order = order[torch.argsort(ray_indices[order], stable=True)]
        samples = RaySamples(ray_indices[order], t_starts[order], t_ends[order])
        if sigma_fn is None and alpha_fn is None:
            return samples
        return filter_visible(samples, origins.shape[0], sigma_fn, alpha_fn, early_stop_eps,
                              self.capped_alpha_thre(alpha_thre))

    def _level_samples(self, level: int, origins: torch.Tensor, directions: torch.Tensor,
                       step: float, near_planes: torch.Tensor, far_planes: torch.Tensor,
                       skip_empty: bool) -> RaySamples:
        box = self.level_aabb(level)
        grown = box + torch.tensor([-step] * 3 + [step] * 3, device=box.device)
        part = march_rays(origins, directions, grown, None, near_planes, far_planes, step)
        t_in, t_out, hit = (x[part.ray_indices] for x in ray_aabb_intersect(origins, directions,
                                                                             box))
        part = _keep_positive(part.ray_indices, torch.maximum(part.t_starts, t_in),
                              torch.minimum(part.t_ends, t_out), hit)
        if level > 0:
            part = _minus_box(part, origins, directions, self.level_aabb(level - 1))
        if skip_empty:
            cells = cell_indices(part.points(origins, directions), box, self.resolution)
            part = part.select(self.binaries[level].reshape(-1)[cells])
        return part

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, levels={self.levels}"


def _keep_positive(ray_indices: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
                   keep: torch.Tensor) -> RaySamples:
    keep = keep & (t_ends > t_starts)
    return RaySamples(ray_indices[keep], t_starts[keep], t_ends[keep])


def _minus_box(samples: RaySamples, origins: torch.Tensor, directions: torch.Tensor,
               box: torch.Tensor) -> RaySamples:
    """The parts of each interval outside ``box`` (6,): up to two pieces, before the ray
    enters it and after it leaves."""
    t_in, t_out, hit = (x[samples.ray_indices] for x in ray_aabb_intersect(origins, directions,
                                                                           box))
    a, b, rays = samples.t_starts, samples.t_ends, samples.ray_indices
    before = _keep_positive(rays, a, torch.where(hit, torch.minimum(b, t_in), b),
                            torch.ones_like(hit))
    after = _keep_positive(rays, torch.maximum(a, t_out), b, hit)
    return RaySamples(*(torch.cat([x, y]) for x, y in zip(before, after, strict=True)))
