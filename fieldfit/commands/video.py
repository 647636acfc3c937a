"""`fieldfit video`: fit a field over (x, y, t) to a clip."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from fieldfit.scenes import load_video
from fieldfit.scenes.images import MIN_SIDE

from ..run import RunOptions
from ..tasks import VideoTask, VideoTaskConfig, build_task
from ..trainer import TrainerConfig

Flat = tyro.conf.arg(name="")


@dataclass
class VideoCommand:
    """Fit a neural field over (x, y, t) to a video: writes reconstruction.mp4 (GIF without
    imageio-ffmpeg), metrics.json (PSNR per frame, bits per pixel, size), training_curve.png
    and checkpoint.safetensors into --out."""

    path: tyro.conf.Positional[Path]
    """video file (MP4, GIF, ...) or folder of frame images (in name order)"""
    output: Annotated[RunOptions, Flat] = field(
        default_factory=lambda: RunOptions(Path("runs/video")))
    task: Annotated[VideoTaskConfig, Flat] = field(default_factory=VideoTaskConfig)
    train: Annotated[TrainerConfig, Flat] = field(default_factory=TrainerConfig)
    debug: bool = False
    """show tracebacks"""

    def run(self) -> dict:
        self.output.inputs = (self.path,)
        target = load_video(self.path, frames=self.task.frames, fps=self.task.fps,
                            min_side=MIN_SIDE)
        task = build_task(VideoTask, target, self.task, self.train.resolved_device(),
                          self.train.seed, VideoTask.source_of(target, self.path))
        result = self.output.fit(task, self.train)
        print(f"PSNR {result['psnr']:.2f} dB (worst frame {result['psnr_min']:.2f}) over "
              f"{task.shape[0]} frames, {result['bpp']:.3f} bits/pixel, after "
              f"{result['steps']} steps ({result['seconds']:.1f} s); outputs in "
              f"{self.output.out}")
        return result
