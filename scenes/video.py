"""Video clips as fitting targets: a video file (MP4, GIF, ... through imageio; MP4 needs the
``video`` extra, imageio-ffmpeg) or a folder of frame images, read as (T, H, W, C) frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .images import SceneError, _to_float, load_image, pixel_coords

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".exr", ".webp")


@dataclass
class VideoTarget:
    """A clip ready for fitting over (x, y, t) in [0, 1]^3."""

    frames: torch.Tensor
    """(T, H, W, C) float32 in [0, 1]"""
    fps: float
    """frames per second of the frames kept"""

    @property
    def shape(self) -> tuple[int, int, int, int]:
        t, h, w, c = self.frames.shape
        return t, h, w, c

    def frame_times(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(T,) frame times in [0, 1]: 0 for the first frame, 1 for the last (0.5 for one)."""
        n = self.shape[0]
        if n == 1:
            return torch.full((1,), 0.5, device=device)
        return torch.arange(n, dtype=torch.float32, device=device) / (n - 1)

    def coords(self, index: torch.Tensor) -> torch.Tensor:
        """(n, 3) (x, y, t) of (n,) flat indices into the (T, H, W) pixels (pixel centres in
        x and y, :meth:`frame_times` in t)."""
        _, h, w, _ = self.shape
        t, pixel = index // (h * w), index % (h * w)
        xy = torch.stack([(pixel % w + 0.5) / w, (pixel // w + 0.5) / h], dim=-1)
        return torch.cat([xy, self.frame_times(index.device)[t, None]], dim=-1)

    def frame_coords(self, frame: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(H*W, 3) coordinates of every pixel of ``frame``, row-major."""
        _, h, w, _ = self.shape
        xy = pixel_coords(h, w, device)
        t = self.frame_times(device)[frame].expand(len(xy), 1)
        return torch.cat([xy, t], dim=-1)


def _source_fps(path: Path) -> float:
    """Frames per second of a video file (its metadata; 24 when it says nothing)."""
    import imageio.v3 as iio

    try:
        meta = iio.immeta(path)
    except Exception as err:  # imageio raises many types for corrupt or foreign files
        raise SceneError(f"{path}: not a readable video ({_reason(err)})") from None
    if meta.get("fps"):
        return float(meta["fps"])
    return 1000.0 / float(meta["duration"]) if meta.get("duration") else 24.0


def _read_frames(path: Path, stride: int, frames: int) -> list[np.ndarray]:
    """Every ``stride``-th frame of a video file, at most ``frames`` (0: all)."""
    import imageio.v3 as iio

    kept: list[np.ndarray] = []
    try:
        for i, frame in enumerate(iio.imiter(path)):
            if i % stride == 0:
                kept.append(np.asarray(frame))
                if len(kept) == frames:
                    break
    except Exception as err:
        raise SceneError(f"{path}: not a readable video ({_reason(err)})") from None
    return kept


def _reason(err: Exception) -> str:
    return " ".join(str(err).split())[:160] or type(err).__name__


def _to_frame(array: np.ndarray, path: Path) -> torch.Tensor:
    """(H, W, C) float frame of a decoded (H, W[, C]) array; alpha composited on white, as
    images are."""
    image = _to_float(array[..., None] if array.ndim == 2 else array, path)
    if image.shape[-1] in (2, 4):
        image = image[..., :-1] * image[..., -1:] + (1.0 - image[..., -1:])
    return torch.from_numpy(np.ascontiguousarray(image))


def load_video(path: str | Path, frames: int = 0, fps: float = 0.0,
               min_side: int = 1) -> VideoTarget:
    """Read a clip: a video file, or a folder of frame images in name order.

    Args:
        path: the video file or frame folder.
        frames: keep the first ``frames`` frames (after the ``fps`` subsampling); 0: all.
        fps: subsample the clip to about this many frames per second; 0: keep every frame.
            A folder of frames counts as 24 frames per second.
        min_side: smallest accepted side of a frame.
    """
    path = Path(path)
    if not path.exists():
        raise SceneError(f"{path}: no such file or folder")
    if path.is_dir():
        source_fps = 24.0
        stride = max(1, round(source_fps / fps)) if fps > 0 else 1
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise SceneError(f"{path}: folder holds no frame images "
                             f"({', '.join(FRAME_SUFFIXES)})")
        images = [load_image(f) for f in files[::stride][: frames or None]]
    else:
        if path.stat().st_size == 0:
            raise SceneError(f"{path}: file is empty")
        source_fps = _source_fps(path)
        stride = max(1, round(source_fps / fps)) if fps > 0 else 1
        images = [_to_frame(a, path) for a in _read_frames(path, stride, frames)]
        if not images:
            raise SceneError(f"{path}: video has no frames")
    shapes = sorted({tuple(im.shape) for im in images})
    if len(shapes) > 1:
        raise SceneError(f"{path}: frames differ in size {shapes}")
    height, width = shapes[0][:2]
    if min(height, width) < min_side:
        raise SceneError(f"{path}: frames are {width} x {height} pixels; both sides must be at "
                         f"least {min_side}")
    return VideoTarget(torch.stack(images).float().contiguous(), source_fps / stride)
