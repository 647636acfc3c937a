"""Multiresolution hash-grid encoding (Instant-NGP, Müller et al. 2022).

The table is stored in one canonical layout whatever the backend: ``table`` of shape
(n_entries, n_features), levels stacked coarse to fine at ``offsets[level]``; level sizes are
``min(next_multiple_of_8(resolution**d), 2**log2_table)``. This is tiny-cuda-nn's layout, so a
checkpoint moves between the torch, fast-CPU, Triton and tcnn backends unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .grid_interp import corner_offsets, dlinear_weights, grid_index, level_resolution, level_scale
from .kernels import check_backend_name, get_backend


@dataclass(frozen=True)
class LevelSpec:
    """Static description of one grid level."""

    scale: float
    resolution: int
    size: int
    offset: int


@dataclass(frozen=True)
class HashGridLayout:
    """Per-level scales, resolutions, table sizes and offsets for a hash grid."""

    dims: int
    n_features: int
    levels: tuple[LevelSpec, ...]
    base_res: int
    per_level_scale: float
    log2_table: int

    @property
    def n_entries(self) -> int:
        last = self.levels[-1]
        return last.offset + last.size

    def is_dense(self, level: int) -> bool:
        spec = self.levels[level]
        return spec.resolution**self.dims <= spec.size


def _next_multiple(value: int, k: int) -> int:
    return (value + k - 1) // k * k


def make_layout(
    dims: int, n_levels: int, n_features: int, log2_table: int, base_res: int, max_res: int
) -> HashGridLayout:
    """Level layout with geometric growth from ``base_res`` to ``max_res``."""
    per_level = math.exp(math.log(max_res / base_res) / (n_levels - 1)) if n_levels > 1 else 1.0
    levels, offset = [], 0
    for level in range(n_levels):
        scale = level_scale(level, base_res, per_level)
        res = level_resolution(scale)
        size = min(_next_multiple(min(res**dims, 2**31), 8), 2**log2_table)
        levels.append(LevelSpec(scale=scale, resolution=res, size=size, offset=offset))
        offset += size
    return HashGridLayout(dims=dims, n_features=n_features, levels=tuple(levels),
                          base_res=base_res, per_level_scale=per_level, log2_table=log2_table)


def hash_encode_torch(x: torch.Tensor, table: torch.Tensor, layout: HashGridLayout) -> torch.Tensor:
    """Reference hash-grid encoding in plain PyTorch, one level at a time.

    Args:
        x: (n, d) points in [0, 1].
        table: (n_entries, F) feature table in the canonical layout.
    Returns:
        (n, n_levels * F) features, level-major. Differentiable in ``table`` and ``x`` (twice).
    """
    offsets = corner_offsets(layout.dims, x.device)
    outputs = []
    for spec in layout.levels:
        pos = x * spec.scale + 0.5
        cell = torch.floor(pos)
        weights = dlinear_weights(pos - cell, offsets)  # (n, 2^d)
        corners = cell.long().unsqueeze(1) + offsets  # (n, 2^d, d)
        index = grid_index(corners, spec.resolution, spec.size) + spec.offset
        feats = table[index]  # (n, 2^d, F)
        outputs.append((weights.unsqueeze(-1).to(feats.dtype) * feats).sum(dim=1))
    return torch.cat(outputs, dim=-1)


@dataclass
class HashGridConfig:
    """Multiresolution hash grid (Instant-NGP)."""

    n_levels: int = 16
    """number of resolution levels L"""
    n_features: int = 2
    """features per level F"""
    log2_table: int = 19
    """log2 of the per-level table size T"""
    base_res: int = 16
    """coarsest resolution"""
    max_res: int = 2048
    """finest resolution (geometric growth in between)"""
    init_scale: float = 1e-4
    """table initialised uniform in [-init_scale, init_scale]"""
    backend: str = "auto"
    """torch (reference), cpp (fast CPU), triton, tcnn, or auto (best available on the device)"""

    name: ClassVar[str] = "hashgrid"

    def __post_init__(self) -> None:
        if self.n_levels < 1 or self.n_features < 1:
            raise ValueError("hashgrid: n_levels and n_features must be >= 1")
        if not 4 <= self.log2_table <= 30:
            raise ValueError(f"hashgrid: log2_table={self.log2_table} must be in [4, 30]")
        if self.base_res < 2 or self.max_res < self.base_res:
            raise ValueError("hashgrid: need 2 <= base_res <= max_res")

    def build(self, dims: int) -> HashGrid:
        return HashGrid(self, dims)


class HashGrid(nn.Module):
    """Hash-grid encoding: (n, d) points in [0, 1] -> (n, n_levels * n_features)."""

    def __init__(self, config: HashGridConfig, dims: int):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"hashgrid: dims must be 2 or 3, got {dims}")
        self.config = config
        self.dims = dims
        self.layout = make_layout(
            dims, config.n_levels, config.n_features, config.log2_table,
            config.base_res, config.max_res,
        )
        table = torch.empty(self.layout.n_entries, config.n_features)
        nn.init.uniform_(table, -config.init_scale, config.init_scale)
        self.table = nn.Parameter(table)
        self.backend = check_backend_name(config.backend)

    @property
    def n_output_dims(self) -> int:
        return self.config.n_levels * self.config.n_features

    def set_backend(self, name: str) -> None:
        self.backend = check_backend_name(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return get_backend(self.backend, x.device)(x, self.table, self.layout)

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"dims={self.dims}, levels={c.n_levels}, features={c.n_features}, "
            f"log2_table={c.log2_table}, res={c.base_res}..{c.max_res}, backend={self.backend}"
        )
