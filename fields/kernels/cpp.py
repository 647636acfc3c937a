"""Fused C++ hash-grid kernels for the CPU (``hashgrid_cpu.cpp``), built on first use.

Why this is the fast CPU backend: ``scripts/bench_encoding.py --dims 3 --batch-sizes 262144
--candidates`` (3D, 16 levels x 2 features, 2^19 table, 2^18 points) on an idle 2-core AMD
EPYC VM, 2 threads:

    variant                          fwd+bwd points/s   vs torch   peak memory   first call
    torch reference (per level)         169 K            1.0x       1.14 GiB      1.9 s
    vectorised torch (one gather)        70 K            0.4x       1.91 GiB      4.1 s
    torch.compile of the reference      376 K            2.2x       1.18 GiB      1.1 s (+ compile)
    C++ kernels (this module)          1.70 M           10.1x       0.08 GiB      0.16 s

torch.compile compiles per shape and grad mode (its no-grad forward took 200 s to compile on a
loaded machine) and needs the same compiler; the vectorised gather materialises (n, 16, 8)
index tensors and loses to the reference at large batches. The C++ kernels keep a point's
16 x 8 corner lookups in registers, visit the table one level at a time over blocks of points,
prefetch the random rows ahead, and scatter each level's table gradient from one thread without
atomics, instead of autograd's index_put per level (the .cpp header says what each step
gained). They give first derivatives in the table and the inputs; second derivatives come from
the reference (see ``fused.py``).

The library is compiled with the system C++ compiler by ``torch.utils.cpp_extension`` into a
per-user cache directory (``$XDG_CACHE_HOME/fieldfit``, default ``~/.cache/fieldfit``), in a
folder keyed by everything that changes the binary (source, flags, compiler, Python and torch
builds and install paths), so two installs never rebuild each other's object; later processes
load it in well under a second. Builders take turns under a ``flock`` (released by the kernel
however a builder dies), so a ``lock`` file that torch's builder left behind when it was killed
is known to be stale and is removed with a message instead of being waited on forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import platform
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from .fused import FusedKernels

SOURCE = Path(__file__).with_name("hashgrid_cpu.cpp")
# no fused multiply-add, so that pos = x * scale + 0.5 rounds as in the reference; -fopenmp or
# ATen's parallel_for compiles to a serial loop (the library then shares torch's libgomp)
CFLAGS = ["-O3", "-ffp-contract=off", "-fopenmp"]
LDFLAGS = ["-fopenmp"]

log = logging.getLogger("fieldfit")


def build_key(source: Path = SOURCE) -> str:
    """Digest of everything that changes the library compiled from ``source``."""
    compiler = os.environ.get("CXX", "c++")
    parts = [hashlib.sha256(source.read_bytes()).hexdigest(), *CFLAGS, "|", *LDFLAGS, compiler,
             str(shutil.which(compiler)), sys.version, sys.executable, torch.__version__,
             str(torch.version.git_version), str(Path(torch.__file__).parent),
             platform.machine(), platform.system()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def build_directory(source: Path = SOURCE) -> Path:
    """Per-user cache folder for the library compiled from ``source``, one per
    :func:`build_key`."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = (f"py{sys.version_info.major}{sys.version_info.minor}-torch{torch.__version__}-"
           f"{build_key(source)}")
    return root / "fieldfit" / "torch_extensions" / tag


@contextlib.contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """Hold the builders' lock on ``folder`` (saying so when waiting for another builder);
    inside it, torch's own ``lock`` file can only be left over from a killed build."""
    fd = os.open(folder / ".fieldfit-build.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process to finish building the C++ kernels in %s",
                     folder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        stale = folder / "lock"
        if stale.exists():
            log.warning("removing %s, left by a C++ kernel build that was killed", stale)
            stale.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)


def _level_args(layout) -> tuple[list[float], list[int], list[int], list[int]]:
    levels = layout.levels
    return ([s.scale for s in levels], [s.resolution for s in levels],
            [s.size for s in levels], [s.offset for s in levels])


def _check(x: torch.Tensor, table: torch.Tensor) -> None:
    if x.dtype != table.dtype or x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"hash-grid backend cpp: points ({x.dtype}) and table ({table.dtype}) "
                         "must both be float32 or both float64")


def _forward(x, table, layout):
    _check(x, table)
    return torch.ops.fieldfit_hashgrid.forward(x, table, *_level_args(layout))


def _backward(grad_out, x, table, layout, input_grad):
    grad_table, grad_x = torch.ops.fieldfit_hashgrid.backward(
        grad_out, x, table, *_level_args(layout), input_grad)
    return grad_table, (grad_x if input_grad else None)


def load_library(source: Path, what: str) -> None:
    """Compile (or load from the cache) the torch operator library in ``source``, whose
    operators then live under ``torch.ops``; RuntimeError with one line naming ``what`` if
    it does not build."""
    from torch.utils import cpp_extension

    folder = build_directory(source)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with build_lock(folder):
            if not any(folder.glob(f"fieldfit_{source.stem}*.so")):
                log.info("building the %s in %s (first use; about a minute)", what, folder)
            cpp_extension.load(name=f"fieldfit_{source.stem}", sources=[str(source)],
                               # copies: load() appends torch's libraries to the lists
                               extra_cflags=list(CFLAGS), extra_ldflags=list(LDFLAGS),
                               build_directory=str(folder),
                               is_python_module=False, verbose=False)
    except Exception as err:  # compiler, ninja or loader missing or failing: all mean "no cpp"
        lines = [line for line in str(err).splitlines() if line.strip()]
        reason = lines[0] if lines else type(err).__name__
        raise RuntimeError(f"{what} did not build in {folder}: {reason}") from None


def load_kernels() -> FusedKernels:
    """Compile (or load from the cache) the C++ hash-grid kernels; RuntimeError if not."""
    load_library(SOURCE, "C++ hash-grid kernels")
    return FusedKernels(_forward, _backward)
