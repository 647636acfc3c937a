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
from typing import Any, Literal

import torch

log = logging.getLogger("fieldfit")

Encode = Callable[..., torch.Tensor]

class BackendRegistry:
    """Named backends of one kind (hash-grid encodings, renderers), each loaded lazily by its
    loader on first use and cached; ``auto`` resolves once per device type to the first of
    ``auto_order[device_type]`` that loads (:func:`first_loadable`), logged."""

    def __init__(self, what: str, auto_order: dict[str, tuple[str, ...]]):
        self.what = what
        """what a backend is, for messages ("hash-grid backend")"""
        self.auto_order = auto_order
        """preference order for ``auto`` per device type (the last is the reference)"""
        self.loaders: dict[str, tuple[Callable[[], Any], tuple[str, ...]]] = {}
        """name -> (loader returning the backend or raising ImportError/RuntimeError, the
        device types it runs on, or ("any",))"""
        self.loaded: dict[str, Any] = {}
        self.auto_choice: dict[str, str] = {}

    def register(self, name: str, loader: Callable[[], Any], devices: tuple[str, ...]) -> None:
        """Register a backend whose ``loader`` imports/compiles it lazily on first use."""
        self.loaders[name] = (loader, devices)

    def names(self) -> list[str]:
        return ["auto", *self.loaders]

    def runs_on(self, name: str, device_type: str) -> bool:
        """Whether the backend ``name`` runs on tensors of ``device_type``."""
        devices = self.loaders[name][1]
        return device_type in devices or "any" in devices

    def load(self, name: str) -> Any:
        """The backend ``name`` (not 'auto'); raises if it cannot load."""
        if name not in self.loaded:
            self.loaded[name] = self.loaders[name][0]()
        return self.loaded[name]

    def get(self, name: str, device_type: str) -> Any:
        """The backend ``name`` for tensors of ``device_type``; ValueError if it does not run
        there."""
        if name != "auto":
            if not self.runs_on(name, device_type):
                raise ValueError(f"{self.what} {name!r} runs on {self.loaders[name][1]}, "
                                 f"not on {device_type}")
            return self.load(name)
        if device_type not in self.auto_choice:
            self.auto_choice[device_type] = first_loadable(
                self.auto_order.get(device_type, ("torch",)), self.load, self.what)
            log.info("%s on %s: %s", self.what, device_type, self.auto_choice[device_type])
        return self.loaded[self.auto_choice[device_type]]


BACKENDS = BackendRegistry("hash-grid backend", {"cuda": ("tcnn", "triton", "torch"),
                                                 "cpu": ("cpp", "torch")})
register_backend = BACKENDS.register
backend_names = BACKENDS.names
runs_on = BACKENDS.runs_on
load_backend: Callable[[str], Encode] = BACKENDS.load


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


BackendName = Literal[tuple(backend_names())]  # type: ignore[valid-type]
"""a ``--backend`` name: auto or a registered backend (the CLI lists and checks them)"""


def check_backend_name(name: str) -> str:
    """Return ``name`` lower-cased, or raise ValueError listing the valid names."""
    key = name.lower()
    if key not in backend_names():
        raise ValueError(f"unknown hash-grid backend {name!r}; choose from {backend_names()}")
    return key


def get_backend(name: str, device: torch.device) -> Encode:
    """Encode function for ``name`` on ``device``; ``auto`` resolves once per device type."""
    return BACKENDS.get(name, device.type)


def first_loadable(candidates: tuple[str, ...], load: Callable[[str], object], what: str) -> str:
    """The first of ``candidates`` that ``load`` loads (the last is the reference, which
    always does): an ImportError (not installed) or RuntimeError/OSError (did not build) moves
    on to the next, logged (:class:`BackendRegistry`'s auto choice)."""
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
