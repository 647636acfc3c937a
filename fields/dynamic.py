"""Time-conditioned radiance field for dynamic scenes (T-NeRF, as NerfAcc's dynamic example).

A deformation network maps a point and a time to an offset into a canonical frame, where any
geometry field (any encoding and decoder) supplies density and colour features as in
:class:`~.radiance.RadianceField`. The deformation reads frequency encodings of the normalised
point and of the time, and its last layer starts at zero, so an untrained field is the static
canonical field at every time. The geometry decoder gets the time as ``cond``: a CAM decoder
with ``coordinate="time"`` modulates its hidden layers on it (NerfAcc + CAM's dynamic setting;
the deformation network stays unmodulated, as there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .field import FieldConfig, ParamGroup
from .frequency import FrequencyConfig
from .mlp import MLPConfig
from .radiance import RadianceConfig, RadianceField


@dataclass
class DeformationConfig:
    """The deformation network: (point, time) -> offset into the canonical frame."""

    point_frequencies: int = 2
    """octaves of the normalised point's frequency encoding (low: the motion is smoother
    than the scene; 6 and 4 octaves fitted the generated scene 1-2 dB worse in 200 steps)"""
    time_frequencies: int = 1
    """octaves of the time's frequency encoding"""
    mlp: MLPConfig = field(default_factory=lambda: MLPConfig(width=64, n_hidden=2))
    """the network (3 outputs: the offset, in units of the scene box's size)"""
    lr_mult: float = 0.3
    """its learning rate relative to the decoder's (at 1 the warp moves faster than the
    canonical field settles)"""


class Deformation(nn.Module):
    """(n, 3) normalised points and (n, 1) times in [0, 1] -> (n, 3) offsets (normalised
    units); zero at initialisation."""

    def __init__(self, config: DeformationConfig):
        super().__init__()
        self.config = config
        self.point_encoding = FrequencyConfig(config.point_frequencies).build(3)
        self.time_encoding = FrequencyConfig(config.time_frequencies).build(1)
        n_in = self.point_encoding.n_output_dims + self.time_encoding.n_output_dims
        self.mlp = config.mlp.build(n_in, 3)
        last = [m for m in self.mlp.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([self.point_encoding(x), self.time_encoding(times)], dim=-1))


class DynamicRadianceField(RadianceField):
    """(n, 3) points, (n, 3) unit view directions and (n, 1) times in [0, 1] -> (n, 3)
    colours and (n,) densities (zero outside ``aabb``, judged at the point itself)."""

    def __init__(self, geometry: FieldConfig, aabb: torch.Tensor,
                 config: RadianceConfig | None = None,
                 deformation: DeformationConfig | None = None):
        super().__init__(geometry, aabb, config)
        self.deformation = Deformation(deformation or DeformationConfig())

    def canonical(self, x: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """(n, 3) world points at (n, 1) times -> their (n, 3) canonical world points."""
        lo, hi = self.aabb[0], self.aabb[1]
        return x + self.deformation(self.geometry.normalize(x), times) * (hi - lo)

    def _features(self, x: torch.Tensor, directions: torch.Tensor,
                  times: torch.Tensor | None) -> torch.Tensor:
        if times is None:
            raise ValueError("a dynamic scene's field needs the time of every point")
        return self.geometry(self.canonical(x, times), times)

    def param_groups(self) -> list[ParamGroup]:
        """The radiance field's groups, plus the deformation network at ``lr_mult`` times
        the decoder lr."""
        params = [p for p in self.deformation.parameters() if p.requires_grad]
        return [*super().param_groups(), ParamGroup("deformation", params, lr_key="decoder",
                                                    lr_mult=self.deformation.config.lr_mult)]
