"""Config dataclasses <-> plain JSON dicts, strictly.

Component configs are dataclasses. Those that stand for one of several kinds (encodings,
decoders) carry a ``name`` class variable and are registered with :func:`register_config`; they
serialise with a ``"kind"`` key so a config saved as JSON rebuilds the same component. Unknown
keys and unknown kinds are errors, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

_KINDS: dict[str, type] = {}


class ConfigError(ValueError):
    """A config dict that does not match its dataclass."""


def register_config(cls: type) -> type:
    """Register a dataclass with a ``name`` ClassVar as a serialisable kind."""
    _KINDS[cls.name] = cls
    return cls


def config_kinds() -> list[str]:
    return sorted(_KINDS)


def to_dict(config: Any) -> Any:
    """Dataclass (nested) -> JSON-able dict, with ``kind`` for registered kinds."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        out = {}
        if getattr(type(config), "name", None) in _KINDS:
            out["kind"] = type(config).name
        for f in dataclasses.fields(config):
            out[f.name] = to_dict(getattr(config, f.name))
        return out
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    return config


def _is_tuple_hint(hint: Any) -> bool:
    """``tuple[...]``, alone or in a union such as ``tuple[float, float] | None``."""
    if typing.get_origin(hint) is tuple:
        return True
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and any(
        typing.get_origin(arg) is tuple for arg in typing.get_args(hint))


def from_dict(cls: type | None, data: Any, where: str = "config") -> Any:
    """Rebuild a dataclass of type ``cls`` (or of the registered ``kind`` in ``data``)."""
    if isinstance(data, dict) and "kind" in data:
        kind = data["kind"]
        if kind not in _KINDS:
            raise ConfigError(f"{where}: unknown kind {kind!r}; known: {config_kinds()}")
        cls = _KINDS[kind]
        data = {k: v for k, v in data.items() if k != "kind"}
    if cls is None or not dataclasses.is_dataclass(cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}")
    kwargs = {}
    for key, value in data.items():
        hint = hints.get(key)
        sub = hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None
        if isinstance(value, dict) and (sub is not None or "kind" in value):
            value = from_dict(sub, value, f"{where}.{key}")
        elif isinstance(value, list) and _is_tuple_hint(hint):
            value = tuple(from_dict(None, v, f"{where}.{key}[{i}]") for i, v in enumerate(value))
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None
