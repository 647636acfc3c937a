"""NeRF positional (frequency) encoding."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn


@dataclass
class FrequencyConfig:
    """Positional encoding [x, sin(2^k b x), cos(2^k b x)] for k < n_frequencies."""

    n_frequencies: int = 10
    """number of octaves"""
    base: float = math.pi
    """multiplier of the lowest frequency (pi: one half period over [0, 1])"""
    include_input: bool = True
    """prepend the raw coordinates"""

    name: ClassVar[str] = "frequency"

    def build(self, dims: int) -> FrequencyEncoding:
        return FrequencyEncoding(self, dims)


class FrequencyEncoding(nn.Module):
    """(n, d) -> (n, d * (include_input + 2 * n_frequencies)); no parameters."""

    def __init__(self, config: FrequencyConfig, dims: int):
        super().__init__()
        self.config, self.dims = config, dims
        freqs = config.base * 2.0 ** torch.arange(config.n_frequencies, dtype=torch.float32)
        self.register_buffer("freqs", freqs, persistent=False)

    @property
    def n_output_dims(self) -> int:
        return self.dims * (int(self.config.include_input) + 2 * self.config.n_frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = (x.unsqueeze(-1) * self.freqs).flatten(-2)  # (n, d * n_freq)
        parts = [x] if self.config.include_input else []
        return torch.cat([*parts, torch.sin(angles), torch.cos(angles)], dim=-1)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, n_frequencies={self.config.n_frequencies}"
