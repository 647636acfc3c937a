"""Shared d-linear interpolation pieces for grid encodings (hash grid, dense grid).

Conventions follow tiny-cuda-nn so that tables move between backends unchanged:
a level with scale ``s`` places a point ``x`` in [0, 1] at ``pos = x * s + 0.5``; its cell is
``floor(pos)`` and the interpolation weights come from ``pos - floor(pos)``.
"""

from __future__ import annotations

import itertools
import math

import torch

# Primes of the spatial hash (Instant-NGP, Teschner et al.); index 0 is 1 for coherence.
HASH_PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)


def corner_offsets(dims: int, device=None) -> torch.Tensor:
    """(2**dims, dims) int64 offsets of a cell's corners, in binary order (dim 0 fastest)."""
    rows = [tuple(reversed(c)) for c in itertools.product((0, 1), repeat=dims)]
    return torch.tensor(rows, dtype=torch.int64, device=device)


def level_scale(level: int, base_res: int, per_level_scale: float) -> float:
    """Grid scale of a level, computed in float32 exactly as tiny-cuda-nn does (on the CPU,
    so layouts can be made under a ``torch.device("meta")`` context)."""
    log2_scale = torch.tensor(math.log2(per_level_scale), dtype=torch.float32, device="cpu")
    level_t = torch.tensor(float(level), dtype=torch.float32, device="cpu")
    s = torch.exp2(level_t * log2_scale) * base_res - 1.0
    return float(s)


def level_resolution(scale: float) -> int:
    """Vertices per axis of a level with the given scale."""
    return int(math.ceil(scale)) + 1


def dlinear_weights(frac: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Corner weights.

    Args:
        frac: (n, d) fractional positions inside the cell, in [0, 1).
        offsets: (2**d, d) corner offsets from :func:`corner_offsets`.
    Returns:
        (n, 2**d) weights, prod over dims of ``frac`` (offset 1) or ``1 - frac`` (offset 0).
    """
    f = frac.unsqueeze(1)  # (n, 1, d)
    w = torch.where(offsets.bool().unsqueeze(0), f, 1.0 - f)
    return w.prod(dim=-1)


def grid_index(corners: torch.Tensor, resolution: int, size: int) -> torch.Tensor:
    """Table index of integer grid corners within one level.

    Dense (row-major, dim 0 fastest) when ``resolution**d <= size``, otherwise the xor-prime
    spatial hash on uint32 arithmetic; both taken modulo ``size``.

    Args:
        corners: (..., d) int64 grid coordinates.
    Returns:
        (...) int64 indices in [0, size).
    """
    dims = corners.shape[-1]
    if resolution**dims <= size:
        stride = 1
        index = torch.zeros(corners.shape[:-1], dtype=torch.int64, device=corners.device)
        for d in range(dims):
            index = index + corners[..., d] * stride
            stride *= resolution
        return index % size
    index = torch.zeros(corners.shape[:-1], dtype=torch.int64, device=corners.device)
    for d in range(dims):
        index = index ^ ((corners[..., d] * HASH_PRIMES[d]) & 0xFFFFFFFF)
    return index % size
