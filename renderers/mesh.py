"""Surface extraction: marching cubes of a signed field's zero level over a box.

The field is sampled on a narrow band only: a coarse grid first, then each finer level
(resolution doubling) evaluates just the vertices of cells that the level above marked as
near the surface (a sign change among the cell's corners, or a corner closer to the zero level
than the cell's diagonal, which is exact for a 1-Lipschitz distance field). Elsewhere the values
are copied from the coarser level, whose sign they keep. Points go to the field in
bounded chunks, so the field's memory use does not grow with the resolution.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch

SdfFn = Callable[[torch.Tensor], torch.Tensor]
"""(n, 3) points -> (n,) signed values, negative inside"""
Progress = Callable[[int], None]
"""called with the number of points just evaluated"""

MIN_COARSE = 32
"""cells per axis of the coarsest level"""
BYTES_PER_VERTEX = 26
"""peak bytes per vertex of the finest level: the float32 volume, its interpolated
predecessor, the max-pool temporaries, the boolean masks and the marching-cubes output"""


class MeshResolutionError(ValueError):
    """A marching-cubes resolution that the machine cannot hold."""


def available_memory() -> int:
    """Bytes of memory available to this process (MemAvailable; physical memory otherwise)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_resolution(resolution: int, memory: int | None = None) -> None:
    """MeshResolutionError (one line, with a resolution that fits) unless ``resolution`` cells
    per axis fit into ``memory`` bytes (default: what is available now)."""
    if resolution < 2:
        raise MeshResolutionError(f"resolution {resolution}: must be >= 2")
    memory = available_memory() if memory is None else memory
    need = BYTES_PER_VERTEX * (resolution + 1) ** 3
    if need > memory:
        fits = int((memory / BYTES_PER_VERTEX) ** (1 / 3)) - 1
        suggestion = 1 << max(int(np.log2(max(fits, 2))), 1)
        raise MeshResolutionError(
            f"resolution {resolution}: marching cubes needs about {need / 2**30:.1f} GiB but "
            f"{memory / 2**30:.1f} GiB is available; use a resolution of {suggestion} or less")


def grid_points(index: torch.Tensor, lo: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """(n, 3) integer grid indices -> (n, 3) float32 points ``lo + index * cell``."""
    return lo + index.to(lo.dtype) * cell


def _evaluate(sdf_fn: SdfFn, index: torch.Tensor, lo: torch.Tensor, cell: torch.Tensor,
              chunk: int, device: torch.device, progress: Progress) -> torch.Tensor:
    """(n,) float32 field values at the grid vertices ``index`` (n, 3), ``chunk`` at a time,
    each chunk reported to ``progress``."""
    out = torch.empty(len(index), dtype=torch.float32, device="cpu")
    for start in range(0, len(index), chunk):
        pts = grid_points(index[start:start + chunk], lo, cell).to(device, torch.float32)
        out[start:start + chunk] = sdf_fn(pts).reshape(-1).float().cpu()
        progress(len(pts))
    return out


def _cell_corners(values: torch.Tensor) -> list[torch.Tensor]:
    """The 8 corner values of every cell of a (r+1)^3 vertex grid, each (r, r, r) (views)."""
    r = values.shape[0] - 1
    return [values[a:a + r, b:b + r, c:c + r] for a in (0, 1) for b in (0, 1) for c in (0, 1)]


def _near_surface_cells(values: torch.Tensor, band: float) -> torch.Tensor:
    """(r, r, r) bool: cells of a (r+1)^3 vertex grid with a sign change among their corners or
    a corner value within ``band`` of zero."""
    corners = _cell_corners(values)
    vmin, vmax = corners[0].clone(), corners[0].clone()
    for c in corners[1:]:
        torch.minimum(vmin, c, out=vmin)
        torch.maximum(vmax, c, out=vmax)
    return ((vmin <= 0) & (vmax >= 0)) | (torch.minimum(vmin.abs(), vmax.abs()) < band)


def _cell_vertices(cells: torch.Tensor) -> torch.Tensor:
    """(r+1, r+1, r+1) bool: the vertices of the (r, r, r) bool ``cells``."""
    r = cells.shape[0]
    out = torch.zeros((r + 1,) * 3, dtype=torch.bool, device="cpu")
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                out[a:a + r, b:b + r, c:c + r] |= cells
    return out


def _upsample(values: torch.Tensor) -> torch.Tensor:
    """(r+1)^3 -> (2r+1)^3 by copying each fine vertex's value from coarse vertex
    ``index // 2``, a corner of the coarse cell that holds it (sign-correct away from the
    surface, where nothing else is needed)."""
    index = torch.arange(2 * values.shape[0] - 1, device="cpu") // 2
    return values.index_select(0, index).index_select(1, index).index_select(2, index)


def sample_narrow_band(sdf_fn: SdfFn, resolution: int, bounds: torch.Tensor,
                       chunk: int = 2**18,
                       progress: Callable[[int, int], None] | None = None,
                       narrow: bool = True) -> np.ndarray:
    """Field values on the (resolution+1)^3 vertices of a grid over ``bounds``; the grid
    lives in host memory and ``chunk`` points at a time go to the device of ``bounds``, each
    reported as ``progress(points, points found so far)`` (the total grows level by level).
    ``narrow=False`` samples every vertex at ``resolution`` (for fields that are not distances,
    such as densities, whose band cannot be bounded by the cell size).

    Args:
        bounds: (2, 3) box corners (min, max), on the field's device.
    Returns:
        (resolution+1,)*3 float32, indexed [x, y, z]: exact near the zero level, copied from a
        coarser level elsewhere.
    """
    device = bounds.device
    lo, hi = bounds[0].double().cpu(), bounds[1].double().cpu()
    r = resolution
    while narrow and r % 2 == 0 and r // 2 >= MIN_COARSE:
        r //= 2
    axes = [torch.arange(r + 1, device="cpu")] * 3
    index = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    found = [len(index)]

    def report(n: int) -> None:
        if progress is not None:
            progress(n, found[0])

    values = _evaluate(sdf_fn, index, lo, (hi - lo) / r, chunk, device, report)
    values = values.reshape(r + 1, r + 1, r + 1)
    while r < resolution:
        flagged = _near_surface_cells(values, float(((hi - lo) / r).norm()))
        r *= 2
        values = _upsample(values)
        fine_cells = flagged.repeat_interleave(2, 0).repeat_interleave(2, 1) \
            .repeat_interleave(2, 2)
        del flagged
        need = _cell_vertices(fine_cells)
        del fine_cells
        need[::2, ::2, ::2] = False  # already exact at the coarser level
        index = need.nonzero()
        del need
        found[0] += len(index)
        values[index[:, 0], index[:, 1], index[:, 2]] = _evaluate(
            sdf_fn, index, lo, (hi - lo) / r, chunk, device, report)
    return values.numpy()


def marching_cubes(volume: np.ndarray, bounds: torch.Tensor,
                   level: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Zero-level triangle mesh of a sampled field (negative inside), outward oriented.

    Args:
        volume: (rx+1, ry+1, rz+1) values on the grid vertices, indexed [x, y, z].
        bounds: (2, 3) the box the grid spans.
    Returns:
        vertices (n_vertices, 3) float64 in box coordinates, faces (n_faces, 3) int64.
    """
    import mcubes

    vertices, faces = mcubes.marching_cubes(np.ascontiguousarray(volume), float(level))
    lo, hi = bounds.double().cpu().numpy()
    cell = (hi - lo) / (np.asarray(volume.shape) - 1)
    # PyMCubes orients faces towards decreasing values; an SDF grows outwards, so flip them
    faces = np.ascontiguousarray(faces[:, ::-1], dtype=np.int64)
    return lo + vertices * cell, faces


def extract_mesh(sdf_fn: SdfFn, resolution: int, bounds: torch.Tensor,
                 chunk: int = 2**18, progress: Callable[[int, int], None] | None = None,
                 narrow: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of ``sdf_fn``'s zero level at ``resolution`` cells per axis over
    ``bounds`` (2, 3, on the field's device); returns vertices (n, 3) float64 and faces
    (m, 3) int64, which are empty when the field has no zero crossing. MeshResolutionError
    when it cannot fit in memory. ``progress``, ``narrow``: see :func:`sample_narrow_band`."""
    check_resolution(resolution)
    with torch.no_grad():
        volume = sample_narrow_band(sdf_fn, resolution, bounds, chunk, progress, narrow)
    return marching_cubes(volume, bounds)
