"""The lr schedule runs by step: a --seconds budget becomes a recorded step count, and a seed
plus a step count give the same run on any thread count."""

from __future__ import annotations

import json
import math

import pytest
import torch
from fieldfit.scenes import ImageTarget, procedural_image

from fieldfit.errors import UserError
from fieldfit.io import read_jsonl
from fieldfit.run import run_task
from fieldfit.schedule import lr_factor, warmup_steps
from fieldfit.tasks import ImageTask, ImageTaskConfig, build_task
from fieldfit.trainer import TrainerConfig


def small_task(backend: str = "cpp") -> ImageTask:
    cfg = ImageTaskConfig(log2_table=12, batch_size=1024, backend=backend)
    return build_task(ImageTask, ImageTarget(procedural_image(48, 48)), cfg,
                      torch.device("cpu"), seed=3)


def test_lr_factor_closed_form():
    assert warmup_steps(1000, 0.02) == 20
    assert warmup_steps(30, 0.02) == 1  # a short run still finishes its warm-up
    assert warmup_steps(1000, 0.0) == 0
    assert lr_factor("cosine", 0, 1000, 0.02, 0.03) == pytest.approx(1 / 20)
    assert lr_factor("cosine", 9, 1000, 0.02, 0.03) == pytest.approx(
        10 / 20 * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * 9 / 1000))))
    assert lr_factor("cosine", 500, 1000, 0.02, 0.03) == pytest.approx(0.03 + 0.97 / 2)
    assert lr_factor("exponential", 250, 1000, 0.0, 0.01) == pytest.approx(0.01**0.25)
    assert lr_factor("cosine", 1000, 1000, 0.02, 0.03) == pytest.approx(0.03)
    assert lr_factor("constant", 7, 10, 0.0, 0.03) == 1.0


def _losses(run) -> list[float]:
    return [r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]


def test_seconds_budget_is_recorded_and_repeatable_by_plan(tmp_path):
    """A --seconds run plans its step count from probe steps (undone afterwards), records the
    plan, and `--plan` of the record repeats it bit for bit."""
    timed = run_task(small_task(), TrainerConfig(seconds=2.0, log_every=1), tmp_path / "a",
                     progress=False)
    planned, plan = timed["planned_steps"], timed["plan"]
    assert timed["steps"] == planned == plan[-1] >= 1 and plan[0] == 0
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["plan"] == plan
    first = json.loads((tmp_path / "a" / "config.json").read_text())["plan"]
    assert first == plan[:2]  # the probe's plan, before any revision
    repeat = run_task(small_task(), TrainerConfig(plan=tuple(plan), log_every=1),
                      tmp_path / "b", progress=False)
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    assert timed["psnr"] == repeat["psnr"]


class StepClock:
    """A fake ``time.perf_counter`` that only advances when a training step runs: by
    ``slow`` seconds from step ``switch`` on, else by ``fast`` (a fit that gets slower)."""

    def __init__(self, fast: float, slow: float, switch: int):
        self.now, self.fast, self.slow, self.switch = 0.0, fast, slow, switch

    def __call__(self) -> float:
        return self.now

    def wrap(self, task):
        train_step = task.train_step

        def timed_step(step, generator):
            self.now += self.slow if step >= self.switch else self.fast
            return train_step(step, generator)

        task.train_step = timed_step
        return task


def test_seconds_plan_is_revised_when_steps_slow_down(tmp_path, monkeypatch):
    """Steps that get twice as slow after the probe: the plan is revised from the measured
    speed so the run ends near its budget (without revisions it would take 1.75x), and the
    recorded plan repeats the run with the same losses."""
    import fieldfit.trainer as trainer_module

    clock = StepClock(fast=0.01, slow=0.02, switch=25)
    monkeypatch.setattr(trainer_module.time, "perf_counter", clock)
    timed = run_task(clock.wrap(small_task()), TrainerConfig(seconds=2.0, log_every=1),
                     tmp_path / "a", progress=False)
    plan = timed["plan"]
    assert plan[:2] == [0, 200]  # the probe saw only fast steps
    assert 2 < len(plan) <= 8  # revised, at most once at each of 1/4, 1/2 and 3/4
    assert 1.9 <= timed["seconds"] <= 2.1  # 200 steps as planned first would take 3.75 s
    monkeypatch.undo()
    repeat = run_task(small_task(), TrainerConfig(plan=tuple(plan), log_every=1),
                      tmp_path / "b", progress=False)
    assert repeat["steps"] == timed["steps"] == plan[-1]
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


@pytest.mark.parametrize("plan", [(5, 100), (0, 100, 150, 200), (0, 100, 50), (0, 0)])
def test_bad_plan_is_a_user_error(plan):
    with pytest.raises(UserError, match="--plan"):
        TrainerConfig(plan=plan)


def test_same_seed_and_steps_on_one_and_two_threads(tmp_path):
    """The hash-grid kernels give the same bits on any thread count; the MLP's matrix products
    do not (their blocking follows the threads), so the fits agree to float32 rounding, not
    bit for bit, while a wall-clock schedule would differ by whole steps."""
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(run_task(small_task(), TrainerConfig(steps=60, log_every=1),
                                    tmp_path / f"t{n}", progress=False))
    finally:
        torch.set_num_threads(threads)
    one, two = _losses(tmp_path / "t1"), _losses(tmp_path / "t2")
    assert len(one) == len(two) == 60
    assert one[0] == two[0]
    assert torch.allclose(torch.tensor(one), torch.tensor(two), rtol=1e-4, atol=0)
    assert results[0]["psnr"] == pytest.approx(results[1]["psnr"], abs=1e-3)
    assert results[0]["ssim"] == pytest.approx(results[1]["ssim"], abs=1e-5)
    assert one[-1] < 0.5 * one[0]  # it trained
