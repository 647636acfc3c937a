"""`fieldfit render`: render a fitted radiance field from its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro

from fieldfit.renderers import Cameras, orbit_path, spiral_path
from fieldfit.renderers.camera_path import interpolate_path, load_camera_path, resized

from ..checkpoint import CHECKPOINT_NAME, load_checkpoint
from ..device import resolve_device
from ..errors import UserError
from ..io import prepare_out_dir
from ..media import write_video
from ..progress import tracked
from ..tasks import RayTask, task_from_checkpoint

PATHS = ("turntable", "test", "spiral", "orbit", "interpolate")


def path_cameras(task: RayTask, path: str, n_frames: int) -> Cameras:
    """Cameras of a named path (see RenderCommand.path) or of a camera_path JSON file."""
    train = task.scene.splits["train"].cameras
    if path == "turntable":
        return task.video_path(n_frames)
    if path == "spiral":
        return spiral_path(train, n_frames)
    if path == "orbit":
        return orbit_path(train, n_frames)
    if path == "interpolate":
        return interpolate_path(train, n_frames)
    if not Path(path).is_file():
        raise UserError(f"--path {path}: neither one of {', '.join(PATHS)} nor a camera-path "
                        "JSON file")
    return load_camera_path(path).cameras


@dataclass
class RenderCommand:
    """Render a `fieldfit nerf` run: a video along a camera path, or every test view."""

    checkpoint: tyro.conf.Positional[Path]
    """run folder or checkpoint.safetensors of a `fieldfit nerf` run"""
    path: str = "turntable"
    """turntable (orbit, or spiral for forward-facing scenes), spiral (a circle in the mean
    camera's image plane), orbit (around the scene centre), interpolate (a smooth curve through
    the training cameras), test (test views as test_NNN.png with test_NNN_depth.png, see
    --views) or FILE.json (nerfstudio camera_path: its fps and frames; --resolution still
    applies)"""
    views: int | None = None
    """--path test: N evenly spaced test views, 0 for all; unset: the run's --eval-views"""
    out: Path | None = None
    """output folder; unset: render_NAME in the run folder"""
    fps: int = 24
    """frames per second of the video (a camera-path file's own fps wins)"""
    seconds: float = 2.0
    """length of the video of a named path (frames = fps x seconds)"""
    resolution: tuple[int, int] | None = None
    """width height of the video frames; unset: the training images' size, or the file's"""
    device: str = "auto"
    """auto (CUDA when available), cpu, cuda or cuda:N"""
    debug: bool = False
    """show tracebacks"""

    def run(self) -> list[Path]:
        n_frames = round(self.fps * self.seconds)
        if self.fps < 1 or n_frames < 1:
            raise UserError(f"--fps {self.fps} --seconds {self.seconds}: need at least a frame")
        if self.views is not None and self.views < 0:
            raise UserError(f"--views {self.views}: must be >= 0")
        if self.resolution is not None and min(self.resolution) < 1:
            raise UserError(f"--resolution {self.resolution}: must be >= 1")
        ckpt_path = self.checkpoint
        task = task_from_checkpoint(load_checkpoint(ckpt_path), ckpt_path,
                                    resolve_device(self.device))
        if not isinstance(task, RayTask):
            raise UserError(f"{ckpt_path}: a {task.name} run has no views to render; "
                            "`fieldfit render` takes `fieldfit nerf` runs")
        run_dir = ckpt_path if ckpt_path.is_dir() else ckpt_path.parent
        name = Path(self.path).stem
        out = prepare_out_dir(self.out or run_dir / f"render_{name}")
        if self.path != "test":
            fps = self.fps
            if self.path.endswith(".json") and Path(self.path).is_file():
                fps = round(load_camera_path(self.path).fps)
            cameras = path_cameras(task, self.path, n_frames)
            if self.resolution is not None:
                cameras = resized(cameras, *self.resolution)
            frames = [task.render_view(cameras, i)["rgb"]
                      for i in tracked(range(len(cameras)), f"rendering {name}", "frame")]
            paths = [write_video(out / name, frames, fps)]
        else:
            if self.views is not None:
                task.use_eval_views(self.views)
            paths = task.write_test_views(out)
        print(f"rendered {len(paths)} file(s) into {out} from "
              f"{ckpt_path if ckpt_path.suffix else ckpt_path / CHECKPOINT_NAME}")
        return paths
