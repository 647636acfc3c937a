"""`fieldfit image`: fit a field to an image file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from fieldfit.fields import from_dict
from fieldfit.scenes import ALPHA_MODES, AlphaMode, ImageTarget, load_image
from fieldfit.scenes.images import MIN_SIDE

from ..errors import UserError
from ..run import RunOptions
from ..tasks import ImageTask, ImageTaskConfig, build_task
from ..trainer import TrainerConfig

Flat = tyro.conf.arg(name="")


def build_image_task(target: ImageTarget, config: ImageTaskConfig, train: TrainerConfig,
                     source: dict | None = None) -> ImageTask:
    """ImageTask on the run's device and seed, with option errors reported against their
    CLI flag."""
    return build_task(ImageTask, target, config, train.resolved_device(), train.seed, source)


@dataclass
class ImageCommand:
    """Fit a neural field to an image: writes reconstruction.png, error.png, metrics.json,
    training_curve.png and checkpoint.safetensors into --out."""

    path: tyro.conf.Positional[Path]
    """image file (PNG, JPEG, 16-bit PNG, EXR, ...)"""
    output: Annotated[RunOptions, Flat] = field(
        default_factory=lambda: RunOptions(Path("runs/image")))
    alpha: AlphaMode = "white"
    """RGBA images: composite on white or black, or keep the alpha channel"""
    task: Annotated[ImageTaskConfig, Flat] = field(default_factory=ImageTaskConfig)
    train: Annotated[TrainerConfig, Flat] = field(default_factory=TrainerConfig)
    debug: bool = False
    """show tracebacks"""

    @classmethod
    def from_config(cls, config: dict) -> ImageCommand:
        """The command that made the run of ``config`` (its config.json)."""
        data = config["task_config"]["data"]
        return cls(Path(data["path"]), alpha=data["alpha"],
                   task=from_dict(ImageTaskConfig, config["task_config"]["task"]),
                   train=from_dict(TrainerConfig, config["trainer_config"]))

    def run(self) -> dict:
        self.output.inputs = (self.path,)
        if self.alpha not in ALPHA_MODES:
            raise UserError(f"--alpha {self.alpha}: choose from {ALPHA_MODES}")
        target = ImageTarget(load_image(self.path, alpha=self.alpha, min_side=MIN_SIDE))
        source = ImageTask.source_of(target, self.path, self.alpha)
        task = build_image_task(target, self.task, self.train, source)
        result = self.output.fit(task, self.train)
        print(f"PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} after {result['steps']} "
              f"steps ({result['seconds']:.1f} s); outputs in {self.output.out}")
        return result
