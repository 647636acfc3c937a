"""`fieldfit mesh`: extract the surface of a fitted field from its checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import tyro

from fieldfit.renderers.mesh import MeshResolutionError, check_resolution

from ..checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint
from ..errors import UserError
from ..io import MESH_FORMATS
from ..tasks.nerf import surface_from_nerf_checkpoint
from ..tasks.sdf import Surface, surface_from_checkpoint

SURFACES: dict[str, Callable[[Checkpoint], Surface]] = {
    "sdf": surface_from_checkpoint,
    "nerf": surface_from_nerf_checkpoint,
}
"""task name -> the implicit surface of one of its checkpoints"""


@dataclass
class MeshCommand:
    """Extract the zero-level surface of a fitted SDF by marching cubes: writes the mesh (in the
    frame of the fitted data) and a shaded PNG of it beside the mesh."""

    checkpoint: tyro.conf.Positional[Path]
    """run folder or checkpoint.safetensors of a `fieldfit sdf` or `fieldfit nerf --geometry
    sdf` run"""
    out: Path | None = None
    """mesh file (.ply or .obj); default: mesh_RESOLUTION.ply in the run folder"""
    resolution: int = 512
    """marching-cubes cells per axis"""
    chunk: int = 2**18
    """points per forward pass"""
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
        ckpt = load_checkpoint(self.checkpoint)
        task = ckpt.meta.get("task")
        if task not in SURFACES:
            path = self.checkpoint / CHECKPOINT_NAME if self.checkpoint.is_dir() \
                else self.checkpoint
            raise UserError(f"{path}: checkpoint is of task {task!r}, which has no surface; "
                            f"`fieldfit mesh` takes checkpoints of {sorted(SURFACES)}")
        try:
            surface = SURFACES[task](ckpt)
        except (KeyError, RuntimeError, ValueError) as err:
            reason = str(err).splitlines()[0]
            raise UserError(f"{self.checkpoint}: checkpoint does not hold a usable field "
                            f"({reason})") from None
        n_vertices, n_faces = surface.write(out, self.resolution, self.chunk)
        print(f"{n_vertices} vertices, {n_faces} faces: {out} "
              f"(and {out.with_suffix('.png')})")
        return out
