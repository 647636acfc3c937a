"""Presets of the dense-grid, tri-plane, NeuRBF, CAM and Fourier-feature MLP fields.

Each factory maps a :class:`~.presets.PresetContext` to a :class:`FieldConfig`; with
``ctx.budget`` set it sizes its main knob (finest resolution, plane resolution, kernel count or
MLP width) so the field's parameter count is as near the budget as the knob allows. Learning
rates recommended by the methods' papers travel in ``FieldConfig.lr``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from .budget import count_parameters, fit_budget
from .cam import CAMConfig
from .concat import ConcatConfig
from .dense import DenseGridConfig
from .field import FieldConfig
from .fourier import FourierFeatureConfig
from .frequency import FrequencyConfig
from .hashgrid import HashGridConfig, make_layout
from .mlp import MLPConfig
from .rbf import RBFConfig
from .triplane import TriPlaneConfig

if TYPE_CHECKING:
    from .presets import PresetContext


def _small_decoder() -> MLPConfig:
    return MLPConfig(width=64, n_hidden=2)


def _sized(make: Callable[..., FieldConfig], default: int, knob: range, ctx: PresetContext,
           options=({},)) -> FieldConfig:
    """``make(default)`` without a budget, else the knob value nearest the budget."""
    if ctx.budget is None:
        return make(default, **options[0])
    return fit_budget(make, knob, ctx.budget, ctx.dims, ctx.out_dims, options)


def dense_preset(ctx: PresetContext) -> FieldConfig:
    """8-level dense grid, 2 features per level, 16 to the finest resolution (the knob)."""

    def make(max_res: int, n_levels: int = 8) -> FieldConfig:
        enc = DenseGridConfig(n_levels=n_levels, n_features=2, base_res=min(16, max_res),
                              max_res=max_res, backend=ctx.backend)
        return FieldConfig(enc, _small_decoder())

    top = min(max(ctx.max_res, 16), 32768 if ctx.dims == 2 else 1024)
    default = min(top, 1024 if ctx.dims == 2 else 128)
    return _sized(make, default, range(2, top + 1), ctx,
                  options=[{"n_levels": n} for n in (8, 6, 10, 4, 12)])


def triplane_preset(ctx: PresetContext) -> FieldConfig:
    """Four-level planes (resolution / 8 .. resolution, the knob), summed over planes."""
    features = 8 if ctx.dims == 2 else 16

    def make(resolution: int, n_features: int = features) -> FieldConfig:
        enc = TriPlaneConfig(resolution=resolution, n_levels=4, n_features=n_features)
        return FieldConfig(enc, _small_decoder())

    default = min(max(ctx.max_res, 16), 512 if ctx.dims == 2 else 128)
    options = [{"n_features": f} for f in (features, features * 3 // 4, features * 3 // 2,
                                           features // 2, features * 2)]
    return _sized(make, default, range(16, 8193), ctx, options)


def triplane_recipe_preset(ctx: PresetContext) -> FieldConfig:
    """The tri-plane processing paper's per-shape fit (Cardace et al. 2024): 32 x 32 x 16
    planes, N(0, 1e-3^2), summed; decoder input = features ++ positional encoding (10
    octaves; the paper's 2^k on [-1, 1] are 2^(k+1) on [0, 1]); SIREN 3 x 64, sin(30 x);
    Adam lr 1e-4 for shapes (the paper's setting); 1e-3 for images and video, whose mean
    colour the SIREN output must first reach. A budget resizes the planes only."""
    lr = 1e-3 if ctx.task in ("image", "video") else 1e-4

    def make(resolution: int) -> FieldConfig:
        planes = TriPlaneConfig(resolution=resolution, n_features=16, aggregation="sum",
                                init_std=1e-3, align_corners=False, padding="zeros")
        encoding = ConcatConfig((planes, FrequencyConfig(n_frequencies=10, base=2.0)))
        decoder = MLPConfig(width=64, n_hidden=3, activation="sine", omega=30.0)
        return FieldConfig(encoding, decoder, lr={"encoding": lr, "decoder": lr})

    return _sized(make, 32, range(2, 8193), ctx)


def rbf_preset(ctx: PresetContext, reference: Callable[[PresetContext], FieldConfig]
               ) -> FieldConfig:
    """NeuRBF hybrid: a small hash grid ++ adaptive RBFs, then a 64-wide MLP whose first layer
    is h + sin(h * m0). The kernel count follows NeuRBF's rule
    ``(budget - rest) // (F + kernel parameters)``; without a budget, the budget is the
    parameter count of ``reference`` (NeuRBF's reference hash grid)."""
    budget = ctx.budget or count_parameters(reference(ctx), ctx.dims, ctx.out_dims)
    top = max(ctx.max_res, 16)
    if ctx.task == "sdf":  # the table is 2^15 or the largest that keeps the grid <= budget/2
        log2_table = next((t for t in range(15, 3, -1)
                           if make_layout(3, 16, 1, t, 16, top).n_entries <= budget // 2), 4)
        grid = HashGridConfig(n_levels=16, n_features=1, log2_table=log2_table, base_res=16,
                              max_res=top, backend=ctx.backend)
        rbf = RBFConfig(kernel="nlin", n_features=16, n_neighbours=8, frequencies=(1.0, 8.0),
                        data_res=top)
        decoder = MLPConfig(width=64, n_hidden=2, sine_composition=(30.0, 300.0))
        lr = {"encoding": 1e-4, "decoder": 1e-4}
    else:  # image (NeuRBF's image setting); NeRF uses it without the sinusoids
        nerf = ctx.task == "nerf"
        # two dense levels, 16 and at most half the resolution, using <= 1/4 of the budget
        res = max(16, min(top // 2, int((budget / 4 / 2) ** (1 / ctx.dims))))
        grid = HashGridConfig(n_levels=2, n_features=2, log2_table=24, base_res=16,
                              max_res=res, backend=ctx.backend)
        rbf = RBFConfig(kernel="ivq", n_features=16 if nerf else 32,
                        n_neighbours=8 if nerf else 4,
                        frequencies=None if nerf else (2.0**-3, 2.0**12), data_res=top)
        decoder = MLPConfig(width=64, n_hidden=2,
                            sine_composition=None if nerf else (1.0, 1000.0))
        lr = {"encoding": 2e-2, "decoder": 1e-3} if nerf else {"encoding": 5e-3,
                                                                "decoder": 1e-2}

    def make(n_kernels: int) -> FieldConfig:
        encoding = ConcatConfig((grid, replace(rbf, n_kernels=n_kernels)))
        return FieldConfig(encoding, decoder, lr=lr)

    per_kernel = rbf.n_features + ctx.dims + rbf.shape_size(ctx.dims)
    k = rbf.n_neighbours
    rest = count_parameters(make(k), ctx.dims, ctx.out_dims) - k * per_kernel
    n_kernels = (budget - rest) // per_kernel
    if n_kernels < k:
        raise ValueError(f"rbf: a budget of {budget} parameters leaves room for {n_kernels} "
                         f"kernels after the grid and decoder ({rest}); need >= {k}")
    return make(n_kernels)


MLP_BATCH = {"image": 2**13, "video": 2**13, "sdf": 2**13, "nerf": 2**13}
"""samples per step of the MLP-only fields (pixels, points, field queries): a 256-wide MLP
makes ~15 such steps per second on two CPU cores, and many small steps fit more in a time
budget than few full ones (FFN and CAM train full-batch on a GPU)"""
MLP_MIN_STEPS = 200
"""steps before an MLP-only field fits more than the mean (~150 on a Kodak image)"""


def mlp_field(ctx: PresetContext, encoding: object, decoder: object, lr: float = 1e-3
               ) -> FieldConfig:
    """An MLP-only field: Adam lr ``lr`` (1e-3: FFN's and CAM's), :data:`MLP_BATCH` samples
    per step and :data:`MLP_MIN_STEPS`."""
    return FieldConfig(encoding, decoder, lr={"decoder": lr}, batch_size=MLP_BATCH[ctx.task],
                       min_steps=MLP_MIN_STEPS)


def _fourier_mlp(ctx: PresetContext, width: int, decoder: Callable[[int], object],
                 lr: float = 1e-3, sigma_image: float = 10.0) -> FieldConfig:
    """256 random Fourier features into ``decoder(width)``, width sized to the budget (see
    :func:`mlp_field`). sigma is ``sigma_image`` for images, 10 for video (FFN's and CAM's
    image setting) and 2 for 3D fields, whose smooth SDFs sigma 10 fits poorly (our choice,
    not a paper's)."""
    sigma = {"image": sigma_image, "video": 10.0}.get(ctx.task, 2.0)
    features = FourierFeatureConfig(n_frequencies=256, sigma=sigma)
    return _sized(lambda w: mlp_field(ctx, features, decoder(w), lr), width, range(1, 8193),
                  ctx)


def cam_image_sigma(longest_side: int) -> float:
    """CAM's Fourier-feature scale for an image: 40 from 512 pixels up, 10 (FFN's and CAM's)
    at 128 and below, linear between. The normalised, modulated layers use frequencies that
    the plain MLP cannot: `fieldfit image --seconds 60` on kodim03 gave cam 34.72 dB at 40
    against 32.59 at 10, and 27.67 against 21.65 on a 512^2 text image, where the `mlp`
    preset (FFN's 10) gave 31.28 and 21.65 and at 40 gave 30.17 and 24.45 (see the README)."""
    return float(min(40.0, max(10.0, 40.0 * longest_side / 512)))


def _ffn_mlp(ctx: PresetContext, width: int) -> MLPConfig:
    """FFN's 3 x 256 ReLU MLP; sigmoid output for images and video."""
    out = "sigmoid" if ctx.task in ("image", "video") else "none"
    return MLPConfig(width=width, n_hidden=3, output_activation=out)


def mlp_preset(ctx: PresetContext) -> FieldConfig:
    """Fourier-feature MLP baseline (FFN, CAM's image baseline, sigma 10): no grid."""
    return _fourier_mlp(ctx, 256, lambda w: _ffn_mlp(ctx, w))


def cam_preset(ctx: PresetContext) -> FieldConfig:
    """The Fourier-feature MLP with CAM on every hidden layer: modulated over the pixel
    position (32 x 32 grid) for images, per channel over time for video (CAM's video
    setting, :attr:`~.presets.PresetContext.time_knots` knots), over time for dynamic scenes
    (its T-NeRF setting, 5 knots), the view direction (10 x 3, azimuth x elevation) for
    static density radiance fields, the point (16^3) otherwise. Adam lr
    3e-3 for images and video, 1e-3 (CAM's) otherwise, the grids at 10x: in 300 steps of
    8192 pixels on kodim03, 3e-3 gives 30.1 dB where CAM's 1e-3 gives 29.5 (the MLP baseline
    28.6 at 1e-3). Images use :func:`cam_image_sigma`."""
    per_channel = False
    if ctx.task == "video":
        grid_shape, coordinate, per_channel = (ctx.time_knots,), "time", True
    elif ctx.task == "nerf" and ctx.time_res:  # a dynamic scene: CAM's T-NeRF setting
        grid_shape, coordinate = (ctx.time_knots,), "time"
    elif ctx.task == "nerf" and ctx.view_dependent:
        grid_shape, coordinate = (10, 3), "direction"
    else:
        grid_shape, coordinate = (32 if ctx.task == "image" else 16,) * ctx.dims, "point"
    return _fourier_mlp(ctx, 256, lambda w: CAMConfig(
        mlp=_ffn_mlp(ctx, w), grid_shape=grid_shape, coordinate=coordinate,
        per_channel=per_channel), lr=3e-3 if ctx.task in ("image", "video") else 1e-3,
        sigma_image=cam_image_sigma(ctx.max_res))
