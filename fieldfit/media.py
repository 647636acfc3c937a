"""Depth maps as colour images, and videos (MP4 through imageio's ffmpeg plugin, or GIF)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .io import atomic_write


def colorize_depth(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W, 3) float image of an (H, W) depth map, near = bright (inferno colour map) over
    the 1st..99th percentile of the ``valid`` (H, W) bool pixels; invalid pixels are black."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps

    out = np.zeros((*depth.shape, 3), dtype=np.float32)
    if not valid.any():
        return out
    lo, hi = np.percentile(depth[valid], [1, 99])
    scaled = 1.0 - np.clip((depth - lo) / max(hi - lo, 1e-8), 0, 1)
    out[valid] = colormaps["inferno"](scaled[valid])[:, :3]
    return out


def video_suffix() -> str:
    """'.mp4' when the ffmpeg plugin (imageio-ffmpeg) is installed, else '.gif'."""
    return ".mp4" if importlib.util.find_spec("imageio_ffmpeg") else ".gif"


def write_video(path: Path, frames: list[np.ndarray], fps: int = 24) -> Path:
    """Write float [0, 1] (H, W, 3) frames as ``path`` with the suffix of :func:`video_suffix`;
    returns the path written."""
    import imageio.v3 as iio

    path = Path(path).with_suffix(video_suffix())
    stack = np.stack([(np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8) for f in frames])
    if path.suffix == ".mp4":
        # even sizes for yuv420p; macro_block_size=1 keeps the size as is
        stack = stack[:, : stack.shape[1] // 2 * 2, : stack.shape[2] // 2 * 2]
        atomic_write(path, lambda p: iio.imwrite(p, stack, extension=".mp4", plugin="FFMPEG",
                                                 fps=fps, macro_block_size=1))
    else:
        atomic_write(path, lambda p: iio.imwrite(p, stack, extension=".gif",
                                                 duration=1000 / fps, loop=0))
    return path
