"""Image fitting: a 2D field maps pixel coordinates to colour."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from fieldfit.fields import (
    BackendName,
    FieldConfig,
    FieldName,
    PresetContext,
    field_preset,
    image_weights,
)
from fieldfit.losses import S3IMOptions, parse_loss
from fieldfit.scenes import ImageTarget, load_image, sample_pixels

from .. import distributed
from ..errors import UserError
from ..io import write_image, write_json
from ..media import with_colour_bar
from ..metrics import psnr, ssim
from .base import BudgetOptions, Task

DEFAULT_BATCH = 2**16
"""pixels per step of fields whose preset recommends none"""


@dataclass
class ImageTaskConfig(BudgetOptions, S3IMOptions):
    """Image fitting options (with the ``--s3im-*`` options of the S3IM loss term)."""

    field: FieldName = "grid"
    """field preset (see the README's "Field representations")"""
    log2_table: int = 16
    """log2 of the hash-table entries per level of grid-based fields (16: the grid preset has
    0.88M parameters on a 768 x 512 image, fewer than its 1.18M values)"""
    backend: BackendName = "auto"
    """hash-grid backend: auto (the fastest that loads: cpp on a CPU; tcnn, triton, then
    torch on CUDA), torch (the reference), cpp (C++ kernels, CPU), triton or tcnn (CUDA)"""
    cam: Literal["none", "point"] = "none"
    """CAM on the field's decoder: modulated over the pixel position"""
    batch_size: int | None = None
    """pixels per step (unset: the field preset's, else 65536; under torchrun: of all ranks
    together, split evenly)"""
    loss: str = "mse"
    """loss terms joined by '+' (e.g. mse+s3im) from: mse, l1, huber, relative_l2, s3im"""
    eval_chunk: int = 2**16
    """pixels per forward pass at evaluation"""

    def __post_init__(self) -> None:
        check_pixel_options(self.batch_size, self.params, self.eval_chunk)


def pixel_batch_and_loss(config: ImageTaskConfig, field_config: FieldConfig):
    """The pixels per step of a pixel task (image or video: ``config.batch_size``, else the
    preset's, else :data:`DEFAULT_BATCH`) and its loss, S3IM included."""
    batch = config.batch_size or field_config.batch_size or DEFAULT_BATCH
    loss = parse_loss(config.loss, weights={"s3im": config.s3im_weight}, options=config,
                      batch_size=distributed.check_share(batch, "--batch-size"))
    return batch, loss


def check_pixel_options(batch_size: int | None, params: int | None, eval_chunk: int) -> None:
    """ValueError naming the option when a pixel-fitting size (image or video) is < 1."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"--batch-size {batch_size}: must be >= 1")
    if params is not None and params < 1:
        raise ValueError(f"--params {params}: must be >= 1")
    if eval_chunk < 1:
        raise ValueError(f"--eval-chunk {eval_chunk}: must be >= 1")


class ImageTask(Task):
    """Fits an image with a field built from the preset ``config.field``.

    ``source``: ``{"path", "alpha", "shape"}`` (path None for an image made in memory).
    """

    name: ClassVar[str] = "image"
    config_type: ClassVar[type] = ImageTaskConfig

    def __init__(self, target: ImageTarget | None, config: ImageTaskConfig,
                 device: torch.device | str | None = None, source: dict | None = None,
                 field_config: FieldConfig | None = None):
        super().__init__(target, config, device, source)
        height, width, channels = self.source["shape"]
        ctx = PresetContext(task="image", dims=2, max_res=max(height, width),
                            log2_table=config.log2_table, backend=config.backend,
                            budget=config.params, out_dims=channels, cam=config.cam)
        self.field_config = field_config or field_preset(config.field, ctx)
        self.shape = (height, width, channels)
        self.model = self.build_on_cpu(lambda: self.field_config.build(dims=2,
                                                                        out_dims=channels))
        self.batch_size, self.loss = pixel_batch_and_loss(config, self.field_config)

    @classmethod
    def load_data(cls, source: dict, config: ImageTaskConfig) -> ImageTarget:
        if source.get("path") is None:
            raise UserError("this image run was fitted to an image made in memory; its target "
                            "cannot be read again")
        target = ImageTarget(load_image(source["path"], alpha=source["alpha"]))
        if [target.height, target.width, target.channels] != list(source["shape"]):
            raise UserError(f"{source['path']}: is {target.height}x{target.width}x"
                            f"{target.channels} now, the run was fitted to {source['shape']}")
        return target

    def describe(self, target: ImageTarget) -> dict:
        return self.source_of(target)

    @staticmethod
    def source_of(target: ImageTarget, path: Path | None = None,
                  alpha: str | None = None) -> dict:
        """The ``source`` of ``target``, read from ``path`` with ``alpha`` (None: made in
        memory)."""
        return {"path": None if path is None else str(Path(path).resolve()), "alpha": alpha,
                "shape": [target.height, target.width, target.channels]}

    @cached_property
    def _pixels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(H*W, 2) coordinates and (H*W, C) values on the task's device."""
        target = self.data
        return target.coords(self.device), target.values().to(self.device)

    @property
    def image(self) -> torch.Tensor:
        """(H, W, C) target on the task's device."""
        return self._pixels[1].reshape(self.shape)

    def initialize(self) -> None:
        if self.model.adaptive_modules():  # e.g. NeuRBF kernels placed by image gradient
            coords, _ = self._pixels
            self.model.init_from_samples(coords, image_weights(self.image),
                                         training_points=True)

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        coords, values = self._pixels
        index = sample_pixels(len(values), self.batch_size, generator)
        index = distributed.share(index).to(self.device)  # this rank's slice of the batch
        pred = self.model(coords[index])
        target = values[index]
        total, terms = self.loss(pred, target, distributed.rank_generator(generator, step))
        out = {"loss": total, **terms}
        if "mse" not in out:
            out["mse"] = torch.mean((pred.detach() - target) ** 2)
        return out

    @torch.no_grad()
    def predict(self) -> torch.Tensor:
        """(H, W, C) reconstruction of the whole image."""
        self.model.eval()
        chunks = [self.model(c) for c in self._pixels[0].split(self.config.eval_chunk)]
        return torch.cat(chunks).reshape(self.shape)

    def evaluate(self) -> dict[str, float]:
        pred = self.predict().clamp(0, 1)
        return {"psnr": psnr(pred, self.image), "ssim": ssim(pred, self.image)}

    def write_outputs(self, out_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import colormaps

        pred = self.predict().clamp(0, 1)
        error = (pred - self.image).abs().mean(-1).cpu().numpy()
        pred = pred.cpu()
        scale = max(float(np.percentile(error, 99.5)), 1e-6)
        heat = colormaps["inferno"](np.clip(error / scale, 0, 1))[..., :3]
        paths = [out_dir / "reconstruction.png", out_dir / "error.png"]
        write_image(paths[0], pred.numpy())
        write_image(paths[1], with_colour_bar(heat, 0.0, scale,
                                              "mean |error| per pixel (values in [0, 1])"))
        metrics = {**self.evaluate(), "params": self.model.n_parameters(),
                   "error_map_scale": scale}
        write_json(out_dir / "metrics.json", metrics)
        return [*paths, out_dir / "metrics.json"]
