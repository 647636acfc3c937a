"""Radiance field head: density and view-dependent colour (Instant-NGP's NeRF network).

Any :class:`~fieldfit.fields.field.Field` (any encoding and decoder) supplies the geometry:
it maps a point to one density logit and ``geo_features`` features. A small colour MLP reads
those features with the spherical harmonics of the view direction. The view direction is also
handed to the geometry decoder as ``cond``, which a coordinate-modulated (CAM) decoder uses, so
density queries take a direction too (occupancy updates pass random ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .field import Field, FieldConfig, ParamGroup
from .mlp import MLPConfig
from .sh import SHEncoding


class _TruncExp(torch.autograd.Function):
    """exp(x) whose gradient uses exp(min(x, 15)), so a large logit cannot blow up a step."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    """Truncated exponential density activation (Instant-NGP)."""
    return _TruncExp.apply(x)


@dataclass
class RadianceConfig:
    """The radiance head on top of a geometry field."""

    geo_features: int = 15
    """features passed from the geometry network to the colour network"""
    sh_degree: int = 4
    """spherical-harmonic bands of the view direction (degree**2 values)"""
    color: MLPConfig = field(
        default_factory=lambda: MLPConfig(width=64, n_hidden=2, output_activation="sigmoid"))
    """colour network"""
    density_bias: float = -1.0
    """added to the density logit before trunc_exp (starts the field nearly empty)"""

    def __post_init__(self) -> None:
        if self.geo_features < 0:
            raise ValueError("radiance: geo_features must be >= 0")


class ColorFieldBase(nn.Module):
    """A geometry field (any encoding and decoder) with ``1 + geo_features`` outputs, and the
    colour network that reads them with the view encoding; subclasses say what output 0 is."""

    extra_color_inputs = 0
    """inputs of the colour network beside the geometry output and the view encoding"""

    def __init__(self, geometry: FieldConfig, aabb: torch.Tensor,
                 config: RadianceConfig | None = None):
        super().__init__()
        self.config = config or RadianceConfig()
        c = self.config
        self.geometry: Field = geometry.build(3, 1 + c.geo_features, aabb)
        self.sh = SHEncoding(c.sh_degree)
        self.color = c.color.build(
            1 + c.geo_features + self.extra_color_inputs + self.sh.n_output_dims, 3)

    @property
    def aabb(self) -> torch.Tensor:
        return self.geometry.aabb

    def param_groups(self) -> list[ParamGroup]:
        """The geometry field's groups, plus the colour network at the decoder lr."""
        color = [p for p in self.color.parameters() if p.requires_grad]
        return [*self.geometry.param_groups(), ParamGroup("color", color, lr_key="decoder")]

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class RadianceField(ColorFieldBase):
    """(n, 3) points and (n, 3) unit view directions -> (n, 3) colours and (n,) densities.

    Density is zero outside ``aabb`` (2, 3). The point functions take an optional (n, 1)
    ``times``, which this static field ignores (it is the same at every time; the dynamic
    field of :mod:`.dynamic` reads it).
    """

    def _features(self, x: torch.Tensor, directions: torch.Tensor,
                  times: torch.Tensor | None) -> torch.Tensor:
        """(n, 1 + geo_features) geometry outputs: density logit and colour features."""
        return self.geometry(x, directions)

    def _geometry(self, x: torch.Tensor, directions: torch.Tensor,
                  times: torch.Tensor | None = None):
        h = self._features(x, directions, times)
        inside = ((x >= self.aabb[0]) & (x <= self.aabb[1])).all(dim=-1)
        sigma = trunc_exp(h[:, 0] + self.config.density_bias) * inside
        return sigma, h

    def density(self, x: torch.Tensor, directions: torch.Tensor,
                times: torch.Tensor | None = None) -> torch.Tensor:
        """(n,) densities (per world unit) at (n, 3) points seen along (n, 3) directions."""
        return self._geometry(x, directions, times)[0]

    def forward(self, x: torch.Tensor, directions: torch.Tensor,
                times: torch.Tensor | None = None):
        """(n, 3) colours in [0, 1] and (n,) densities."""
        sigma, h = self._geometry(x, directions, times)
        rgb = self.color(torch.cat([h, self.sh(directions)], dim=-1))
        return rgb, sigma
