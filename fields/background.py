"""The colour of the far field: what a ray sees after it has left an unbounded scene.

In mip-NeRF 360's contracted space every ray ends at infinity, where sky, far walls and
anything beyond the sampled range leave colour that no sample explains; a learned colour per
viewing direction takes it (as NeRF++'s background model and nerfstudio's
``background_color="learned"`` do, here at the cost of 48 parameters) instead of forcing the
field to paint it onto the outermost samples.
"""

from __future__ import annotations

import torch
from torch import nn

from .field import ParamGroup
from .sh import sh_encode


class DirectionalBackground(nn.Module):
    """(n, 3) unit viewing directions -> (n, 3) colours in (0, 1): the sigmoid of a linear map
    of the directions' real spherical harmonics (bands 0 .. degree-1); starts grey (0.5)."""

    def __init__(self, degree: int = 4):
        super().__init__()
        self.degree = degree
        self.linear = nn.Linear(degree**2, 3)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, directions: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(sh_encode(directions, self.degree)))

    def param_groups(self) -> list[ParamGroup]:
        return [ParamGroup("background", list(self.parameters()), "decoder")]
