"""Video-fitting benchmark: CAM (per-channel time modulation), the hash grid, k-planes-style
tri-planes (x-y, x-t, y-t) and the plain Fourier-feature MLP over (x, y, t), at equal
parameters and equal training time, in one run. Prints a table (and writes JSON) with the
machine noted.

    python scripts/bench_video.py                          # the procedural clip
    python scripts/bench_video.py --clip CLIP.mp4 --frames 30 --seconds 120 --params 200000
    python scripts/bench_video.py --steps 200 --batch-size 8192   # equal steps and samples

On a loaded machine an equal-time budget measures the load; ``--steps`` gives every field
the same number of steps instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from fieldfit.scenes import VideoTarget, load_video, procedural_video

from fieldfit.bench import report
from fieldfit.run import run_task
from fieldfit.tasks import VideoTask, VideoTaskConfig, build_task
from fieldfit.trainer import TrainerConfig

COLUMNS = ["field", "params", "bpp", "steps", "seconds", "psnr", "psnr_min"]


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


def load_clip(args: Args) -> VideoTarget:
    if args.clip is None:
        return VideoTarget(procedural_video(args.frames, args.size, args.size), 24.0)
    return load_video(args.clip, frames=args.frames)


def main(args: Args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
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
