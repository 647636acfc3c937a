"""Named field presets (``--field NAME``) for each kind of target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

from .budget import fit_budget
from .field import FieldConfig
from .frequency import FrequencyConfig
from .hashgrid import HashGridConfig
from .mlp import MLPConfig
from .representations import (
    cam_preset,
    dense_preset,
    mlp_preset,
    rbf_preset,
    triplane_preset,
    triplane_recipe_preset,
)

PRESET_TASKS = ("image", "sdf", "nerf")
"""the kinds of target presets are sized for (NeuS scenes are nerf)"""


@dataclass
class PresetContext:
    """What a preset may depend on."""

    task: str
    """image, sdf or nerf (:data:`PRESET_TASKS`)"""
    dims: int
    """input dimensions (2 for images, 3 otherwise)"""
    max_res: int = 2048
    """finest useful grid resolution (an image's longest side)"""
    log2_table: int = 19
    """hash-table size for grid-based presets"""
    backend: str = "auto"
    """hash-grid backend"""
    budget: int | None = None
    """target parameter count (trainable and frozen); None: each preset's own size"""
    out_dims: int = 3
    """decoder outputs (counted against the budget)"""
    view_dependent: bool = True
    """nerf: the geometry decoder may read the view direction (a density field; an SDF must
    not depend on it)"""

    def __post_init__(self) -> None:
        if self.task not in PRESET_TASKS:  # presets branch on the task: no silent fallback
            raise ValueError(f"field presets know the tasks {PRESET_TASKS}, not {self.task!r}")


def _grid(ctx: PresetContext) -> FieldConfig:
    """16 levels x 2 features, 16 to max_res; a budget picks the table size and the coarsest
    resolution (then the level count, if needed) nearest to it."""

    def make(base_res: int, log2_table: int = ctx.log2_table, n_levels: int = 16):
        enc = HashGridConfig(
            n_levels=n_levels, n_features=2, log2_table=log2_table, base_res=base_res,
            max_res=max(ctx.max_res, 16), backend=ctx.backend,
        )
        # NeRF: Instant-NGP's one-hidden-layer density network (colour has its own MLP)
        n_hidden = 1 if ctx.task == "nerf" else 2
        return FieldConfig(encoding=enc, decoder=MLPConfig(width=64, n_hidden=n_hidden))

    if ctx.budget is None:
        return make(16)
    options = [{"log2_table": t, "n_levels": n} for n in (16, 14, 18, 12, 20)
               for t in range(8, 25)]
    return fit_budget(make, range(2, min(max(ctx.max_res, 16), 64) + 1), ctx.budget, ctx.dims,
                      ctx.out_dims, options)


def _frequency_mlp(ctx: PresetContext) -> FieldConfig:
    def make(width: int) -> FieldConfig:
        return FieldConfig(encoding=FrequencyConfig(n_frequencies=10),
                           decoder=MLPConfig(width=width, n_hidden=3))

    if ctx.budget is None:
        return make(256)
    return fit_budget(make, range(1, 8193), ctx.budget, ctx.dims, ctx.out_dims)


FIELD_PRESETS: dict[str, Callable[[PresetContext], FieldConfig]] = {
    "grid": _grid,
    "frequency": _frequency_mlp,
    "dense": dense_preset,
    "triplane": triplane_preset,
    "triplane-recipe": triplane_recipe_preset,
    "rbf": partial(rbf_preset, reference=_grid),
    "cam": cam_preset,
    "mlp": mlp_preset,
}


def field_names() -> list[str]:
    return sorted(FIELD_PRESETS)


FieldName = Literal[tuple(field_names())]  # type: ignore[valid-type]
"""a ``--field`` preset name (the CLI lists and checks them)"""


def field_preset(name: str, ctx: PresetContext) -> FieldConfig:
    """The preset ``name`` (case-insensitive) for ``ctx``; ValueError lists valid names."""
    try:
        factory = FIELD_PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown field {name!r}; choose from {field_names()}") from None
    return factory(ctx)
