"""Random Fourier features (Tancik et al. 2020), the input of FFN/CAM MLP baselines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass
class FourierFeatureConfig:
    """[cos(2 pi B x), sin(2 pi B x)] with a fixed random B ~ N(0, sigma^2)."""

    n_frequencies: int = 256
    """rows of B"""
    sigma: float = 10.0
    """standard deviation of B's entries (for x in [0, 1])"""

    name: ClassVar[str] = "fourier"

    def __post_init__(self) -> None:
        if self.n_frequencies < 1 or not self.sigma > 0:
            raise ValueError("fourier: n_frequencies must be >= 1 and sigma > 0")

    def build(self, dims: int) -> FourierFeatures:
        return FourierFeatures(self, dims)


class FourierFeatures(nn.Module):
    """(n, d) -> (n, 2 * n_frequencies); B is a saved buffer drawn from the global RNG."""

    def __init__(self, config: FourierFeatureConfig, dims: int):
        super().__init__()
        self.config, self.dims = config, dims
        self.register_buffer("B", torch.randn(config.n_frequencies, dims) * config.sigma)

    @property
    def n_output_dims(self) -> int:
        return 2 * self.config.n_frequencies

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * x @ self.B.T
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, n_frequencies={self.config.n_frequencies}, " \
               f"sigma={self.config.sigma}"
