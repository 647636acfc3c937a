"""Fully connected decoders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "none": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """Activation module by (case-insensitive) name."""
    try:
        return ACTIVATIONS[name.lower()]()
    except KeyError:
        valid = sorted(ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; choose from {valid}") from None


@dataclass
class MLPConfig:
    """Plain MLP decoder: n_hidden layers of width `width`, then a linear output."""

    width: int = 64
    """hidden width"""
    n_hidden: int = 2
    """number of hidden layers"""
    activation: str = "relu"
    """hidden activation"""
    output_activation: str = "none"
    """activation on the output (none, sigmoid, ...)"""

    name: ClassVar[str] = "mlp"

    def __post_init__(self) -> None:
        if self.width < 1 or self.n_hidden < 0:
            raise ValueError("mlp: width must be >= 1 and n_hidden >= 0")
        make_activation(self.activation)
        make_activation(self.output_activation)

    def build(self, in_dims: int, out_dims: int) -> MLP:
        return MLP(self, in_dims, out_dims)


class MLP(nn.Module):
    """(n, in_dims) -> (n, out_dims). ``cond`` is accepted and ignored (see CAM decoders)."""

    def __init__(self, config: MLPConfig, in_dims: int, out_dims: int):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = in_dims
        for _ in range(config.n_hidden):
            layers += [nn.Linear(width, config.width), make_activation(config.activation)]
            width = config.width
        layers += [nn.Linear(width, out_dims), make_activation(config.output_activation)]
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(h)
