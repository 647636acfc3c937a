"""A procedural test clip with motion, so the video demo, tests and benchmark need no
download."""

from __future__ import annotations

import math

import torch

from .procedural_image import procedural_image


def procedural_video(frames: int = 16, height: int = 64, width: int = 64) -> torch.Tensor:
    """(T, H, W, 3) float32 in [0, 1]: the procedural image panning right by half its width
    over the clip, under a textured disc that crosses it diagonally and grows.

    Deterministic; every pixel changes over time, so a field without a time input cannot fit
    it.
    """
    background = procedural_image(height, 2 * width)
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    clip = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        shift = round(t * width)
        frame = background[:, shift:shift + width].clone()
        cx, cy, radius = 0.2 + 0.6 * t, 0.75 - 0.5 * t, 0.12 + 0.08 * t
        inside = (x - cx) ** 2 + (y - cy) ** 2 < radius**2
        checker = (torch.sin(2 * math.pi * 6 * (x - cx)) * torch.sin(2 * math.pi * 6 * (y - cy))
                   > 0).float()
        disc = torch.stack([0.9 * checker + 0.05, 0.2 + 0.5 * checker, 0.1 + 0.0 * x], -1)
        clip.append(torch.where(inside[..., None], disc, frame))
    return torch.stack(clip)
