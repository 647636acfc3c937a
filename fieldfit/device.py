"""Where a run computes: the device, its numeric precision, and the run's random streams."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import platform
from collections.abc import Iterator
from typing import Literal

import torch

from .errors import UserError

Precision = Literal["fp32", "mixed"]


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; UserError
    naming ``--device`` when it does not exist here. A CPU run also gets
    :func:`keep_freed_memory`."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        keep_freed_memory()
        return torch.device("cpu")
    if device.type != "cuda":
        raise UserError(f"--device {name}: unsupported; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available here (torch "
                        f"{torch.__version__}); use --device cpu")
    index = device.index or 0
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse: blocks up to 32 MiB come from the heap
    (not a fresh mmap each) and the heap is never trimmed. Returns whether it applied (glibc
    only).

    torch has a caching allocator on CUDA but none on the CPU, and glibc's defaults hand a
    step's large activations back to the OS when freed, so the next step faults every page in
    again: on lego_200 about 14,000 page faults and 30-40 ms of system time per step on 2
    cores, 15-20% of the step. jemalloc or tcmalloc would fix it too, but only when
    preloaded before Python starts; mallopt applies from here on."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
                and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def check_precision(precision: str, device: torch.device) -> None:
    """``mixed`` needs fast half-precision matrix products: CUDA, or a CPU with bfloat16
    instructions (AVX512-BF16 or AMX, as oneDNN reports them)."""
    if precision not in ("fp32", "mixed"):
        raise UserError(f"--precision {precision}: choose from fp32, mixed")
    if precision == "mixed" and device.type == "cpu" and not cpu_has_bfloat16():
        raise UserError("--precision mixed: this CPU has no bfloat16 matrix instructions "
                        "(AVX512-BF16 or AMX); use fp32")


def cpu_has_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 matrix products natively on this CPU."""
    return bool(torch.backends.mkldnn.is_available()
                and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """For ``mixed``, the MLPs' layers under autocast (:func:`.fields.mlp.mixed_precision_mlps`):
    float16 on CUDA (with the trainer's loss scaling), bfloat16 on a CPU (float32's range, so
    no scaling); the rest of the step stays float32. A no-op for ``fp32``."""
    if precision != "mixed":
        return contextlib.nullcontext()
    from fieldfit.fields.mlp import mixed_precision_mlps

    return mixed_precision_mlps(torch.float16 if device.type == "cuda" else torch.bfloat16)


def stream_seed(seed: int, stream: str, rank: int = 0) -> int:
    """A 63-bit seed for the named random ``stream`` of a run (``init``: parameter
    initialisation; ``batches``: the samplers), distinct per stream and rank."""
    digest = hashlib.sha256(f"{seed}/{stream}/{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run the block with torch's global RNG (CPU and ``device``) seeded from the run's
    ``seed``, restoring the caller's RNG state afterwards: module constructors and
    data-driven initialisations (e.g. NeuRBF's k-means) draw from it."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.manual_seed(stream_seed(seed, "init"))
        yield
