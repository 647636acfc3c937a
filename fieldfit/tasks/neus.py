"""NeuS: a signed distance fitted to posed images (the SDF head over
:mod:`fieldfit.tasks.rays`).

The field is a signed distance rendered as NeuS does (:mod:`fieldfit.renderers.neus`): a
learned sharpness turns the SDF into opacities, an eikonal term keeps it a distance, and
`fieldfit mesh` extracts its zero level.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from fieldfit.fields import ParamGroup, SdfRadianceField
from fieldfit.losses import eikonal
from fieldfit.renderers import OccupancyGrid, Rays, RenderOutput
from fieldfit.renderers.neus import Sharpness, render_sdf_rays, sdf_occupancy

from ..surface import Surface
from .rays import NerfModel, NerfTaskConfig, RayTask


class NeusModel(NerfModel):
    """:class:`NerfModel` with NeuS's learned sharpness."""

    def __init__(self, field: nn.Module, grid: OccupancyGrid, rays_per_step: int,
                 sharpness: Sharpness):
        super().__init__(field, grid, rays_per_step)
        self.sharpness = sharpness


class NeusTask(RayTask):
    """An SDF radiance field (``--geometry sdf``) built from the preset ``config.field``."""

    name: ClassVar[str] = "neus"
    geometry: ClassVar[str] = "sdf"
    view_dependent = False  # an SDF must not depend on the view direction

    def build_model(self, aabb: torch.Tensor) -> NeusModel:
        c: NerfTaskConfig = self.config
        if self.source.get("contracted"):
            raise ValueError("--geometry sdf needs a bounded scene: add --scene-contraction off")
        grid = OccupancyGrid(aabb.reshape(6), c.occupancy)
        field = SdfRadianceField(self.field_config, aabb, c.radiance, c.sdf)
        return NeusModel(field, grid, self.initial_rays, Sharpness(c.sharpness_init))

    def param_groups(self) -> list[ParamGroup]:
        return [*super().param_groups(),
                ParamGroup("sharpness", list(self.model.sharpness.parameters()),
                           lr_key="decoder")]

    def grid_opacity(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        field = self.model.field
        return sdf_occupancy(field.sdf(x), self.model.sharpness().detach(), self.step_size)

    def _render(self, rays: Rays, background: torch.Tensor, train: bool,
                generator: torch.Generator | None, step: int | None):
        """The render and the (n_samples, 3) SDF gradients; ``step`` sets NeuS's cosine
        annealing (None: finished)."""
        anneal = self.config.cos_anneal_steps
        ratio = 1.0 if step is None or anneal == 0 else min(1.0, step / anneal)
        return render_sdf_rays(rays, self.model.grid, self.march_options(train),
                               self.model.field, self.model.sharpness(), background, generator,
                               cos_anneal_ratio=ratio, backend=self.config.renderer)

    def render(self, rays: Rays, background: torch.Tensor, train: bool = False,
               generator: torch.Generator | None = None) -> RenderOutput:
        return self._render(rays, background, train, generator, None)[0]

    def render_train(self, rays: Rays, background: torch.Tensor, generator: torch.Generator,
                     step: int) -> tuple[RenderOutput, dict[str, tuple]]:
        out, gradients = self._render(rays, background, True, generator, step)
        # every evaluated sample (composited or not) costs queries_per_sample field queries
        out.n_queries = len(gradients) * self.config.sdf.queries_per_sample - out.n_samples
        terms = {"sharpness": (None, self.model.sharpness().detach())}
        if out.n_samples and self.config.eikonal_weight > 0:
            terms["eikonal"] = (self.config.eikonal_weight, eikonal(gradients))
        return out, terms

    def write_head_outputs(self, out_dir: Path) -> list[Path]:
        if not self.config.mesh_resolution:
            return []
        self.surface().write(out_dir / "mesh.ply", self.config.mesh_resolution,
                             self.config.chunk)
        return [out_dir / "mesh.ply", out_dir / "mesh.png"]

    def surface(self) -> Surface:
        """The zero level of the SDF over the scene box, in the scene's frame (NDC for
        forward-facing scenes)."""
        self.model.eval()
        field = self.model.field
        return Surface(sdf=field.sdf, bounds=field.aabb, to_input=lambda v: v)
