"""Which density level makes the best mesh of a density NeRF (`fieldfit mesh --threshold`)?

Fits the default NeRF to the generated scene (whose true surfaces are known in closed form),
extracts the level set ``density = threshold`` for several thresholds and scores each mesh
against the true surfaces (marching cubes of the scene's exact SDF): Chamfer-L1, F-score at 1%
of the box and normal angle error, in scene units. Prints a table with the machine noted and
writes JSON (measured: see the README's density-NeRF mesh paragraph).

    python scripts/bench_density_mesh.py --steps 1000
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from fieldfit.renderers.mesh import extract_mesh
from fieldfit.scenes import load_nerf_scene, write_procedural_scene
from fieldfit.scenes.procedural_scene import scene_sdf

from fieldfit.bench import report
from fieldfit.mesh_metrics import surface_metrics
from fieldfit.run import run_task
from fieldfit.tasks import NerfTask, NerfTaskConfig, build_task
from fieldfit.trainer import TrainerConfig


@dataclass
class Args:
    steps: int = 1000
    """training steps of the default NeRF"""
    size: int = 64
    """image side of the generated scene (pixels)"""
    thresholds: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0)
    """density levels (per world unit) to extract"""
    resolution: int = 128
    """marching-cubes cells per axis"""
    out: Path = Path("bench_out/density_mesh")
    """folder for the JSON"""


def main(args: Args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scene = load_nerf_scene(write_procedural_scene(Path(tmp) / "scene", size=args.size))
        task = build_task(NerfTask, scene, NerfTaskConfig(), torch.device("cpu"), seed=0)
        result = run_task(task, TrainerConfig(steps=args.steps, checkpoint_every=0),
                          Path(tmp) / "run")
    bounds = task.model.field.aabb
    true_v, true_f = extract_mesh(scene_sdf, 2 * args.resolution, bounds)
    rows = []
    for threshold in args.thresholds:
        surface = task.surface(threshold)
        with torch.no_grad():
            v, f = extract_mesh(surface.sdf, args.resolution, bounds, narrow=False)
        m = surface_metrics(v, f, true_v, true_f, threshold=0.01 * float(
            (bounds[1] - bounds[0]).max()))
        rows.append({"threshold": threshold, "faces": len(f), **m})
    report("density_mesh", rows, ["threshold", "faces", "chamfer_l1", "fscore", "nae_deg"],
           args.out, extra={"steps": args.steps, "test_psnr": result["psnr"],
                            "resolution": args.resolution})

if __name__ == "__main__":
    main(tyro.cli(Args))
