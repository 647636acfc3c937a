"""Hash-grid encoding backends behind one switch.

A backend is a function ``encode(x, table, layout) -> features`` with the contract of
:func:`fieldfit.fields.hashgrid.hash_encode_torch` (the reference). ``auto`` picks the best
backend available for the device of the input, once per device, and logs its choice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger("fieldfit")

Encode = Callable[..., torch.Tensor]

# name -> (loader returning the encode function or raising ImportError/RuntimeError, devices)
_LOADERS: dict[str, tuple[Callable[[], Encode], tuple[str, ...]]] = {}
# preference order for "auto" per device type
_AUTO_ORDER: dict[str, tuple[str, ...]] = {"cuda": ("torch",), "cpu": ("torch",)}
_cache: dict[str, Encode] = {}
_auto_choice: dict[str, str] = {}


def register_backend(name: str, loader: Callable[[], Encode], devices: tuple[str, ...]) -> None:
    """Register a backend whose ``loader`` imports/compiles it lazily on first use."""
    _LOADERS[name] = (loader, devices)


def _load_torch() -> Encode:
    from ..hashgrid import hash_encode_torch

    return hash_encode_torch


register_backend("torch", _load_torch, ("cpu", "cuda"))


def backend_names() -> list[str]:
    return ["auto", *_LOADERS]


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
    if name != "auto":
        return load_backend(name)
    kind = device.type
    if kind not in _auto_choice:
        for candidate in _AUTO_ORDER.get(kind, ("torch",)):
            try:
                load_backend(candidate)
            except (ImportError, RuntimeError, OSError) as err:
                log.info("hash-grid backend %s unavailable: %s", candidate, err)
                continue
            _auto_choice[kind] = candidate
            break
        log.info("hash-grid backend on %s: %s", kind, _auto_choice[kind])
    return _cache[_auto_choice[kind]]
