"""Learning-rate schedules as a factor of the base lr, by step."""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "exponential", "constant")


def warmup_steps(total: int, warmup: float) -> int:
    """Steps of the linear warm-up: the fraction ``warmup`` of ``total`` (at least one step
    when ``warmup`` > 0)."""
    return max(1, round(warmup * total)) if warmup > 0 else 0


def lr_factor(schedule: str, step: int, total: int, warmup: float, final: float) -> float:
    """The lr factor of step ``step`` (0-based) of ``total``: a linear warm-up over the fraction
    ``warmup`` of the run, then decay to ``final`` as ``step / total`` goes 0 -> 1."""
    n_warm = warmup_steps(total, warmup)
    warm = min(1.0, (step + 1) / n_warm) if n_warm else 1.0
    p = min(max(step / total, 0.0), 1.0) if total > 0 else 1.0
    if schedule == "cosine":
        decay = final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * p))
    elif schedule == "exponential":
        decay = final**p
    elif schedule == "constant":
        decay = 1.0
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {SCHEDULES}")
    return warm * decay
