"""Depth maps as colour images, and videos (MP4 through imageio's ffmpeg plugin, or GIF)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .io import atomic_write


def colorize_depth(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W, 3) float image of an (H, W) depth map, near = bright (inferno colour map) over
    the 1st..99th percentile of the ``valid`` (H, W) bool pixels; invalid pixels are black."""
    return colorize_depth_range(depth, valid)[0]


def colorize_depth_range(depth: np.ndarray, valid: np.ndarray
                         ) -> tuple[np.ndarray, float, float]:
    """:func:`colorize_depth` and the depths (lo, hi) its colours span."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps

    out = np.zeros((*depth.shape, 3), dtype=np.float32)
    if not valid.any():
        return out, 0.0, 0.0
    lo, hi = np.percentile(depth[valid], [1, 99])
    scaled = 1.0 - np.clip((depth - lo) / max(hi - lo, 1e-8), 0, 1)
    out[valid] = colormaps["inferno"](scaled[valid])[:, :3]
    return out, float(lo), float(hi)


def with_colour_bar(image: np.ndarray, lo: float, hi: float, label: str,
                    reverse: bool = False, min_height: int = 200) -> np.ndarray:
    """The (H, W, 3) float image with a labelled inferno colour bar from ``lo`` (dark) to
    ``hi`` (bright; ``reverse``: the other way round) on its right; the image's pixels are
    kept as they are (top-left), padded white below to at least ``min_height`` rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    height = max(image.shape[0], min_height)
    fig = plt.figure(figsize=(1.1, height / 100), dpi=100)
    ax = fig.add_axes((0.1, 0.05, 0.18, 0.9))
    scale = cm.ScalarMappable(colors.Normalize(lo, hi), "inferno_r" if reverse else "inferno")
    bar = fig.colorbar(scale, cax=ax)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)
    fig.canvas.draw()
    strip = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.float32) / 255
    plt.close(fig)
    out = np.ones((height, image.shape[1] + strip.shape[1], 3), dtype=np.float32)
    out[:image.shape[0], :image.shape[1]] = image
    out[:strip.shape[0], image.shape[1]:] = strip[:height]
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
