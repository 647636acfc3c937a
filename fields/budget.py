"""Sizing field configs to a parameter budget.

The count is that of the built field, trainable and frozen parameters alike (NeuRBF's frozen
kernel centres and shapes count, as in its budget rule), taken on the meta device so nothing
is allocated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from .field import FieldConfig


def count_parameters(config: FieldConfig, dims: int, out_dims: int) -> int:
    """Parameters (trainable and frozen) of the field that ``config`` builds."""
    with torch.device("meta"):
        return config.build(dims, out_dims).n_parameters(trainable_only=False)


def fit_budget(
    make: Callable[..., FieldConfig], knob: range, budget: int, dims: int, out_dims: int,
    options: Iterable[dict[str, Any]] = ({},), tolerance: float = 1e-3,
) -> FieldConfig:
    """The config ``make(v, **option)`` whose parameter count is nearest to ``budget``.

    For each option in order of preference, bisection finds the integer ``v`` in ``knob``
    nearest the budget (the count must not decrease with ``v``). The first option within
    ``tolerance * budget`` wins, else the nearest one (the earlier on ties).
    """
    best: tuple[int, FieldConfig] | None = None
    for option in options:
        counts: dict[int, int] = {}

        def count(v: int, option=option, counts=counts) -> int:
            if v not in counts:
                counts[v] = count_parameters(make(v, **option), dims, out_dims)
            return counts[v]

        lo, hi = knob.start, knob.stop - 1
        if count(hi) <= budget:
            lo = hi
        elif count(lo) <= budget:  # largest v in [lo, hi] with count(v) <= budget
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if count(mid) <= budget else (lo, mid - 1)
        near = min((v for v in (lo, lo + 1) if v in knob), key=lambda v: abs(count(v) - budget))
        error = abs(count(near) - budget)
        if best is None or error < best[0]:
            best = (error, make(near, **option))
        if error <= tolerance * budget:
            break
    assert best is not None, "fit_budget: no options"
    return best[1]


def check_budget(requested: int | None, built: int, option: str,
                 tolerance: float = 0.1) -> None:
    """ValueError naming ``option`` when a budget-sized field is more than ``tolerance``
    (relative) away from the ``requested`` count: the budget is out of the preset's range."""
    if requested is not None and abs(built - requested) > tolerance * requested:
        raise ValueError(f"{option} {requested}: out of this field preset's range; the "
                         f"nearest size it takes is {built} parameters")
