"""Images as fitting targets: loading, pixel coordinates and a random-pixel sampler."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch


class SceneError(ValueError):
    """Input data that cannot be used; the message names the file and the problem."""


ALPHA_MODES = ("white", "black", "keep")
AlphaMode = Literal[ALPHA_MODES]  # type: ignore[valid-type]
"""how RGBA images are read: composited on white or black, or the alpha channel kept"""
MIN_SIDE = 11
"""smallest image side: the SSIM window of the evaluation is 11 x 11"""
MAX_PIXELS = 2**26
"""largest image (8192 x 8192): fitting holds several float32 copies of it (coordinates,
values, the reconstruction, SSIM's filtered maps)"""


def _check_size(height: int, width: int, path: Path, min_side: int = 1) -> None:
    if height == 0 or width == 0:
        raise SceneError(f"{path}: image has zero size {(height, width)}")
    if min(height, width) < min_side:
        raise SceneError(f"{path}: image is {width} x {height} pixels; both sides must be at "
                         f"least {min_side} (the SSIM window)")
    if height * width > MAX_PIXELS:
        raise SceneError(f"{path}: image is {width} x {height} pixels, more than the "
                         f"{MAX_PIXELS} ({int(MAX_PIXELS ** 0.5)}^2) fieldfit fits; scale it down")


def _png_header(path: Path) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR, None for other files."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"),
            head[24], head[25])


def _read_png16(path: Path) -> np.ndarray:
    """A 16-bit colour PNG as (H, W, C) uint16, with pypng: imageio's Pillow plugin reduces
    16-bit RGB(A) to 8 bits."""
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    return np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width,
                                                                           planes)


def _to_float(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        out = array.astype(np.float32)
        if not np.isfinite(out).all():
            raise SceneError(f"{path}: image has non-finite values")
        return out
    raise SceneError(f"{path}: unsupported pixel type {array.dtype}")


def load_image(path: str | Path, alpha: str = "white", min_side: int = 1) -> torch.Tensor:
    """Read an image file as a float tensor.

    Args:
        path: PNG (8/16-bit), JPEG, or any format imageio reads (EXR/float where supported).
        alpha: for RGBA input, composite on ``white`` or ``black``, or ``keep`` 4 channels.
        min_side: smallest accepted side (:data:`MIN_SIDE` for a fitting target); images over
            :data:`MAX_PIXELS` are refused, PNGs before they are decoded.
    Returns:
        (H, W, C) float32; 8/16-bit input scaled to [0, 1]; C is 1 (grey), 3 or 4.
    """
    import imageio.v3 as iio

    path = Path(path)
    if alpha not in ALPHA_MODES:
        raise SceneError(f"alpha mode {alpha!r} unknown; choose from {ALPHA_MODES}")
    if not path.exists():
        raise SceneError(f"{path}: no such file")
    if path.is_dir():
        raise SceneError(f"{path}: is a folder, not an image file")
    if path.stat().st_size == 0:
        raise SceneError(f"{path}: file is empty")
    header = _png_header(path)
    if header is not None:
        _check_size(header[1], header[0], path, min_side)  # before decoding a huge image
    try:
        if header is not None and header[2] == 16 and header[3] in (2, 6):  # RGB, RGBA
            array = _read_png16(path)
        else:
            array = np.asarray(iio.imread(path))
    except Exception as err:  # imageio raises many types for corrupt or foreign files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SceneError(f"{path}: not a readable image ({reason})") from None
    if array.ndim == 3 and array.shape[0] in (1,) and array.shape[-1] not in (1, 3, 4):
        array = array[0]  # single-frame multi-image container
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise SceneError(f"{path}: unsupported image shape {array.shape}")
    _check_size(array.shape[0], array.shape[1], path, min_side)
    image = _to_float(array, path)
    if image.shape[-1] == 2:  # grey + alpha
        image = np.concatenate([image[..., :1]] * 3 + [image[..., 1:]], axis=-1)
    if image.shape[-1] == 4 and alpha != "keep":
        bg = 1.0 if alpha == "white" else 0.0
        a = image[..., 3:4]
        image = image[..., :3] * a + bg * (1.0 - a)
    return torch.from_numpy(np.ascontiguousarray(image))


def pixel_coords(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H*W, 2) pixel-centre coordinates (x, y) in [0, 1], row-major, on ``device``."""
    ys = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)


@dataclass
class ImageTarget:
    """An image ready for fitting: (H*W, 2) coordinates and (H*W, C) values."""

    image: torch.Tensor
    """(H, W, C) float32"""

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def channels(self) -> int:
        return self.image.shape[2]

    def coords(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return pixel_coords(self.height, self.width, device)

    def values(self) -> torch.Tensor:
        return self.image.reshape(-1, self.channels)


def sample_pixels(n_pixels: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """(batch,) int64 pixel indices drawn uniformly with replacement."""
    return torch.randint(0, n_pixels, (batch,), generator=generator, device=generator.device)
