"""Coordinate-aware modulation (CAM, Lee et al., ICLR 2024): an MLP decoder whose hidden layers
are ``Linear -> normalise -> gamma(c) * h + beta(c) -> activation``.

Normalisation is per point across the channels, without parameters (LayerNorm without affine).
gamma and beta are read by bilinear (trilinear in 3D) interpolation, ``align_corners=True`` with
border padding, from small grids over the modulation coordinate c: the normalised point (pixel
positions for images), time (the point's last axis for video; the (n, 1) ``cond`` of a dynamic
scene's field) or the view direction handed to the decoder as ``cond``, as (azimuth,
elevation). gamma starts at 1 and beta at 0, so
an untrained CAM decoder computes its MLP with normalised hidden layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .field import ParamGroup
from .mlp import MLP, MLPConfig

COORDINATES = ("point", "time", "direction")


def direction_to_unit_square(directions: torch.Tensor) -> torch.Tensor:
    """(n, 3) unit view directions -> (n, 2) (azimuth, elevation) in [0, 1]^2 (CAM's Mip-NeRF
    mapping: azimuth atan2(y, x) / 2 pi + 0.5, elevation -2/pi atan2(z, |xy|) rescaled)."""
    x, y, z = directions.unbind(-1)
    azimuth = torch.atan2(y, x) / (2 * math.pi) + 0.5
    elevation = -2 / math.pi * torch.atan2(z, torch.sqrt(x * x + y * y))
    return torch.stack([azimuth, (elevation + 1) / 2], dim=-1)


@dataclass
class CAMConfig:
    """An MLP whose hidden layers are normalised and modulated by gamma/beta grids."""

    mlp: MLPConfig = field(
        default_factory=lambda: MLPConfig(width=256, n_hidden=3, output_activation="sigmoid"))
    """the modulated MLP"""
    grid_shape: tuple[int, ...] = (32, 32)
    """modulation grid resolution along each coordinate of c (1 to 3 coordinates)"""
    coordinate: str = "point"
    """c: point (the normalised point, in [0, 1]^dims), time (its last axis) or direction (the
    unit view directions in cond, mapped to azimuth and elevation)"""
    per_channel: bool = False
    """gamma and beta per channel instead of one scalar per point"""
    grid_lr_mult: float = 10.0
    """learning rate of the grids relative to the decoder's"""
    eps: float = 1e-5
    """normalisation epsilon"""

    name: ClassVar[str] = "cam"

    def __post_init__(self) -> None:
        if not 1 <= len(self.grid_shape) <= 3 or min(self.grid_shape) < 1:
            raise ValueError(f"cam: grid_shape {self.grid_shape} needs 1 to 3 sizes >= 1")
        if self.coordinate not in COORDINATES:
            raise ValueError(f"cam: coordinate {self.coordinate!r}; choose from {COORDINATES}")
        if self.coordinate == "direction" and len(self.grid_shape) != 2:
            raise ValueError("cam: coordinate 'direction' needs a 2D grid_shape")
        if self.coordinate == "time" and len(self.grid_shape) != 1:
            raise ValueError("cam: coordinate 'time' needs a 1D grid_shape")
        if self.mlp.n_hidden < 1:
            raise ValueError("cam: the MLP needs at least one hidden layer")

    def build(self, in_dims: int, out_dims: int) -> CAMDecoder:
        return CAMDecoder(self, in_dims, out_dims)


class CAMDecoder(nn.Module):
    """(n, in_dims) features, (n, dims) normalised points and (n, 3) directions -> (n,
    out_dims).

    ``gamma`` and ``beta`` are (n_hidden, channels, *reversed(grid_shape)) with channels 1 (or
    the width when per channel), so that coordinate 0 of c runs along the last axis, as
    ``grid_sample`` expects.
    """

    def __init__(self, config: CAMConfig, in_dims: int, out_dims: int):
        super().__init__()
        self.config = config
        self.mlp = MLP(config.mlp, in_dims, out_dims)
        channels = config.mlp.width if config.per_channel else 1
        shape = (config.mlp.n_hidden, channels, *reversed(config.grid_shape))
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))

    def modulation(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """gamma, beta at (n, m) coordinates c in [0, 1]: each (n_hidden, n, channels)."""
        m = len(self.config.grid_shape)
        if c.shape[-1] != m:
            raise ValueError(f"cam: modulation coordinate has {c.shape[-1]} dims, grid has {m}")
        grids = torch.cat([self.gamma, self.beta]).flatten(0, 1)[None]  # (1, 2 L C, ...)
        coords = c.to(grids.dtype) * 2.0 - 1.0
        if m == 1:  # a 1D grid as a (1, R) image sampled on its middle row
            grids = grids.unsqueeze(-2)
            coords = torch.cat([coords, torch.zeros_like(coords)], dim=-1)
        where = coords.reshape(1, *[1] * max(m - 1, 1), -1, max(m, 2))
        out = F.grid_sample(grids, where, mode="bilinear", padding_mode="border",
                            align_corners=True)  # (1, 2 L C, 1, [1,] n)
        out = out.reshape(2, self.config.mlp.n_hidden, -1, len(c)).transpose(2, 3)
        return out[0], out[1]

    def coordinate(self, point: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """(n, m) modulation coordinate in [0, 1] of (n, dims) points and (n, 3) ``cond``."""
        kind = self.config.coordinate
        if kind == "point":
            return point
        if kind == "time":  # video: the point's last axis; dynamic scenes: cond is the time
            return point[:, -1:] if cond is None else cond[:, -1:]
        if cond is None:
            raise ValueError("cam: coordinate 'direction' needs view directions (cond)")
        return direction_to_unit_square(cond)

    def forward(self, h: torch.Tensor, point: torch.Tensor,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        gamma, beta = self.modulation(self.coordinate(point, cond))
        eps = self.config.eps

        def normalise_and_modulate(i: int, z: torch.Tensor) -> torch.Tensor:
            return gamma[i] * F.layer_norm(z, z.shape[-1:], eps=eps) + beta[i]

        return self.mlp(h, between=normalise_and_modulate)

    def param_groups(self) -> list[ParamGroup]:
        return [ParamGroup("decoder", list(self.mlp.parameters()), lr_key="decoder"),
                ParamGroup("modulation", [self.gamma, self.beta], lr_key="decoder",
                           lr_mult=self.config.grid_lr_mult)]

    def extra_repr(self) -> str:
        c = self.config
        return f"grid_shape={c.grid_shape}, coordinate={c.coordinate}, " \
               f"per_channel={c.per_channel}"
