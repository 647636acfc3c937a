"""Loss specs such as ``"mse+s3im"``: a sum of named terms, each logged on its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .pointwise import POINTWISE_LOSSES

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Batch-level terms register a factory taking (weights, generator) here.
BATCH_LOSSES: dict[str, Callable[..., LossFn]] = {}


def loss_names() -> list[str]:
    return sorted({*POINTWISE_LOSSES, *BATCH_LOSSES})


@dataclass
class LossTerm:
    name: str
    weight: float
    fn: LossFn


class CompositeLoss:
    """Sum of weighted terms over the same (n, c) prediction and target.

    ``__call__`` returns ``(total, {name: unweighted value})`` so each term can be logged.
    """

    def __init__(self, terms: list[LossTerm]):
        if not terms:
            raise ValueError("loss: at least one term is needed")
        self.terms = terms

    def __call__(self, pred: torch.Tensor, target: torch.Tensor):
        values = {t.name: t.fn(pred, target) for t in self.terms}
        total = sum(t.weight * values[t.name] for t in self.terms)
        return total, values


def parse_loss(
    spec: str, weights: dict[str, float] | None = None, **factory_kwargs
) -> CompositeLoss:
    """Build a :class:`CompositeLoss` from ``"a+b"``; ``weights`` default to 1 per term."""
    weights = weights or {}
    terms = []
    for raw in spec.split("+"):
        name = raw.strip().lower()
        if name in POINTWISE_LOSSES:
            fn = POINTWISE_LOSSES[name]
        elif name in BATCH_LOSSES:
            fn = BATCH_LOSSES[name](**factory_kwargs)
        else:
            raise ValueError(f"unknown loss {raw!r} in {spec!r}; choose from {loss_names()}")
        terms.append(LossTerm(name, float(weights.get(name, 1.0)), fn))
    return CompositeLoss(terms)
