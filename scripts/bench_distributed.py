"""Data-parallel benchmark: one fit at a fixed wall time as 1 process x 2 threads, 1 x 1 and
2 torchrun ranks x 1 thread (gloo), side by side in one run, for a Kodak image and lego NeRF.
Prints steps/s, samples/s (pixels, or NeRF field queries, of the global batch per second),
PSNR, and the all-reduce time of the gradients per step (2 ranks); JSON goes to bench_out/.

    python scripts/bench_distributed.py                    # 60 s per variant
    python scripts/bench_distributed.py --seconds 30 --parts image

Every variant is the plain command line (``fieldfit ...`` or ``torchrun --nproc-per-node 2
-m fieldfit.cli ...``) with the same global batch, so the rows differ only in how the work is
spread. ``seconds`` is training time; setup and evaluation are not in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tyro

from fieldfit.bench import report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = {"1 proc x 2 threads": (1, 2), "1 proc x 1 thread": (1, 1),
            "2 ranks x 1 thread": (2, 1)}
"""name -> (processes, threads per process)"""
IMAGE_BATCH = 2**16
"""pixels per step, of all ranks together"""


@dataclass
class Args:
    parts: tuple[str, ...] = ("image", "nerf")
    """which fits: image (Kodak), nerf (lego_200)"""
    seconds: float = 60.0
    """training time per variant"""
    image: Path = DATA / "images" / "kodak24" / "kodim01.png"
    """the image fit's target"""
    scene: Path = DATA / "nerf" / "lego_200"
    """the NeRF fit's scene folder"""
    eval_views: int = 10
    """NeRF test views evaluated at the end"""
    out: Path = Path("bench_out")
    """where the runs and the JSON go"""


def command(part: str, args: Args, out: Path) -> list[str]:
    """The fit's command line after ``fieldfit`` (the same for every variant)."""
    common = ["--out", str(out), "--overwrite", "--seconds", str(args.seconds),
              "--checkpoint-every", "0"]
    if part == "image":
        return ["image", str(args.image), *common, "--batch-size", str(IMAGE_BATCH)]
    return ["nerf", str(args.scene), *common, "--eval-views", str(args.eval_views),
            "--video-frames", "0"]


def run_variant(part: str, name: str, args: Args) -> dict:
    processes, threads = VARIANTS[name]
    out = args.out / "distributed_runs" / f"{part}_{processes}x{threads}"
    launch = ([sys.executable, "-m", "fieldfit.cli"] if processes == 1 else
              [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(processes), "-m", "fieldfit.cli"])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run([*launch, *command(part, args, out)], env=env, capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"{part} {name} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "eval" not in r]
    if part == "image":
        per_step = float(IMAGE_BATCH)
    else:  # field queries per step, logged as the global batch's
        per_step = sum(r["samples"] + r["queries"] for r in steps) / max(len(steps), 1)
    allreduce = metrics.get("allreduce_s_per_step")
    step_s = 1 / metrics["steps_per_s"]
    return {"fit": part, "variant": name, "steps": metrics["steps"],
            "steps_per_s": metrics["steps_per_s"],
            "samples_per_s": per_step * metrics["steps_per_s"], "psnr": metrics["psnr"],
            "allreduce_ms": None if allreduce is None else 1e3 * allreduce,
            "allreduce_share": None if allreduce is None else allreduce / step_s,
            "wall_s": time.perf_counter() - start}


def main(args: Args) -> None:
    missing = [p for p, part in ((args.image, "image"), (args.scene, "nerf"))
               if part in args.parts and not p.exists()]
    if missing:
        raise SystemExit(f"not found: {', '.join(map(str, missing))}")
    load = os.getloadavg()
    rows = []
    for part in args.parts:
        for name in VARIANTS:
            rows.append(run_variant(part, name, args))
            print(rows[-1], flush=True)
    report("distributed", rows, ["fit", "variant", "steps", "steps_per_s", "samples_per_s",
                                 "psnr", "allreduce_ms", "allreduce_share", "wall_s"],
           args.out, extra={"seconds": args.seconds,
                            "load_avg_before": load, "load_avg_after": os.getloadavg()})


if __name__ == "__main__":
    main(tyro.cli(Args))
