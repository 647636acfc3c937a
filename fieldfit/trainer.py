"""The task-agnostic training loop: optimiser groups, schedule, progress, eval, checkpoints."""

from __future__ import annotations

import copy
import json
import logging
import math
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from fieldfit.fields import to_dict

from . import distributed
from .checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    check_matches,
    checkpoint_bytes,
    load_checkpoint,
    optimizer_from_tensors,
    optimizer_to_tensors,
)
from .device import Precision, autocast, check_precision, resolve_device, stream_seed
from .errors import UserError
from .interrupts import Interrupted, StopSignals
from .io import append_jsonl, write_bytes
from .metrics import psnr_from_mse
from .progress import progress_bar
from .schedule import lr_factor
from .tasks.base import Task

log = logging.getLogger("fieldfit")

DEFAULT_STEPS = 2000
DEFAULT_LR = 1e-2


@dataclass
class TrainerConfig:
    """Optimisation and run control shared by every task."""

    steps: int | None = None
    """training steps (unset: 2000, or planned from --seconds); a seed and a step count give
    the same run on any load and thread count (the lr schedule runs by step)"""
    seconds: float | None = None
    """training-time budget in seconds: it counts the optimisation steps only (not loading,
    sampling the data, building kernels, evaluating or writing outputs). The step count is
    planned from the speed of a few probe steps and revised at 1/4, 1/2 and 3/4 of the run
    from the speed since the last revision; metrics.json records the plan (pass it as
    --plan to repeat the run exactly); given with --steps, the smaller count wins"""
    plan: tuple[int, ...] = ()
    """a --seconds run's plan as metrics.json records it, pairs STEP TOTAL: from step STEP on
    the run is TOTAL steps long (the lr schedule follows); repeats that run bit for bit
    (instead of --steps and --seconds)"""
    lr_encoding: float | None = None
    """learning rate of encodings (grids, planes, RBF weights); unset: the field preset's
    recommendation, else 1e-2"""
    lr_decoder: float | None = None
    """learning rate of decoders (MLPs); unset: the field preset's recommendation, else 1e-2"""
    betas: tuple[float, float] = (0.9, 0.99)
    """Adam betas"""
    eps: float = 1e-15
    """Adam epsilon"""
    schedule: Literal["cosine", "exponential", "constant"] = "cosine"
    """lr decay over the run"""
    warmup: float = 0.02
    """linear lr warm-up over this fraction of the run's steps (0: none)"""
    final_lr_factor: float = 0.03
    """lr at the end of the run, relative to the start"""
    eval_every: int = 0
    """evaluate every N steps (0: only at the end)"""
    evals: int = 0
    """evaluate N times, evenly spaced over the run's steps (also those planned for a
    --seconds budget), besides the end (0: none)"""
    checkpoint_every: int = 500
    """write a checkpoint every N steps (and at the end, and on Ctrl-C)"""
    log_every: int = 25
    """append a line to metrics.jsonl every N steps"""
    seed: int = 0
    """seed of the run: every parameter initialisation (also data-driven ones such as NeuRBF's
    k-means) and every sampler draw from streams derived from it"""
    device: str = "auto"
    """where the run computes: auto (CUDA when available, else CPU), cpu, cuda or cuda:N"""
    precision: Precision = "fp32"
    """fp32, or mixed: the MLPs under autocast, float16 with loss scaling on CUDA, bfloat16
    on a CPU with bfloat16 instructions (faster on some CPUs, slower on others: time both)"""
    dist_timeout: float = 300.0
    """under torchrun: seconds a rank waits for its peers in a collective before it stops
    with an error (also bounds rank 0's lone evaluations of image and SDF runs)"""

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 0:
            raise UserError(f"--steps {self.steps}: must be >= 0")
        if self.seconds is not None and not self.seconds > 0:
            raise UserError(f"--seconds {self.seconds}: must be > 0")
        if self.plan:
            check_plan(self.plan)
            if self.steps is not None or self.seconds is not None:
                raise UserError("--plan: give it instead of --steps and --seconds")
        for name in ("lr_encoding", "lr_decoder"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise UserError(f"--{name.replace('_', '-')}: must be > 0")
        if not 0 <= self.final_lr_factor < math.inf:
            raise UserError(f"--final-lr-factor {self.final_lr_factor}: must be >= 0 and finite")
        if not 0 <= self.warmup <= 1:
            raise UserError(f"--warmup {self.warmup}: must be a fraction in [0, 1]")
        for name in ("eval_every", "evals", "checkpoint_every", "log_every"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')}: must be >= 0")
        if not 0 < self.dist_timeout < math.inf:
            raise UserError(f"--dist-timeout {self.dist_timeout}: must be > 0 and finite")

    def resolved_device(self) -> torch.device:
        """The ``--device`` of this run, checked against ``--precision``; under torchrun, the
        rank's GPU, once the rank has joined the process group (nccl on CUDA, else gloo)."""
        device = distributed.local_device(resolve_device(self.device))
        check_precision(self.precision, device)
        distributed.join(distributed.backend_for(device), self.dist_timeout)
        return device

    @property
    def total_steps(self) -> int | None:
        """The step count, unless it is to be estimated from ``seconds`` (the last of a
        ``plan``)."""
        if self.plan:
            return self.plan[-1]
        if self.steps is None and self.seconds is None:
            return DEFAULT_STEPS
        return self.steps


def plan_pairs_of(plan: Sequence[int]) -> list[tuple[int, int]]:
    """The (step, total) pairs of a flat ``STEP TOTAL ...`` plan (a trailing odd value is
    dropped: :func:`check_plan` rejects it)."""
    return list(zip(plan[::2], plan[1::2], strict=False))


def check_plan(plan: tuple[int, ...]) -> None:
    """UserError unless ``plan`` is pairs STEP TOTAL starting at step 0, each revision made
    before the run planned so far had ended."""
    pairs = plan_pairs_of(plan)
    ok = len(plan) >= 2 and len(plan) % 2 == 0 and pairs[0][0] == 0
    ok = ok and all(t >= 1 for _, t in pairs) and all(
        s0 < s1 < t0 for (s0, t0), (s1, _) in zip(pairs, pairs[1:], strict=False))
    if not ok:
        raise UserError(f"--plan {' '.join(map(str, plan))}: must be pairs STEP TOTAL from "
                        "step 0 on, each STEP after the previous one and before its TOTAL")


PROBE_STEPS = 3
"""timed probe steps (after one untimed) from which a --seconds budget's step count is
estimated"""

REPLAN_AT = (0.25, 0.5, 0.75)
"""fractions of a --seconds run's planned steps at which the plan is revised from the speed
of the steps since the last revision (steps get slower or faster as a fit proceeds: a NeRF's
ray count grows as its occupancy grid empties)"""

REPLAN_TOLERANCE = 0.02
"""a revision that changes the step count by less than this fraction is not made"""


Hook = Callable[["Trainer"], None]


class Trainer:
    """Fits a :class:`Task` on the task's device; writes ``metrics.jsonl`` and checkpoints into
    ``out_dir``. ``hooks`` are called with the trainer after every optimiser step.

    The samplers draw from one CPU generator (the ``batches`` stream of the seed), whatever
    the device, so a run resumes on another device with the same batches.

    Under torchrun every rank runs this loop on the same generator (each task trains on its
    rank's share of the global batch), the gradients are averaged over the ranks before each
    optimiser step (:class:`~fieldfit.distributed.GradientAverager`) and the logged terms
    too; rank 0 alone logs, writes checkpoints and runs the hooks.
    """

    def __init__(self, task: Task, config: TrainerConfig, out_dir: Path, progress: bool = True,
                 hooks: Sequence[Hook] = ()):
        self.task, self.config, self.out_dir = task, config, Path(out_dir)
        self.progress = progress
        self.hooks = list(hooks)
        self.device = task.device
        check_precision(config.precision, self.device)
        self.generator = torch.Generator().manual_seed(stream_seed(config.seed, "batches"))
        self.scaler = (torch.amp.GradScaler("cuda")
                       if config.precision == "mixed" and self.device.type == "cuda" else None)
        chosen = {"encoding": config.lr_encoding, "decoder": config.lr_decoder}
        lrs = {"encoding": DEFAULT_LR, "decoder": DEFAULT_LR, **task.lr_defaults(),
               **{key: lr for key, lr in chosen.items() if lr is not None}}
        groups = []
        for g in task.param_groups():
            if g.lr_key not in lrs:
                raise ValueError(f"param group {g.name!r}: unknown lr key {g.lr_key!r}")
            groups.append({"params": g.params, "lr": lrs[g.lr_key] * g.lr_mult, "name": g.name})
        # fused: one kernel over all parameters (CPU and CUDA), ~10x faster than the default
        # loop on a CPU
        self.optimizer = torch.optim.Adam(groups, betas=config.betas, eps=config.eps, fused=True)
        self.main = distributed.is_main()
        self.averager: distributed.GradientAverager | None = None
        if distributed.world_size() > 1:
            self.averager = distributed.GradientAverager([p for g in groups for p in g["params"]])
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.step = 0
        self.elapsed = 0.0
        self.plan_pairs: list[tuple[int, int]] = []
        """(step, total) revisions of the plan: from ``step`` on the run is ``total`` steps
        long (fixed by :meth:`plan`, revised for a --seconds budget)"""
        self._pace_mark = (0, 0.0, 0.0)
        """(step, elapsed, fraction of the plan then in force) where the pace of the next
        revision starts; only the :data:`REPLAN_AT` fractions past it are due"""
        self.history: list[dict] = []
        self.saved_step: int | None = None
        """step of the checkpoint on disk that this run wrote or resumed from"""
        self._pending: tuple[int, bytes] | None = None
        """a periodic checkpoint, written once the next step's loss shows its state is good"""

    # -- checkpoints -------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def meta(self) -> dict:
        return {
            "task": self.task.name,
            "task_config": self.task.config_dict(),
            "trainer_config": to_dict(self.config),
            "step": self.step,
            "elapsed": self.elapsed,
            "planned_steps": self.planned_steps,
            "plan": self.recorded_plan,
        }

    @property
    def recorded_plan(self) -> list[int]:
        """:attr:`plan_pairs` flat, as ``--plan`` takes them and metrics.json records them."""
        return [x for pair in self.plan_pairs for x in pair]

    @property
    def planned_steps(self) -> int | None:
        """Steps this run trains for, as planned so far (None before :meth:`plan`)."""
        if not self.plan_pairs and self.config.seconds is None:
            return self.config.total_steps
        return self.plan_pairs[-1][1] if self.plan_pairs else None

    def to_checkpoint(self) -> Checkpoint:
        tensors, groups = optimizer_to_tensors(self.optimizer)
        meta = {**self.meta(), "optimizer_groups": groups}
        return Checkpoint(meta=meta, model=self.task.model.state_dict(), optimizer=tensors,
                          rng=self.generator.get_state())

    def resume(self, path: Path | None = None) -> None:
        """Restore model, optimiser, RNG, step and elapsed time from a checkpoint."""
        path = Path(path or self.checkpoint_path)
        ckpt = load_checkpoint(path)
        if ckpt.meta.get("task") != self.task.name:
            raise UserError(f"{path}: checkpoint is of task {ckpt.meta.get('task')!r}, "
                            f"not {self.task.name!r}")
        if _without_path(ckpt.meta.get("task_config")) != _without_path(
                json.loads(json.dumps(self.task.config_dict()))):
            raise UserError(f"{path}: checkpoint was made with a different task/field config; "
                            "use the same options or a new --out")
        check_matches(ckpt, path, self.task.model, self.optimizer, self.generator)
        try:
            self.task.model.load_state_dict(ckpt.model)
            self.optimizer.load_state_dict(
                optimizer_from_tensors(ckpt.optimizer, ckpt.meta["optimizer_groups"]))
        except (RuntimeError, KeyError, ValueError) as err:
            reason = str(err).splitlines()[0]
            raise UserError(f"{path}: checkpoint does not match this model ({reason})") from None
        if ckpt.rng is not None:
            self.generator.set_state(ckpt.rng)
        self.step = int(ckpt.meta["step"])
        self.elapsed = float(ckpt.meta["elapsed"])
        saved = ckpt.meta.get("plan") or [0, ckpt.meta.get("planned_steps")]
        if self.config.seconds is not None and self.config.steps is None and \
                len(saved) % 2 == 0 and all(isinstance(x, int) for x in saved) and \
                ckpt.meta["trainer_config"].get("seconds") == self.config.seconds:
            self.plan_pairs = plan_pairs_of(saved)  # the same budget: the same plan
        passed = self.step / self.plan_pairs[-1][1] if self.plan_pairs else 0.0
        self._pace_mark = (self.step, self.elapsed, passed)
        self.saved_step = self.step
        log.info("resumed from %s at step %d", path, self.step)

    # -- safe checkpoints: never a non-finite state, never a false "last good" -----------
    def last_good(self) -> str:
        """Where the last good checkpoint is, for error messages."""
        if not self.main:  # rank 0 writes them
            return f"rank 0's last good checkpoint: {self.checkpoint_path}"
        if self.saved_step is None:
            return "no checkpoint was written"
        return f"last good checkpoint: {self.checkpoint_path} (step {self.saved_step})"

    def _non_finite(self) -> str | None:
        """Name of the first model or optimiser tensor holding NaN/inf, else None."""
        named = list(self.task.model.state_dict().items())
        named += [(f"optimizer state {i}/{k}", v) for i, s in
                  enumerate(self.optimizer.state.values()) for k, v in s.items()]
        for name, value in named:
            if torch.is_tensor(value) and value.is_floating_point() \
                    and not torch.isfinite(value).all():
                return name
        return None

    def _snapshot(self) -> tuple[int, bytes]:
        """The current state as checkpoint bytes; UserError if it is not finite."""
        bad = self._non_finite()
        if bad is not None:
            raise UserError(f"training diverged by step {self.step} ({bad} is not finite); "
                            f"{self.last_good()} (try a lower lr)")
        return self.step, checkpoint_bytes(self.to_checkpoint())

    def _write(self, step: int, data: bytes) -> None:
        """Write a snapshot; UserError naming the last good checkpoint (which is kept) if the
        write fails, e.g. on a full disk."""
        try:
            write_bytes(self.checkpoint_path, data, sync=True)
        except UserError as err:
            raise UserError(f"{err}; {self.last_good()}") from None
        self.saved_step = step

    def checkpoint(self) -> None:
        """Write the current state if it is finite (see :meth:`_snapshot`, :meth:`_write`);
        rank 0 writes, the other ranks hold the same state."""
        self._pending = None
        if self.main:
            self._write(*self._snapshot())

    def _check_final_loss(self) -> None:
        """UserError unless the final state gives a finite training loss (on a copy of the
        generator): a last step can blow a field up to NaN outputs with finite weights."""
        probe = torch.Generator().set_state(self.generator.get_state())
        buffers = {name: b.clone() for name, b in self.task.model.named_buffers()}
        loss = self.task.train_step(self.step, probe)["loss"].detach()
        self.task.model.load_state_dict(buffers, strict=False)  # e.g. NeRF's adaptive ray count
        loss = distributed.mean_values({"loss": loss.item()})["loss"]
        if not math.isfinite(loss):
            raise UserError(f"training diverged at step {self.step}: the final field gives "
                            f"loss {loss}; {self.last_good()} (try a lower lr)")

    def _evaluate(self) -> dict[str, float]:
        """The task's evaluation on every rank: sharded over the ranks by tasks that can
        (``Task.sharded_evaluation``), else run by rank 0 and sent to the others."""
        if self.task.sharded_evaluation or distributed.world_size() == 1:
            return self.task.evaluate()
        return distributed.broadcast_object(self.task.evaluate() if self.main else None)

    def _check_result(self, result: dict) -> None:
        bad = {k: v for k, v in result.items() if isinstance(v, float) and math.isnan(v)}
        if bad:
            raise UserError(f"evaluation at step {self.step} gave {bad}: the field outputs "
                            f"NaN; {self.last_good()}")

    # -- loop --------------------------------------------------------------------------
    def plan(self) -> int:
        """The step count in force at this step: ``--steps``, ``--plan``'s, or for a
        ``--seconds`` budget the steps that fit in it at the speed measured so far (a resumed
        run's) or on probe steps (revised later by :meth:`_replan`)."""
        c = self.config
        if c.plan:
            self.plan_pairs = plan_pairs_of(c.plan)
        elif c.seconds is None:  # a step count (also one changed after construction)
            self.plan_pairs = [(0, c.total_steps)]
        if not self.plan_pairs:
            if self.step > 0 and self.elapsed > 0:
                per_step = self.elapsed / self.step
            else:
                per_step = self._probe_seconds_per_step()
            per_step = distributed.mean_values({"s": per_step})["s"]  # one plan for all ranks
            total = self._steps_in_budget(per_step)
            self.plan_pairs = [(0, total)]
            log.info("--seconds %g: %.3g s per step -> %d steps (revised at %s of them)",
                     c.seconds, per_step, total,
                     ", ".join(f"{f:.0%}" for f in REPLAN_AT))
        return next(t for s, t in reversed(self.plan_pairs) if s <= self.step)

    def _steps_in_budget(self, per_step: float) -> int:
        """The run's length if the steps left in the ``--seconds`` budget take ``per_step``
        seconds each (capped by ``--steps``)."""
        c = self.config
        remaining = max(c.seconds - self.elapsed, 0.0)
        total = self.step + max(1, int(remaining / max(per_step, 1e-9)))
        return min(total, c.steps) if c.steps is not None else total

    def _replan(self, bar) -> None:
        """At each of :data:`REPLAN_AT` of a ``--seconds`` run (once each, as fractions of the
        plan in force), revise its length from the speed of the steps since the last one.
        ``elapsed`` is the ranks' mean, so every rank of a torchrun makes the same revision."""
        c, total = self.config, self.plan()
        if c.seconds is None or c.plan:
            return
        start, start_time, passed = self._pace_mark  # revisions are made only at marks
        due = [f for f in REPLAN_AT if f > passed and self.step == round(f * total)]
        if not due or self.step <= start:
            return
        self._pace_mark = (self.step, self.elapsed, due[0])
        per_step = (self.elapsed - start_time) / (self.step - start)
        revised = max(self._steps_in_budget(per_step), self.step + 1)
        if abs(revised - total) <= REPLAN_TOLERANCE * total:
            return
        self.plan_pairs.append((self.step, revised))
        bar.total = revised
        bar.refresh()
        log.info("--seconds %g: %.3g s per step since step %d -> %d steps (was %d)",
                 c.seconds, per_step, start, revised, total)

    def _probe_seconds_per_step(self) -> float:
        """Seconds per training step, timed on :data:`PROBE_STEPS` steps after an untimed one;
        the model, its buffers, the optimiser and the generator are restored afterwards, so
        the run is the one ``--plan`` of its record makes."""
        model_state = {k: v.clone() for k, v in self.task.model.state_dict().items()}
        optimizer_state = copy.deepcopy(self.optimizer.state_dict())
        generator_state = self.generator.get_state()
        times = []
        try:
            for i in range(PROBE_STEPS + 1):
                t0 = time.perf_counter()
                self.task.before_step(self.step + i)
                self.task.take_reset_parameters()
                with autocast(self.device, self.config.precision):
                    terms = self.task.train_step(self.step + i, self.generator)
                host_values(terms)
                self._optimise(terms["loss"])
                times.append(time.perf_counter() - t0)
        finally:
            self.task.model.load_state_dict(model_state)
            self.optimizer.load_state_dict(optimizer_state)
            self.generator.set_state(generator_state)
            self.task.take_reset_parameters()
        return max(sum(times[1:]) / PROBE_STEPS, 1e-9)

    def _done(self) -> bool:
        return self.step >= self.plan()

    def _eval_due(self) -> bool:
        """Whether the step just finished is one of ``--eval-every`` or of ``--evals``."""
        c, planned = self.config, self.plan()
        if c.eval_every and self.step % c.eval_every == 0:
            return True
        return bool(c.evals) and self.step in {round(planned * (i + 1) / (c.evals + 1))
                                               for i in range(c.evals)}

    def _set_lr(self) -> float:
        c = self.config
        factor = lr_factor(c.schedule, self.step, self.plan(), c.warmup, c.final_lr_factor)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        return factor

    def _optimise(self, loss: torch.Tensor) -> None:
        """One optimiser step on ``loss`` (with loss scaling under mixed precision); a loss
        that reaches no parameter (e.g. every ray missed the occupied cells) steps nothing."""
        self.optimizer.zero_grad(set_to_none=True)
        if loss.requires_grad:
            (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        elif self.averager is None:
            return
        if self.averager is not None and not self.averager.average():
            return  # no rank's loss reached a parameter
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()

    def _log(self, record: dict) -> None:
        self.history.append(record)
        if not self.main:
            return
        try:
            append_jsonl(self.out_dir / "metrics.jsonl", record)
        except OSError as err:
            raise UserError(f"{self.out_dir / 'metrics.jsonl'}: could not write "
                            f"({err.strerror or err}); {self.last_good()}") from None

    def fit(self) -> dict[str, float]:
        """Train until the step or time budget is spent; returns the final evaluation.

        Ctrl-C or SIGTERM stops after the step in progress, writes a checkpoint and raises
        :class:`Interrupted`, so ``--resume`` continues bit for bit. A non-finite loss or state
        stops the run with an error instead of training on (or saving) garbage.
        """
        self.task.model.train()
        bar = None
        try:
            if self.averager is not None:  # rank 0's state (fresh or resumed) on every rank
                distributed.broadcast_module(self.task.model)
            planned = self.plan()  # under torchrun: every rank together, one count for all
            bar = progress_bar(planned, "training", "step", initial=min(self.step, planned),
                               disable=not (self.progress and self.main))
            return self._fit(bar)
        except distributed.PeerLost as err:
            if bar is not None:
                bar.close()
            raise UserError(f"{err} at step {self.step}; {self.last_good()}") from None

    def _fit(self, bar) -> dict[str, float]:
        c = self.config
        with StopSignals() as stop:
            while not self._done() and stop.signum is None:
                t0 = time.perf_counter()
                factor = self._set_lr()
                self.task.before_step(self.step)
                for param in self.task.take_reset_parameters():
                    self.optimizer.state.pop(param, None)
                with autocast(self.device, c.precision):
                    terms = self.task.train_step(self.step, self.generator)
                values = host_values(terms)
                if self.averager is not None:  # the global batch's terms; one stop for all
                    values = distributed.mean_values(
                        {**values, "stop": float(stop.signum is not None)})
                    if values.pop("stop") and stop.signum is None:
                        stop.signum = signal.SIGTERM
                if not math.isfinite(values["loss"]):
                    bar.close()
                    raise UserError(f"loss became {values['loss']} at step {self.step}; "
                                    f"{self.last_good()} (try a lower lr)")
                if self._pending is not None:  # its state has just given a finite loss
                    self._write(*self._pending)
                    self._pending = None
                self._optimise(terms["loss"])
                self.step += 1
                self.elapsed += time.perf_counter() - t0
                if self.averager is not None:  # one clock for the --seconds budget
                    self.elapsed = distributed.mean_values({"t": self.elapsed})["t"]
                if "mse" in values:
                    values["psnr"] = psnr_from_mse(values["mse"])
                self._replan(bar)
                for hook in self.hooks if self.main else ():
                    hook(self)
                bar.update(1)
                if self.step % max(c.log_every, 1) == 0 or self._done():
                    post = {k: f"{v:.4g}" for k, v in values.items() if k in ("loss", "psnr")}
                    bar.set_postfix(post, refresh=False)
                    self._log({"step": self.step, "time": round(self.elapsed, 3),
                               "lr_factor": factor, **values})
                if self._eval_due() and not self._done():
                    self._log({"step": self.step, "time": round(self.elapsed, 3),
                               "eval": self._evaluate()})
                    self.task.model.train()
                if c.checkpoint_every and self.step % c.checkpoint_every == 0 and self.main:
                    self._pending = self._snapshot()
            bar.close()
            if stop.signum is not None:
                stop.saving = True
                self.checkpoint()
                raise Interrupted(stop.signum, f"stopped at step {self.step}; checkpoint "
                                  f"saved: {self.checkpoint_path}")
        final = self._snapshot() if self.main else None
        self._check_final_loss()
        result = self._evaluate()
        self._check_result(result)
        if final is not None:
            self._write(*final)
        self._log({"step": self.step, "time": round(self.elapsed, 3), "eval": result})
        steps_per_s = self.step / self.elapsed if self.elapsed > 0 else math.nan
        if self.main:
            budget = f" (budget {c.seconds:g} s)" if c.seconds else ""
            log.info("done: %d steps in %.1f s of training%s, %.1f steps/s", self.step,
                     self.elapsed, budget, steps_per_s)
            if c.seconds:
                log.info("--plan %s repeats this run", " ".join(map(str, self.recorded_plan)))
        extra = {}
        if self.averager is not None:
            extra = {"ranks": distributed.world_size(),
                     "allreduce_s_per_step": self.averager.seconds / max(self.averager.calls, 1)}
        return {**result, "steps": self.step, "planned_steps": self.planned_steps,
                "plan": self.recorded_plan,
                "seconds": self.elapsed, "steps_per_s": steps_per_s, **extra}


def _without_path(task_config: dict | None) -> dict | None:
    """A task config without its data's path: a moved input resumes (its content is checked
    by the run's input digests)."""
    if not isinstance(task_config, dict) or not isinstance(task_config.get("data"), dict):
        return task_config
    return {**task_config, "data": {k: v for k, v in task_config["data"].items()
                                    if k != "path"}}


def host_values(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """The scalar ``terms`` as floats, with one device-to-host copy per device (not one sync
    per term)."""
    by_device: dict[torch.device, list[str]] = {}
    for name, value in terms.items():
        by_device.setdefault(value.device, []).append(name)
    values: dict[str, float] = {}
    for names in by_device.values():
        stacked = torch.stack([terms[n].detach().float().reshape(()) for n in names])
        values.update(zip(names, stacked.cpu().tolist(), strict=True))
    return {name: values[name] for name in terms}
