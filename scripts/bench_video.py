"""Signals in time. Video: CAM (per-channel time modulation), the hash grid, k-planes-style
tri-planes (x-y, x-t, y-t) and the plain Fourier-feature MLP over (x, y, t), at equal
parameters and equal training time. Dynamic scenes: a static field, T-NeRF (deformation into a
canonical hash grid) and T-NeRF + CAM on time, on the generated moving scene. Prints one table
for each (and writes JSON) with the machine noted.

    python scripts/bench_video.py                          # the procedural clip and scene
    python scripts/bench_video.py --clip CLIP.mp4 --frames 30 --seconds 120 --params 200000
    python scripts/bench_video.py --steps 200 --batch-size 8192   # equal steps and samples
    python scripts/bench_video.py --no-video --dynamic-steps 1000

On a loaded machine an equal-time budget measures the load; ``--steps`` gives every field
the same number of steps instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from fieldfit.scenes import (
    VideoTarget,
    load_nerf_scene,
    load_video,
    procedural_video,
    write_procedural_scene,
)

from fieldfit.bench import report
from fieldfit.run import run_task
from fieldfit.tasks import NerfTask, NerfTaskConfig, VideoTask, VideoTaskConfig, build_task
from fieldfit.trainer import TrainerConfig

COLUMNS = ["field", "params", "bpp", "steps", "seconds", "psnr", "psnr_min"]
DYNAMIC_COLUMNS = ["model", "params", "steps", "seconds", "psnr", "ssim", "psnr_t0",
                   "psnr_t1"]
DYNAMIC_MODELS = {"static grid": {"dynamic": "off"}, "T-NeRF": {},
                  "T-NeRF + CAM": {"cam": "time"}}
"""the dynamic table's rows: NerfTaskConfig options over the grid preset"""


@dataclass
class Args:
    clip: Path | None = None
    """video file or frame folder (default: the procedural clip)"""
    frames: int = 16
    """frames fitted (the first ones)"""
    size: int = 64
    """procedural clip: frame side in pixels"""
    fields: tuple[str, ...] = ("cam", "grid", "triplane", "mlp")
    """field presets compared (triplane over (x, y, t) is k-planes' three planes)"""
    params: int = 60_000
    """parameter budget every field is sized to"""
    seconds: float = 60.0
    """training time per field (ignored with --steps)"""
    steps: int = 0
    """train every field for this many steps instead of --seconds (0: --seconds)"""
    batch_size: int | None = None
    """pixels per step of every field (default: each preset's)"""
    threads: int = 0
    """torch threads (0: torch's default)"""
    out: Path = Path("bench_out/video")
    """run folders and bench_video.json"""
    video: bool = True
    """run the video table"""
    dynamic: bool = True
    """run the dynamic-scene table"""
    dynamic_size: int = 64
    """generated dynamic scene: image side in pixels (60 training views at 5 moments, 10 test
    views)"""
    dynamic_seconds: float = 120.0
    """training time per dynamic model (ignored with --dynamic-steps)"""
    dynamic_steps: int = 0
    """train every dynamic model for this many steps instead (0: --dynamic-seconds)"""


def load_clip(args: Args) -> VideoTarget:
    if args.clip is None:
        return VideoTarget(procedural_video(args.frames, args.size, args.size), 24.0)
    return load_video(args.clip, frames=args.frames)


def main(args: Args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.video:
        video_table(args)
    if args.dynamic:
        dynamic_table(args)


def dynamic_table(args: Args) -> None:
    """T-NeRF with and without CAM against a static field on the generated moving scene."""
    scene = load_nerf_scene(write_procedural_scene(
        args.out / "dynamic_scene", size=args.dynamic_size, n_train=60, n_test=10, n_times=5))
    rows = []
    for name, options in DYNAMIC_MODELS.items():
        task = build_task(NerfTask, scene, NerfTaskConfig(eval_views=0, **options),
                          torch.device("cpu"), seed=0)
        budget = TrainerConfig(steps=args.dynamic_steps) if args.dynamic_steps else \
            TrainerConfig(seconds=args.dynamic_seconds)
        folder = args.out / name.replace(" ", "").replace("+", "_").lower()
        result = run_task(task, budget, folder, overwrite=True, progress=False)
        per_view = torch.tensor([v["psnr"] for v in result["per_view"]])
        times = scene.splits["test"].cameras.times
        rows.append({"model": name, "params": task.model.field.n_parameters(),
                     **{k: result[k] for k in ("steps", "seconds", "psnr", "ssim")},
                     "psnr_t0": float(per_view[times == 0].mean()),
                     "psnr_t1": float(per_view[times == 1].mean())})
        print(rows[-1], flush=True)
    report("bench_dynamic", rows, DYNAMIC_COLUMNS, args.out,
           extra={"args": {k: str(v) for k, v in vars(args).items()},
                  "scene": f"generated, {args.dynamic_size}^2, 60 train / 10 test views, "
                           "5 moments"})


def video_table(args: Args) -> None:
    """The video fields at equal parameters and time (or steps)."""
    target = load_clip(args)
    rows = []
    for field in args.fields:
        task = build_task(VideoTask, target, VideoTaskConfig(
            field=field, params=args.params, batch_size=args.batch_size), torch.device("cpu"),
            seed=0)
        budget = TrainerConfig(steps=args.steps) if args.steps else TrainerConfig(
            seconds=args.seconds)
        result = run_task(task, budget, args.out / field, overwrite=True, progress=False)
        rows.append({"field": field, **{k: result[k] for k in COLUMNS[1:]}})
        print(rows[-1], flush=True)
    report("bench_video", rows, COLUMNS, args.out,
           extra={"args": {k: str(v) for k, v in vars(args).items()},
                  "clip": {"shape": list(target.shape), "fps": target.fps}})


if __name__ == "__main__":
    main(tyro.cli(Args))
