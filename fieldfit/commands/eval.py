"""`fieldfit eval`: the metrics of any fitted run, measured again from its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro

from ..checkpoint import load_checkpoint
from ..device import resolve_device
from ..errors import UserError
from ..io import write_json
from ..tasks import RayTask, task_from_checkpoint


@dataclass
class EvalCommand:
    """Evaluate a run from its checkpoint, reading its data again: image runs (PSNR, SSIM),
    SDF runs (IoU, Chamfer-L1, F-score, normal error), NeRF and NeuS runs (PSNR and SSIM per
    test view and their mean). Writes eval.json into the run folder."""

    checkpoint: tyro.conf.Positional[Path]
    """run folder or checkpoint.safetensors of a fieldfit run"""
    views: int | None = None
    """NeRF/NeuS runs: N evenly spaced test views, 0 for all; unset: the run's --eval-views"""
    device: str = "auto"
    """auto (CUDA when available), cpu, cuda or cuda:N"""
    debug: bool = False
    """show tracebacks"""

    def run(self) -> dict:
        if self.views is not None and self.views < 0:
            raise UserError(f"--views {self.views}: must be >= 0")
        task = task_from_checkpoint(load_checkpoint(self.checkpoint), self.checkpoint,
                                    resolve_device(self.device))
        if isinstance(task, RayTask) and self.views is not None:
            task.use_eval_views(self.views)
        result = task.evaluate()
        run_dir = self.checkpoint if self.checkpoint.is_dir() else self.checkpoint.parent
        write_json(run_dir / "eval.json", result)
        for view in result.get("per_view", []):
            print(f"test view {view['index']:3d}: PSNR {view['psnr']:.2f} dB, "
                  f"SSIM {view['ssim']:.4f}")
        means = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in result.items() if k != "per_view")
        print(f"{task.name} run {run_dir}: {means}; written to {run_dir / 'eval.json'}")
        return result
