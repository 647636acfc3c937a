"""Loss specs such as ``"mse+s3im"``: a sum of named terms, each logged on its own."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .pointwise import POINTWISE_LOSSES
from .s3im import s3im_from_options

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# A batch-level term couples the rays of a batch and may draw random numbers:
# fn(pred, target, generator).
BatchLossFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator | None], torch.Tensor]

# Batch-level terms: factory(options, batch_size) -> BatchLossFn, where ``options`` is the task
# config (each factory reads its own fields, e.g. ``s3im_repeats``; None: defaults) and
# ``batch_size`` the rays per step, checked at build time when the term needs a fixed batch.
BATCH_LOSSES: dict[str, Callable[[Any, int | None], BatchLossFn]] = {
    "s3im": s3im_from_options,
}


def loss_names() -> list[str]:
    return sorted({*POINTWISE_LOSSES, *BATCH_LOSSES})


@dataclass
class LossTerm:
    name: str
    weight: float
    fn: LossFn | BatchLossFn
    batch: bool = False
    """fn is a batch-level term (takes the generator)"""


class CompositeLoss:
    """Sum of weighted terms over the same (n, c) prediction and target.

    ``__call__`` returns ``(total, {name: unweighted value})`` so each term can be logged.
    """

    def __init__(self, terms: list[LossTerm]):
        if not terms:
            raise ValueError("loss: at least one term is needed")
        self.terms = terms

    def __call__(self, pred: torch.Tensor, target: torch.Tensor,
                 generator: torch.Generator | None = None):
        """``generator`` draws the random numbers of batch-level terms (pass the trainer's, so
        a resumed run repeats them); None uses torch's global RNG."""
        values = {t.name: t.fn(pred, target, generator) if t.batch else t.fn(pred, target)
                  for t in self.terms}
        total = sum(t.weight * values[t.name] for t in self.terms)
        return total, values


def parse_loss(spec: str, weights: dict[str, float] | None = None, options: Any = None,
               batch_size: int | None = None) -> CompositeLoss:
    """Build a :class:`CompositeLoss` from ``"a+b"``; ``weights`` default to 1 per term.

    ``options`` (the task config) and ``batch_size`` are handed to batch-level term factories,
    so bad options fail here, when the task is built, rather than at the first step.
    """
    weights = weights or {}
    terms = []
    for raw in spec.split("+"):
        name = raw.strip().lower()
        weight = float(weights.get(name, 1.0))
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"loss weight of {name!r} is {weight}: must be finite and >= 0")
        if name in POINTWISE_LOSSES:
            terms.append(LossTerm(name, weight, POINTWISE_LOSSES[name]))
        elif name in BATCH_LOSSES:
            fn = BATCH_LOSSES[name](options, batch_size)
            terms.append(LossTerm(name, weight, fn, batch=True))
        else:
            raise ValueError(f"unknown loss {raw!r} in {spec!r}; choose from {loss_names()}")
    return CompositeLoss(terms)
