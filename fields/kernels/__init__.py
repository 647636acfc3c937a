"""Hash-grid encoding backends behind one switch.

A backend is a function ``encode(x, table, layout) -> features`` with the contract of
:func:`fieldfit.fields.hashgrid.hash_encode_torch` (the reference). Backends load lazily (import,
or compile for ``cpp``) on first use, never at import. ``auto`` picks the best backend available
for the device of the input, once per device, and logs its choice:

- ``torch``: the reference, any device;
- ``cpp``: fused C++ kernels for the CPU, compiled on first use (``cpp.py`` says why it won);
- ``triton``: fused Triton kernels for CUDA (also on CPU tensors under ``TRITON_INTERPRET=1``);
- ``tcnn``: tiny-cuda-nn's HashGrid on CUDA, when ``tinycudann`` is installed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Literal

import torch

log = logging.getLogger("fieldfit")

Encode = Callable[..., torch.Tensor]

# name -> (loader returning the encode function or raising ImportError/RuntimeError,
#          device types it runs on, or ("any",))
_LOADERS: dict[str, tuple[Callable[[], Encode], tuple[str, ...]]] = {}
# preference order for "auto" per device type
_AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "cuda": ("tcnn", "triton", "torch"),
    "cpu": ("cpp", "torch"),
}
_cache: dict[str, Encode] = {}
_auto_choice: dict[str, str] = {}


def register_backend(name: str, loader: Callable[[], Encode], devices: tuple[str, ...]) -> None:
    """Register a backend whose ``loader`` imports/compiles it lazily on first use."""
    _LOADERS[name] = (loader, devices)


def _load_torch() -> Encode:
    from ..hashgrid import hash_encode_torch

    return hash_encode_torch


def _load_cpp() -> Encode:
    from .cpp import load_kernels

    return load_kernels().encode


def _load_triton() -> Encode:
    from .triton_hashgrid import KERNELS

    return KERNELS.encode


def _load_tcnn() -> Encode:
    from .tcnn_adapter import load

    return load()


register_backend("torch", _load_torch, ("any",))
register_backend("cpp", _load_cpp, ("cpu",))
# The Triton interpreter (TRITON_INTERPRET=1, read when triton is imported) runs on CPU tensors.
_TRITON_DEVICES = ("cuda", "cpu") if os.environ.get("TRITON_INTERPRET") == "1" else ("cuda",)
register_backend("triton", _load_triton, _TRITON_DEVICES)
register_backend("tcnn", _load_tcnn, ("cuda",))


def backend_names() -> list[str]:
    return ["auto", *_LOADERS]


BackendName = Literal[tuple(backend_names())]  # type: ignore[valid-type]
"""a ``--backend`` name: auto or a registered backend (the CLI lists and checks them)"""


def runs_on(name: str, device_type: str) -> bool:
    """Whether a registered backend runs on tensors of ``device_type`` ("any": all devices)."""
    devices = _LOADERS[name][1]
    return device_type in devices or "any" in devices


def check_backend_name(name: str) -> str:
    """Return ``name`` lower-cased, or raise ValueError listing the valid names."""
    key = name.lower()
    if key not in backend_names():
        raise ValueError(f"unknown hash-grid backend {name!r}; choose from {backend_names()}")
    return key


def load_backend(name: str) -> Encode:
    """The encode function of a named backend (not 'auto'); raises if it cannot load."""
    if name not in _cache:
        _cache[name] = _LOADERS[name][0]()
    return _cache[name]


def get_backend(name: str, device: torch.device) -> Encode:
    """Encode function for ``name`` on ``device``; ``auto`` resolves once per device type."""
    kind = device.type
    if name != "auto":
        if not runs_on(name, kind):
            raise ValueError(f"hash-grid backend {name!r} runs on {_LOADERS[name][1]}, "
                             f"not on {kind}")
        return load_backend(name)
    if kind not in _auto_choice:
        _auto_choice[kind] = first_loadable(_AUTO_ORDER.get(kind, ("torch",)), load_backend,
                                            "hash-grid backend")
        log.info("hash-grid backend on %s: %s", kind, _auto_choice[kind])
    return _cache[_auto_choice[kind]]


def first_loadable(candidates: tuple[str, ...], load: Callable[[str], object], what: str) -> str:
    """The first of ``candidates`` that ``load`` loads (the last is the reference, which
    always does): an ImportError (not installed) or RuntimeError/OSError (did not build) moves
    on to the next, logged. Shared by the hash-grid and renderer registries."""
    for candidate in candidates[:-1]:
        try:
            load(candidate)
        except ImportError as err:
            log.info("%s %s not installed: %s", what, candidate, err)
            continue
        except (RuntimeError, OSError) as err:
            log.warning("%s %s unavailable, trying the next: %s", what, candidate, err)
            continue
        return candidate
    load(candidates[-1])
    return candidates[-1]
