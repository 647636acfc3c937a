"""`fieldfit eval`: test metrics of a fitted radiance field from its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro

from ..checkpoint import load_checkpoint
from ..errors import UserError
from ..io import write_json
from ..tasks.nerf import evenly_spaced, nerf_task_from_checkpoint


@dataclass
class EvalCommand:
    """Evaluate a `fieldfit nerf` run on its scene's test views (PSNR and SSIM, mean over the
    views) and write eval.json into the run folder."""

    checkpoint: tyro.conf.Positional[Path]
    """run folder or checkpoint.safetensors of a `fieldfit nerf` run"""
    views: int = 0
    """0: every test view; N: N evenly spaced test views"""
    debug: bool = False
    """show tracebacks"""

    def run(self) -> dict:
        if self.views < 0:
            raise UserError(f"--views {self.views}: must be >= 0")
        task = nerf_task_from_checkpoint(load_checkpoint(self.checkpoint), self.checkpoint)
        task.eval_indices = evenly_spaced(len(task.scene.splits["test"]), self.views)
        result = task.evaluate()
        run_dir = self.checkpoint if self.checkpoint.is_dir() else self.checkpoint.parent
        write_json(run_dir / "eval.json", result)
        print(f"test PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.4f} over "
              f"{result['eval_views']} of {result['test_views']} test views")
        return result
