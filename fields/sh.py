"""Real spherical harmonics of unit directions (the view-direction encoding of Instant-NGP).

Written out as polynomials, as tiny-cuda-nn does, because no installed library evaluates real
spherical harmonics on torch tensors with gradients; the constants are the orthonormal ones
(their integral products over the sphere give the identity, which the tests check).
"""

from __future__ import annotations

import torch
from torch import nn

MAX_DEGREE = 4


def sh_encode(directions: torch.Tensor, degree: int = 4) -> torch.Tensor:
    """Orthonormal real spherical harmonics of bands 0 .. degree-1.

    Args:
        directions: (n, 3) unit vectors.
        degree: number of bands, 1 to 4.
    Returns:
        (n, degree**2) values, band by band (tiny-cuda-nn's order and signs).
    """
    if not 1 <= degree <= MAX_DEGREE:
        raise ValueError(f"spherical harmonics: degree must be 1..{MAX_DEGREE}, got {degree}")
    x, y, z = directions.unbind(-1)
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree > 1:
        out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree > 2:
        x2, y2, z2 = x * x, y * y, z * z
        out += [
            1.0925484305920792 * x * y,
            -1.0925484305920792 * y * z,
            0.94617469575755997 * z2 - 0.31539156525251999,
            -1.0925484305920792 * x * z,
            0.54627421529603959 * (x2 - y2),
        ]
    if degree > 3:
        out += [
            0.59004358992664352 * y * (y2 - 3.0 * x2),
            2.8906114426405538 * x * y * z,
            0.45704579946446572 * y * (1.0 - 5.0 * z2),
            0.3731763325901154 * z * (5.0 * z2 - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * z2),
            1.4453057213202769 * z * (x2 - y2),
            0.59004358992664352 * x * (3.0 * y2 - x2),
        ]
    return torch.stack(out, dim=-1)


class SHEncoding(nn.Module):
    """(n, 3) unit directions -> (n, degree**2) spherical harmonics; no parameters."""

    def __init__(self, degree: int = 4):
        super().__init__()
        sh_encode(torch.zeros(1, 3), degree)  # validates the degree
        self.degree = degree

    @property
    def n_output_dims(self) -> int:
        return self.degree**2

    def forward(self, directions: torch.Tensor) -> torch.Tensor:
        return sh_encode(directions, self.degree)

    def extra_repr(self) -> str:
        return f"degree={self.degree}"
