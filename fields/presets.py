"""Named field presets (``--field NAME``) for each kind of target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

from .budget import fit_budget
from .cam import CAMConfig
from .field import FieldConfig
from .frequency import FrequencyConfig
from .hashgrid import HashGridConfig
from .mlp import MLPConfig
from .representations import (
    cam_preset,
    dense_preset,
    mlp_field,
    mlp_preset,
    rbf_preset,
    triplane_preset,
    triplane_recipe_preset,
)

PRESET_TASKS = ("image", "sdf", "nerf", "video")
"""the kinds of target presets are sized for (NeuS scenes are nerf)"""

CAM_COORDINATES = ("none", "point", "time", "direction")
"""``--cam``: modulate a preset's decoder on nothing, the point, time or the view direction"""


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
    time_res: int = 0
    """distinct times along the last input axis (video frames, dynamic-scene timestamps); 0:
    the input has no time axis"""
    cam: str = "none"
    """CAM on the preset's decoder (:data:`CAM_COORDINATES`)"""

    def __post_init__(self) -> None:
        if self.task not in PRESET_TASKS:  # presets branch on the task: no silent fallback
            raise ValueError(f"field presets know the tasks {PRESET_TASKS}, not {self.task!r}")
        if self.cam not in CAM_COORDINATES:
            raise ValueError(f"--cam {self.cam}: choose from {CAM_COORDINATES}")
        if self.cam == "time" and not self.time_res:
            raise ValueError("--cam time: this target has no time axis (video or a dynamic "
                             "scene has)")
        if self.cam == "direction" and not (self.task == "nerf" and self.view_dependent):
            raise ValueError("--cam direction: only a density radiance field reads the view "
                             "direction")

    @property
    def time_knots(self) -> int:
        """CAM's temporal grid: one knot per time up to 60 (CAM's video setting) for video,
        5 (CAM's T-NeRF setting) for dynamic scenes."""
        return max(1, min(self.time_res, 60 if self.task == "video" else 5))


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
    """NeRF's positional encoding (10 octaves) into a 3 x 256 ReLU MLP (see
    :func:`~.representations.mlp_field`)."""

    def make(width: int) -> FieldConfig:
        return mlp_field(ctx, FrequencyConfig(n_frequencies=10), MLPConfig(width=width,
                                                                            n_hidden=3))

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
    """The preset ``name`` (case-insensitive) for ``ctx``, with CAM on its decoder when
    ``ctx.cam`` says so; ValueError lists valid names."""
    try:
        factory = FIELD_PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown field {name!r}; choose from {field_names()}") from None
    config = factory(ctx)
    return config if ctx.cam == "none" else with_cam(config, ctx)


def with_cam(config: FieldConfig, ctx: PresetContext) -> FieldConfig:
    """``config`` with its decoder's hidden layers modulated on ``ctx.cam`` (NerfAcc + CAM:
    any encoding, the decoder modulated): a 10 x 3 (azimuth x elevation) grid for the view
    direction, :attr:`PresetContext.time_knots` knots for time (per channel for video, as
    CAM's video models), 32^2 (images) or 16^dims over the point. A CAM decoder keeps its
    MLP and takes the new coordinate."""
    if ctx.cam == "direction":
        grid_shape: tuple[int, ...] = (10, 3)
    elif ctx.cam == "time":
        grid_shape = (ctx.time_knots,)
    else:
        grid_shape = (32 if ctx.task == "image" else 16,) * ctx.dims
    per_channel = ctx.cam == "time" and ctx.task == "video"
    decoder = config.decoder
    mlp = decoder.mlp if isinstance(decoder, CAMConfig) else decoder
    if mlp.n_hidden < 1:
        raise ValueError("--cam: the field's decoder has no hidden layer to modulate")
    cam = CAMConfig(mlp=mlp, grid_shape=grid_shape, coordinate=ctx.cam,
                    per_channel=per_channel)
    return replace(config, decoder=cam)
