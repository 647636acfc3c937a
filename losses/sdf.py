"""Signed-distance losses: data terms on (n,) predictions against (n,) signed distances, and
gradient terms on (n, 3) spatial gradients of the field."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .pointwise import l1


def mape(pred: torch.Tensor, target: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """NeuRBF's SDF loss, a mean absolute percentage error: ``|pred - target| / (|target| +
    eps)``."""
    return ((pred - target).abs() / (target.abs() + eps)).mean()


def clipped_sdf_bce(logit: torch.Tensor, target: torch.Tensor, clip: float = 0.1) -> torch.Tensor:
    """The tri-plane paper's SDF loss: BCE-with-logits against ``(clip(sdf, +-clip) + clip) /
    (2 clip)``, so the logit's zero level is the surface and it is positive outside."""
    label = (target.clamp(-clip, clip) + clip) / (2.0 * clip)
    return F.binary_cross_entropy_with_logits(logit, label)


def eikonal(gradients: torch.Tensor) -> torch.Tensor:
    """Mean ``(|grad f| - 1)^2`` of (n, 3) gradients: a distance field has unit slope."""
    return ((gradients.norm(dim=-1) - 1.0) ** 2).mean()


def normal_alignment(gradients: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cos`` between (n, 3) field gradients and (n, 3) surface normals."""
    return (1.0 - F.cosine_similarity(gradients, normals, dim=-1)).mean()


SDF_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": l1,
    "mape": mape,
    "bce": clipped_sdf_bce,
}
"""Data terms by name; ``bce`` makes the field output a logit rather than a distance."""
