"""`fieldfit sdf`: fit a signed distance field to a mesh and extract its surface."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from fieldfit.fields import from_dict
from fieldfit.scenes.meshes import load_mesh

from ..run import RunOptions
from ..tasks import SdfTask, SdfTaskConfig, build_task
from ..trainer import TrainerConfig

Flat = tyro.conf.arg(name="")


def build_sdf_task(path: Path, config: SdfTaskConfig, train: TrainerConfig) -> SdfTask:
    """SdfTask for the mesh file ``path`` on the run's device and seed, with option errors
    reported against their flag."""
    mesh = load_mesh(path, margin=config.margin)
    return build_task(SdfTask, mesh, config, train.resolved_device(), train.seed,
                      SdfTask.source_of(mesh, path))


@dataclass
class SdfCommand:
    """Fit a signed distance field to a mesh: writes mesh.ply (the extracted surface, in the
    input's frame), mesh.png, metrics.json (IoU, normal angle error, Chamfer-L1, F-score),
    training_curve.png and checkpoint.safetensors into --out."""

    path: tyro.conf.Positional[Path]
    """mesh file (OBJ, PLY, STL, OFF)"""
    output: Annotated[RunOptions, Flat] = field(
        default_factory=lambda: RunOptions(Path("runs/sdf")))
    task: Annotated[SdfTaskConfig, Flat] = field(default_factory=SdfTaskConfig)
    train: Annotated[TrainerConfig, Flat] = field(default_factory=TrainerConfig)
    debug: bool = False
    """show tracebacks"""

    @classmethod
    def from_config(cls, config: dict) -> SdfCommand:
        """The command that made the run of ``config`` (its config.json)."""
        return cls(Path(config["task_config"]["data"]["path"]),
                   task=from_dict(SdfTaskConfig, config["task_config"]["task"]),
                   train=from_dict(TrainerConfig, config["trainer_config"]))

    def run(self) -> dict:
        self.output.inputs = (self.path,)
        task = build_sdf_task(self.path, self.task, self.train)
        result = self.output.fit(task, self.train)
        print(f"IoU {result['iou']:.5f}, NAE {_fmt(result['nae_deg'])} deg, Chamfer-L1 "
              f"{_fmt(result['chamfer_l1'])}, F-score {result['fscore']:.4f} after "
              f"{result['steps']} steps ({result['seconds']:.1f} s); outputs in {self.output.out}")
        return result


def _fmt(value: float | None) -> str:
    return "n/a (empty mesh)" if value is None else f"{value:.4g}"
