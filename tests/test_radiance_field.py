"""Spherical harmonics, the truncated exponential and the radiance head."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from fieldfit.fields import (
    FieldConfig,
    FrequencyConfig,
    RadianceField,
    sh_encode,
    trunc_exp,
)
from torch import nn


def sphere_quadrature(n: int = 12):
    """Gauss-Legendre in cos(theta) x uniform in phi: exact for polynomials of degree < 2n."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    phi = np.arange(2 * n) * (np.pi / n)
    z, ph = np.meshgrid(nodes, phi, indexing="ij")
    r = np.sqrt(1 - z**2)
    dirs = np.stack([r * np.cos(ph), r * np.sin(ph), z], -1).reshape(-1, 3)
    w = np.repeat(weights, 2 * n) * (np.pi / n)
    return torch.tensor(dirs), torch.tensor(w)


@pytest.mark.parametrize("degree", [1, 2, 3, 4])
def test_spherical_harmonics_are_orthonormal(degree):
    dirs, w = sphere_quadrature()
    y = sh_encode(dirs, degree)
    gram = (y * w[:, None]).T @ y
    torch.testing.assert_close(gram, torch.eye(degree**2, dtype=torch.float64), atol=1e-10,
                               rtol=0)


def test_spherical_harmonics_low_bands_by_hand():
    d = torch.tensor([[0.6, 0.0, 0.8]])
    y = sh_encode(d, 2)[0]
    c0, c1 = 0.5 / math.sqrt(math.pi), math.sqrt(3 / (4 * math.pi))
    torch.testing.assert_close(y, torch.tensor([c0, 0.0, c1 * 0.8, -c1 * 0.6]))
    with pytest.raises(ValueError, match="degree"):
        sh_encode(d, 5)


def test_trunc_exp_value_and_clamped_gradient():
    x = torch.tensor([-3.0, 0.5, 14.0, 20.0], requires_grad=True)
    y = trunc_exp(x)
    torch.testing.assert_close(y, torch.exp(x.detach()))
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, torch.exp(torch.tensor([-3.0, 0.5, 14.0, 15.0])))


class RecordingDecoder(nn.Module):
    """A linear decoder that remembers the ``cond`` it was given."""

    def __init__(self, in_dims: int, out_dims: int):
        super().__init__()
        self.linear = nn.Linear(in_dims, out_dims)
        self.seen: list = []

    def forward(self, h, point=None, cond=None):
        self.seen.append(cond)
        return self.linear(h)


@dataclass
class RecordingConfig:
    name: ClassVar[str] = "recording"

    def build(self, in_dims: int, out_dims: int) -> RecordingDecoder:
        return RecordingDecoder(in_dims, out_dims)


def test_radiance_field_passes_view_directions_to_the_decoder():
    aabb = torch.tensor([[-1.0, -1, -1], [1, 1, 1]])
    field = RadianceField(FieldConfig(FrequencyConfig(n_frequencies=2), RecordingConfig()), aabb)
    x = torch.tensor([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0], [1.5, 0.0, 0.0]])
    d = torch.nn.functional.normalize(torch.randn(3, 3), dim=-1)
    rgb, sigma = field(x, d)
    assert field.geometry.decoder.seen[-1] is d
    assert rgb.shape == (3, 3) and ((rgb > 0) & (rgb < 1)).all()
    assert sigma[2] == 0 and (sigma[:2] > 0).all()  # zero density outside the box
    torch.testing.assert_close(field.density(x, d), sigma)
    # the colour depends on the direction through the spherical harmonics
    rgb_other, sigma_other = field(x, -d)
    torch.testing.assert_close(sigma_other, sigma)
    assert not torch.allclose(rgb_other, rgb)
    names = [g.name for g in field.param_groups()]
    assert names[-1] == "color" and "decoder" in names
