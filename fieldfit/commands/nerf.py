"""`fieldfit nerf`: fit a radiance field to a folder of posed images."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from fieldfit.fields import from_dict
from fieldfit.scenes import SceneOptions, load_nerf_scene

from ..run import RunOptions
from ..tasks import NerfTaskConfig, RayTask, build_task, ray_task_class
from ..trainer import TrainerConfig
from ..viewer import ViewerOptions

Flat = tyro.conf.arg(name="")
log = logging.getLogger("fieldfit")


def build_nerf_task(data: Path, options: SceneOptions, config: NerfTaskConfig,
                    train: TrainerConfig) -> RayTask:
    """The density or NeuS task (``config.geometry``) for the scene folder ``data`` on the
    run's device and seed, with option errors reported against their flag."""
    scene = load_nerf_scene(data, options)
    return build_task(ray_task_class(config.geometry), scene, config, train.resolved_device(),
                      train.seed)


def summary(result: dict, out: Path) -> str:
    views = f"{result['eval_views']} of {result['test_views']} test views"
    text = (f"test PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} ({views}) after "
            f"{result['steps']} steps ({result['seconds']:.1f} s); outputs in {out}")
    if result["eval_views"] < result["test_views"]:
        text += f"\nevaluate every test view with: fieldfit eval {out} --views 0"
    return text


@dataclass
class NerfCommand:
    """Fit a radiance field to posed images (a Blender-format folder with
    transforms_{train,test}.json, or an LLFF folder with poses_bounds.npy; frames with a
    "time", as in D-NeRF's scenes, are fitted by a time-conditioned field): writes test renders
    and depth maps of --eval-views test views (renders/), metrics.json (test PSNR/SSIM, per
    view too), training_curve.png and checkpoint.safetensors into --out; `fieldfit render RUN`
    makes videos."""

    data: tyro.conf.Positional[Path]
    """scene folder"""
    output: Annotated[RunOptions, Flat] = field(
        default_factory=lambda: RunOptions(Path("runs/nerf")))
    scene: Annotated[SceneOptions, Flat] = field(default_factory=SceneOptions)
    task: Annotated[NerfTaskConfig, Flat] = field(default_factory=NerfTaskConfig)
    train: Annotated[TrainerConfig, Flat] = field(default_factory=TrainerConfig)
    viewer: Annotated[ViewerOptions, Flat] = field(default_factory=ViewerOptions)
    debug: bool = False
    """show tracebacks"""

    @classmethod
    def from_config(cls, config: dict) -> NerfCommand:
        """The command that made the run of ``config`` (its config.json)."""
        data = config["task_config"]["data"]
        return cls(Path(data["path"]), scene=from_dict(SceneOptions, data["scene"]),
                   task=from_dict(NerfTaskConfig, config["task_config"]["task"]),
                   train=from_dict(TrainerConfig, config["trainer_config"]))

    def run(self) -> dict:
        self.output.inputs = (self.data,)
        task = build_nerf_task(self.data, self.scene, self.task, self.train)
        if task.dynamic:
            log.info("dynamic scene (%d frame times): fitting a time-conditioned field; "
                     "--dynamic off fits a static one", task.source["times"])
        with self.viewer.live(task, self.output.out) as hooks:
            result = self.output.fit(task, self.train, hooks=hooks)
        print(summary(result, self.output.out))
        return result
