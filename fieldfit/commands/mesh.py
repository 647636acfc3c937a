"""`fieldfit mesh`: extract the surface of a fitted field from its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tyro

from fieldfit.renderers.mesh import MeshResolutionError, check_resolution

from ..checkpoint import CHECKPOINT_NAME, load_checkpoint
from ..device import resolve_device
from ..errors import UserError
from ..io import MESH_FORMATS
from ..tasks import TASKS, NerfTask, task_from_checkpoint

SURFACE_TASKS = sorted(name for name, cls in TASKS.items() if hasattr(cls, "surface"))
"""tasks whose fields have a zero level (their class offers ``surface()``)"""


@dataclass
class MeshCommand:
    """Extract a fitted surface by marching cubes: the zero level of an SDF (`fieldfit sdf`,
    `fieldfit nerf --geometry sdf`) or a density level of a NeRF (`fieldfit nerf`). Writes
    the mesh (in the frame of the fitted data) and a shaded PNG of it beside the mesh."""

    checkpoint: tyro.conf.Positional[Path]
    """run folder or checkpoint.safetensors of a `fieldfit sdf` or `fieldfit nerf` run"""
    threshold: float | None = None
    """density NeRF runs: the density (per world unit) whose level set is the surface; unset:
    10 (instant-ngp's marching cubes takes a density threshold the same way)"""
    out: Path | None = None
    """mesh file (.ply or .obj); unset: mesh_RESOLUTION.ply in the run folder"""
    resolution: int = 512
    """marching-cubes cells per axis"""
    chunk: int = 2**18
    """points per forward pass"""
    device: str = "auto"
    """auto (CUDA when available), cpu, cuda or cuda:N"""
    debug: bool = False
    """show tracebacks"""

    def run(self) -> Path:
        if self.chunk < 1:
            raise UserError(f"--chunk {self.chunk}: must be >= 1")
        try:
            check_resolution(self.resolution)
        except MeshResolutionError as err:
            raise UserError(f"--{err}") from None
        run_dir = self.checkpoint if self.checkpoint.is_dir() else self.checkpoint.parent
        out = self.out or run_dir / f"mesh_{self.resolution}.ply"
        if out.suffix.lower() not in MESH_FORMATS:
            raise UserError(f"--out {out}: mesh format {out.suffix!r} not supported; use "
                            f"{MESH_FORMATS}")
        if self.chunk < 1:
            raise UserError(f"--chunk {self.chunk}: must be >= 1")
        ckpt = load_checkpoint(self.checkpoint)
        if ckpt.meta.get("task") not in SURFACE_TASKS:
            path = self.checkpoint / CHECKPOINT_NAME if self.checkpoint.is_dir() \
                else self.checkpoint
            raise UserError(f"{path}: checkpoint is of task {ckpt.meta.get('task')!r}, which "
                            f"has no surface; `fieldfit mesh` takes checkpoints of "
                            f"{SURFACE_TASKS}")
        task = task_from_checkpoint(ckpt, self.checkpoint, resolve_device(self.device))
        if self.threshold is not None and not isinstance(task, NerfTask):
            raise UserError(f"--threshold: only density NeRF runs have a density; this is a "
                            f"{task.name} run (its surface is the zero level)")
        surface = task.surface() if self.threshold is None else task.surface(self.threshold)
        n_vertices, n_faces = surface.write(out, self.resolution, self.chunk)
        print(f"{n_vertices} vertices, {n_faces} faces: {out} "
              f"(and {out.with_suffix('.png')})")
        return out
