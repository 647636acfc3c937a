"""Where a run computes: the device, its numeric precision, and the run's random streams."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Literal

import torch

from .errors import UserError

Precision = Literal["fp32", "mixed"]


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; UserError
    naming ``--device`` when it does not exist here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
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


def check_precision(precision: str, device: torch.device) -> None:
    """``mixed`` runs only on CUDA (the CPU has no fast half-precision matrix units)."""
    if precision not in ("fp32", "mixed"):
        raise UserError(f"--precision {precision}: choose from fp32, mixed")
    if precision == "mixed" and device.type != "cuda":
        raise UserError(f"--precision mixed: needs a CUDA device, not {device}; use fp32")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """float16 autocast on CUDA for ``mixed`` (MLPs run in half precision; encodings keep their
    own table dtype), a no-op otherwise."""
    if precision == "mixed" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


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
