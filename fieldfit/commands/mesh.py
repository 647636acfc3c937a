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
from ..tasks import TASKS, task_from_checkpoint

SURFACE_TASKS = sorted(name for name, cls in TASKS.items() if hasattr(cls, "surface"))
"""tasks whose fields have a zero level (their class offers ``surface()``)"""


@dataclass
class MeshCommand:
    """Extract the zero-level surface of a fitted SDF by marching cubes: writes the mesh (in the
    frame of the fitted data) and a shaded PNG of it beside the mesh."""

    checkpoint: tyro.conf.Positional[Path]
    """run folder or checkpoint.safetensors of a `fieldfit sdf` or `fieldfit nerf --geometry
    sdf` run"""
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
                            f"{SURFACE_TASKS} (`fieldfit nerf --geometry sdf` fits a scene "
                            "with a surface)")
        task = task_from_checkpoint(ckpt, self.checkpoint, resolve_device(self.device))
        surface = task.surface()
        n_vertices, n_faces = surface.write(out, self.resolution, self.chunk)
        print(f"{n_vertices} vertices, {n_faces} faces: {out} "
              f"(and {out.with_suffix('.png')})")
        return out
