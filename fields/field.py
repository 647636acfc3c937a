"""The Field: encoding -> decoder, over an axis-aligned box."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .mlp import MLPConfig


@dataclass
class ParamGroup:
    """Parameters sharing a learning rate: ``lr = trainer lr[lr_key] * lr_mult``."""

    name: str
    params: list[nn.Parameter]
    lr_key: str
    lr_mult: float = 1.0


@dataclass
class FieldConfig:
    """A field: an encoding config (any registered kind) and a decoder config."""

    encoding: Any
    decoder: Any = field(default_factory=MLPConfig)
    lr: dict[str, float] = field(default_factory=dict)
    """recommended learning rate per lr key ("encoding", "decoder"); a trainer uses them where
    the user sets none"""
    batch_size: int | None = None
    """recommended samples per step (pixels, SDF points; field queries of a radiance field);
    a task uses it where the user sets none, else the task's own default"""
    min_steps: int = 0
    """steps the field needs before it fits more than the mean: a time budget that allows
    fewer is warned about"""

    def build(self, dims: int, out_dims: int, aabb: torch.Tensor | None = None) -> Field:
        encoding = self.encoding.build(dims)
        decoder = self.decoder.build(encoding.n_output_dims, out_dims)
        return Field(encoding, decoder, dims, out_dims, aabb)


class Field(nn.Module):
    """Maps (n, dims) points inside ``aabb`` to (n, out_dims) outputs.

    Points are normalised to [0, 1]^dims before the encoding. The decoder is called as
    ``decoder(features, point, cond)`` with the normalised (n, dims) points and ``cond``, an
    optional (n, c) per-point conditioning (view directions in radiance fields), which CAM
    decoders may modulate on.
    """

    def __init__(
        self, encoding: nn.Module, decoder: nn.Module, dims: int, out_dims: int,
        aabb: torch.Tensor | None = None,
    ):
        super().__init__()
        self.encoding, self.decoder = encoding, decoder
        self.dims, self.out_dims = dims, out_dims
        if aabb is None:
            aabb = torch.stack([torch.zeros(dims), torch.ones(dims)])
        self.register_buffer("aabb", aabb.float().reshape(2, dims))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(n, dims) world points -> (n, dims) in [0, 1] (clamped)."""
        lo, hi = self.aabb[0], self.aabb[1]
        return ((x - lo) / (hi - lo)).clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = self.normalize(x)
        return self.decoder(self.encoding(x), x, cond)

    def adaptive_modules(self) -> list[nn.Module]:
        """Submodules that place themselves from target samples (``init_from_samples``)."""
        return [m for m in self.modules() if m is not self and hasattr(m, "init_from_samples")]

    def init_from_samples(self, x: torch.Tensor, weights: torch.Tensor,
                          training_points: bool = False) -> None:
        """Initialise the adaptive submodules (e.g. NeuRBF kernels) from weighted samples.

        Args:
            x: (n, dims) sample points in world coordinates.
            weights: (n,) importance >= 0 (image gradient, 1/|sdf|, density x colour gradient).
            training_points: ``x`` are the fixed training points, so per-point lookups (nearest
                kernels) may be precomputed for them.
        """
        for module in self.adaptive_modules():
            module.init_from_samples(self.normalize(x), weights, training_points=training_points)

    def param_groups(self) -> list[ParamGroup]:
        """Encoding and decoder parameters as separate groups (encodings take a higher lr)."""
        groups = []
        for module, name in ((self.encoding, "encoding"), (self.decoder, "decoder")):
            own = getattr(module, "param_groups", None)
            if own is not None:
                groups += own()
            else:
                params = [p for p in module.parameters() if p.requires_grad]
                if params:
                    groups.append(ParamGroup(name, params, lr_key=name))
        return groups

    def n_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
