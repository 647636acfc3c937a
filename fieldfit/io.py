"""Atomic file writing: a reader never sees a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def write_image(path: Path, image: np.ndarray) -> None:
    """Write a float [0, 1] or uint8 (H, W, C) array as an 8-bit image (format by suffix)."""
    import imageio.v3 as iio

    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    atomic_write(path, lambda p: iio.imwrite(p, image, extension=Path(path).suffix))


MESH_FORMATS = (".ply", ".obj")


def write_mesh(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh, (n, 3) vertices and (m, 3) faces, as PLY or OBJ (by suffix)."""
    import trimesh

    suffix = Path(path).suffix.lower()
    if suffix not in MESH_FORMATS:
        raise UserError(f"{path}: mesh format {suffix!r} not supported; use {MESH_FORMATS}")
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    atomic_write(path, lambda p: mesh.export(p, file_type=suffix[1:]))


def prepare_out_dir(out: Path) -> Path:
    """Create ``out`` and check it is writable; UserError naming it otherwise."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".fieldfit-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise UserError(f"--out {out}: not writable ({err.strerror or err})") from None
    return out
