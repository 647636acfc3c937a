"""Image-fitting benchmark: each image in a folder, at a fixed step budget and a fixed time
budget, for one or more field presets, optionally all sized to the same parameter budgets.
Prints a table (and writes JSON) with the machine noted, and plots PSNR against training
seconds per field (one PNG per parameter budget and run budget, a panel per image).

    python scripts/bench_image.py                       # Kodak from ../shared/data, grid
    python scripts/bench_image.py --seconds 60 --steps 0 --limit 4
    python scripts/bench_image.py --fields all --params 300000 1000000 --seconds 0

``setup_s`` is the time to build the field and initialise it from the image (NeuRBF's k-means);
``seconds`` is training time only.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from fieldfit.fields import field_names
from fieldfit.scenes import ImageTarget, load_image

from fieldfit.bench import report
from fieldfit.io import atomic_write
from fieldfit.run import run_task
from fieldfit.tasks import ImageTask, ImageTaskConfig, build_task
from fieldfit.trainer import TrainerConfig

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images" / "kodak24"
AVERAGED = ("params", "setup_s", "steps", "seconds", "steps_per_s", "psnr", "ssim")


@dataclass
class Args:
    images: Path = DEFAULT_IMAGES
    """folder of images (png/jpg)"""
    fields: tuple[str, ...] = ("grid",)
    """field presets to compare ("all": every registered preset)"""
    params: tuple[int, ...] = ()
    """parameter budgets every preset is sized to (none: each preset's own size)"""
    steps: int = 1000
    """fixed step budget (0 to skip)"""
    seconds: float = 60.0
    """fixed time budget per image (0 to skip)"""
    limit: int = 0
    """only the first N images (0: all)"""
    crop: int = 0
    """centre-crop each image to crop x crop pixels (0: whole images)"""
    log2_table: int = 19
    """hash-table size for grid presets"""
    batch_size: int | None = None
    """pixels per step (default: each preset's)"""
    backend: str = "auto"
    """hash-grid backend"""
    threads: int = 0
    """torch CPU threads (0: torch's default)"""
    out: Path = Path("bench_out/image")
    """where runs, plots and the JSON go"""


def selected_fields(names: tuple[str, ...]) -> list[str]:
    fields = field_names() if "all" in names else list(names)
    unknown = sorted(set(fields) - set(field_names()))
    if unknown:
        sys.exit(f"bench_image: unknown field(s) {unknown}; choose from {field_names()}")
    return fields


def load_target(path: Path, crop: int) -> ImageTarget:
    image = load_image(path)
    if crop:
        h, w = image.shape[:2]
        top, left = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
        image = image[top:top + crop, left:left + crop]
    return ImageTarget(image)


def plot_psnr_vs_seconds(runs: dict[str, list[tuple[str, str, Path]]], out: Path) -> list[Path]:
    """One PNG per group of runs: a panel per image, a line per field (training-batch PSNR
    from each run's metrics.jsonl, the final full-image PSNR as a dot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for group, members in runs.items():
        images = sorted({image for _, image, _ in members})
        cols = min(len(images), 4)
        rows = -(-len(images) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
        for ax, image in zip(axes.flat, images, strict=False):
            for field, img, run_dir in members:
                if img != image:
                    continue
                history = [json.loads(line) for line in
                           (run_dir / "metrics.jsonl").read_text().splitlines()]
                train = [h for h in history if "psnr" in h]
                line, = ax.plot([h["time"] for h in train], [h["psnr"] for h in train],
                                label=field, alpha=0.8)
                final = [h for h in history if "eval" in h][-1]
                ax.plot(final["time"], final["eval"]["psnr"], "o", color=line.get_color())
            ax.set(title=image, xlabel="training seconds", ylabel="PSNR (dB)")
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(images):]:
            ax.axis("off")
        axes.flat[0].legend(loc="lower right", fontsize="small")
        fig.suptitle(f"PSNR vs time, {group}")
        fig.tight_layout()
        path = out / f"psnr_vs_seconds_{group}.png"
        atomic_write(path, lambda p, fig=fig: fig.savefig(p, dpi=90, format="png"))
        plt.close(fig)
        paths.append(path)
    return paths


def main(args: Args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    fields = selected_fields(args.fields)
    paths = sorted(p for p in args.images.glob("*") if p.suffix.lower() in (".png", ".jpg"))
    if not paths:
        sys.exit(f"bench_image: no images in {args.images}")
    paths = paths[: args.limit or None]
    budgets = [("steps", TrainerConfig(steps=args.steps))] if args.steps else []
    if args.seconds:
        budgets.append(("seconds", TrainerConfig(seconds=args.seconds)))
    rows, runs = [], {}
    for params in args.params or (None,):
        size = f"{params}params" if params else "preset"
        for field in fields:
            for budget, trainer_cfg in budgets:
                group = []
                for path in paths:
                    start = time.perf_counter()
                    task = build_task(ImageTask, load_target(path, args.crop), ImageTaskConfig(
                        field=field, log2_table=args.log2_table, batch_size=args.batch_size,
                        backend=args.backend, params=params), torch.device("cpu"), seed=0)
                    setup = time.perf_counter() - start
                    out = args.out / size / field / budget / path.stem
                    result = run_task(task, trainer_cfg, out, overwrite=True, progress=False)
                    runs.setdefault(f"{size}_{budget}", []).append((field, path.stem, out))
                    group.append({
                        "field": field, "size": size, "budget": budget, "image": path.stem,
                        "params": task.model.n_parameters(trainable_only=False),
                        "setup_s": setup, **{k: result[k] for k in AVERAGED[2:]}})
                    print(group[-1], flush=True)
                rows += [*group, {"field": field, "size": size, "budget": budget,
                                  "image": "MEAN", **{k: statistics.mean(r[k] for r in group)
                                                      for k in AVERAGED}}]
    plots = plot_psnr_vs_seconds(runs, args.out)
    report("bench_image", rows, ["field", "size", "budget", "image", *AVERAGED], args.out,
           extra={"args": {k: str(v) for k, v in vars(args).items()},
                  "plots": [str(p) for p in plots]})
    print("plots: " + ", ".join(str(p) for p in plots))


if __name__ == "__main__":
    main(tyro.cli(Args))
