"""SDF radiance field: a signed distance and a view-dependent colour (NeuS, NeurIPS 2021).

The geometry field's first output, plus the distance to a sphere, is the SDF in world units
(negative inside): starting from a sphere is NeuS's geometric initialisation, done here as a bias
so that it works for every encoding, not only for a plain MLP. The colour network reads the
geometry features, the SDF gradient (the surface normal) and the spherical harmonics of the view
direction, as in NeuS. Opacities come from the renderer (:mod:`fieldfit.renderers.neus`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .field import FieldConfig
from .gradient import spatial_gradient
from .radiance import ColorFieldBase, RadianceConfig


@dataclass
class SdfGeometryConfig:
    """How the SDF is parametrised and differentiated."""

    sphere_radius: float = 0.5
    """radius of the initial sphere, as a fraction of the box's shortest half side"""
    gradient: Literal["autograd", "finite_difference"] = "finite_difference"
    """SDF gradients by central finite differences (6 extra queries per sample; only first
    derivatives of the encoding, which every backend has) or by autograd (double backward:
    the fused CPU and Triton kernels fall back to the reference for it)"""
    fd_step: float = 2e-3
    """finite-difference step, as a fraction of the box's longest side"""

    def __post_init__(self) -> None:
        if not 0 < self.sphere_radius <= 1:
            raise ValueError(f"--sdf.sphere-radius {self.sphere_radius}: must be in (0, 1]")
        if not 0 < self.fd_step < 0.1:
            raise ValueError(f"--sdf.fd-step {self.fd_step}: must be in (0, 0.1)")

    @property
    def queries_per_sample(self) -> int:
        """Field evaluations behind one sample's SDF and gradient."""
        return 7 if self.gradient == "finite_difference" else 1


class SdfRadianceField(ColorFieldBase):
    """(n, 3) points and (n, 3) unit view directions -> (n, 3) colours, (n,) SDF values (world
    units, negative inside) and (n, 3) SDF gradients."""

    extra_color_inputs = 3  # the normal

    def __init__(self, geometry: FieldConfig, aabb: torch.Tensor,
                 config: RadianceConfig | None = None, sdf: SdfGeometryConfig | None = None):
        super().__init__(geometry, aabb, config)
        self.sdf_config = sdf or SdfGeometryConfig()
        aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3)
        sides = aabb[1] - aabb[0]
        self.register_buffer("sphere_centre", aabb.mean(0))
        self.sphere_radius = float(self.sdf_config.sphere_radius * sides.min() / 2)
        self.fd_step = float(self.sdf_config.fd_step * sides.max())

    def _sdf_features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 1 + geo_features): the SDF, then the geometry features, at (n, 3) points. The
        geometry never sees the view direction (a CAM decoder modulates over the point)."""
        h = self.geometry(x)
        sphere = (x - self.sphere_centre).norm(dim=-1) - self.sphere_radius
        return torch.cat([(h[:, 0] + sphere)[:, None], h[:, 1:]], dim=-1)

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """(n,) SDF at (n, 3) points."""
        return self._sdf_features(x)[:, 0]

    def forward(self, x: torch.Tensor, directions: torch.Tensor):
        """(n, 3) colours in [0, 1], (n,) SDF values and (n, 3) SDF gradients."""
        h, grad = spatial_gradient(self._sdf_features, x,
                                   self.sdf_config.gradient, self.fd_step,
                                   create_graph=torch.is_grad_enabled())
        normals = torch.nn.functional.normalize(grad, dim=-1)
        rgb = self.color(torch.cat([h, normals, self.sh(directions)], dim=-1))
        return rgb, h[:, 0], grad
