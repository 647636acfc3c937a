"""Named field presets (``--field NAME``) for each kind of target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .field import FieldConfig
from .frequency import FrequencyConfig
from .hashgrid import HashGridConfig
from .mlp import MLPConfig


@dataclass
class PresetContext:
    """What a preset may depend on."""

    task: str
    """image, sdf or nerf"""
    dims: int
    """input dimensions (2 for images, 3 otherwise)"""
    max_res: int = 2048
    """finest useful grid resolution (an image's longest side)"""
    log2_table: int = 19
    """hash-table size for grid-based presets"""
    backend: str = "auto"
    """hash-grid backend"""


def _grid(ctx: PresetContext) -> FieldConfig:
    enc = HashGridConfig(
        n_levels=16, n_features=2, log2_table=ctx.log2_table, base_res=16,
        max_res=max(ctx.max_res, 16), backend=ctx.backend,
    )
    return FieldConfig(encoding=enc, decoder=MLPConfig(width=64, n_hidden=2))


def _frequency_mlp(ctx: PresetContext) -> FieldConfig:
    return FieldConfig(encoding=FrequencyConfig(n_frequencies=10),
                       decoder=MLPConfig(width=256, n_hidden=3))


FIELD_PRESETS: dict[str, Callable[[PresetContext], FieldConfig]] = {
    "grid": _grid,
    "frequency": _frequency_mlp,
}


def field_names() -> list[str]:
    return sorted(FIELD_PRESETS)


def field_preset(name: str, ctx: PresetContext) -> FieldConfig:
    """The preset ``name`` (case-insensitive) for ``ctx``; ValueError lists valid names."""
    try:
        factory = FIELD_PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown field {name!r}; choose from {field_names()}") from None
    return factory(ctx)
