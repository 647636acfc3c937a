"""`fieldfit demo`: the main job on data the project generates itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fieldfit.scenes import ImageTarget, procedural_image

from ..io import prepare_out_dir, write_image
from ..run import run_task
from ..tasks.image import ImageTaskConfig
from ..trainer import TrainerConfig
from .image import build_image_task


@dataclass
class DemoCommand:
    """Fit a hash-grid field to a generated 256x256 test image with fine detail (about a
    minute on 2 CPU cores) and print where the outputs are."""

    out: Path = Path("runs/demo")
    """output folder (replaced on each run)"""
    seconds: float = 45.0
    """time budget"""
    debug: bool = False
    """show tracebacks"""

    def run(self) -> dict:
        out = prepare_out_dir(self.out)
        image = procedural_image(256, 256)
        write_image(out / "target.png", image.numpy())
        task = build_image_task(ImageTarget(image), ImageTaskConfig(field="grid"))
        result = run_task(task, TrainerConfig(seconds=self.seconds), out, overwrite=True)
        print(f"demo: PSNR {result['psnr']:.2f} dB after {result['steps']} steps "
              f"({result['seconds']:.0f} s). Outputs in {out}/: target.png, reconstruction.png, "
              "error.png, training_curve.png, metrics.json, checkpoint.safetensors")
        return result
