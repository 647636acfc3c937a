"""S3IM benchmark: MSE only against MSE + S3IM at several weights, with the same seeds, steps and
field in one run. Prints a table per part (and writes JSON and a PNG plot) with the machine
noted.

(a) image fitting with a small hash grid on Kodak: the metrics are those of the whole image
    (the training pixels are a random sample of it);
(b) sparse-view NeRF on lego_200: train on N evenly spaced training views (of 100), evaluate on
    ``--eval-views`` evenly spaced test views (of 200).

    python scripts/bench_s3im.py --parts image --limit 2 --image-steps 300 --threads 1  # ~3 min
    python scripts/bench_s3im.py --parts image                      # (a), 4 images
    python scripts/bench_s3im.py --parts nerf --views 10 25         # (b)

The S3IM permutations are drawn from the trainer's generator, so runs with and without S3IM
see different pixel/ray samples after the first step (same seed, different draws).
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
import tyro
from fieldfit.scenes import ImageTarget, NerfScene, SceneSplit, load_image, load_nerf_scene

from fieldfit.bench import report
from fieldfit.run import run_task
from fieldfit.tasks import ImageTask, ImageTaskConfig, build_task
from fieldfit.trainer import TrainerConfig

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass
class Args:
    parts: tuple[Literal["image", "nerf"], ...] = ("image", "nerf")
    """which benchmarks to run"""
    weights: tuple[float, ...] = (0.0, 1.0, 5.0)
    """S3IM weights to compare (0: MSE only, without the S3IM term)"""
    seed: int = 0
    """seed of every run (init and sampling)"""
    threads: int = 0
    """torch CPU threads (0: torch's default; 1 is much faster on a busy machine)"""
    out: Path = Path("bench_out/s3im")
    """where runs, the JSON and the plot go"""
    images: Path = SHARED / "images" / "kodak24"
    """(a) folder of images"""
    limit: int = 4
    """(a) only the first N images (0: all)"""
    downscale: int = 1
    """(a) shrink images by this factor (area averaging)"""
    image_steps: int = 2000
    """(a) training steps per run"""
    image_batch: int = 4096
    """(a) pixels per step (the paper's 4096 rays)"""
    log2_table: int = 12
    """(a) hash-table size: a small parameter budget"""
    scene: Path = SHARED / "nerf" / "lego_200"
    """(b) Blender-format scene"""
    views: tuple[int, ...] = (10, 25)
    """(b) numbers of training views"""
    nerf_steps: int = 5000
    """(b) training steps per run"""
    samples_per_step: int = 2**16
    """(b) target field queries per step (the ray count adapts to it)"""
    eval_views: int = 25
    """(b) test views evaluated, evenly spaced over the 200 (0: all)"""


def setting_name(weight: float) -> str:
    return "mse" if weight == 0 else f"mse+s3im({weight:g})"


def loss_options(weight: float) -> dict:
    """Task-config fields of one setting."""
    return {"loss": "mse"} if weight == 0 else {"loss": "mse+s3im", "s3im_weight": weight}


def summary_row(result: dict) -> dict:
    """PSNR, SSIM, MSE, steps and seconds. MSE is 10^(-PSNR/10): the MSE of the (clamped)
    image, and for NeRF, where PSNR is the mean over test views, the geometric mean of their
    MSEs."""
    return {"psnr": result["psnr"], "ssim": result["ssim"], "mse": 10 ** (-result["psnr"] / 10),
            "steps": result["steps"], "seconds": result["seconds"]}


def load_downscaled(path: Path, factor: int) -> torch.Tensor:
    image = load_image(path)
    if factor == 1:
        return image
    h, w = image.shape[0] // factor, image.shape[1] // factor
    return F.interpolate(image.permute(2, 0, 1)[None], size=(h, w), mode="area")[0].permute(
        1, 2, 0).contiguous()


def bench_images(args: Args) -> list[dict]:
    paths = sorted(p for p in args.images.glob("*") if p.suffix.lower() in (".png", ".jpg"))
    if not paths:
        sys.exit(f"bench_s3im: no images in {args.images}")
    paths = paths[: args.limit or None]
    rows = []
    for path in paths:
        target = ImageTarget(load_downscaled(path, args.downscale))
        for weight in args.weights:
            task = build_task(ImageTask, target, ImageTaskConfig(
                log2_table=args.log2_table, batch_size=args.image_batch, **loss_options(weight)),
                torch.device("cpu"), args.seed)
            out = args.out / "image" / path.stem / setting_name(weight)
            result = run_task(task, TrainerConfig(steps=args.image_steps, seed=args.seed), out,
                              overwrite=True, progress=False)
            rows.append({"case": path.stem, "setting": setting_name(weight),
                         "params": task.model.n_parameters(), **summary_row(result)})
            print(rows[-1], flush=True)
    return add_means(rows) if len(paths) > 1 else rows


def bench_nerf(args: Args) -> list[dict]:
    from fieldfit.tasks import NerfTask, NerfTaskConfig

    full = load_nerf_scene(args.scene)
    rows = []
    for n_views in args.views:
        scene = sparse_views(full, n_views)
        for weight in args.weights:
            task = build_task(NerfTask, scene, NerfTaskConfig(
                eval_views=args.eval_views, video_frames=0,
                samples_per_step=args.samples_per_step, **loss_options(weight)),
                torch.device("cpu"), args.seed)
            out = args.out / "nerf" / f"views{n_views}" / setting_name(weight)
            result = run_task(task, TrainerConfig(steps=args.nerf_steps, seed=args.seed), out,
                              overwrite=True, progress=False)
            rows.append({"case": f"lego {n_views} views", "setting": setting_name(weight),
                         **summary_row(result)})
            print(rows[-1], flush=True)
    return rows


def sparse_views(scene: NerfScene, n_views: int) -> NerfScene:
    """``scene`` with only ``n_views`` evenly spaced training views."""
    from fieldfit.tasks.rays import evenly_spaced

    train = scene.splits["train"]
    if not 1 <= n_views <= len(train):
        sys.exit(f"bench_s3im: --views {n_views}: the scene has {len(train)} training views")
    keep = evenly_spaced(len(train), n_views)
    alphas = None if train.alphas is None else train.alphas[keep]
    sparse = SceneSplit(train.colors[keep], alphas, train.cameras[torch.tensor(keep)],
                        [train.names[i] for i in keep])
    return replace(scene, splits={**scene.splits, "train": sparse})


def add_means(rows: list[dict]) -> list[dict]:
    """Appends one MEAN row per setting over the cases."""
    for setting in list(dict.fromkeys(r["setting"] for r in rows)):
        group = [r for r in rows if r["setting"] == setting]
        rows.append({"case": "MEAN", "setting": setting,
                     **{k: statistics.mean(r[k] for r in group)
                        for k in ("psnr", "ssim", "mse", "steps", "seconds")}})
    return rows


def add_mse_change(rows: list[dict]) -> list[dict]:
    """Adds each row's test-MSE change in % against MSE only on the same case (if run)."""
    base = {r["case"]: r["mse"] for r in rows if r["setting"] == "mse"}
    for r in rows:
        if r["case"] in base:
            r["mse_change_%"] = 100.0 * (r["mse"] / base[r["case"]] - 1.0)
    return rows


def plot(results: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("psnr", "ssim", "mse")
    fig, axes = plt.subplots(len(results), 3, figsize=(13, 3.6 * len(results)), squeeze=False)
    for row_axes, (part, rows) in zip(axes, results.items(), strict=True):
        cases = list(dict.fromkeys(r["case"] for r in rows))
        settings = list(dict.fromkeys(r["setting"] for r in rows))
        width = 0.8 / len(settings)
        for ax, metric in zip(row_axes, metrics, strict=True):
            for k, setting in enumerate(settings):
                values = [next(r[metric] for r in rows
                               if r["case"] == c and r["setting"] == setting) for c in cases]
                ax.bar([i + k * width for i in range(len(cases))], values, width, label=setting)
            ax.set_xticks([i + width * (len(settings) - 1) / 2 for i in range(len(cases))],
                          cases, rotation=30, ha="right")
            ax.set(title=f"{part}: test {metric.upper()}", yscale="log" if metric == "mse"
                   else "linear")
            if metric != "mse":
                low = min(r[metric] for r in rows)
                ax.set_ylim(bottom=math.floor(low * 0.95 * 10) / 10)
            ax.grid(alpha=0.3, axis="y")
        row_axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def main(args: Args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    runners = {"image": bench_images, "nerf": bench_nerf}
    results = {}
    for part in args.parts:
        rows = runners[part](args)
        if rows:
            results[part] = add_mse_change(rows)
            report(f"bench_s3im_{part}", results[part],
                   ["case", "setting", "psnr", "ssim", "mse", "mse_change_%", "steps",
                    "seconds"], args.out,
                   extra={"args": {k: str(v) for k, v in vars(args).items()}})
    if results:
        plot(results, args.out / "bench_s3im.png")


if __name__ == "__main__":
    main(tyro.cli(Args))
