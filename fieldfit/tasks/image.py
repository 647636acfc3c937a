"""Image fitting: a 2D field maps pixel coordinates to colour."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from fieldfit.fields import FieldConfig, PresetContext, field_preset, image_weights, to_dict
from fieldfit.losses import S3IMOptions, parse_loss
from fieldfit.scenes import ImageTarget, sample_pixels

from ..io import write_image, write_json
from ..metrics import psnr, ssim
from .base import ParamGroup, Task


@dataclass
class ImageTaskConfig(S3IMOptions):
    """Image fitting options (with the ``--s3im-*`` options of the S3IM loss term)."""

    field: str = "grid"
    """field preset (see `fieldfit image --help` for the list)"""
    log2_table: int = 19
    """hash-table size of grid-based fields"""
    backend: str = "auto"
    """hash-grid backend: auto, torch, ..."""
    batch_size: int = 2**16
    """pixels per step"""
    loss: str = "mse"
    """loss terms joined by '+', e.g. mse, relative_l2, mse+s3im"""
    eval_chunk: int = 2**16
    """pixels per forward pass at evaluation"""
    params: int | None = None
    """parameter budget: size the field preset to this many parameters (default: its own)"""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"--batch-size {self.batch_size}: must be >= 1")
        if self.params is not None and self.params < 1:
            raise ValueError(f"--params {self.params}: must be >= 1")
        if self.eval_chunk < 1:
            raise ValueError(f"--eval-chunk {self.eval_chunk}: must be >= 1")


class ImageTask(Task):
    """Fits ``target`` with a field built from the preset ``config.field``."""

    name: ClassVar[str] = "image"

    def __init__(self, target: ImageTarget, config: ImageTaskConfig,
                 field_config: FieldConfig | None = None):
        self.target, self.config = target, config
        ctx = PresetContext(task="image", dims=2, max_res=max(target.height, target.width),
                            log2_table=config.log2_table, backend=config.backend,
                            budget=config.params, out_dims=target.channels)
        self.field_config = field_config or field_preset(config.field, ctx)
        self.model = self.field_config.build(dims=2, out_dims=target.channels)
        self.coords = target.coords()
        self.values = target.values()
        if self.model.adaptive_modules():  # e.g. NeuRBF kernels placed by image gradient
            self.model.init_from_samples(self.coords, image_weights(target.image),
                                         training_points=True)
        self.loss = parse_loss(config.loss, weights={"s3im": config.s3im_weight}, options=config,
                               batch_size=config.batch_size)

    def config_dict(self) -> dict:
        return {"task": to_dict(self.config), "field": to_dict(self.field_config),
                "shape": [self.target.height, self.target.width, self.target.channels]}

    def param_groups(self) -> list[ParamGroup]:
        return self.model.param_groups()

    def lr_defaults(self) -> dict[str, float]:
        return dict(self.field_config.lr)

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        index = sample_pixels(len(self.values), self.config.batch_size, generator)
        pred = self.model(self.coords[index])
        target = self.values[index]
        total, terms = self.loss(pred, target, generator)
        out = {"loss": total, **terms}
        if "mse" not in out:
            out["mse"] = torch.mean((pred.detach() - target) ** 2)
        return out

    @torch.no_grad()
    def predict(self) -> torch.Tensor:
        """(H, W, C) reconstruction of the whole image."""
        self.model.eval()
        chunks = [self.model(c) for c in self.coords.split(self.config.eval_chunk)]
        shape = (self.target.height, self.target.width, self.target.channels)
        return torch.cat(chunks).reshape(shape)

    def evaluate(self) -> dict[str, float]:
        pred = self.predict().clamp(0, 1)
        return {"psnr": psnr(pred, self.target.image), "ssim": ssim(pred, self.target.image)}

    def write_outputs(self, out_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import colormaps

        pred = self.predict().clamp(0, 1)
        error = (pred - self.target.image).abs().mean(-1).numpy()
        scale = max(float(np.percentile(error, 99.5)), 1e-6)
        heat = colormaps["inferno"](np.clip(error / scale, 0, 1))[..., :3]
        paths = [out_dir / "reconstruction.png", out_dir / "error.png"]
        write_image(paths[0], pred.numpy())
        write_image(paths[1], heat)
        metrics = {**self.evaluate(), "params": self.model.n_parameters(),
                   "error_map_scale": scale}
        write_json(out_dir / "metrics.json", metrics)
        return [*paths, out_dir / "metrics.json"]
