"""Pointwise losses on (n, c) predictions and targets; each returns a scalar mean."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target)


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred, target)


def huber(pred: torch.Tensor, target: torch.Tensor, delta: float = 0.1) -> torch.Tensor:
    return F.huber_loss(pred, target, delta=delta)


def relative_l2(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """Instant-NGP's image loss: (pred - target)^2 / (pred.detach()^2 + eps)."""
    return ((pred - target) ** 2 / (pred.detach() ** 2 + eps)).mean()


POINTWISE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": mse,
    "l1": l1,
    "huber": huber,
    "relative_l2": relative_l2,
}
