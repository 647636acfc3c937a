"""Shared ray code of the radiance-field tasks: ray batches over the training images, the
adaptive ray count, evaluation renders, videos and outputs.

Each step draws random rays across all training images; the number of rays adapts so that the
number of field queries per step stays near ``samples_per_step``. The occupancy grid is part of
the model (its buffers are in the state dict) and is updated by :meth:`RayTask.before_step`, so
the trainer knows nothing about it. The heads over this code are the density field
(:mod:`fieldfit.tasks.nerf`) and NeuS's signed distance (:mod:`fieldfit.tasks.neus`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from abc import abstractmethod
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from fieldfit.fields import (
    BackendName,
    DeformationConfig,
    FieldConfig,
    FieldName,
    ParamGroup,
    PresetContext,
    RadianceConfig,
    SdfGeometryConfig,
    field_preset,
    from_dict,
    to_dict,
)
from fieldfit.fields.background import DirectionalBackground
from fieldfit.losses import S3IMOptions, parse_loss
from fieldfit.renderers import (
    Cameras,
    MarchOptions,
    OccupancyConfig,
    OccupancyGrid,
    Rays,
    RenderOutput,
    orbit_path,
    spiral_path,
)
from fieldfit.renderers.mesh import MeshResolutionError, check_resolution
from fieldfit.scenes import NerfScene, SceneOptions, load_nerf_scene

from .. import distributed
from ..io import write_image, write_json
from ..media import colorize_depth_range, with_colour_bar, write_video
from ..metrics import psnr, ssim
from ..progress import tracked
from .base import BudgetOptions, Task

log = logging.getLogger("fieldfit")

DEFAULT_SAMPLES_PER_STEP = 2**16
"""field queries per step of fields whose preset recommends none"""
SLOW_EVAL_S = 120.0
"""an evaluation slower than this per test view is announced before it starts"""
MAX_RENDER_STEPS = 2**16
"""finest march: 65536 samples along the box diagonal (128x the default)"""


@dataclass
class NerfTaskConfig(BudgetOptions, S3IMOptions):
    """NeRF fitting options (with the ``--s3im-*`` options of the S3IM loss term)."""

    field: FieldName = "grid"
    """field preset of the geometry (see the README's "Field representations")"""
    geometry: Literal["density", "sdf"] = "density"
    """density (NeRF), or sdf: a signed distance rendered as NeuS does, whose surface
    `fieldfit mesh` extracts"""
    log2_table: int = 19
    """hash-table size of grid-based fields"""
    max_res: int = 0
    """finest grid resolution over the scene box (0: 2048 x box side / 3)"""
    backend: BackendName = "auto"
    """hash-grid backend: auto (the fastest that loads: cpp on a CPU; tcnn, triton, then
    torch on CUDA), torch (the reference), cpp (C++ kernels, CPU), triton or tcnn (CUDA)"""
    renderer: Literal["auto", "torch", "cpp", "nerfacc"] = "auto"
    """ray marching and compositing: auto (nerfacc on CUDA when installed, the C++ kernels on
    the CPU when they build), torch (the reference), cpp, nerfacc"""
    cam: Literal["none", "point", "direction", "time"] = "none"
    """CAM on the geometry field's decoder, modulated over the point, the view direction
    (NerfAcc + CAM's static-scene setting; density fields only) or time (its dynamic-scene
    setting: 5 knots)"""
    dynamic: Literal["auto", "off"] = "auto"
    """scenes whose frames carry a time (D-NeRF's layout): auto fits a time-conditioned field
    (T-NeRF: a deformation network into a canonical field); off fits one static field to all
    frames (a baseline)"""
    deformation: DeformationConfig = dataclasses.field(default_factory=DeformationConfig)
    """dynamic scenes: the deformation network"""
    samples_per_step: int | None = None
    """target field queries per step (density queries that choose the samples, plus the
    rendered samples; under torchrun: of all ranks together); the number of rays adapts to
    it (unset: the field preset's, else 65536)"""
    max_rays: int = 2**14
    """upper limit of rays per step"""
    loss: str = "mse"
    """loss terms joined by '+' (e.g. mse+s3im) from: mse, l1, huber, relative_l2, s3im"""
    train_background: Literal["random", "white", "black", "scene"] = "random"
    """background behind transparent training pixels (random teaches transparency)"""
    far_field: Literal["learned", "none"] = "none"
    """colour seen past the scene: learned (a colour per view direction, fields.background;
    for unbounded captures without alpha), none (the scene's background colour)"""
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
    eval_views: int = 4
    """test views to evaluate and render at the end of the fit: N evenly spaced ones, 0 for
    all (sized for a CPU; `fieldfit eval RUN --views 0` measures all of them afterwards)"""
    chunk: int = 4096
    """rays per forward pass when rendering images (on a CPU a chunk's samples then stay in
    cache: 4096 renders trained lego_200 views 7% faster than 2048 and 1% faster than 8192)"""
    kernel_placement_step: int = 500
    """adaptive fields (rbf): the step at which the kernels are placed from the field learnt
    so far (NeuRBF's distillation, see RayTask.place_kernels); they sit on a lattice before"""
    video_frames: int = 0
    """frames of a turntable video written with the outputs (0: none; `fieldfit render RUN`
    renders one afterwards)"""
    video_fps: int = 24
    """frames per second of that video (48 frames at 24: two seconds)"""

    def __post_init__(self) -> None:
        BudgetOptions.__post_init__(self)
        if (self.samples_per_step or 64) < 64 or self.max_rays < 64:
            raise ValueError("--samples-per-step and --max-rays must be >= 64")
        if self.render_steps < 8:
            raise ValueError(f"--render-steps {self.render_steps}: must be >= 8")
        if self.render_steps > MAX_RENDER_STEPS:
            raise ValueError(f"--render-steps {self.render_steps}: must be <= "
                             f"{MAX_RENDER_STEPS}")
        if self.max_res < 0:
            raise ValueError(f"--max-res {self.max_res}: must be >= 0")
        if self.geometry == "sdf" and self.mesh_resolution:
            try:  # refused now rather than after training
                check_resolution(self.mesh_resolution)
            except MeshResolutionError as err:
                raise ValueError(f"--mesh-{err}") from None
        if self.kernel_placement_step < 0:
            raise ValueError(f"--kernel-placement-step {self.kernel_placement_step}: must be "
                             ">= 0")
        if self.eval_views < 0 or self.video_frames < 0 or self.chunk < 1 or self.video_fps < 1:
            raise ValueError("--eval-views and --video-frames must be >= 0, --chunk and "
                             "--video-fps >= 1")
        if not 0 <= self.early_stop_eps < 1 or not 0 <= self.alpha_thre < 1:
            raise ValueError("--early-stop-eps and --alpha-thre must be in [0, 1)")
        if self.eikonal_weight < 0 or self.cos_anneal_steps < 0 or self.mesh_resolution < 0:
            raise ValueError("--eikonal-weight, --cos-anneal-steps and --mesh-resolution must "
                             "be >= 0")


class NerfModel(nn.Module):
    """A radiance field, its occupancy grid, the learned far-field colour (or None), the
    adaptive ray count and whether adaptive kernels have been placed (all checkpointed)."""

    def __init__(self, field: nn.Module, grid: OccupancyGrid, rays_per_step: int):
        super().__init__()
        self.field, self.grid = field, grid
        self.far_field: DirectionalBackground | None = None  # set by the task (--far-field)
        self.register_buffer("rays_per_step", torch.tensor(rays_per_step, dtype=torch.int64))
        self.register_buffer("kernels_placed", torch.tensor(False))


def evenly_spaced(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all of them when k is 0 or >= n)."""
    if k == 0 or k >= n:
        return list(range(n))
    return torch.linspace(0, n - 1, k, device="cpu").round().long().unique().tolist()


class RayTask(Task):
    """A radiance field fitted to a posed image collection by volume rendering.

    ``source``: ``{"path", "scene", "aabb", "contracted", "dynamic", "times"}``: the scene
    folder, the :class:`SceneOptions` it is read with, its (2, 3) box, whether it is unbounded,
    whether the field is conditioned on time and the number of distinct training times. A head
    sets :attr:`geometry` and implements :meth:`build_model`, :meth:`grid_opacity`,
    :meth:`render` and :meth:`render_train`.
    """

    config_type = NerfTaskConfig
    sharded_evaluation = True  # the test views are split across the ranks
    geometry: ClassVar[str]
    """the ``--geometry`` this head fits (density, sdf)"""
    view_dependent = True
    """the geometry decoder may read the view direction"""

    def __init__(self, scene: NerfScene | None, config: NerfTaskConfig,
                 device: torch.device | str | None = None, source: dict | None = None,
                 field_config: FieldConfig | None = None):
        super().__init__(scene, config, device, source)
        if config.geometry != self.geometry:
            raise ValueError(f"--geometry {config.geometry}: {type(self).__name__} fits "
                             f"--geometry {self.geometry}")
        if self.dynamic and self.geometry != "density":
            raise ValueError(f"--geometry {self.geometry}: a dynamic scene is fitted with "
                             "--geometry density")
        if self.dynamic and config.cam == "direction":
            raise ValueError("--cam direction: the decoder of a dynamic scene's field reads the "
                             "time, not the view direction (--cam time or point)")
        aabb = torch.tensor(self.source["aabb"], dtype=torch.float32, device="cpu")
        side = float((aabb[1] - aabb[0]).max())
        max_res = config.max_res or round(2048 * side / 3)
        ctx = PresetContext(task="nerf", dims=3, max_res=max_res, log2_table=config.log2_table,
                            backend=config.backend, budget=config.params,
                            out_dims=1 + config.radiance.geo_features,
                            view_dependent=self.view_dependent and not self.dynamic,
                            time_res=self.source.get("times", 0) if self.dynamic else 0,
                            cam=config.cam)
        self.field_config = field_config or field_preset(config.field, ctx)
        self.samples_per_step = (config.samples_per_step or self.field_config.batch_size
                                 or DEFAULT_SAMPLES_PER_STEP)
        self.model = self.build_on_cpu(lambda: self.build_model(aabb))
        if config.far_field == "learned":
            self.model.far_field = self.build_on_cpu(DirectionalBackground)
        self.step_size = float((aabb[1] - aabb[0]).norm()) / config.render_steps
        self.loss = parse_loss(config.loss, weights={"s3im": config.s3im_weight},
                               options=config)
        # each rank's share of the rays must tile the loss terms' batches (S3IM's patches)
        self.ray_multiple = math.lcm(*(getattr(t.fn, "batch_multiple", 1)
                                       for t in self.loss.terms)) * distributed.world_size()
        self._eval_indices: list[int] | None = None
        self._reset: list[nn.Parameter] = []  # re-initialised by place_kernels
        self._version = 0  # bumped by every training step; keys the cached evaluation
        self._cached: tuple[tuple, list[dict]] | None = None

    # -- data ------------------------------------------------------------------------------
    @classmethod
    def load_data(cls, source: dict, config: NerfTaskConfig) -> NerfScene:
        options = from_dict(SceneOptions, source["scene"], "scene")
        scene = load_nerf_scene(source["path"], options)
        if not torch.allclose(scene.aabb.cpu(), torch.tensor(source["aabb"], device="cpu")):
            raise ValueError(f"{source['path']}: the scene's box changed since the run was "
                             "fitted")
        return scene

    def describe(self, scene: NerfScene) -> dict:
        options = scene.options or SceneOptions()
        times = scene.splits["train"].cameras.times
        return {"path": str(Path(scene.source).resolve()), "scene": to_dict(options),
                "aabb": scene.aabb.tolist(), "contracted": bool(scene.contracted),
                "dynamic": scene.dynamic and self.config.dynamic == "auto",
                "times": 0 if times is None else len(times.unique())}

    @property
    def dynamic(self) -> bool:
        """The field is conditioned on time (a dynamic scene, ``--dynamic auto``)."""
        return bool(self.source.get("dynamic"))

    @property
    def scene(self) -> NerfScene:
        return self.data

    @cached_property
    def background(self) -> torch.Tensor:
        """(3,) evaluation background on the task's device."""
        return self.scene.background.to(self.device)

    def far_background(self, rays: Rays, background: torch.Tensor) -> torch.Tensor:
        """(n, 3) learned far-field colour of ``rays``, or ``background`` without one."""
        if self.model.far_field is None:
            return background
        return self.model.far_field(rays.view_directions)

    @property
    def eval_indices(self) -> list[int]:
        """Test views that :meth:`evaluate` renders (``config.eval_views`` evenly spaced,
        unless :meth:`use_eval_views` chose others)."""
        if self._eval_indices is None:
            self.use_eval_views(self.config.eval_views)
        return self._eval_indices

    def use_eval_views(self, k: int) -> None:
        """Evaluate ``k`` evenly spaced test views from now on (0: all)."""
        self._eval_indices = evenly_spaced(len(self.scene.splits["test"]), k)

    # -- the head --------------------------------------------------------------------------
    @abstractmethod
    def build_model(self, aabb: torch.Tensor) -> NerfModel:
        """The untrained model over the (2, 3) box ``aabb``, starting with
        :attr:`initial_rays` rays per step."""

    @property
    def initial_rays(self) -> int:
        """Rays of the first step (then adapted to ``samples_per_step``)."""
        return max(64, self.samples_per_step // 256)

    @abstractmethod
    def grid_opacity(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(n,) opacity of one render step at the (n, 3) points, for occupancy updates."""

    @abstractmethod
    def render(self, rays: Rays, background: torch.Tensor, train: bool = False,
               generator: torch.Generator | None = None) -> RenderOutput:
        """Volume-render ``rays`` (differentiable when ``train``)."""

    @abstractmethod
    def render_train(self, rays: Rays, background: torch.Tensor, generator: torch.Generator,
                     step: int) -> tuple[RenderOutput, dict[str, tuple]]:
        """The training render and the head's extra terms, name -> (weight, value): weighted
        into the loss, or only logged where the weight is None."""

    # -- Task interface --------------------------------------------------------------------
    def budgeted_parameters(self) -> int:
        """The geometry field's parameters (the preset that ``--params`` sizes)."""
        return self.model.field.geometry.n_parameters(trainable_only=False)

    def param_groups(self) -> list[ParamGroup]:
        groups = self.model.field.param_groups()
        if self.model.far_field is not None:
            groups += self.model.far_field.param_groups()
        return groups

    def before_step(self, step: int) -> None:
        """Occupancy updates and kernel placement, seeded by ``step`` (a resumed run repeats
        them); under torchrun every rank computes them and rank 0's result is sent to all,
        so the grid and kernels stay identical even where ranks' arithmetic differs."""
        generator = torch.Generator().manual_seed(step)
        if self.model.grid.maybe_update(step, lambda x: self.grid_opacity(x, generator)):
            distributed.broadcast_module(self.model.grid)
        if step == self.config.kernel_placement_step \
                and self.model.field.geometry.adaptive_modules() \
                and not bool(self.model.kernels_placed):
            self.place_kernels(generator)
            distributed.broadcast_module(self.model)

    def take_reset_parameters(self) -> list[nn.Parameter]:
        params, self._reset = self._reset, []
        return params

    @torch.no_grad()
    def place_kernels(self, generator: torch.Generator, points_per_kernel: int = 4) -> None:
        """Place the field's adaptive kernels (NeuRBF) from the field learnt so far, as
        NeuRBF's NeRF recipe does from a grid-only teacher: sample points fill the occupied
        cells of the occupancy grid (each split into s^3 sub-cells, s <= 4 the least giving
        ``points_per_kernel`` points per kernel), weighted by
        ``(1 - exp(-opacity)) * |grad f|``, ``f`` the geometry features and the gradient by
        central differences of half a sub-cell (NeuRBF min-max normalises ``f`` first, a
        global scale that k-means' division of the weights by their mean cancels); then
        weighted k-means and cluster covariances.
        The kernels' feature weights restart at zero, with fresh optimiser state
        (:meth:`take_reset_parameters`)."""
        grid, geometry = self.model.grid, self.model.field.geometry
        if self.source.get("contracted"):
            log.warning("kernel placement is not available in contracted (unbounded) scenes: "
                        "the kernels stay on their lattice")
            self.model.kernels_placed.fill_(True)
            return
        adaptive = geometry.adaptive_modules()
        n_kernels = sum(m.config.n_kernels for m in adaptive)
        cells = grid.binaries.reshape(-1).nonzero()[:, 0]
        s = next((s for s in (1, 2, 3, 4) if len(cells) * s**3 >= points_per_kernel * n_kernels),
                 4)
        sub = torch.stack(torch.meshgrid(*[torch.arange(s, device=self.device)] * 3,
                                         indexing="ij"), -1).reshape(-1, 3)
        offsets = ((sub + 0.5) / s).repeat(len(cells), 1)  # sub-cell centres, cell by cell
        points = grid.cell_points(cells.repeat_interleave(len(sub)), offsets)
        h = (grid.aabb[3:] - grid.aabb[:3]) / (2 * grid.resolution * s)  # half a sub-cell
        direction = torch.nn.functional.normalize(torch.ones(1, 3, device=self.device), dim=-1)

        def features(x: torch.Tensor) -> torch.Tensor:
            return geometry(x, direction.expand(len(x), 3))[:, 1:]

        weights = []
        for part in points.split(self.config.chunk * 4):
            grad = torch.stack([features(part + h * e) - features(part - h * e)
                                for e in torch.eye(3, device=self.device)], 1)
            grad = grad / (2 * h[None, :, None])  # (n, 3, F) per world unit
            opacity = self.grid_opacity(part, generator)
            weights.append((1 - torch.exp(-opacity)) * grad.square().sum((1, 2)).sqrt())
        weights = torch.cat(weights)
        if not bool((weights > 0).any()):
            log.warning("no occupied cell has opacity and texture at step %d: the kernels stay "
                        "on their lattice", self.config.kernel_placement_step)
            return
        geometry.init_from_samples(points, weights)
        self._reset = []
        for module in adaptive:
            module.reset_features()
            self._reset += [p for p in module.parameters() if p.requires_grad]
        self.model.kernels_placed.fill_(True)
        log.info("placed %d kernels from %d points of %d occupied cells", n_kernels,
                 len(points), len(cells))

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        self._version += 1
        split = self.scene.splits["train"]
        m = self.ray_multiple
        n = max(int(self.model.rays_per_step) // m * m, m)  # of all ranks together
        image = torch.randint(len(split), (n,), generator=generator, device=generator.device)
        col = torch.randint(split.cameras.width, (n,), generator=generator, device=generator.device)
        row = torch.randint(split.cameras.height, (n,), generator=generator,
                            device=generator.device)
        background = self._train_background(n, generator)
        if background.dim() == 2:  # one random colour per ray
            background = distributed.share(background)
        image, col, row = (distributed.share(x) for x in (image, col, row))  # this rank's rays
        rays = self.scene.rays("train", image, col, row).to(self.device)
        background = self.far_background(rays, background)
        target = split.colors[image, row, col].to(self.device)
        if split.alphas is not None:
            target = target + (1.0 - split.alphas[image, row, col].to(self.device)) * background
        local = distributed.rank_generator(generator, step)
        out, regularisers = self.render_train(rays, background, local, step)
        total, terms = self.loss(out.rgb, target, local)
        for name, (weight, value) in regularisers.items():
            terms[name] = value
            if weight is not None:
                total = total + weight * value
        # host numbers (logged without a device sync), summed over the ranks: the ray count
        # adapts to the queries of the whole step
        counts = distributed.all_sum(torch.tensor([n, out.n_samples, out.n_queries],
                                                  dtype=torch.float64, device="cpu"))
        counts[0] = n
        self._adapt_ray_count(n, int(counts[1] + counts[2]))
        counts = counts.float()
        result = {"loss": total, **terms, "rays": counts[0], "samples": counts[1],
                  "queries": counts[2]}
        if "mse" not in result:
            result["mse"] = torch.mean((out.rgb.detach() - target) ** 2)
        return result

    def evaluate(self) -> dict[str, float]:
        views = self._eval_renders()
        return {"psnr": float(np.mean([v["psnr"] for v in views])),
                "ssim": float(np.mean([v["ssim"] for v in views])),
                "eval_views": len(views), "test_views": len(self.scene.splits["test"]),
                "per_view": [{"index": v["index"], "psnr": v["psnr"], "ssim": v["ssim"]}
                             for v in views]}

    def write_test_views(self, folder: Path) -> list[Path]:
        """The evaluated test views as ``test_NNN.png`` and ``test_NNN_depth.png``."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for view in self._eval_renders():
            stem = folder / f"test_{view['index']:03d}"
            write_image(stem.with_name(stem.name + ".png"), view["rgb"])
            write_image(stem.with_name(stem.name + "_depth.png"), self.depth_image(view))
            paths += [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + "_depth.png")]
        return paths

    def write_outputs(self, out_dir: Path) -> list[Path]:
        out_dir = Path(out_dir)
        paths = self.write_test_views(out_dir / "renders")
        if self.config.video_frames:
            paths.append(self.write_video(out_dir / "turntable", self.config.video_frames))
        paths += self.write_head_outputs(out_dir)
        metrics = {**self.evaluate(), "params": self.model.field.n_parameters(),
                   "occupied_fraction": float(self.model.grid.binaries.float().mean())}
        write_json(out_dir / "metrics.json", metrics)
        return [*paths, out_dir / "metrics.json"]

    def write_head_outputs(self, out_dir: Path) -> list[Path]:
        """Outputs only one head writes (e.g. NeuS's mesh)."""
        return []

    # -- rendering -------------------------------------------------------------------------
    def march_options(self, train: bool) -> MarchOptions:
        c = self.config
        return MarchOptions(step_size=self.step_size, early_stop_eps=c.early_stop_eps,
                            alpha_thre=c.alpha_thre, stratified=train)

    @torch.no_grad()
    def render_view(self, cameras: Cameras, index: int) -> dict[str, np.ndarray]:
        """Colour (H, W, 3), depth of the visible surface (H, W) and opacity (H, W) of one
        camera, rendered in chunks of ``config.chunk`` rays. A dynamic scene is rendered at
        the camera's time; cameras without times (a camera path) sweep the scene's time from 0
        to 1 along their order."""
        self.model.eval()
        if self.dynamic and cameras.times is None:
            cameras = dataclasses.replace(cameras, times=torch.linspace(0, 1, len(cameras)))
        h, w = cameras.height, cameras.width
        rows, cols = torch.meshgrid(torch.arange(h, device="cpu"),
                                    torch.arange(w, device="cpu"), indexing="ij")
        ids = torch.full((h * w,), index, dtype=torch.int64, device="cpu")
        rays = self.scene.camera_rays(cameras, ids, cols.reshape(-1), rows.reshape(-1))
        parts = [self.render(chunk, self.far_background(chunk, self.background))
                 for chunk in (c.to(self.device) for c in rays.split(self.config.chunk))]
        rgb = torch.cat([p.rgb for p in parts]).reshape(h, w, 3).clamp(0, 1)
        opacity = torch.cat([p.opacity for p in parts]).reshape(h, w)
        depth = torch.cat([p.depth for p in parts]).reshape(h, w) / opacity.clamp(min=1e-6)
        return {"rgb": rgb.cpu().numpy(), "depth": depth.cpu().numpy(),
                "opacity": opacity.cpu().numpy()}

    def _eval_renders(self) -> list[dict]:
        key = (self._version, tuple(self.eval_indices))
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        split = self.scene.splits["test"]
        truth = split.composited(self.scene.background)
        self._announce_eval_time(split.cameras, self.eval_indices)
        views = []
        rank, world = distributed.rank(), distributed.world_size()
        mine = self.eval_indices[rank::world]  # this rank's views, then everyone's
        for i in tracked(mine, "evaluating test views", "view"):
            view = self.render_view(split.cameras, i)
            pred = torch.from_numpy(view["rgb"])
            view.update(index=i, psnr=psnr(pred, truth[i]), ssim=ssim(pred, truth[i]))
            views.append(view)
        if world > 1:
            views = sorted((v for part in distributed.all_gather_objects(views) for v in part),
                           key=lambda v: self.eval_indices.index(v["index"]))
        self._cached = (key, views)
        return views

    def depth_image(self, view: dict) -> np.ndarray:
        """The colour-mapped depth of a rendered ``view`` (:meth:`render_view`) with its colour
        bar (made only where it is written: evaluation needs none)."""
        image, lo, hi = colorize_depth_range(view["depth"], view["opacity"] > 0.5)
        return with_colour_bar(image, lo, hi, self.depth_label, reverse=True)

    @torch.no_grad()
    def _announce_eval_time(self, cameras: Cameras, indices: list[int]) -> None:
        """Time one chunk of a view's rays (at most ``config.chunk``, evenly spread over the
        image) and log, before rendering, how long the views will take when that is over
        :data:`SLOW_EVAL_S` per view."""
        h, w = cameras.height, cameras.width
        n = min(self.config.chunk, h * w)
        pixels = torch.linspace(0, h * w - 1, n, device="cpu").long()
        ids = torch.full((n,), indices[0], dtype=torch.int64, device="cpu")
        rays = self.scene.camera_rays(cameras, ids, pixels % w, pixels // w).to(self.device)
        self.model.eval()
        start = time.perf_counter()
        self.render(rays, self.background)
        per_view = (time.perf_counter() - start) * h * w / n
        if per_view > SLOW_EVAL_S:
            log.warning("evaluation: about %.0f s per test view (%dx%d) for %d views; "
                        "--eval-views 1 or a --downscale of the scene shortens it",
                        per_view, w, h, len(indices))

    @property
    def depth_label(self) -> str:
        """What the depth maps' colour bar measures."""
        return "NDC depth" if self.scene.ndc else "depth (scene units along the ray)"

    def video_path(self, n_frames: int) -> Cameras:
        """Turntable around the object (or a circle for forward-facing scenes); in a dynamic
        scene, time runs from 0 to 1 along it (see :meth:`render_view`)."""
        cameras = self.scene.splits["train"].cameras
        return spiral_path(cameras, n_frames) if self.scene.ndc else orbit_path(cameras,
                                                                                 n_frames)

    def write_video(self, path: Path, n_frames: int) -> Path:
        cameras = self.video_path(n_frames)
        frames = [self.render_view(cameras, i)["rgb"]
                  for i in tracked(range(n_frames), "rendering the turntable", "frame")]
        return write_video(path, frames, self.config.video_fps)

    # -- helpers ---------------------------------------------------------------------------
    def _train_background(self, n: int, generator: torch.Generator) -> torch.Tensor:
        mode = self.config.train_background
        if self.scene.splits["train"].alphas is None or mode == "scene":
            return self.background
        if mode == "random":
            return torch.rand(n, 3, generator=generator, device=generator.device).to(self.device)
        return torch.full((3,), 1.0 if mode == "white" else 0.0, device=self.device)

    def _adapt_ray_count(self, n_rays: int, n_queries: int) -> None:
        """Scale the ray count so the next step makes about ``samples_per_step`` queries."""
        c = self.config
        wanted = n_rays * self.samples_per_step / max(n_queries, 1)
        m = self.ray_multiple
        wanted = int(min(max(wanted, 64), c.max_rays)) // m * m
        self.model.rays_per_step.fill_(max(wanted, m))
