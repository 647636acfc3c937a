"""`fieldfit demo`: the main job on data the project generates itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fieldfit.renderers import OccupancyConfig
from fieldfit.scenes import ImageTarget, SceneOptions, procedural_image, write_procedural_scene
from fieldfit.scenes.images import MIN_SIDE

from ..errors import UserError
from ..io import prepare_out_dir, write_image
from ..run import run_task
from ..tasks import ImageTask, ImageTaskConfig, NerfTaskConfig
from ..trainer import TrainerConfig
from .image import build_image_task
from .nerf import build_nerf_task, summary

# Sized for 64 x 64 images: a coarser march and grid than lego's (a step still finer than a
# pixel's footprint), and a smaller hash table.
DEMO_NERF = NerfTaskConfig(log2_table=17, samples_per_step=2**15, render_steps=256,
                           occupancy=OccupancyConfig(resolution=64), video_frames=48,
                           eval_views=0)
DEMO_EVALS = 5
"""test-set evaluations during the demo's fit (its training curve's test points)"""


@dataclass
class DemoCommand:
    """The main job on generated data, in about 2 minutes on 2 CPU cores: render a procedural
    scene (textured spheres and a box) into a Blender-format dataset, fit a radiance field to
    it, and write test renders, depth maps, a turntable video and metrics. `--target dynamic`
    does the same with the scene in motion (its frames carry times; the turntable sweeps
    time); `--target image` fits a hash grid to a generated 256x256 image instead."""

    out: Path = Path("runs/demo")
    """output folder (replaced on each run)"""
    target: Literal["nerf", "dynamic", "image"] = "nerf"
    """nerf (the procedural scene), dynamic (the scene in motion: 60 views at 5 moments) or
    image (a generated test image)"""
    seconds: float | None = None
    """training-time budget in seconds; unset: 100 for nerf, 45 for image"""
    size: int = 64
    """nerf: image size of the generated scene"""
    debug: bool = False
    """show tracebacks"""

    def run(self) -> dict:
        if self.seconds is not None and not self.seconds > 0:
            raise UserError(f"--seconds {self.seconds}: must be > 0")
        if self.size < MIN_SIDE:
            raise UserError(f"--size {self.size}: must be >= {MIN_SIDE} (the SSIM window)")
        out = prepare_out_dir(self.out)
        if self.target == "image":
            return self._image(out)
        moving = {"n_train": 60, "n_test": 10, "n_times": 5} if self.target == "dynamic" \
            else {}
        data = write_procedural_scene(out / "scene", size=self.size, **moving)
        train = TrainerConfig(seconds=self.seconds or 100.0, evals=DEMO_EVALS)
        task = build_nerf_task(data, SceneOptions(), DEMO_NERF, train)
        result = run_task(task, train, out, overwrite=True)
        print(f"demo: {summary(result, out)}/: renders/ (test views and depth maps), "
              "turntable video, metrics.json, training_curve.png, checkpoint.safetensors; "
              f"the generated scene is in {data}")
        return result

    def _image(self, out: Path) -> dict:
        image = procedural_image(256, 256)
        write_image(out / "target.png", image.numpy())
        target, train = ImageTarget(image), TrainerConfig(seconds=self.seconds or 45.0)
        source = ImageTask.source_of(target, out / "target.png", "white")
        task = build_image_task(target, ImageTaskConfig(field="grid"), train, source)
        result = run_task(task, train, out, overwrite=True)
        print(f"demo: PSNR {result['psnr']:.2f} dB after {result['steps']} steps "
              f"({result['seconds']:.0f} s). Outputs in {out}/: target.png, reconstruction.png, "
              "error.png, training_curve.png, metrics.json, checkpoint.safetensors")
        return result
