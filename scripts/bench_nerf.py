"""NeRF benchmark: lego_200 and fern (from ../shared/data/nerf, skipped when absent), for one or
more field presets, at a wall-clock training budget. Prints a table (steps, seconds, samples/s,
test PSNR/SSIM) with the machine noted, writes JSON, a PNG strip of ground truth | render | depth
per scene, and a PSNR-vs-training-time plot.

    python scripts/bench_nerf.py                                  # 30 min per scene and field
    python scripts/bench_nerf.py --seconds 120 --scenes lego_200 --profile-steps 50
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro
from fieldfit.scenes import SceneOptions, load_nerf_scene

from fieldfit.bench import report
from fieldfit.device import Precision, autocast
from fieldfit.io import write_image
from fieldfit.tasks import NerfTask, NerfTaskConfig, build_task
from fieldfit.trainer import Trainer, TrainerConfig

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nerf"


@dataclass
class Args:
    data: Path = DEFAULT_DATA
    """folder holding the scene folders"""
    scenes: tuple[str, ...] = ("lego_200", "fern")
    """scene folders to run (missing ones are skipped)"""
    fields: tuple[str, ...] = ("grid",)
    """field presets to compare"""
    seconds: float = 1800.0
    """training budget per scene and field (wall clock of the training steps)"""
    steps: int = 0
    """step budget instead (0: none)"""
    samples_per_step: int = 2**16
    """target field queries per step (see `fieldfit nerf --help`)"""
    eval_views: int = 25
    """test views for the final metrics (evenly spaced; 0: all)"""
    curve_views: int = 4
    """test views per point of the PSNR-vs-time curve"""
    eval_every: int = 400
    """steps between curve points (0: no curve)"""
    video_frames: int = 12
    """turntable frames written per run (0: none)"""
    precision: Precision = "fp32"
    """fp32, or mixed (the MLPs in bfloat16 on a CPU, float16 on CUDA)"""
    profile_steps: int = 0
    """after training, time this many extra steps and print where the time goes"""
    out: Path = Path("bench_out/nerf")
    """where runs, JSON and plots go"""


def profile_split(task: NerfTask, trainer: Trainer, n_steps: int) -> dict[str, float]:
    """Seconds per step: the field (radiance forward; no-grad density queries of the
    early-termination filter), marching + compositing + loss (the rest of the forward),
    backward, optimiser, and occupancy updates, timed around each call."""
    field = task.model.field
    spent = {"forward": 0.0, "density": 0.0}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            spent[name] += time.perf_counter() - t0
            return result
        return wrapper

    field.forward = timed("forward", field.forward)
    field.density = timed("density", field.density)
    totals = dict.fromkeys(["occupancy", "forward", "backward", "optimizer", "field_forward",
                            "field_density"], 0.0)
    try:
        for _ in range(n_steps):
            step = trainer.step
            t0 = time.perf_counter()
            task.before_step(step)
            t1 = time.perf_counter()
            before = dict(spent)
            with autocast(trainer.device, trainer.config.precision):
                loss = task.train_step(step, trainer.generator)["loss"]
            t2 = time.perf_counter()
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t3 = time.perf_counter()
            trainer.optimizer.step()
            t4 = time.perf_counter()
            trainer.step += 1
            for key, dt in (("occupancy", t1 - t0), ("forward", t2 - t1), ("backward", t3 - t2),
                            ("optimizer", t4 - t3),
                            ("field_forward", spent["forward"] - before["forward"]),
                            ("field_density", spent["density"] - before["density"])):
                totals[key] += dt
    finally:
        del field.forward, field.density  # back to the class methods
    split = {
        "field: radiance forward": totals["field_forward"],
        "field: density queries (no grad)": totals["field_density"],
        "marching + compositing + loss": totals["forward"] - totals["field_forward"]
        - totals["field_density"],
        "backward (field and compositing)": totals["backward"],
        "optimizer": totals["optimizer"],
        "occupancy updates": totals["occupancy"],
    }
    return {k: v / n_steps for k, v in split.items()}


def plot_curves(curves: dict[str, list[dict]], path: Path) -> None:
    """Test PSNR against training time, one line per run: its periodic evaluations
    (``--curve-views`` views) and, as a star, its last point, the final metric on
    ``--eval-views`` views."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in curves.items():
        *periodic, final = points
        line, = ax.plot([p["time"] for p in periodic], [p["psnr"] for p in periodic], "o-",
                        label=name, markersize=4)
        ax.plot(final["time"], final["psnr"], "*", color=line.get_color(), markersize=12)
    ax.set(xlabel="training time (s)", ylabel="test PSNR (dB)",
           title="NeRF: test PSNR against training time\n"
                 "(lines: periodic evaluations; stars: final, on --eval-views)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def strip(task: NerfTask, index: int) -> np.ndarray:
    """Ground truth | render | depth of test view ``index``, side by side."""
    split = task.scene.splits["test"]
    truth = split.composited(task.scene.background)[index].numpy()
    view = next(v for v in task._eval_renders() if v["index"] == index)
    return np.concatenate([truth, view["rgb"], task.depth_image(view)], axis=1)


def run_one(args: Args, scene_name: str, field: str) -> tuple[dict, list[dict], np.ndarray]:
    scene = load_nerf_scene(args.data / scene_name, SceneOptions())
    config = NerfTaskConfig(field=field, samples_per_step=args.samples_per_step,
                            video_frames=args.video_frames)
    task = build_task(NerfTask, scene, config, torch.device("cpu"), seed=0)
    out = args.out / scene_name / field
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    trainer_config = TrainerConfig(seconds=args.seconds or None, steps=args.steps or None,
                                   eval_every=args.eval_every, log_every=1, checkpoint_every=0,
                                   precision=args.precision)
    trainer = Trainer(task, trainer_config, out, progress=sys.stderr.isatty())
    task.use_eval_views(args.curve_views)
    trainer.fit()
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    task.use_eval_views(args.eval_views)
    final = task.evaluate()
    task.write_outputs(out)
    samples = sum(h.get("samples", 0.0) for h in history if "samples" in h)
    row = {"scene": scene_name, "field": field, "precision": args.precision,
           "params": task.model.field.n_parameters(),
           "steps": trainer.step, "seconds": trainer.elapsed,
           "samples_per_s": samples / max(trainer.elapsed, 1e-9), **final}
    curve = [{"time": h["time"], "psnr": h["eval"]["psnr"]} for h in history if "eval" in h]
    curve.append({"time": trainer.elapsed, "psnr": final["psnr"]})
    if args.profile_steps:
        split = profile_split(task, trainer, args.profile_steps)
        print(f"\n{scene_name} / {field}: seconds per step over {args.profile_steps} steps")
        for name, value in split.items():
            print(f"  {name:34s} {value:.4f}")
        row["profile"] = split
    return row, curve, strip(task, task.eval_indices[0])


def main(args: Args) -> None:
    rows, curves, strips = [], {}, {}
    for scene_name in args.scenes:
        if not (args.data / scene_name).exists():
            print(f"bench_nerf: {args.data / scene_name} not found, skipped")
            continue
        for field in args.fields:
            row, curve, image = run_one(args, scene_name, field)
            rows.append(row)
            curves[f"{scene_name} / {field}"] = curve
            strips.setdefault(scene_name, []).append(image)
            print({k: v for k, v in row.items() if k != "profile"}, flush=True)
    if not rows:
        sys.exit(f"bench_nerf: none of {args.scenes} found in {args.data}")
    for scene_name, images in strips.items():
        write_image(args.out / f"strip_{scene_name}.png", np.concatenate(images, axis=0))
    plot_curves(curves, args.out / "psnr_vs_time.png")
    report("bench_nerf", rows, ["scene", "field", "precision", "params", "steps", "seconds",
                                "samples_per_s", "psnr", "ssim", "eval_views", "test_views"],
           args.out,
           extra={"args": {k: str(v) for k, v in vars(args).items()}, "curves": curves})


if __name__ == "__main__":
    main(tyro.cli(Args))
