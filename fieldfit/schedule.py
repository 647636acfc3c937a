"""Learning-rate schedules as a factor of the base lr."""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "exponential", "constant")


def lr_factor(schedule: str, progress: float, step: int, warmup_steps: int, final: float) -> float:
    """Linear warm-up over ``warmup_steps``, then decay to ``final`` as progress goes 0 -> 1."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    p = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        decay = final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * p))
    elif schedule == "exponential":
        decay = final**p
    elif schedule == "constant":
        decay = 1.0
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {SCHEDULES}")
    return warm * decay
