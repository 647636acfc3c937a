"""Losses: pointwise terms and batch-level (structural) terms, composed by name."""

from .compose import BATCH_LOSSES, CompositeLoss, LossTerm, loss_names, parse_loss
from .pointwise import POINTWISE_LOSSES, huber, l1, mse, relative_l2

__all__ = [
    "BATCH_LOSSES", "CompositeLoss", "LossTerm", "POINTWISE_LOSSES", "huber", "l1",
    "loss_names", "mse", "parse_loss", "relative_l2",
]
