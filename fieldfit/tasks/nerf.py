"""NeRF: a radiance field fitted to posed images by volume rendering.

Each step draws random rays across all training images; the number of rays adapts so that the
number of samples per step stays near ``samples_per_step``. The occupancy grid is part of the
model (its buffers are in the state dict) and is updated by :meth:`NerfTask.before_step`, so the
trainer knows nothing about it.

With ``geometry="sdf"`` the field is a signed distance rendered as NeuS does
(:mod:`fieldfit.renderers.neus`): a learned sharpness turns the SDF into opacities, an eikonal
term keeps it a distance, and `fieldfit mesh` extracts its zero level.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fieldfit.fields import (
    FieldConfig,
    PresetContext,
    RadianceConfig,
    RadianceField,
    SdfGeometryConfig,
    SdfRadianceField,
    field_preset,
    from_dict,
    to_dict,
)
from fieldfit.losses import S3IMOptions, eikonal, parse_loss
from fieldfit.renderers import (
    Cameras,
    MarchOptions,
    OccupancyConfig,
    OccupancyGrid,
    RenderOutput,
    orbit_path,
    render_rays,
    spiral_path,
)
from fieldfit.renderers.contraction import ContractedPoints
from fieldfit.renderers.neus import Sharpness, render_sdf_rays, sdf_occupancy
from fieldfit.renderers.occupancy import MultiLevelOccupancyGrid
from fieldfit.scenes import NerfScene, SceneOptions, load_nerf_scene

from ..checkpoint import Checkpoint
from ..errors import UserError
from ..io import write_image, write_json
from ..media import colorize_depth, write_video
from ..metrics import psnr, ssim
from .base import ParamGroup, Task
from .sdf import Surface

CONTRACTION_LEVELS = 4  # unbounded scenes: occupancy levels out to 8x the unit box


@dataclass
class NerfTaskConfig(S3IMOptions):
    """NeRF fitting options (with the ``--s3im-*`` options of the S3IM loss term)."""

    field: str = "grid"
    """field preset for the geometry (see `fieldfit nerf --help` for the list)"""
    geometry: Literal["density", "sdf"] = "density"
    """density (NeRF), or sdf: a signed distance rendered as NeuS does, whose surface
    `fieldfit mesh` extracts"""
    log2_table: int = 19
    """hash-table size of grid-based fields"""
    max_res: int = 0
    """finest grid resolution over the scene box (0: 2048 x box side / 3)"""
    backend: str = "auto"
    """hash-grid backend: auto, torch, ..."""
    renderer: Literal["auto", "torch", "nerfacc"] = "auto"
    """ray marching and compositing: auto (nerfacc's kernels on CUDA when installed), torch"""
    samples_per_step: int = 2**16
    """target field queries per step (density queries that choose the samples, plus the
    rendered samples); the number of rays adapts to it"""
    max_rays: int = 2**14
    """upper limit of rays per step"""
    loss: str = "mse"
    """loss terms joined by '+', e.g. mse, huber, mse+s3im"""
    train_background: Literal["random", "white", "black", "scene"] = "random"
    """background behind transparent training pixels (random teaches transparency)"""
    render_steps: int = 512
    """samples along the diagonal of the scene box (step size = diagonal / render_steps)"""
    early_stop_eps: float = 1e-4
    """stop marching a ray once its transmittance is below this"""
    alpha_thre: float = 0.0
    """skip samples with opacity below this (capped at the grid's mean occupancy); > 0 saves
    samples but can starve a young field of gradients"""
    occupancy: OccupancyConfig = dataclasses.field(default_factory=OccupancyConfig)
    """occupancy grid"""
    radiance: RadianceConfig = dataclasses.field(default_factory=RadianceConfig)
    """density and colour heads"""
    sdf: SdfGeometryConfig = dataclasses.field(default_factory=SdfGeometryConfig)
    """the SDF of --geometry sdf"""
    eikonal_weight: float = 0.1
    """--geometry sdf: weight of the eikonal term (|grad f| - 1)^2 on the rendered samples"""
    sharpness_init: float = 0.3
    """--geometry sdf: NeuS's initial log-sharpness v (s = exp(10 v))"""
    cos_anneal_steps: int = 1000
    """--geometry sdf: steps over which NeuS's cosine annealing goes from 0 to 1 (0: none)"""
    mesh_resolution: int = 256
    """--geometry sdf: marching-cubes cells per axis of the mesh.ply written with the outputs
    (0: none)"""
    eval_views: int = 0
    """test views to evaluate and render: 0 for all, N for N evenly spaced ones"""
    chunk: int = 8192
    """rays per forward pass when rendering images"""
    video_frames: int = 48
    """frames of the turntable video (0: no video)"""

    def __post_init__(self) -> None:
        if self.samples_per_step < 64 or self.max_rays < 64:
            raise ValueError("--samples-per-step and --max-rays must be >= 64")
        if self.render_steps < 8:
            raise ValueError(f"--render-steps {self.render_steps}: must be >= 8")
        if self.eval_views < 0 or self.video_frames < 0 or self.chunk < 1:
            raise ValueError("--eval-views and --video-frames must be >= 0, --chunk >= 1")
        if not 0 <= self.early_stop_eps < 1 or not 0 <= self.alpha_thre < 1:
            raise ValueError("--early-stop-eps and --alpha-thre must be in [0, 1)")
        if self.eikonal_weight < 0 or self.cos_anneal_steps < 0 or self.mesh_resolution < 0:
            raise ValueError("--eikonal-weight, --cos-anneal-steps and --mesh-resolution must "
                             "be >= 0")


class NerfModel(nn.Module):
    """The radiance field, its occupancy grid, the adaptive ray count and, for an SDF field,
    NeuS's sharpness (all checkpointed)."""

    def __init__(self, field: RadianceField | SdfRadianceField, grid: OccupancyGrid,
                 rays_per_step: int, sharpness: Sharpness | None = None):
        super().__init__()
        self.field, self.grid, self.sharpness = field, grid, sharpness
        self.register_buffer("rays_per_step", torch.tensor(rays_per_step, dtype=torch.int64))


def build_nerf_model(config: NerfTaskConfig, field_config: FieldConfig,
                     aabb: torch.Tensor, contracted: bool = False) -> NerfModel:
    """The untrained model of ``config`` over the (2, 3) box ``aabb``."""
    grid = OccupancyGrid(aabb.reshape(6), config.occupancy)
    # -- unbounded scenes: world space marched through levels over [-1, 1]^3 x 2^l ----------
    if contracted:  # each level half the cells per side: an update costs half of one grid's
        occupancy = dataclasses.replace(config.occupancy,
                                        resolution=max(1, config.occupancy.resolution // 2))
        grid = MultiLevelOccupancyGrid(torch.tensor([-1.0] * 3 + [1.0] * 3), occupancy,
                                       CONTRACTION_LEVELS)
    rays = max(64, config.samples_per_step // 256)
    if config.geometry == "sdf":
        field = SdfRadianceField(field_config, aabb, config.radiance, config.sdf)
        return NerfModel(field, grid, rays, Sharpness(config.sharpness_init))
    return NerfModel(RadianceField(field_config, aabb, config.radiance), grid, rays)


def evenly_spaced(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all of them when k is 0 or >= n)."""
    if k == 0 or k >= n:
        return list(range(n))
    return torch.linspace(0, n - 1, k).round().long().unique().tolist()


class NerfTask(Task):
    """Fits a radiance field built from the preset ``config.field`` to ``scene``."""

    name: ClassVar[str] = "nerf"

    def __init__(self, scene: NerfScene, config: NerfTaskConfig,
                 scene_options: SceneOptions | None = None,
                 field_config: FieldConfig | None = None):
        self.scene, self.config = scene, config
        self.scene_options = scene_options or SceneOptions()
        aabb = scene.aabb
        side = float((aabb[1] - aabb[0]).max())
        max_res = config.max_res or round(2048 * side / 3)
        self.sdf_geometry = config.geometry == "sdf"
        ctx = PresetContext(task="nerf", dims=3, max_res=max_res, log2_table=config.log2_table,
                            backend=config.backend, out_dims=1 + config.radiance.geo_features,
                            view_dependent=not self.sdf_geometry)
        self.field_config = field_config or field_preset(config.field, ctx)
        self.model = build_nerf_model(config, self.field_config, aabb, scene.contracted)
        if scene.contracted and self.sdf_geometry:  # -- unbounded scenes --
            raise ValueError("--geometry sdf needs a bounded scene: add --scene-contraction off")
        self.step_size = float((aabb[1] - aabb[0]).norm()) / config.render_steps
        self.loss = parse_loss(config.loss, weights={"s3im": config.s3im_weight},
                               options=config)
        self.ray_multiple = math.lcm(*(getattr(t.fn, "batch_multiple", 1)
                                       for t in self.loss.terms))
        self.eval_indices = evenly_spaced(len(scene.splits["test"]), config.eval_views)
        self._version = 0  # bumped by every training step; keys the cached evaluation
        self._cached: tuple[tuple, list[dict]] | None = None

    # -- Task interface ----------------------------------------------------------------
    def config_dict(self) -> dict:
        return {"task": to_dict(self.config), "field": to_dict(self.field_config),
                "scene": to_dict(self.scene_options), "data": str(self.scene.source.resolve())}

    def param_groups(self) -> list[ParamGroup]:
        groups = self.model.field.param_groups()
        if self.model.sharpness is not None:
            groups.append(ParamGroup("sharpness", list(self.model.sharpness.parameters()),
                                     lr_key="decoder"))
        return groups

    def lr_defaults(self) -> dict[str, float]:
        return dict(self.field_config.lr)

    def before_step(self, step: int) -> None:
        field, step_size = self._point_field(), self.step_size
        generator = torch.Generator().manual_seed(step)  # a resumed run repeats it

        def occupancy(x: torch.Tensor) -> torch.Tensor:
            if self.sdf_geometry:
                return sdf_occupancy(field.sdf(x), self.model.sharpness().detach(), step_size)
            directions = F.normalize(torch.randn(x.shape, generator=generator), dim=-1)
            return field.density(x, directions.to(x.device)) * step_size

        self.model.grid.maybe_update(step, occupancy)

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        self._version += 1
        split = self.scene.splits["train"]
        n = int(self.model.rays_per_step)
        image = torch.randint(len(split), (n,), generator=generator)
        col = torch.randint(split.cameras.width, (n,), generator=generator)
        row = torch.randint(split.cameras.height, (n,), generator=generator)
        rays = self.scene.rays("train", image, col, row)
        background = self._train_background(n, generator)
        target = split.colors[image, row, col]
        if split.alphas is not None:
            target = target + (1.0 - split.alphas[image, row, col]) * background
        if self.sdf_geometry:
            out, gradients = self._render_sdf(rays, background, train=True, generator=generator,
                                              step=step)
            # every evaluated sample (composited or not) costs queries_per_sample field queries
            out.n_queries = (len(gradients) * self.config.sdf.queries_per_sample
                             - out.n_samples)
        else:
            out = self.render(rays, background, train=True, generator=generator)
        total, terms = self.loss(out.rgb, target, generator)
        if out.n_samples == 0:  # every ray missed the occupied cells: keep the graph connected
            total = total + 0.0 * self.model.field(rays.origins[:1], rays.directions[:1])[1].sum()
        elif self.sdf_geometry and self.config.eikonal_weight > 0:
            terms["eikonal"] = eikonal(gradients)
            total = total + self.config.eikonal_weight * terms["eikonal"]
        self._adapt_ray_count(n, out.n_samples + out.n_queries)
        result = {"loss": total, **terms, "rays": torch.tensor(float(n)),
                  "samples": torch.tensor(float(out.n_samples)),
                  "queries": torch.tensor(float(out.n_queries))}
        if self.sdf_geometry:
            result["sharpness"] = self.model.sharpness().detach()
        if "mse" not in result:
            result["mse"] = torch.mean((out.rgb.detach() - target) ** 2)
        return result

    def evaluate(self) -> dict[str, float]:
        views = self._eval_renders()
        return {"psnr": float(np.mean([v["psnr"] for v in views])),
                "ssim": float(np.mean([v["ssim"] for v in views])),
                "eval_views": len(views), "test_views": len(self.scene.splits["test"])}

    def write_outputs(self, out_dir: Path) -> list[Path]:
        out_dir = Path(out_dir)
        (out_dir / "renders").mkdir(parents=True, exist_ok=True)
        paths = []
        for view in self._eval_renders():
            stem = out_dir / "renders" / f"test_{view['index']:03d}"
            write_image(stem.with_name(stem.name + ".png"), view["rgb"])
            write_image(stem.with_name(stem.name + "_depth.png"), view["depth_image"])
            paths += [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + "_depth.png")]
        if self.config.video_frames:
            paths.append(self.write_video(out_dir / "turntable", self.config.video_frames))
        if self.sdf_geometry and self.config.mesh_resolution:
            sdf_surface(self.model).write(out_dir / "mesh.ply", self.config.mesh_resolution,
                                          self.config.chunk)
            paths += [out_dir / "mesh.ply", out_dir / "mesh.png"]
        metrics = {**self.evaluate(), "params": self.model.field.n_parameters(),
                   "occupied_fraction": float(self.model.grid.binaries.float().mean())}
        write_json(out_dir / "metrics.json", metrics)
        return [*paths, out_dir / "metrics.json"]

    # -- rendering ---------------------------------------------------------------------
    def march_options(self, train: bool) -> MarchOptions:
        c = self.config
        return MarchOptions(step_size=self.step_size, early_stop_eps=c.early_stop_eps,
                            alpha_thre=c.alpha_thre, stratified=train)

    def render(self, rays, background: torch.Tensor, train: bool = False,
               generator: torch.Generator | None = None) -> RenderOutput:
        """Volume-render ``rays`` (differentiable when ``train``)."""
        if self.sdf_geometry:
            return self._render_sdf(rays, background, train, generator)[0]
        field = self._point_field()
        return render_rays(rays, self.model.grid, self.march_options(train), field.density,
                           field.forward, background, generator, backend=self.config.renderer)

    def _render_sdf(self, rays, background: torch.Tensor, train: bool = False,
                    generator: torch.Generator | None = None, step: int | None = None):
        """NeuS rendering of the SDF field: the render and the (n_samples, 3) SDF gradients.
        ``step`` sets the cosine annealing (None: finished)."""
        anneal = self.config.cos_anneal_steps
        ratio = 1.0 if step is None or anneal == 0 else min(1.0, step / anneal)
        return render_sdf_rays(rays, self.model.grid, self.march_options(train),
                               self.model.field, self.model.sharpness(), background, generator,
                               cos_anneal_ratio=ratio, backend=self.config.renderer)

    @torch.no_grad()
    def render_view(self, cameras: Cameras, index: int) -> dict[str, np.ndarray]:
        """Colour (H, W, 3), depth of the visible surface (H, W) and opacity (H, W) of one
        camera, rendered in chunks of ``config.chunk`` rays."""
        self.model.eval()
        h, w = cameras.height, cameras.width
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        ids = torch.full((h * w,), index, dtype=torch.int64)
        rays = self.scene.camera_rays(cameras, ids, cols.reshape(-1), rows.reshape(-1))
        parts = [self.render(chunk, self.scene.background) for chunk in
                 rays.split(self.config.chunk)]
        rgb = torch.cat([p.rgb for p in parts]).reshape(h, w, 3).clamp(0, 1)
        opacity = torch.cat([p.opacity for p in parts]).reshape(h, w)
        depth = torch.cat([p.depth for p in parts]).reshape(h, w) / opacity.clamp(min=1e-6)
        return {"rgb": rgb.numpy(), "depth": depth.numpy(), "opacity": opacity.numpy()}

    def _eval_renders(self) -> list[dict]:
        key = (self._version, tuple(self.eval_indices))
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        split = self.scene.splits["test"]
        truth = split.composited(self.scene.background)
        views = []
        for i in self.eval_indices:
            view = self.render_view(split.cameras, i)
            pred = torch.from_numpy(view["rgb"])
            view.update(index=i, psnr=psnr(pred, truth[i]), ssim=ssim(pred, truth[i]),
                        depth_image=colorize_depth(view["depth"], view["opacity"] > 0.5))
            views.append(view)
        self._cached = (key, views)
        return views

    def video_path(self, n_frames: int) -> Cameras:
        """Turntable around the object (or a circle for forward-facing scenes)."""
        cameras = self.scene.splits["train"].cameras
        return spiral_path(cameras, n_frames) if self.scene.ndc else orbit_path(cameras,
                                                                                 n_frames)

    def write_video(self, path: Path, n_frames: int) -> Path:
        cameras = self.video_path(n_frames)
        frames = [self.render_view(cameras, i)["rgb"] for i in range(n_frames)]
        return write_video(path, frames)

    # -- helpers -----------------------------------------------------------------------
    def _point_field(self):
        """The field's point functions over world points (contracted for unbounded scenes)."""
        return ContractedPoints(self.model.field) if self.scene.contracted else self.model.field

    def _train_background(self, n: int, generator: torch.Generator) -> torch.Tensor:
        mode = self.config.train_background
        if self.scene.splits["train"].alphas is None or mode == "scene":
            return self.scene.background
        if mode == "random":
            return torch.rand(n, 3, generator=generator)
        return torch.full((3,), 1.0 if mode == "white" else 0.0)

    def _adapt_ray_count(self, n_rays: int, n_queries: int) -> None:
        """Scale the ray count so the next step makes about ``samples_per_step`` queries."""
        c = self.config
        wanted = n_rays * c.samples_per_step / max(n_queries, 1)
        m = self.ray_multiple
        wanted = int(min(max(wanted, 64), c.max_rays)) // m * m
        self.model.rays_per_step.fill_(max(wanted, m))


def nerf_task_from_checkpoint(ckpt: Checkpoint, path: Path) -> NerfTask:
    """Rebuild the task of a ``fieldfit nerf`` checkpoint (its scene is read again from the
    folder recorded in it) with the checkpoint's weights and occupancy grid."""
    if ckpt.meta.get("task") != NerfTask.name:
        raise UserError(f"{path}: checkpoint of task {ckpt.meta.get('task')!r}, not a "
                        "`fieldfit nerf` run")
    saved = ckpt.meta["task_config"]
    try:
        config = from_dict(NerfTaskConfig, saved["task"], "task")
        options = from_dict(SceneOptions, saved["scene"], "scene")
        field_config = from_dict(FieldConfig, saved["field"], "field")
    except (KeyError, ValueError) as err:
        raise UserError(f"{path}: checkpoint config not understood ({err})") from None
    scene = load_nerf_scene(saved["data"], options)
    task = NerfTask(scene, config, options, field_config)
    try:
        task.model.load_state_dict(ckpt.model)
    except RuntimeError as err:
        reason = str(err).splitlines()[0]
        raise UserError(f"{path}: checkpoint does not match its model ({reason})") from None
    return task


def surface_from_nerf_checkpoint(ckpt: Checkpoint) -> Surface:
    """The SDF of a `fieldfit nerf --geometry sdf` checkpoint over its scene box, in the
    scene's frame (NDC for forward-facing scenes); the scene itself is not read."""
    saved = ckpt.meta["task_config"]
    config = from_dict(NerfTaskConfig, saved["task"], "task")
    if config.geometry != "sdf":
        raise ValueError(f"a {config.geometry} field has no surface; fit one with "
                         "`fieldfit nerf --geometry sdf`")
    aabb = ckpt.model["grid.aabb"].reshape(2, 3)
    model = build_nerf_model(config, from_dict(FieldConfig, saved["field"], "field"), aabb)
    model.load_state_dict(ckpt.model)
    model.eval()
    return sdf_surface(model)


def sdf_surface(model: NerfModel) -> Surface:
    """The zero level of ``model``'s SDF field over its box, in the scene's frame."""
    return Surface(sdf=model.field.sdf, bounds=model.field.aabb, to_input=lambda v: v)
