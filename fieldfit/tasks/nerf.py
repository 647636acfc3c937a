"""NeRF: a density field fitted to posed images by volume rendering (the density head over
:mod:`fieldfit.tasks.rays`). Unbounded captures live in mip-NeRF 360's contracted space and
are marched through a multi-level occupancy grid."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F

from fieldfit.fields import DynamicRadianceField, RadianceField
from fieldfit.renderers import OccupancyGrid, Rays, RenderOutput, render_rays
from fieldfit.renderers.contraction import ContractedPoints
from fieldfit.renderers.occupancy import MultiLevelOccupancyGrid

from ..surface import Surface
from .rays import NerfModel, NerfTaskConfig, RayTask

CONTRACTION_LEVELS = 4  # unbounded scenes: occupancy levels out to 8x the unit box
DENSITY_THRESHOLD = 10.0
"""density (per world unit) whose level set `fieldfit mesh` extracts from a density NeRF"""


class NerfTask(RayTask):
    """A density radiance field (``--geometry density``) built from the preset
    ``config.field``; in a dynamic scene, a time-conditioned one
    (:class:`~fieldfit.fields.DynamicRadianceField`)."""

    name: ClassVar[str] = "nerf"
    geometry: ClassVar[str] = "density"

    def build_model(self, aabb: torch.Tensor) -> NerfModel:
        c: NerfTaskConfig = self.config
        if self.source.get("contracted"):
            # world space marched through levels over [-1, 1]^3 x 2^l, each level half the
            # cells per side: an update costs half of one grid's
            occupancy = dataclasses.replace(c.occupancy,
                                            resolution=max(1, c.occupancy.resolution // 2))
            grid = MultiLevelOccupancyGrid(torch.tensor([-1.0] * 3 + [1.0] * 3, device="cpu"),
                                           occupancy, CONTRACTION_LEVELS)
        else:
            grid = OccupancyGrid(aabb.reshape(6), c.occupancy)
        if self.dynamic:
            field = DynamicRadianceField(self.field_config, aabb, c.radiance, c.deformation)
        else:
            field = RadianceField(self.field_config, aabb, c.radiance)
        return NerfModel(field, grid, self.initial_rays)

    def grid_opacity(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Opacity along random directions; in a dynamic scene at random times, so that over
        the updates the grid holds every cell occupied at some moment."""
        directions = torch.randn(x.shape, generator=generator, device=generator.device)
        directions = F.normalize(directions, dim=-1).to(x.device)
        times = torch.rand(len(x), 1, generator=generator, device=generator.device).to(
            x.device) if self.dynamic else None
        return self._point_field().density(x, directions, times) * self.step_size

    def render(self, rays: Rays, background: torch.Tensor, train: bool = False,
               generator: torch.Generator | None = None) -> RenderOutput:
        field = self._point_field()
        return render_rays(rays, self.model.grid, self.march_options(train), field.density,
                           field.forward, background, generator, backend=self.config.renderer)

    def render_train(self, rays: Rays, background: torch.Tensor, generator: torch.Generator,
                     step: int) -> tuple[RenderOutput, dict[str, tuple]]:
        return self.render(rays, background, train=True, generator=generator), {}

    def surface(self, threshold: float = DENSITY_THRESHOLD) -> Surface:
        """The level ``density = threshold`` (per world unit) over the scene box (the unit
        box of an unbounded scene's contracted space), in the scene's frame, as instant-ngp's
        marching cubes offers; the density is read along one fixed view direction (at time 0
        in a dynamic scene)."""
        self.model.eval()
        field = self._point_field()
        direction = F.normalize(torch.ones(1, 3, device=self.device), dim=-1)
        bounds = torch.tensor([[-1.0] * 3, [1.0] * 3], device=self.device) \
            if self.source.get("contracted") else self.model.field.aabb

        def level(x: torch.Tensor) -> torch.Tensor:  # negative inside, like an SDF
            times = x.new_zeros(len(x), 1) if self.dynamic else None
            return threshold - field.density(x, direction.expand(len(x), 3), times)

        return Surface(sdf=level, bounds=bounds, to_input=lambda v: v, distance=False)

    def _point_field(self):
        """The field's point functions over world points (contracted for unbounded scenes)."""
        field = self.model.field
        return ContractedPoints(field) if self.source.get("contracted") else field
