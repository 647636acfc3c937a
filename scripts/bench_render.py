"""Renderer speed on lego_200: training-step throughput per renderer backend and thread count,
and the time to render the test views, all from one warmed-up model, variants side by side.

The model is trained ``--warm-steps`` steps once (cached in ``--out``, so a second checkout of
fieldfit, e.g. an older one run with its own Python, times the same model); then each variant
runs ``--steps`` training steps (forward and backward, no optimiser step, so every variant sees
the same model), in ``--repeats`` interleaved rounds, median kept. Prints a table with the
machine and its load noted and writes JSON.

    python scripts/bench_render.py                          # torch and cpp, 1 and 2 threads
    /work/main/.venv/bin/python scripts/bench_render.py --renderers torch --tag main
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from fieldfit.scenes import SceneOptions, load_nerf_scene

from fieldfit.bench import report
from fieldfit.tasks import NerfTask, NerfTaskConfig, build_task
from fieldfit.trainer import Trainer, TrainerConfig

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nerf"


@dataclass
class Args:
    data: Path = DEFAULT_DATA
    """folder holding lego_200"""
    scene: str = "lego_200"
    warm_steps: int = 300
    """training steps of the shared model (cached)"""
    steps: int = 10
    """timed steps per variant and round"""
    repeats: int = 3
    """interleaved rounds (median kept)"""
    threads: tuple[int, ...] = (1, 2)
    renderers: tuple[str, ...] = ("torch", "cpp")
    eval_views: int = 200
    """test views rendered per renderer at the most threads (0: none)"""
    chunk: int = 0
    """rays per render pass (0: the task's default)"""
    tag: str = "branch"
    """name of this checkout in the table"""
    out: Path = Path("bench_out/render")
    """where the cached model and the JSON (bench_render_<tag>.json) go"""


def warm_task(args: Args) -> NerfTask:
    """The task with the shared warmed-up model (trained here on first use)."""
    scene = load_nerf_scene(args.data / args.scene, SceneOptions())
    task = build_task(NerfTask, scene, NerfTaskConfig(video_frames=0), torch.device("cpu"),
                      seed=0)
    cache = args.out / f"warm_{args.scene}_{args.warm_steps}.pt"
    if cache.exists():
        task.model.load_state_dict(torch.load(cache))
    else:
        (args.out / "warm").mkdir(parents=True, exist_ok=True)
        trainer = Trainer(task, TrainerConfig(steps=args.warm_steps, eval_every=0,
                                              checkpoint_every=0), args.out / "warm",
                          progress=sys.stderr.isatty())
        task.use_eval_views(1)  # the final evaluation of the warm-up
        trainer.fit()
        torch.save(task.model.state_dict(), cache)
    return task


def time_steps(task: NerfTask, renderer: str, threads: int, steps: int, first: int) -> dict:
    """Forward + backward of ``steps`` training steps (the occupancy grid and model fixed)."""
    torch.set_num_threads(threads)
    task.config.renderer = renderer
    generator = torch.Generator().manual_seed(first)
    samples = 0.0
    t0 = time.perf_counter()
    for step in range(first, first + steps):
        result = task.train_step(step, generator)
        result["loss"].backward()
        samples += float(result["samples"] + result["queries"])
    seconds = time.perf_counter() - t0
    task.model.zero_grad(set_to_none=True)
    return {"steps_per_s": steps / seconds, "samples_per_s": samples / seconds}


def time_eval(task: NerfTask, renderer: str, views: int) -> dict:
    task.config.renderer = renderer
    task.use_eval_views(views)
    task._cached = None
    t0 = time.perf_counter()
    psnr = task.evaluate()["psnr"]
    return {"eval_s": time.perf_counter() - t0, "eval_psnr": psnr}


def main(args: Args) -> None:
    task = warm_task(args)
    if args.chunk:
        task.config.chunk = args.chunk
    rays = int(task.model.rays_per_step)
    variants = [(r, t) for r in args.renderers for t in args.threads]
    runs: dict[tuple[str, int], list[dict]] = {v: [] for v in variants}
    time_steps(task, variants[0][0], max(args.threads), 2, 10**6)  # builds, first-call costs
    for round_ in range(args.repeats):
        for renderer, threads in variants:
            runs[renderer, threads].append(time_steps(task, renderer, threads, args.steps,
                                                      10**6 + 1000 * round_))
            task.model.rays_per_step.fill_(rays)  # each variant starts from the same count
    rows = []
    for (renderer, threads), results in runs.items():
        rows.append({"checkout": args.tag, "renderer": renderer, "threads": threads,
                     **{k: statistics.median(r[k] for r in results) for k in results[0]}})
    for row in rows:
        one = next(r for r in rows if r["renderer"] == row["renderer"] and r["threads"] == 1)
        row["vs_1_thread"] = row["steps_per_s"] / one["steps_per_s"]
    if args.eval_views:
        torch.set_num_threads(max(args.threads))
        for renderer in args.renderers:
            row = next(r for r in rows if r["renderer"] == renderer
                       and r["threads"] == max(args.threads))
            row.update(time_eval(task, renderer, args.eval_views))
    load = os.getloadavg()
    report(f"bench_render_{args.tag}", rows, ["checkout", "renderer", "threads", "steps_per_s",
                                  "samples_per_s", "vs_1_thread", "eval_s", "eval_psnr"],
           args.out, extra={"load_average": load, "rays_per_step": rays,
                            "args": {k: str(v) for k, v in vars(args).items()}})
    print(f"load average (1, 5, 15 min) at the end: {load}")


if __name__ == "__main__":
    main(tyro.cli(Args))
