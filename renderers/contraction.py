"""mip-NeRF 360's scene contraction (Barron et al. 2022, eq. 10) for unbounded scenes.

``contract(x) = x`` for ``|x| <= 1`` and ``(2 - 1 / |x|) x / |x|`` outside: the whole space
maps into the ball of radius 2, the unit ball unchanged, distant content compressed in
proportion to its disparity. A field over the box [-2, 2]^3 then covers every distance.
"""

from __future__ import annotations

import torch

CONTRACTED_RADIUS = 2.0


def contract(x: torch.Tensor) -> torch.Tensor:
    """(n, 3) points -> (n, 3) contracted points (Euclidean norm, as mip-NeRF 360)."""
    norm = x.norm(dim=-1, keepdim=True)
    outside = (CONTRACTED_RADIUS - 1.0 / norm.clamp(min=1.0)) * x / norm.clamp(min=1.0)
    return torch.where(norm <= 1.0, x, outside)


def contracted_aabb() -> torch.Tensor:
    """(2, 3) the box [-2, 2]^3 that holds every contracted point."""
    r = CONTRACTED_RADIUS
    return torch.tensor([[-r, -r, -r], [r, r, r]])


class ContractedPoints:
    """A field's point functions called with world points: each point is contracted first
    (the field's box is [-2, 2]^3). Wraps any object with ``density(x, d, times)`` and
    ``forward(x, d, times)`` (``times`` optional, as the renderer's point functions)."""

    def __init__(self, field):
        self.field = field

    def density(self, x: torch.Tensor, d: torch.Tensor,
                times: torch.Tensor | None = None) -> torch.Tensor:
        return self.field.density(contract(x), d, times)

    def forward(self, x: torch.Tensor, d: torch.Tensor, times: torch.Tensor | None = None):
        return self.field.forward(contract(x), d, times)
