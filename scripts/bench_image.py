"""Image-fitting benchmark: each image in a folder, at a fixed step budget and a fixed time
budget, for one or more field presets. Prints a table (and writes JSON) with the machine noted.

    python scripts/bench_image.py                       # Kodak from ../shared/data, grid
    python scripts/bench_image.py --seconds 60 --steps 0 --limit 4
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

from fieldfit.bench import report
from fieldfit.run import run_task
from fieldfit.scenes import ImageTarget, load_image
from fieldfit.tasks import ImageTask, ImageTaskConfig
from fieldfit.trainer import TrainerConfig

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images" / "kodak24"


@dataclass
class Args:
    images: Path = DEFAULT_IMAGES
    """folder of images (png/jpg)"""
    fields: tuple[str, ...] = ("grid",)
    """field presets to compare"""
    steps: int = 1000
    """fixed step budget (0 to skip)"""
    seconds: float = 60.0
    """fixed time budget per image (0 to skip)"""
    limit: int = 0
    """only the first N images (0: all)"""
    log2_table: int = 19
    """hash-table size for grid presets"""
    batch_size: int = 2**16
    """pixels per step"""
    backend: str = "auto"
    """hash-grid backend"""
    out: Path = Path("bench_out/image")
    """where runs and the JSON go"""


def main(args: Args) -> None:
    paths = sorted(p for p in args.images.glob("*") if p.suffix.lower() in (".png", ".jpg"))
    if not paths:
        sys.exit(f"bench_image: no images in {args.images}")
    paths = paths[: args.limit or None]
    budgets = [("steps", TrainerConfig(steps=args.steps))] if args.steps else []
    if args.seconds:
        budgets.append(("seconds", TrainerConfig(seconds=args.seconds)))
    rows = []
    for field in args.fields:
        for budget, trainer_cfg in budgets:
            for path in paths:
                torch.manual_seed(0)
                target = ImageTarget(load_image(path))
                task = ImageTask(target, ImageTaskConfig(
                    field=field, log2_table=args.log2_table, batch_size=args.batch_size,
                    backend=args.backend))
                out = args.out / field / budget / path.stem
                result = run_task(task, trainer_cfg, out, overwrite=True, progress=False)
                rows.append({"field": field, "budget": budget, "image": path.stem,
                             "params": task.model.n_parameters(), "steps": result["steps"],
                             "seconds": result["seconds"], "steps_per_s": result["steps_per_s"],
                             "psnr": result["psnr"], "ssim": result["ssim"]})
                print(rows[-1], flush=True)
            group = [r for r in rows if r["field"] == field and r["budget"] == budget]
            rows.append({"field": field, "budget": budget, "image": "MEAN",
                         **{k: statistics.mean(r[k] for r in group)
                            for k in ("params", "steps", "seconds", "steps_per_s", "psnr",
                                      "ssim")}})
    report("bench_image", rows, ["field", "budget", "image", "params", "steps", "seconds",
                                 "steps_per_s", "psnr", "ssim"], args.out,
           extra={"args": {k: str(v) for k, v in vars(args).items()}})


if __name__ == "__main__":
    main(tyro.cli(Args))
