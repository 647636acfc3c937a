"""Running a task end to end: output folder, resume, fit, outputs, summary."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import tyro

from . import distributed
from .checkpoint import CHECKPOINT_NAME
from .errors import UserError
from .interrupts import Interrupted
from .io import (
    prepare_out_dir,
    read_json,
    read_jsonl,
    remove_orphans,
    rewrite_jsonl,
    write_json,
)
from .plots import plot_training_curve
from .tasks.base import Task
from .time_budget import short_budget_warning
from .trainer import Hook, Trainer, TrainerConfig

log = logging.getLogger("fieldfit")

LOCK_NAME = ".fieldfit.lock"


@dataclass
class RunOptions:
    """Where a fit writes its outputs, and what to do with a run already there."""

    out: Path
    """output folder"""
    resume: bool = False
    """continue the run in --out from its checkpoint"""
    overwrite: bool = False
    """replace a run already in --out"""
    tensorboard: bool = False
    """also log every record of metrics.jsonl to OUT/tensorboard (pip install tensorboard)"""
    inputs: tyro.conf.Suppress[tuple[Path, ...]] = ()
    """the input files or folders (their content digest is checked on --resume)"""

    def fit(self, task: Task, trainer_config: TrainerConfig, hooks: Sequence[Hook] = ()) -> dict:
        """:func:`run_task` into ``out`` (with the TensorBoard hook when asked)."""
        if not self.tensorboard:
            return run_task(task, trainer_config, self.out, resume=self.resume,
                            overwrite=self.overwrite, inputs=self.inputs, hooks=hooks)
        from .tensorboard import TensorBoardHook

        board = TensorBoardHook(self.out)
        try:
            return run_task(task, trainer_config, self.out, resume=self.resume,
                            overwrite=self.overwrite, inputs=self.inputs,
                            hooks=[*hooks, board])
        finally:
            board.close()


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder ``out``; UserError if another process holds it.

    The lock is a ``flock`` on ``out/.fieldfit.lock``: the kernel releases it when its holder
    exits, however it dies, so a lock left by a killed run never blocks the next one.
    """
    path = Path(out) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise UserError(f"--out {out}: another fieldfit run (pid {holder}) is writing into "
                            "this folder; wait for it or use another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def input_digests(paths: tuple[Path, ...]) -> dict[str, str]:
    """SHA-256 of each input file (of every file, by relative path, in a folder)."""
    digests = {}
    for path in map(Path, paths):
        digest = hashlib.sha256()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(f"{file.relative_to(path) if path.is_dir() else ''}|".encode())
            with open(file, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
        digests[str(path.resolve())] = digest.hexdigest()
    return digests


def _check_same_inputs(out: Path, inputs: dict[str, str]) -> None:
    """UserError if ``out/config.json`` records inputs whose content differs from ``inputs``."""
    path = out / "config.json"
    saved = read_json(path).get("inputs")
    if not saved or not inputs:
        return
    if sorted(saved.values()) != sorted(inputs.values()):
        raise UserError(f"--resume: the input {', '.join(inputs)} differs from the one this "
                        f"run was started with ({', '.join(saved)}, see {path}); use the same "
                        "input or a new --out")


def run_task(task: Task, trainer_config: TrainerConfig, out: Path, resume: bool = False,
             overwrite: bool = False, progress: bool = True,
             inputs: tuple[Path, ...] = (), hooks: Sequence[Hook] = ()) -> dict:
    """Fit ``task`` into ``out``; returns the final metrics (also in ``out/metrics.json``).

    A folder that already holds a run is continued with ``resume`` or replaced with
    ``overwrite``; otherwise it is left untouched and the call fails. One run at a time may
    use a folder (:func:`run_lock`).

    Under torchrun rank 0 alone prepares, locks and writes the folder; the other ranks wait
    for its verdict (rank 0's error, if any, stops them too), resume from the same
    checkpoint and fit. A rank restarted by ``torchrun --max-restarts`` resumes from the
    checkpoint when there is one.
    """
    out = Path(out)
    resume = resume or (distributed.restarted() and (out / CHECKPOINT_NAME).exists())
    if not distributed.is_main():
        return _follow(task, trainer_config, out, resume)
    with contextlib.ExitStack() as stack:
        try:
            out = prepare_out_dir(out)
            stack.enter_context(run_lock(out))
            trainer = _prepare(task, trainer_config, out, resume, overwrite, progress, inputs,
                               hooks)
        except UserError as err:
            distributed.broadcast_object(str(err))
            raise
        distributed.broadcast_object(None)
        return _fit_and_write(trainer, task, out)


def _follow(task: Task, trainer_config: TrainerConfig, out: Path, resume: bool) -> dict:
    """A rank other than 0: once rank 0 has prepared ``out``, resume from its checkpoint (a
    folder every rank sees) and fit; writes nothing."""
    trainer = Trainer(task, trainer_config, out, progress=False)
    error = distributed.broadcast_object(None)
    if error is not None:
        raise UserError(error)
    if resume:
        trainer.resume(out / CHECKPOINT_NAME)
    return trainer.fit()


def _prepare(task: Task, trainer_config: TrainerConfig, out: Path, resume: bool,
             overwrite: bool, progress: bool, inputs: tuple[Path, ...],
             hooks: Sequence[Hook]) -> Trainer:
    """The trainer of a fresh, resumed or replaced run in the locked folder ``out``."""
    remove_orphans(out)
    existing = out / CHECKPOINT_NAME
    if existing.exists() and not (resume or overwrite):
        raise UserError(f"--out {out}: already holds a run ({CHECKPOINT_NAME}); pass --resume "
                        "to continue it or --overwrite to replace it")
    if resume and not existing.exists():
        raise UserError(f"--resume: {existing} does not exist")
    digests = input_digests(inputs)
    hooks = (*hooks, short_budget_warning(task.field_config.min_steps))
    trainer = Trainer(task, trainer_config, out, progress=progress, hooks=hooks)
    metrics_log = out / "metrics.jsonl"
    if resume:
        _check_same_inputs(out, digests)
        trainer.resume(existing)
        # drop a torn last line and the records logged after the checkpoint
        rewrite_jsonl(metrics_log, read_jsonl(metrics_log, max_step=trainer.step))
    else:
        metrics_log.unlink(missing_ok=True)
        existing.unlink(missing_ok=True)  # --overwrite: no stale "last good" checkpoint
    if distributed.world_size() == 1:  # under torchrun the ranks plan together, in fit()
        trainer.plan()  # a --seconds budget's step count, recorded in config.json
    config = {k: v for k, v in trainer.meta().items() if k not in ("step", "elapsed")}
    write_json(out / "config.json", config | {"inputs": digests})
    return trainer


def _fit_and_write(trainer: Trainer, task: Task, out: Path) -> dict:
    """Fit, then write the task's outputs, metrics.json and the training curve."""
    metrics_log = out / "metrics.jsonl"
    try:
        result = trainer.fit()
    except KeyboardInterrupt as err:  # Interrupted (a signal) or raised by other code
        if isinstance(err, Interrupted) and trainer.saved_step == trainer.step:
            log.warning("%s; continue with --resume", err)
        else:
            log.warning("interrupted at step %d without saving it; %s", trainer.step,
                        trainer.last_good())
        raise
    paths = task.write_outputs(out)
    write_json(out / "metrics.json", {**read_json(out / "metrics.json"), **result})
    plot_training_curve(read_jsonl(metrics_log), out / "training_curve.png",
                        title=f"{task.name}: {out.name}")
    log.info("outputs: %s", ", ".join(str(p) for p in [*paths, out / "training_curve.png"]))
    return result
