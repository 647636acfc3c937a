"""Packed samples: every sample of every ray in flat (n_samples,) tensors.

Samples are stored ray by ray (``ray_indices`` sorted ascending) and in order of distance along
each ray, as the marcher produces them. Per-ray operations are segmented scans over these flat
tensors, so there is no Python loop over rays and no padding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class RaySamples(NamedTuple):
    """Intervals ``[t_starts, t_ends]`` along rays, packed."""

    ray_indices: torch.Tensor
    """(n_samples,) int64, sorted ascending"""
    t_starts: torch.Tensor
    """(n_samples,) distances along the ray where each interval starts"""
    t_ends: torch.Tensor
    """(n_samples,) distances where it ends"""

    def __len__(self) -> int:
        return self.ray_indices.shape[0]

    @property
    def t_mids(self) -> torch.Tensor:
        return 0.5 * (self.t_starts + self.t_ends)

    def select(self, index: torch.Tensor) -> RaySamples:
        """The samples at ``index`` (a boolean mask or sorted indices keep the packing)."""
        return RaySamples(self.ray_indices[index], self.t_starts[index], self.t_ends[index])

    def points(self, origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """(n_samples, 3) midpoints of the intervals for rays ``origins + t * directions``."""
        return origins[self.ray_indices] + self.t_mids[:, None] * directions[self.ray_indices]


def segment_counts(ray_indices: torch.Tensor, n_rays: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_rays,) index of each ray's first sample and (n_rays,) its number of samples."""
    counts = torch.bincount(ray_indices, minlength=n_rays)
    return torch.cumsum(counts, 0) - counts, counts


def exclusive_cumsum(values: torch.Tensor, ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Per-ray sum of the values before each sample: out[i] = sum of values[j], j < i, same ray.

    Differentiable. One global scan in float64 minus each ray's offset keeps float32 accuracy
    for any number of samples.
    """
    if values.numel() == 0:
        return values
    starts, _ = segment_counts(ray_indices, n_rays)
    total = torch.cumsum(values.double(), 0) - values.double()
    return (total - total[starts[ray_indices]]).to(values.dtype)


def accumulate_along_rays(weights: torch.Tensor, ray_indices: torch.Tensor, n_rays: int,
                          values: torch.Tensor | None = None) -> torch.Tensor:
    """(n_rays, c) per-ray sums of ``weights * values`` ((n_samples, c) values; None: 1)."""
    contrib = weights[:, None] if values is None else weights[:, None] * values
    out = torch.zeros(n_rays, contrib.shape[1], dtype=contrib.dtype, device=contrib.device)
    return out.index_add(0, ray_indices, contrib)
