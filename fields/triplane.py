"""Tri-plane encoding: feature planes on the axis-aligned coordinate pairs (one plane in 2D),
read with bilinear ``F.grid_sample``, optionally at several resolutions."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

AGGREGATIONS = ("sum", "product", "concat")
PADDINGS = ("zeros", "border", "reflection")


@dataclass
class TriPlaneConfig:
    """Feature planes over every pair of axes, aggregated across planes, levels concatenated."""

    resolution: int = 128
    """finest plane resolution (texels per side)"""
    n_levels: int = 1
    """resolutions resolution / 2^l for l < n_levels, features concatenated coarse to fine"""
    n_features: int = 16
    """channels per plane"""
    aggregation: str = "sum"
    """combine the planes' features: sum, product (Hadamard) or concat"""
    init_mean: float = 0.0
    """planes initialised N(init_mean, init_std^2) (use a mean of 1 with product)"""
    init_std: float = 1e-3
    """see init_mean"""
    align_corners: bool = False
    """grid_sample convention: False puts texel centres at (i + 0.5) / resolution"""
    padding: str = "border"
    """grid_sample padding outside the texel centres: zeros, border or reflection"""

    name: ClassVar[str] = "triplane"

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"triplane: aggregation {self.aggregation!r}; choose from "
                             f"{AGGREGATIONS}")
        if self.padding not in PADDINGS:
            raise ValueError(f"triplane: padding {self.padding!r}; choose from {PADDINGS}")
        if self.n_levels < 1 or self.n_features < 1:
            raise ValueError("triplane: n_levels and n_features must be >= 1")
        if self.resolution >> (self.n_levels - 1) < 2:
            raise ValueError(f"triplane: resolution {self.resolution} too small for "
                             f"{self.n_levels} levels (coarsest must be >= 2)")

    def level_resolutions(self) -> list[int]:
        return [self.resolution >> (self.n_levels - 1 - l) for l in range(self.n_levels)]

    def build(self, dims: int) -> TriPlane:
        return TriPlane(self, dims)


class TriPlane(nn.Module):
    """(n, d) points in [0, 1] -> (n, n_levels * F), or (n, n_levels * n_planes * F) with
    concat. Planes are the axis pairs (0, 1), (0, 2), (1, 2) in 3D and (0, 1) in 2D; a
    plane (a, b) stores (F, res_b, res_a) so that x_a runs along its width."""

    def __init__(self, config: TriPlaneConfig, dims: int):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"triplane: dims must be 2 or 3, got {dims}")
        self.config, self.dims = config, dims
        self.pairs = list(itertools.combinations(range(dims), 2))
        self.planes = nn.ParameterList([
            nn.Parameter(torch.randn(len(self.pairs), config.n_features, res, res)
                         * config.init_std + config.init_mean)
            for res in config.level_resolutions()
        ])

    @property
    def n_output_dims(self) -> int:
        per_level = self.config.n_features
        if self.config.aggregation == "concat":
            per_level *= len(self.pairs)
        return self.config.n_levels * per_level

    def sample_planes(self, planes: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(n_planes, n, F) bilinear samples of (n_planes, F, R, R) ``planes`` at (n, d) x."""
        uv = torch.stack([x[:, list(pair)] for pair in self.pairs]) * 2.0 - 1.0  # (P, n, 2)
        out = F.grid_sample(planes, uv.unsqueeze(1).to(planes.dtype), mode="bilinear",
                            padding_mode=self.config.padding,
                            align_corners=self.config.align_corners)  # (P, F, 1, n)
        return out[:, :, 0].transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = []
        for planes in self.planes:
            feats = self.sample_planes(planes, x)
            if self.config.aggregation == "sum":
                levels.append(feats.sum(0))
            elif self.config.aggregation == "product":
                levels.append(feats.prod(0))
            else:
                levels.append(feats.transpose(0, 1).reshape(len(x), -1))
        return torch.cat(levels, dim=-1)

    def extra_repr(self) -> str:
        c = self.config
        return (f"dims={self.dims}, planes={len(self.pairs)}, res={c.level_resolutions()}, "
                f"features={c.n_features}, aggregation={c.aggregation}")
