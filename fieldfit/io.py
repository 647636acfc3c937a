"""Safe file writing: a reader never sees a half-written file, nothing is written through a
symbolic link, and every output gets the same permissions (0666 less the umask)."""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import UserError

log = logging.getLogger("fieldfit")

_UMASK = os.umask(0)
os.umask(_UMASK)
TMP_TAG = ".fieldfit-tmp"
"""in the name of every temporary file :func:`atomic_write` makes (see :func:`remove_orphans`)"""


def atomic_write(path: Path, write: Callable[[Path], None], sync: bool = False) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path``.

    The rename replaces ``path`` itself, so a symbolic link there is replaced, never followed.
    ``sync`` flushes the data to disk before the rename (for checkpoints). A failed write (a
    full disk, say) leaves ``path`` as it was and raises UserError naming it.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.",
                               suffix=f"{TMP_TAG}{path.suffix}")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        write(Path(tmp))
        if sync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"{path}: could not write ({err.strerror or err})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes, sync: bool = False) -> None:
    atomic_write(path, lambda p: p.write_bytes(data), sync=sync)


def _finite_or_null(value):
    """JSON has no NaN/inf: non-finite floats are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(v) for v in value]
    return value


def write_json(path: Path, data) -> None:
    text = json.dumps(_finite_or_null(data), indent=2, sort_keys=True, allow_nan=False)
    atomic_write(path, lambda p: p.write_text(text + "\n"))


def read_json(path: Path) -> dict:
    """The JSON object in ``path`` ({} if absent); UserError naming it if it is not one."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a JSON object")
    return data


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON line to ``path``; refuses (OSError) to append through a symbolic link."""
    line = json.dumps(_finite_or_null(record), allow_nan=False) + "\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o666)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_jsonl(path: Path, max_step: int | None = None) -> list[dict]:
    """The records of a JSON-lines file; a torn last line (a write cut short) is skipped.

    ``max_step`` keeps only records whose ``step`` is at most it. A bad line before the last
    one raises UserError naming the file and the line.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                log.warning("%s: ignoring a torn last line (%d characters)", path, len(line))
                break
            raise UserError(f"{path}: line {number} is not JSON") from None
        if max_step is None or record.get("step", 0) <= max_step:
            records.append(record)
    return records


def rewrite_jsonl(path: Path, records: list[dict]) -> None:
    """Replace ``path`` by these records (a regular file, whatever ``path`` was)."""
    text = "".join(json.dumps(_finite_or_null(r), allow_nan=False) + "\n" for r in records)
    atomic_write(path, lambda p: p.write_text(text))


def remove_orphans(folder: Path) -> list[Path]:
    """Delete the temporary files of writes that were killed before their rename (in
    ``folder`` and its subfolders); returns what was removed."""
    removed = []
    for tmp in Path(folder).rglob(f".*{TMP_TAG}*"):
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted write in %s",
                 len(removed), folder)
    return removed


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
        probe = out / f".fieldfit-write-test.{os.getpid()}"  # per process: runs may race here
        probe.unlink(missing_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as err:
        raise UserError(f"--out {out}: not writable ({err.strerror or err})") from None
    return out
