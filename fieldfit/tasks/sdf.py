"""SDF fitting: a 3D field maps points of the box to the signed distance of a mesh."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from fieldfit.fields import BackendName, FieldConfig, FieldName, PresetContext, field_preset
from fieldfit.fields.gradient import spatial_gradient
from fieldfit.fields.rbf_init import sdf_weights
from fieldfit.losses import SDF_LOSSES, eikonal, normal_alignment
from fieldfit.renderers.mesh import extract_mesh
from fieldfit.renderers.mesh_image import shade_mesh
from fieldfit.scenes.meshes import BOX, MeshTransform, SdfMesh, SdfSamples, load_mesh, sample_sdf

from .. import distributed
from ..errors import UserError
from ..io import write_image, write_json, write_mesh
from ..mesh_metrics import occupancy_iou, surface_metrics
from ..progress import Tracker, progress_bar
from ..surface import Surface
from .base import BudgetOptions, Task

BOUNDS = torch.tensor([[-BOX] * 3, [BOX] * 3])
DEFAULT_BATCH = 2**14
"""points per step of fields whose preset recommends none"""


@dataclass
class SdfTaskConfig(BudgetOptions):
    """SDF fitting options."""

    field: FieldName = "grid"
    """field preset (see the README's "Field representations")"""
    log2_table: int = 15
    """log2 of the hash-table entries per level of grid-based fields (15: the grid preset has
    0.95M parameters, an 11 MB checkpoint)"""
    max_res: int = 2048
    """finest grid resolution of grid-based fields (over the box)"""
    backend: BackendName = "auto"
    """hash-grid backend: auto (the fastest that loads: cpp on a CPU; tcnn, triton, then
    torch on CUDA), torch (the reference), cpp (C++ kernels, CPU), triton or tcnn (CUDA)"""
    margin: float = 0.1
    """the mesh is scaled so its longest side spans the box [-1, 1]^3 less this margin"""
    n_samples: int = 2**23
    """training points, sampled once (about 50 s for 2^23): surface, Gaussian-perturbed (sigma
    0.003, 0.01, 0.1) and uniform, in the tri-plane paper's proportions. Fewer leave the finest
    grid cells between surface samples unconstrained: on the bunny, 2^20 points stop at IoU
    0.9990, 2^23 reach 0.9993 in the same 5 minutes"""
    cam: Literal["none", "point"] = "none"
    """CAM on the field's decoder: modulated over the point"""
    batch_size: int | None = None
    """points per step (unset: the field preset's, else 16384; under torchrun: of all ranks
    together, split evenly)"""
    loss: Literal["mape", "l1", "bce"] = "mape"
    """data term: mape |d - g| / (|g| + 0.01) (NeuRBF), l1, or bce on the clipped SDF
    (tri-plane paper; the field then outputs a logit whose zero level is the surface)"""
    eikonal_weight: float = 0.0
    """weight of the eikonal term (|grad f| - 1)^2 on the batch"""
    normal_weight: float = 0.0
    """weight of 1 - cos(grad f, mesh normal) on the batch's surface points"""
    gradient: Literal["autograd", "finite_difference"] = "autograd"
    """how gradients for the eikonal/normal terms are taken: autograd needs the encoding to
    have a second derivative; finite_difference (central) does not"""
    fd_step: float = 1e-3
    """finite-difference step, box units"""
    resolution: int = 512
    """marching-cubes cells per axis of the extracted mesh (also used for the metrics)"""
    eval_points: int = 2**20
    """uniform points in the box for the occupancy IoU"""
    eval_surface_points: int = 100_000
    """samples on each surface for Chamfer-L1, F-score and normal angle error"""
    fscore_threshold: float = 0.01
    """F-score distance threshold, box units"""
    chunk: int = 2**18
    """points per forward pass when extracting meshes and evaluating"""
    sample_seed: int = 0
    """seed of the training and evaluation samples"""

    def __post_init__(self) -> None:
        BudgetOptions.__post_init__(self)
        for name in ("n_samples", "batch_size", "eval_points", "eval_surface_points", "chunk"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 1")
        if self.resolution < 2:
            raise ValueError(f"--resolution {self.resolution}: must be >= 2")
        if self.max_res < 2:
            raise ValueError(f"--max-res {self.max_res}: must be >= 2")
        if not 0.0 <= self.margin < BOX:
            raise ValueError(f"--margin {self.margin}: must be in [0, {BOX})")
        if self.eikonal_weight < 0 or self.normal_weight < 0:
            raise ValueError("--eikonal-weight and --normal-weight must be >= 0")
        if self.loss == "bce" and self.eikonal_weight > 0:
            raise ValueError("--eikonal-weight: the bce loss makes the field a clipped logit, "
                             "not a distance; use --loss mape or l1 with an eikonal term")
        if not self.fd_step > 0 or not self.fscore_threshold > 0:
            raise ValueError("--fd-step and --fscore-threshold must be > 0")


class SdfTask(Task):
    """Fits the signed distance of a mesh (already in the box) with the preset
    ``config.field``; the field's zero level is the surface, negative inside.

    ``source``: ``{"path", "centre", "scale"}``: the mesh file and its transform into the box.
    """

    name: ClassVar[str] = "sdf"
    config_type: ClassVar[type] = SdfTaskConfig

    def __init__(self, mesh: SdfMesh | None, config: SdfTaskConfig,
                 device: torch.device | str | None = None, source: dict | None = None,
                 field_config: FieldConfig | None = None):
        super().__init__(mesh, config, device, source)
        ctx = PresetContext(task="sdf", dims=3, max_res=config.max_res,
                            log2_table=config.log2_table, backend=config.backend,
                            budget=config.params, out_dims=1, cam=config.cam)
        self.field_config = field_config or field_preset(config.field, ctx)
        self.batch_size = config.batch_size or self.field_config.batch_size or DEFAULT_BATCH
        distributed.check_share(self.batch_size, "--batch-size")
        self.bounds = BOUNDS.to(self.device)
        self.model = self.build_on_cpu(lambda: self.field_config.build(dims=3, out_dims=1,
                                                                        aabb=BOUNDS.clone()))
        self.transform = MeshTransform(tuple(self.source["centre"]), float(self.source["scale"]))
        self.data_loss = SDF_LOSSES[config.loss]
        self._true_inside: np.ndarray | None = None
        self._evaluated: tuple[tuple, np.ndarray, np.ndarray, dict] | None = None

    @classmethod
    def load_data(cls, source: dict, config: SdfTaskConfig) -> SdfMesh:
        if not source.get("path"):
            raise UserError("this SDF run was fitted to a mesh made in memory; it cannot be "
                            "read again")
        mesh = load_mesh(source["path"], margin=config.margin)
        if not np.allclose([*mesh.transform.centre, mesh.transform.scale],
                           [*source["centre"], source["scale"]], rtol=1e-6, atol=1e-9):
            raise UserError(f"{source['path']}: the mesh changed since the run was fitted "
                            "(its bounding box differs)")
        return mesh

    def describe(self, mesh: SdfMesh) -> dict:
        return self.source_of(mesh)

    @staticmethod
    def source_of(mesh: SdfMesh, path: Path | None = None) -> dict:
        """The ``source`` of ``mesh``, read from ``path`` (None: made in memory)."""
        t = mesh.transform
        return {"path": None if path is None else str(Path(path).resolve()),
                "centre": list(t.centre), "scale": t.scale}

    @cached_property
    def samples(self) -> SdfSamples:
        """The training points (sampled once, on first use), on the task's device."""
        with Tracker("sampling signed distances", "pt", unit_scale=True) as advance:
            s = sample_sdf(self.data, self.config.n_samples, self.config.sample_seed, advance)
        return SdfSamples(s.points.to(self.device), s.sdf.to(self.device),
                          s.normals.to(self.device))

    @cached_property
    def eval_points(self) -> np.ndarray:
        """(n, 3) uniform box points of the occupancy IoU."""
        rng = np.random.default_rng(self.config.sample_seed + 1)
        return rng.uniform(-BOX, BOX, (self.config.eval_points, 3))

    def initialize(self) -> None:
        if self.model.adaptive_modules():  # e.g. NeuRBF kernels placed near the surface
            self.model.init_from_samples(self.samples.points, sdf_weights(self.samples.sdf),
                                         training_points=True)

    def surface(self) -> Surface:
        """The fitted zero level, in the input mesh's frame."""
        self.model.eval()
        return Surface(sdf=self.sdf, bounds=self.bounds, to_input=self.transform.from_box)

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3) box points -> (n,) field values (distance or logit; negative inside)."""
        return self.model(x)[:, 0]

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        c = self.config
        samples = self.samples
        index = torch.randint(0, len(samples.sdf), (self.batch_size,), generator=generator,
                              device=generator.device)
        index = distributed.share(index).to(self.device)  # this rank's slice of the batch
        x, target = samples.points[index], samples.sdf[index]
        if c.eikonal_weight > 0 or c.normal_weight > 0:
            pred, grad = spatial_gradient(self.sdf, x, c.gradient, c.fd_step)
        else:
            pred, grad = self.sdf(x), None
        data = self.data_loss(pred, target)
        total, terms = data, {c.loss: data}
        if c.eikonal_weight > 0:
            terms["eikonal"] = eikonal(grad)
            total = total + c.eikonal_weight * terms["eikonal"]
        if c.normal_weight > 0:
            on_surface = index < len(samples.normals)
            if on_surface.any():
                terms["normal"] = normal_alignment(grad[on_surface],
                                                   samples.normals[index[on_surface]])
                total = total + c.normal_weight * terms["normal"]
            elif distributed.world_size() > 1:  # every rank logs the same terms
                terms["normal"] = torch.zeros((), device=self.device)
        return {"loss": total, **terms}

    @torch.no_grad()
    def predict_inside(self, points: np.ndarray) -> np.ndarray:
        """(n,) bool: the field is negative at the (n, 3) box points."""
        self.model.eval()
        x = torch.from_numpy(points).float().to(self.device)
        return torch.cat([self.sdf(c) < 0 for c in x.split(self.config.chunk)]).cpu().numpy()

    def extract(self, resolution: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Zero-level mesh in the box: vertices (n, 3), faces (m, 3)."""
        self.model.eval()
        with Tracker("extracting the surface", "pt", unit_scale=True) as advance:
            return extract_mesh(self.sdf, resolution or self.config.resolution, self.bounds,
                                self.config.chunk, advance)

    def evaluate(self) -> dict[str, float]:
        """IoU on uniform box points (field sign against the mesh's inside), and Chamfer-L1,
        F-score and normal angle error of the extracted mesh, in box units."""
        # in-place updates (optimiser steps, load_state_dict) bump a tensor's version counter
        version = tuple(p._version for p in self.model.parameters())
        if self._evaluated is not None and self._evaluated[0] == version:
            return self._evaluated[3]
        c = self.config
        vertices, faces = self.extract()
        with progress_bar(3, "evaluating the fit", "stage") as bar:
            if self._true_inside is None:
                self._true_inside = self.data.contains(self.eval_points)
            bar.update(1)
            iou = occupancy_iou(self.predict_inside(self.eval_points), self._true_inside)
            bar.update(1)
            metrics = {
                "iou": iou,
                **surface_metrics(vertices, faces, self.data.vertices, self.data.faces,
                                  c.eval_surface_points, c.fscore_threshold, c.sample_seed),
                "n_faces": len(faces),
            }
            bar.update(1)
        self._evaluated = (version, vertices, faces, metrics)
        return metrics

    def evaluated_mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """The box-frame mesh (vertices, faces) behind the current :meth:`evaluate`."""
        self.evaluate()
        return self._evaluated[1], self._evaluated[2]

    def write_outputs(self, out_dir: Path) -> list[Path]:
        """mesh.ply (in the input mesh's frame), mesh.png and metrics.json."""
        metrics = self.evaluate()
        vertices, faces = self.evaluated_mesh()
        paths = [out_dir / "mesh.ply", out_dir / "mesh.png", out_dir / "metrics.json"]
        write_mesh(paths[0], self.transform.from_box(vertices), faces)
        write_image(paths[1], shade_mesh(vertices, faces))
        write_json(paths[2], {**metrics, **self.metric_settings(),
                              "params": self.model.n_parameters(), "mesh_notes": self.data.notes})
        return paths

    def metric_settings(self) -> dict:
        """How the metrics were taken (stored beside them)."""
        c = self.config
        return {"frame": f"box [-{BOX}, {BOX}]^3; input units = box units / box_scale",
                "box_scale": self.transform.scale, "resolution": c.resolution,
                "eval_points": c.eval_points, "eval_surface_points": c.eval_surface_points,
                "fscore_threshold": c.fscore_threshold}
