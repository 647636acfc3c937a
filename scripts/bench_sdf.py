"""SDF benchmark: every field preset at one parameter budget on each mesh, with the same time
(or step) budget. Prints a table (IoU, NAE, Chamfer-L1, F-score, seconds; JSON via
fieldfit.bench.report) and writes a PNG of the extracted meshes side by side.

    python scripts/bench_sdf.py                                   # all meshes, all fields, 5 min
    python scripts/bench_sdf.py --meshes bunny --fields grid      # the grid floor on the bunny
    python scripts/bench_sdf.py --meshes bunny --fields grid rbf --seconds 20 --resolution 128
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro
from fieldfit.fields import field_names
from fieldfit.renderers.mesh_image import shade_mesh
from fieldfit.scenes.meshes import load_mesh

from fieldfit.bench import report
from fieldfit.io import atomic_write
from fieldfit.run import run_task
from fieldfit.tasks import SdfTask, SdfTaskConfig, build_task
from fieldfit.trainer import TrainerConfig

DEFAULT_MESHES = Path(__file__).resolve().parents[2] / "shared" / "data" / "meshes"
NEURBF = {"iou": 0.9995, "nae_deg": 4.93, "params": 856_000, "steps": 20_000,
          "source": "NeuRBF Table 2, mean of 10 meshes, 1024^3 marching cubes, RTX A6000"}
COLUMNS = ["mesh", "field", "params", "steps", "seconds", "iou", "nae_deg", "chamfer_l1",
           "fscore"]


@dataclass
class Args:
    meshes_dir: Path = DEFAULT_MESHES
    """folder of meshes (.obj/.ply/.stl/.off)"""
    meshes: tuple[str, ...] = ("bunny", "armadillo", "buddha", "spot", "fandisk",
                               "stanford-bunny")
    """mesh file stems to run"""
    fields: tuple[str, ...] = ()
    """field presets (default: every registered one)"""
    budget: int = 1_000_000
    """parameters per field (NeuRBF's SDF models have about 0.86-0.96 M)"""
    seconds: float = 300.0
    """training time per run (0: use --steps)"""
    steps: int = 0
    """training steps per run (used when --seconds is 0)"""
    loss: str = "mape"
    """SDF data term: mape (NeuRBF), l1 or bce"""
    batch_size: int = 2**14
    """points per step"""
    n_samples: int = 2**23
    """training points per mesh"""
    resolution: int = 512
    """marching cubes resolution of the evaluated mesh"""
    eval_points: int = 2**20
    """uniform points for the IoU"""
    eval_surface_points: int = 100_000
    """surface samples per mesh for NAE, Chamfer-L1 and F-score"""
    out: Path = Path("bench_out/sdf")
    """where runs, the JSON and the PNG go"""


def task_config(args: Args, field: str) -> SdfTaskConfig:
    return SdfTaskConfig(field=field, params=args.budget, loss=args.loss,
                         batch_size=args.batch_size, n_samples=args.n_samples,
                         resolution=args.resolution, eval_points=args.eval_points,
                         eval_surface_points=args.eval_surface_points)


def write_gallery(path: Path, images: dict[tuple[str, str], np.ndarray], meshes: list[str],
                  columns: list[str]) -> None:
    """Rows of meshes, columns of ground truth and fields."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(meshes), len(columns), squeeze=False,
                             figsize=(2.2 * len(columns), 2.2 * len(meshes)))
    for i, mesh in enumerate(meshes):
        for j, column in enumerate(columns):
            ax = axes[i, j]
            ax.imshow(images.get((mesh, column), np.ones((8, 8, 3))))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(column, fontsize=9)
            if j == 0:
                ax.set_ylabel(mesh, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=100, format="png"))
    plt.close(fig)


def main(args: Args) -> None:
    fields = list(args.fields or field_names())
    paths = [args.meshes_dir / f"{stem}.obj" for stem in args.meshes]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        sys.exit(f"bench_sdf: missing meshes {missing}")
    trainer = TrainerConfig(seconds=args.seconds) if args.seconds else \
        TrainerConfig(steps=args.steps)
    rows, images = [], {}
    for path in paths:
        mesh = load_mesh(path)
        images[(path.stem, "truth")] = shade_mesh(mesh.vertices, mesh.faces, 256)
        for field in fields:
            task = build_task(SdfTask, mesh, task_config(args, field), torch.device("cpu"), 0,
                              SdfTask.source_of(mesh, path))
            result = run_task(task, trainer, args.out / path.stem / field, overwrite=True,
                              progress=False)
            vertices, faces = task.evaluated_mesh()
            images[(path.stem, field)] = shade_mesh(vertices, faces, 256)
            rows.append({"mesh": path.stem, "field": field,
                         "params": task.model.n_parameters(),
                         **{k: result[k] for k in COLUMNS[3:]}})
            print(rows[-1], flush=True)
    for field in fields:
        group = [r for r in rows if r["field"] == field]
        mean = {"mesh": "MEAN", "field": field}
        for key in COLUMNS[2:]:
            values = [r[key] for r in group if r[key] is not None]
            mean[key] = statistics.mean(values) if values else None
        rows.append(mean)
    rows.append({"mesh": "NeuRBF (paper)", "field": "rbf", **{k: NEURBF[k] for k in
                 ("params", "steps", "iou", "nae_deg")}})
    args.out.mkdir(parents=True, exist_ok=True)
    write_gallery(args.out / "bench_sdf.png", images, [p.stem for p in paths],
                  ["truth", *fields])
    report("bench_sdf", rows, COLUMNS, args.out,
           extra={"args": {k: str(v) for k, v in vars(args).items()}, "neurbf": NEURBF})
    print(f"wrote {args.out / 'bench_sdf.png'}")


if __name__ == "__main__":
    main(tyro.cli(Args))
