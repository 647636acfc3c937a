"""A procedural test image with fine detail, so demos and tests need no download."""

from __future__ import annotations

import math

import torch


def procedural_image(height: int = 256, width: int = 256) -> torch.Tensor:
    """(H, W, 3) float32 in [0, 1]: a chirped zone plate, rings, hard-edged discs and stripes.

    Deterministic; frequencies rise towards the corners so a field must resolve fine detail.
    """
    ys = (torch.arange(height, dtype=torch.float64) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    r2 = (x - 0.5) ** 2 + (y - 0.5) ** 2
    zone = 0.5 + 0.5 * torch.cos(2 * math.pi * 60.0 * r2)
    rings = 0.5 + 0.5 * torch.sin(2 * math.pi * (8 * x + 5 * y) + 3 * torch.sin(6 * math.pi * y))
    stripes = (torch.sin(2 * math.pi * 24 * (x + 0.3 * y)) > 0).double()
    image = torch.stack([zone, rings, 0.3 + 0.4 * stripes * (x < 0.5)], dim=-1)
    for cx, cy, rad, colour in (
        (0.25, 0.3, 0.12, (0.9, 0.2, 0.1)),
        (0.7, 0.65, 0.18, (0.1, 0.3, 0.9)),
        (0.62, 0.2, 0.08, (0.95, 0.9, 0.2)),
    ):
        inside = ((x - cx) ** 2 + (y - cy) ** 2 < rad**2).unsqueeze(-1)
        image = torch.where(inside, torch.tensor(colour, dtype=torch.float64), image)
    return image.clamp(0, 1).float()
