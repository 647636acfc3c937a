"""Multi-level dense grid encoding: every vertex of every level has its own features.

A dense grid is the hash grid's layout with a table large enough that no level hashes, so it is
built as a :class:`HashGrid` and shares its level layout, d-linear interpolation
(:mod:`.grid_interp`) and every backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from .hashgrid import HashGrid, HashGridConfig, make_layout

MAX_LOG2_TABLE = 30  # the hash grid's largest table


@dataclass
class DenseGridConfig:
    """Multi-level dense grid, d-linear interpolation, geometric level growth."""

    n_levels: int = 8
    """number of levels"""
    n_features: int = 2
    """features per level"""
    base_res: int = 16
    """coarsest resolution"""
    max_res: int = 512
    """finest resolution"""
    init_scale: float = 1e-4
    """features initialised uniform in [-init_scale, init_scale]"""
    backend: str = "auto"
    """hash-grid backend that evaluates it"""

    name: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        if self.n_levels < 1 or self.n_features < 1:
            raise ValueError("dense: n_levels and n_features must be >= 1")
        if self.base_res < 2 or self.max_res < self.base_res:
            raise ValueError("dense: need 2 <= base_res <= max_res")

    def as_hashgrid(self, dims: int) -> HashGridConfig:
        """The hash-grid config whose table holds the finest level whole (so no level hashes)."""
        layout = make_layout(dims, self.n_levels, self.n_features, 62, self.base_res,
                             self.max_res)
        finest = max(spec.size for spec in layout.levels)
        log2_table = max(4, math.ceil(math.log2(finest)))
        if log2_table > MAX_LOG2_TABLE or any(s.resolution**dims > s.size for s in layout.levels):
            raise ValueError(f"dense: the finest level has {finest} vertices; at most "
                             f"2^{MAX_LOG2_TABLE} (lower max_res)")
        return HashGridConfig(n_levels=self.n_levels, n_features=self.n_features,
                              log2_table=log2_table, base_res=self.base_res,
                              max_res=self.max_res, init_scale=self.init_scale,
                              backend=self.backend)

    def build(self, dims: int) -> HashGrid:
        return HashGrid(self.as_hashgrid(dims), dims)
