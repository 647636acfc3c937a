"""Several encodings side by side: their features concatenated (hybrid representations)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class ConcatConfig:
    """Encodings of the same point, concatenated in order (e.g. hash grid + NeuRBF)."""

    parts: tuple[Any, ...] = ()
    """encoding configs (any registered kinds)"""

    name: ClassVar[str] = "concat"

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("concat: needs at least one part")

    def build(self, dims: int) -> ConcatEncoding:
        return ConcatEncoding([part.build(dims) for part in self.parts])


class ConcatEncoding(nn.Module):
    """(n, d) -> (n, sum of the parts' widths)."""

    def __init__(self, parts: list[nn.Module]):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    @property
    def n_output_dims(self) -> int:
        return sum(part.n_output_dims for part in self.parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([part(x) for part in self.parts], dim=-1)
