"""Running a task end to end: output folder, resume, fit, outputs, summary."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CHECKPOINT_NAME
from .errors import UserError
from .io import prepare_out_dir, write_json
from .plots import plot_training_curve
from .tasks.base import Task
from .trainer import Trainer, TrainerConfig

log = logging.getLogger("fieldfit")


@dataclass
class RunOptions:
    """Where a fit writes its outputs, and what to do with a run already there."""

    out: Path
    """output folder"""
    resume: bool = False
    """continue the run in --out from its checkpoint"""
    overwrite: bool = False
    """replace a run already in --out"""

    def fit(self, task: Task, trainer_config: TrainerConfig, hooks: Sequence = ()) -> dict:
        """:func:`run_task` into ``out``."""
        return run_task(task, trainer_config, self.out, resume=self.resume,
                        overwrite=self.overwrite, hooks=hooks)


def run_task(task: Task, trainer_config: TrainerConfig, out: Path, resume: bool = False,
             overwrite: bool = False, progress: bool = True, hooks: Sequence = ()) -> dict:
    """Fit ``task`` into ``out``; returns the final metrics (also in ``out/metrics.json``).

    A folder that already holds a run is continued with ``resume`` or replaced with
    ``overwrite``; otherwise it is left untouched and the call fails. ``hooks`` are called as
    ``hook(trainer)`` after each optimiser step.
    """
    out = prepare_out_dir(out)
    existing = out / CHECKPOINT_NAME
    if existing.exists() and not (resume or overwrite):
        raise UserError(f"--out {out}: already holds a run ({CHECKPOINT_NAME}); pass --resume "
                        "to continue it or --overwrite to replace it")
    if resume and not existing.exists():
        raise UserError(f"--resume: {existing} does not exist")
    trainer = Trainer(task, trainer_config, out, progress=progress, hooks=hooks)
    if resume:
        trainer.resume(existing)
    else:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    write_json(out / "config.json", trainer.meta() | {"step": None, "elapsed": None})
    try:
        result = trainer.fit()
    except KeyboardInterrupt:
        log.warning("interrupted at step %d; checkpoint saved in %s; continue with --resume",
                    trainer.step, existing)
        raise
    paths = task.write_outputs(out)
    write_json(out / "metrics.json", {**_read_json(out / "metrics.json"), **result})
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    plot_training_curve(history, out / "training_curve.png", title=f"{task.name}: {out.name}")
    log.info("outputs: %s", ", ".join(str(p) for p in [*paths, out / "training_curve.png"]))
    return result


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}
