"""Benchmark of shape collections: shapes/minute of tri-plane fitting (one by one vs batched,
in one process on all cores and on one thread; 1 vs 2 torchrun ranks, one thread each), mean
fit IoU / Chamfer, and the test accuracy of the channel-token transformer on the tri-planes vs
PointNet on point clouds of the same meshes.

Every fit runs as its own `fieldfit collection fit` process (wall-clock time, start-up
included). Prints one table and writes bench_out/collection/collection.json.

    python scripts/bench_collection.py          # 10 classes x 20 shapes, ~1 h on 2 shared cores
    python scripts/bench_collection.py --speed-only --subset 1   # the shapes/min rows only
    python scripts/bench_collection.py --per-class 4 --subset 1 --skip-paper --steps 20 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run_fit(root: Path, out: Path, *args: str, ranks: int = 0, threads: int = 1) -> dict:
    """One `fieldfit collection fit` process (under torchrun with ``ranks`` > 0, ``threads``
    torch threads per process); returns the index summary with wall seconds and shapes/min."""
    shutil.rmtree(out, ignore_errors=True)
    fit = ["collection", "fit", str(root), "--out", str(out), "--quiet", *args]
    if ranks:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                   str(ranks), "--standalone", "-m", "fieldfit.cli", *fit]
    else:
        command = [sys.executable, "-m", "fieldfit.cli", *fit]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    index = json.loads((out / "index.json").read_text())
    ok = [e for e in index["shapes"] if e["status"] == "ok"]
    return {"shapes": index["n_shapes"], "ok": index["n_ok"], "threads": threads,
            "ranks": max(ranks, 1), "wall_s": seconds,
            "shapes_per_min": 60 * index["n_shapes"] / seconds,
            "fit_s_per_shape": sum(e["fit_seconds"] for e in ok) / len(ok),
            "mean_iou": index["mean_iou"], "mean_chamfer_l1": index["mean_chamfer_l1"]}


def run_classify(dataset: Path, out: Path, model: str, epochs: int) -> dict:
    command = [sys.executable, "-m", "fieldfit.cli", "collection", "classify", str(dataset),
               "--out", str(out), "--model", model, "--epochs", str(epochs), "--quiet"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: metrics[k] for k in ("accuracy", "per_class_accuracy", "n_train", "n_test",
                                    "seconds", "params")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench_out/collection"))
    parser.add_argument("--per-class", type=int, default=20, help="shapes per class (1/4 test)")
    parser.add_argument("--subset", type=int, default=2,
                        help="shapes per class of the speed comparisons")
    parser.add_argument("--batch-shapes", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=None, help="override the fast recipe's steps")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch threads of the one-process comparison (default: all cores)")
    parser.add_argument("--speed-only", action="store_true",
                        help="only the shapes/min comparisons (no full collection, no classifiers)")
    parser.add_argument("--skip-paper", action="store_true",
                        help="skip the paper recipe (about 4 min per shape on one core)")
    args = parser.parse_args()

    from fieldfit.scenes.shape_collection import write_shape_collection

    out = args.out
    n_test = args.per_class // 4
    full = None if args.speed_only else write_shape_collection(
        out / "shapes", args.per_class - n_test, n_test)
    subset = write_shape_collection(out / "subset", args.subset, 0, seed=1)
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, "
                                f"{os.cpu_count()} cores, load average "
                                f"{os.getloadavg()[0]:.1f} at the start",
                     "collection": f"10 classes x {args.per_class} shapes "
                                   f"({args.per_class - n_test} train, {n_test} test)"}
    path = out / "collection.json"

    def save():
        path.write_text(json.dumps(results, indent=2) + "\n")

    steps = [] if args.steps is None else ["--steps", str(args.steps)]
    batch = ["--batch-shapes", str(args.batch_shapes), *steps]
    # one process on all cores: batching is what keeps them busy on small shapes
    results["one_by_one"] = run_fit(subset, out / "ds_one", "--batch-shapes", "1", *steps,
                                    threads=args.threads)
    save()
    results["batched"] = run_fit(subset, out / "ds_batched", *batch, threads=args.threads)
    save()
    # one thread per process: batching alone, and ranks
    results["one_by_one_1t"] = run_fit(subset, out / "ds_one_1t", "--batch-shapes", "1", *steps)
    save()
    results["batched_1t"] = run_fit(subset, out / "ds_batched_1t", *batch)
    save()
    results["batched_2_ranks"] = run_fit(subset, out / "ds_2ranks", *batch, ranks=2)
    save()
    if args.speed_only:
        print_table(results)
        return
    results["full"] = run_fit(full, out / "ds_full", *batch, ranks=2)
    save()
    results["triplane_transformer"] = run_classify(out / "ds_full", out / "cls_triplane",
                                                   "triplane", args.epochs)
    save()
    results["pointnet"] = run_classify(out / "ds_full", out / "cls_pointnet", "pointnet",
                                       args.epochs)
    save()
    if not args.skip_paper:
        paper_root = out / "paper_shapes"
        paper_root.mkdir(exist_ok=True)
        for name in ("torus/train/torus_0000.off",):
            shutil.copy(subset / name, paper_root / Path(name).name)
        results["paper_recipe"] = run_fit(paper_root, out / "ds_paper", "--recipe", "paper",
                                          "--batch-shapes", "1")
        save()
    print_table(results)


def print_table(r: dict) -> None:
    print(f"machine: {r['machine']}; collection: {r['collection']}")
    print("| fit | ranks x threads | shapes | shapes/min | fit s/shape | mean IoU | "
          "mean Chamfer-L1 |")
    print("|---|---|---|---|---|---|---|")
    for key in ("one_by_one", "batched", "one_by_one_1t", "batched_1t", "batched_2_ranks",
                "paper_recipe", "full"):
        if key in r:
            f = r[key]
            print(f"| {key} | {f.get('ranks', 1)} x {f.get('threads', 1)} | {f['shapes']} | "
                  f"{f['shapes_per_min']:.2f} | "
                  f"{f['fit_s_per_shape']:.2f} | {f['mean_iou']:.4f} | "
                  f"{f['mean_chamfer_l1']:.4f} |")
    def ratio(a: str, b: str) -> str:
        return f"{r[a]['shapes_per_min'] / r[b]['shapes_per_min']:.2f}x"

    print(f"batched / one-by-one: {ratio('batched', 'one_by_one')} on "
          f"{r['batched']['threads']} threads, {ratio('batched_1t', 'one_by_one_1t')} on one; "
          f"2 ranks / 1 rank (one thread each): {ratio('batched_2_ranks', 'batched_1t')}")
    if "triplane_transformer" not in r:
        return
    print("| classifier | test accuracy | train / test shapes | seconds | params |")
    print("|---|---|---|---|---|")
    for key in ("triplane_transformer", "pointnet"):
        c = r[key]
        print(f"| {key} | {c['accuracy']:.4f} | {c['n_train']} / {c['n_test']} | "
              f"{c['seconds']:.0f} | {c['params']} |")


if __name__ == "__main__":
    main()
