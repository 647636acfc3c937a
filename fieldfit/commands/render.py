"""`fieldfit render`: render a fitted radiance field from its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from ..checkpoint import CHECKPOINT_NAME, load_checkpoint
from ..device import resolve_device
from ..errors import UserError
from ..io import prepare_out_dir, write_image
from ..tasks import RayTask, task_from_checkpoint


@dataclass
class RenderCommand:
    """Render a `fieldfit nerf` run: a turntable video (a circle for forward-facing scenes) or
    every test view."""

    checkpoint: tyro.conf.Positional[Path]
    """run folder or checkpoint.safetensors of a `fieldfit nerf` run"""
    path: Literal["turntable", "test"] = "turntable"
    """camera path: turntable (a video) or test (the test views, as PNGs)"""
    out: Path | None = None
    """output folder (default: render_PATH in the run folder)"""
    frames: int = 48
    """frames of the turntable"""
    device: str = "auto"
    """auto (CUDA when available), cpu, cuda or cuda:N"""
    debug: bool = False
    """show tracebacks"""

    def run(self) -> list[Path]:
        if self.frames < 1:
            raise UserError(f"--frames {self.frames}: must be >= 1")
        ckpt_path = self.checkpoint
        task = task_from_checkpoint(load_checkpoint(ckpt_path), ckpt_path,
                                    resolve_device(self.device))
        if not isinstance(task, RayTask):
            raise UserError(f"{ckpt_path}: a {task.name} run has no views to render; "
                            "`fieldfit render` takes `fieldfit nerf` runs")
        run_dir = ckpt_path if ckpt_path.is_dir() else ckpt_path.parent
        out = prepare_out_dir(self.out or run_dir / f"render_{self.path}")
        if self.path == "turntable":
            paths = [task.write_video(out / "turntable", self.frames)]
        else:
            split = task.scene.splits["test"]
            paths = []
            for i in range(len(split)):
                view = task.render_view(split.cameras, i)
                paths.append(out / f"test_{i:03d}.png")
                write_image(paths[-1], view["rgb"])
        print(f"rendered {len(paths)} file(s) into {out} from "
              f"{ckpt_path if ckpt_path.suffix else ckpt_path / CHECKPOINT_NAME}")
        return paths
