"""Video fitting: a 3D field maps (x, y, t) in [0, 1]^3 to colour. The tri-plane field over
(x, y, t) has k-planes' x-y, x-t and y-t planes; CAM modulates its hidden layers per channel
over t."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal

import torch

from fieldfit.fields import BackendName, FieldConfig, FieldName, PresetContext, field_preset
from fieldfit.losses import S3IMOptions
from fieldfit.scenes import VideoTarget, load_video, sample_pixels

from .. import distributed
from ..errors import UserError
from ..io import write_json
from ..media import write_video
from ..metrics import psnr
from .base import BudgetOptions, Task
from .image import check_pixel_options, pixel_batch_and_loss


@dataclass
class VideoTaskConfig(BudgetOptions, S3IMOptions):
    """Video fitting options (with the ``--s3im-*`` options of the S3IM loss term)."""

    field: FieldName = "grid"
    """field preset over (x, y, t) (see the README's "Video")"""
    cam: Literal["none", "point", "time"] = "none"
    """CAM on the field's decoder, modulated over (x, y, t) or, per channel, over t"""
    frames: int = 0
    """fit the first N frames (after --fps); 0: all"""
    fps: float = 0.0
    """subsample the clip to about this many frames per second; 0: every frame"""
    log2_table: int = 19
    """hash-table size of grid-based fields"""
    backend: BackendName = "auto"
    """hash-grid backend: auto (the fastest that loads: cpp on a CPU; tcnn, triton, then
    torch on CUDA), torch (the reference), cpp (C++ kernels, CPU), triton or tcnn (CUDA)"""
    batch_size: int | None = None
    """pixels per step, drawn over all frames (unset: the field preset's, else 65536; under
    torchrun: of all ranks together, split evenly)"""
    loss: str = "mse"
    """loss terms joined by '+' (e.g. mse+s3im) from: mse, l1, huber, relative_l2, s3im"""
    eval_chunk: int = 2**16
    """pixels per forward pass at evaluation"""

    def __post_init__(self) -> None:
        if self.frames < 0 or self.fps < 0:
            raise ValueError("--frames and --fps must be >= 0")
        check_pixel_options(self.batch_size, self.params, self.eval_chunk)


class VideoTask(Task):
    """Fits a clip with a field over (x, y, t) built from the preset ``config.field``.

    ``source``: ``{"path", "fps", "shape"}``: the clip, the frame rate kept and (T, H, W, C)
    of the frames kept (path None for a clip made in memory).
    """

    name: ClassVar[str] = "video"
    config_type: ClassVar[type] = VideoTaskConfig

    def __init__(self, target: VideoTarget | None, config: VideoTaskConfig,
                 device: torch.device | str | None = None, source: dict | None = None,
                 field_config: FieldConfig | None = None):
        super().__init__(target, config, device, source)
        n_frames, height, width, channels = self.source["shape"]
        ctx = PresetContext(task="video", dims=3, max_res=max(height, width),
                            log2_table=config.log2_table, backend=config.backend,
                            budget=config.params, out_dims=channels, time_res=n_frames,
                            cam=config.cam)
        self.field_config = field_config or field_preset(config.field, ctx)
        self.shape = (n_frames, height, width, channels)
        self.model = self.build_on_cpu(lambda: self.field_config.build(dims=3,
                                                                        out_dims=channels))
        self.batch_size, self.loss = pixel_batch_and_loss(config, self.field_config)

    @classmethod
    def load_data(cls, source: dict, config: VideoTaskConfig) -> VideoTarget:
        if source.get("path") is None:
            raise UserError("this video run was fitted to a clip made in memory; it cannot be "
                            "read again")
        target = load_video(source["path"], frames=config.frames, fps=config.fps)
        if list(target.shape) != list(source["shape"]):
            raise UserError(f"{source['path']}: is {list(target.shape)} (frames, height, "
                            f"width, channels) now, the run was fitted to {source['shape']}")
        return target

    def describe(self, target: VideoTarget) -> dict:
        return self.source_of(target)

    @staticmethod
    def source_of(target: VideoTarget, path: Path | None = None) -> dict:
        """The ``source`` of ``target``, read from ``path`` (None: made in memory)."""
        return {"path": None if path is None else str(Path(path).resolve()),
                "fps": target.fps, "shape": list(target.shape)}

    @property
    def target(self) -> VideoTarget:
        return self.data

    @cached_property
    def _values(self) -> torch.Tensor:
        """(T*H*W, C) pixel values on the task's device."""
        return self.target.frames.reshape(-1, self.shape[-1]).to(self.device)

    def train_step(self, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        values = self._values
        index = sample_pixels(len(values), self.batch_size, generator)
        index = distributed.share(index).to(self.device)  # this rank's slice of the batch
        pred = self.model(self.target.coords(index))
        target = values[index]
        total, terms = self.loss(pred, target, generator)
        out = {"loss": total, **terms}
        if "mse" not in out:
            out["mse"] = torch.mean((pred.detach() - target) ** 2)
        return out

    @torch.no_grad()
    def predict_frame(self, frame: int) -> torch.Tensor:
        """(H, W, C) reconstruction of one frame, in [0, 1]."""
        self.model.eval()
        coords = self.target.frame_coords(frame, self.device)
        chunks = [self.model(c) for c in coords.split(self.config.eval_chunk)]
        return torch.cat(chunks).reshape(self.shape[1:]).clamp(0, 1)

    def frame_psnrs(self) -> list[float]:
        """PSNR (dB) of every frame."""
        frames = self.target.frames
        return [psnr(self.predict_frame(i), frames[i].to(self.device))
                for i in range(self.shape[0])]

    def evaluate(self) -> dict[str, float]:
        return self._metrics(self.frame_psnrs())

    def _metrics(self, per_frame: list[float]) -> dict[str, float]:
        """Mean PSNR over frames, the worst frame's, and the field's size: bits per pixel
        of its float32 parameters over all pixels of the clip."""
        n_params = self.model.n_parameters(trainable_only=False)
        n_pixels = self.shape[0] * self.shape[1] * self.shape[2]
        return {"psnr": sum(per_frame) / len(per_frame), "psnr_min": min(per_frame),
                "params": n_params, "bpp": 32.0 * n_params / n_pixels,
                "size_mb": 4.0 * n_params / 2**20}

    def write_outputs(self, out_dir: Path) -> list[Path]:
        """reconstruction.mp4 (GIF without imageio-ffmpeg) and metrics.json with the PSNR
        of every frame."""
        out_dir = Path(out_dir)
        frames = [self.predict_frame(i) for i in range(self.shape[0])]
        per_frame = [psnr(f, self.target.frames[i].to(self.device))
                     for i, f in enumerate(frames)]
        video = write_video(out_dir / "reconstruction", [f.cpu().numpy() for f in frames],
                            fps=max(1, round(self.target.fps)))
        write_json(out_dir / "metrics.json", {**self._metrics(per_frame),
                                              "frame_psnr": per_frame})
        return [video, out_dir / "metrics.json"]
