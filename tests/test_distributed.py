"""Data-parallel fits under ``torchrun`` (gloo, 2 ranks on localhost): identical fields on both
ranks, equal to one process at the same global batch, checkpoints that resume at another
world size, and a killed rank that stops the other with one line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fieldfit.fields import to_dict
from fieldfit.renderers import OccupancyConfig
from fieldfit.scenes import ImageTarget, load_image, procedural_image
from safetensors.torch import load_file

from fieldfit.checkpoint import load_checkpoint
from fieldfit.cli import main
from fieldfit.commands.image import build_image_task
from fieldfit.commands.sdf import build_sdf_task
from fieldfit.run import run_task
from fieldfit.tasks import ImageTask, ImageTaskConfig, NerfTaskConfig, SdfTaskConfig
from fieldfit.trainer import TrainerConfig

HANG = 120  # seconds: a launch that takes longer than this has hung
WORKER = Path(__file__).with_name("distributed_worker.py")
IMAGE = ImageTaskConfig(log2_table=12, batch_size=4096)
SDF = SdfTaskConfig(n_samples=16384, batch_size=2048, eval_points=4096,
                    eval_surface_points=2000, resolution=24, log2_table=12, max_res=64)
NERF = NerfTaskConfig(log2_table=12, samples_per_step=4096, render_steps=64, eval_views=2,
                      video_frames=0, chunk=4096,
                      occupancy=OccupancyConfig(resolution=16, update_every=4, warmup_steps=8))


def torchrun(*args, nproc: int = 2, options: tuple = ()) -> subprocess.Popen:
    """``torchrun --standalone --nproc-per-node nproc [options] args`` (one thread a rank)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(nproc), *options, *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, stderr = proc.communicate(timeout=HANG)
    return proc.returncode, stderr


def fit_here(name: str, data: Path, out: Path, steps: int, resume: bool = False):
    """The one-process run of the worker's plan entry; returns the task."""
    train = TrainerConfig(steps=steps, checkpoint_every=0, log_every=1, schedule="constant")
    if name == "image":
        target = ImageTarget(load_image(data))
        task = build_image_task(target, IMAGE, train, ImageTask.source_of(target, data, "white"))
    else:
        task = build_sdf_task(data, SDF, train)
    run_task(task, train, out, resume=resume, progress=False)
    return task


def model_state(task) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in task.model.state_dict().items()}


def state(out: Path, rank: int) -> dict[str, torch.Tensor]:
    return load_file(str(out / f"state_rank{rank}.safetensors"))


def assert_same_state(a: dict, b: dict, **tolerance) -> None:
    """Bit for bit, or within ``tolerance``; with a tolerance, a hash table may differ by
    less than one lr step (1e-2) in at most 0.1% of its entries: Adam (eps 1e-15) turns the
    rounding-level gradients of barely touched entries, whose sums the ranks split
    differently, into steps of about the lr."""
    assert a.keys() == b.keys()
    for name in a:
        if tolerance and name.endswith("table"):
            close = torch.isclose(a[name], b[name], **tolerance)
            assert close.float().mean() > 0.999, name
            assert (a[name] - b[name]).abs().max() < 1e-2, name
        elif tolerance:
            torch.testing.assert_close(a[name], b[name], msg=name, **tolerance)
        else:
            assert torch.equal(a[name], b[name]), name


def test_two_ranks_hold_one_field_equal_to_one_process_and_resume_at_other_sizes(
        tmp_path, png, cube, procedural_scene, one_thread):
    steps = 20
    # 1 -> 2 ranks: ten steps here, the next ten on two ranks
    fit_here("image", png, tmp_path / "image_1to2", steps // 2)
    plan = [
        {"task": "image", "data": png, "config": IMAGE, "steps": steps, "out": "image"},
        {"task": "image", "data": png, "config": IMAGE, "steps": steps // 2,
         "out": "image_2to1"},
        {"task": "image", "data": png, "config": IMAGE, "steps": steps, "out": "image_1to2",
         "resume": True},
        {"task": "sdf", "data": cube, "config": SDF, "steps": steps, "out": "sdf"},
        {"task": "nerf", "data": procedural_scene, "config": NERF, "steps": 24, "out": "nerf"},
    ]
    for run in plan:
        run.update(data=str(run["data"]), config=to_dict(run["config"]),
                   out=str(tmp_path / run["out"]))
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    code, stderr = finish(torchrun(WORKER, tmp_path / "plan.json"))
    assert code == 0, stderr[-3000:]

    for run in plan:  # every tensor, occupancy grid and ray count included, bit for bit
        assert_same_state(state(Path(run["out"]), 0), state(Path(run["out"]), 1))
    nerf = state(tmp_path / "nerf", 0)
    assert nerf["grid.occs"].max() > 0  # the occupancy grid was updated

    # one process, same global batch and sample stream: the same field up to rounding
    tolerance = {"atol": 2e-5, "rtol": 1e-4}
    one = {name: model_state(fit_here(name, data, tmp_path / f"{name}_one", steps))
           for name, data in (("image", png), ("sdf", cube))}
    for name, data in (("image", png), ("sdf", cube)):
        fresh = model_state(fit_here(name, data, tmp_path / f"{name}_fresh", 0))
        assert any((fresh[k] - one[name][k]).abs().max() > 1e-3 for k in fresh)  # it trained
        assert_same_state(state(tmp_path / name, 0), one[name], **tolerance)
        assert json.loads((tmp_path / name / "metrics.json").read_text())["ranks"] == 2
    assert_same_state(state(tmp_path / "image_1to2", 0), one["image"], **tolerance)
    # 2 -> 1 rank: the two-rank checkpoint of step 10 continues here to step 20
    resumed = fit_here("image", png, tmp_path / "image_2to1", steps, resume=True)
    assert_same_state(model_state(resumed), one["image"], **tolerance)


def rank_pid(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of worker ``rank`` among the launcher's children (read from /proc)."""
    for _ in range(600):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                env = (entry / "environ").read_bytes().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
            if ppid == launcher.pid and f"RANK={rank}".encode() in env:
                return int(entry.name)
        time.sleep(0.1)
    raise AssertionError(f"no worker of rank {rank}")


def wait_for_checkpoint(out: Path, launcher: subprocess.Popen, past: int) -> None:
    """Wait until rank 0 has logged step ``past`` with a checkpoint on disk."""
    log = out / "metrics.jsonl"
    for _ in range(HANG * 10):
        assert launcher.poll() is None, launcher.communicate()[1][-3000:]
        if log.exists() and (out / "checkpoint.safetensors").exists():
            lines = log.read_text().splitlines()
            if lines and json.loads(lines[-2 if len(lines) > 1 else -1])["step"] >= past:
                return
        time.sleep(0.1)
    raise AssertionError("the run did not get going")


IMAGE_ARGS = ["--log2-table", "12", "--batch-size", "4096", "--log-every", "1",
              "--checkpoint-every", "5"]


def kill_rank_1(out: Path, png: Path, *args, options: tuple = ()) -> tuple[int, str]:
    """Launch ``fieldfit image png --out out ... ARGS`` on 2 ranks, SIGKILL rank 1 once rank
    0 has a checkpoint past step 12, and wait for the launcher: its exit code and stderr."""
    launcher = torchrun("-m", "fieldfit.cli", "image", png, "--out", out, *IMAGE_ARGS,
                        "--dist-timeout", "30", *args, options=options)
    try:
        wait_for_checkpoint(out, launcher, 12)
        os.kill(rank_pid(launcher, 1), signal.SIGKILL)
        return finish(launcher)
    finally:
        launcher.kill()


def test_a_killed_rank_stops_the_other_with_one_line_and_the_run_resumes(tmp_path, png):
    out = tmp_path / "run"
    code, stderr = kill_rank_1(out, png, "--steps", "100000")
    assert code != 0
    lines = [line for line in stderr.splitlines() if line.startswith("fieldfit: error:")]
    assert len(lines) == 1, stderr[-3000:]
    match = re.fullmatch(r"fieldfit: error: rank 0 of 2 lost its peers \(.*\) at step (\d+); "
                         r"last good checkpoint: (.*) \(step (\d+)\)", lines[0])
    assert match, lines[0]
    saved = int(match[3])
    assert Path(match[2]) == out / "checkpoint.safetensors"
    assert load_checkpoint(out / "checkpoint.safetensors").meta["step"] == saved >= 10
    assert int(match[1]) >= saved
    # the rerun (here on one process) continues from the checkpoint
    assert main(["image", str(png), "--out", str(out), *IMAGE_ARGS, "--resume",
                 "--steps", str(saved + 5)]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "eval" not in r]
    assert steps == list(range(1, saved + 6))
    assert load_checkpoint(out / "checkpoint.safetensors").meta["step"] == saved + 5


@pytest.mark.slow
def test_torchrun_restarts_a_failed_run_from_its_checkpoint(tmp_path, png):
    out = tmp_path / "run"
    code, stderr = kill_rank_1(out, png, "--steps", "150", "--batch-size", "16384",
                               options=("--max-restarts", "1"))
    assert code == 0, stderr[-3000:]
    resumed = re.search(r"resumed from .* at step (\d+)", stderr)
    assert resumed and int(resumed[1]) >= 10, stderr[-3000:]
    assert load_checkpoint(out / "checkpoint.safetensors").meta["step"] == 150
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval" not in r] == list(range(1, 151))


def test_the_global_batch_must_split_evenly(monkeypatch):
    from fieldfit import distributed

    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    with pytest.raises(ValueError, match=r"--batch-size 4096: must be a multiple of the 3"):
        ImageTask(ImageTarget(procedural_image(16, 16)), IMAGE)
