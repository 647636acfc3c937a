"""The check that a ``--seconds`` budget leaves a field the steps it needs."""

from __future__ import annotations

import logging

from .trainer import Hook, Trainer

log = logging.getLogger("fieldfit")

PACE_STEPS = 5
"""steps timed before the budget is judged (the first ones include warm-up costs)"""


def short_budget_warning(min_steps: int) -> Hook:
    """A trainer hook that, once :data:`PACE_STEPS` steps of a ``--seconds`` run are timed,
    logs one warning line when the budget at that pace leaves fewer than ``min_steps`` steps
    (the field's :attr:`~fieldfit.fields.FieldConfig.min_steps`), with the budget that
    would."""

    def check(trainer: Trainer) -> None:
        c = trainer.config
        if trainer.step != PACE_STEPS or not c.seconds or trainer.elapsed <= 0:
            return
        pace = trainer.elapsed / trainer.step  # seconds per step
        steps = int(c.seconds / pace)
        if c.steps is not None:
            steps = min(steps, c.steps)
        if steps < min_steps:
            log.warning("warning: --seconds %g gives about %d steps at %.2f s/step; this field "
                        "needs >= %d to fit more than the mean: use --seconds %d or more, or "
                        "a smaller batch", c.seconds, steps, pace, min_steps,
                        round(min_steps * pace + 0.5))

    return check
