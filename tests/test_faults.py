"""Faults survived through the real CLI (subprocesses): SIGINT, SIGTERM and kill -9 resume bit
for bit for every task, random kill -9 during fits and saves, full disks, concurrent runs into
one folder, divergence, torn metrics logs, planted symbolic links, and killed C++ builds.

No assertion depends on timing: a signal is sent once the run has logged a step (the runs are
long enough that it lands mid-run), and the waits are only bounds against a hang."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fieldfit.scenes import procedural_image

from fieldfit.checkpoint import CHECKPOINT_NAME, load_checkpoint
from fieldfit.io import TMP_TAG

HANG = 600.0
"""seconds after which a run that never reaches a step counts as hung (a bound, not a check)"""
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def start(*args, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fieldfit.cli", *map(str, args)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)


def fieldfit(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fieldfit.cli", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=HANG)


def logged_step(out: Path) -> int:
    """Last step in out/metrics.jsonl (0 if none yet)."""
    path = out / "metrics.jsonl"
    if not path.exists():
        return 0
    steps = [json.loads(line).get("step", 0) for line in path.read_text().splitlines()
             if line.endswith("}")]
    return max(steps, default=0)


def wait_for_step(proc: subprocess.Popen, out: Path, step: int) -> None:
    deadline = time.monotonic() + HANG
    while logged_step(out) < step:
        assert proc.poll() is None, f"run ended before step {step}: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, "run hung"
        time.sleep(0.02)


def error_line(stderr: str) -> str:
    """The one ``fieldfit: error:`` line; asserts there is exactly one and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if "fieldfit: error:" in line]
    assert len(lines) == 1, stderr
    return lines[0]


def assert_same_state(a: Path, b: Path) -> None:
    """The checkpoints in run folders ``a`` and ``b`` hold bit-identical tensors."""
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca.meta["step"] == cb.meta["step"]
    for part in ("model", "optimizer"):
        ta, tb = getattr(ca, part), getattr(cb, part)
        assert ta.keys() == tb.keys(), part
        for name in ta:
            assert torch.equal(ta[name], tb[name]), f"{part}/{name} differs"
    assert torch.equal(ca.rng, cb.rng)


def losses(out: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


@pytest.fixture(scope="module", autouse=True)
def _kernels_built():
    """Build the C++ kernels here, once, so that no run below spends minutes compiling."""
    from fieldfit.fields.kernels.cpp import load_kernels

    try:
        load_kernels()
    except RuntimeError:
        pass  # no compiler: the runs use the torch backend


IMAGE = ["--log2-table", "12", "--batch-size", "4096"]
SDF = ["--n-samples", "16384", "--batch-size", "2048", "--eval-points", "4096",
       "--eval-surface-points", "2000", "--resolution", "24", "--log2-table", "12",
       "--max-res", "64"]
NERF = ["--log2-table", "12", "--samples-per-step", "4096", "--render-steps", "64",
        "--occupancy.resolution", "16", "--occupancy.update-every", "4",
        "--occupancy.warmup-steps", "8", "--eval-views", "1", "--video-frames", "0",
        "--chunk", "4096"]
NEUS = [*NERF, "--geometry", "sdf", "--mesh-resolution", "0"]


def task_args(name: str, png: Path, cube: Path, scene: Path) -> list:
    return {"image": ["image", png, *IMAGE], "sdf": ["sdf", cube, *SDF],
            "nerf": ["nerf", scene, *NERF], "neus": ["nerf", scene, *NEUS]}[name]


STEPS = {"image": 300, "sdf": 300, "nerf": 80, "neus": 60}
"""long enough that a signal sent at step 5 lands mid-run; NeRF passes its occupancy warm-up"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["image", "sdf", "nerf", "neus"])
def test_resume_after_sigint_sigterm_and_kill_is_bit_for_bit(tmp_path, png, cube,
                                                             procedural_scene, name):
    args = [*task_args(name, png, cube, procedural_scene), "--steps", STEPS[name],
            "--log-every", "1", "--checkpoint-every", "3"]
    full = tmp_path / "full"
    done = fieldfit(*args, "--out", full)
    assert done.returncode == 0, done.stderr
    for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)):
        out = tmp_path / signum.name
        proc = start(*args, "--out", out)
        wait_for_step(proc, out, 10 if name.startswith("n") else 5)  # NeRF: past warm-up
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=HANG)
        assert proc.returncode == code, stderr
        if signum != signal.SIGKILL:
            assert "checkpoint saved" in stderr and "Traceback" not in stderr, stderr
        resumed = fieldfit(*args, "--out", out, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert_same_state(full, out)
        assert losses(out) == losses(full), f"{signum.name}: logged losses differ"


@pytest.mark.slow
def test_random_kill_9_during_fits_and_saves(tmp_path, png):
    """Up to six kill -9 at random moments of a run that saves every step (so most land in
    or near a save); every restart resumes and the end state is the uninterrupted one."""
    args = ["image", png, *IMAGE, "--steps", 400, "--checkpoint-every", "1"]
    full = tmp_path / "full"
    assert fieldfit(*args, "--out", full).returncode == 0
    out, rng = tmp_path / "killed", random.Random(0)
    for _ in range(6):
        resume = ["--resume"] if (out / CHECKPOINT_NAME).exists() else ["--overwrite"]
        proc = start(*args, "--out", out, *resume)
        wait_for_step(proc, out, logged_step(out) + 1)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.kill()
        _, stderr = proc.communicate(timeout=HANG)
        if proc.returncode == 0:  # finished before the kill: nothing left to interrupt
            break
        assert proc.returncode == -9, stderr
        if (out / CHECKPOINT_NAME).exists():
            load_checkpoint(out)  # never torn: validates the checksum
    final = fieldfit(*args, "--out", out, "--resume")
    assert final.returncode == 0, final.stderr
    assert_same_state(full, out)
    assert not list(out.rglob(f"*{TMP_TAG}*")), "temporary files left behind"


def test_orphan_temp_files_are_removed_on_the_next_start(tmp_path, png):
    out = tmp_path / "run"
    assert fieldfit("image", png, *IMAGE, "--steps", 3, "--out", out).returncode == 0
    orphans = [out / f".checkpoint.x1y2{TMP_TAG}.safetensors", out / f".metrics.q{TMP_TAG}.json"]
    orphans[0].write_bytes(b"")
    orphans[1].write_bytes(b"{}" * 1000)
    resumed = fieldfit("image", png, *IMAGE, "--steps", 6, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not any(p.exists() for p in orphans)


def test_outputs_have_one_file_mode(tmp_path, png):
    out = tmp_path / "run"
    assert fieldfit("image", png, *IMAGE, "--steps", 3, "--out", out).returncode == 0
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()}
    umask = os.umask(0)
    os.umask(umask)
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_second_run_into_one_folder_is_refused(tmp_path, png):
    out = tmp_path / "run"
    first = start("image", png, *IMAGE, "--steps", 100000, "--out", out)
    try:
        wait_for_step(first, out, 25)
        second = fieldfit("image", png, *IMAGE, "--steps", 3, "--out", out, "--overwrite")
        assert second.returncode == 2
        assert "another fieldfit run" in error_line(second.stderr)
        steps = [step for step, _ in losses(out)]
        assert steps == sorted(set(steps))  # one run's log: the second neither reset nor wrote
    finally:
        first.kill()
        first.communicate()
    # the dead run's lock is no obstacle
    third = fieldfit("image", png, *IMAGE, "--steps", 3, "--out", out, "--overwrite")
    assert third.returncode == 0, third.stderr


def test_torn_metrics_tail_is_tolerated_on_resume(tmp_path, png):
    out = tmp_path / "run"
    assert fieldfit("image", png, *IMAGE, "--steps", 10, "--out", out).returncode == 0
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 11, "lo')
    resumed = fieldfit("image", png, *IMAGE, "--steps", 20, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text()
             .splitlines()]
    assert steps[-1] == 20 and 11 not in steps[:steps.index(10) + 1]


def test_planted_symlinks_are_replaced_not_followed(tmp_path, png):
    out = tmp_path / "run"
    out.mkdir()
    victims = {name: tmp_path / f"victim_{name}" for name in ("metrics.jsonl", "config.json")}
    for name, victim in victims.items():
        victim.write_text("keep\n")
        (out / name).symlink_to(victim)
    assert fieldfit("image", png, *IMAGE, "--steps", 3, "--out", out).returncode == 0
    for name, victim in victims.items():
        assert victim.read_text() == "keep\n", name
        assert not (out / name).is_symlink(), name


@pytest.mark.parametrize("every", [0, 1])
def test_divergence_fails_and_names_only_a_good_checkpoint(tmp_path, png, every):
    out = tmp_path / "run"
    done = fieldfit("image", png, *IMAGE, "--steps", 5, "--lr-encoding", "1e30",
                    "--lr-decoder", "1e30", "--checkpoint-every", every, "--out", out)
    assert done.returncode == 2
    line = error_line(done.stderr)
    assert "nan" in line.lower()
    assert not (out / "metrics.json").exists()
    if "last good checkpoint" in line:
        ckpt = load_checkpoint(out)  # exists, loads, finite
        assert f"(step {ckpt.meta['step']})" in line
    else:
        assert "no checkpoint was written" in line and not (out / CHECKPOINT_NAME).exists()


def test_blow_up_on_the_last_step_is_an_error(tmp_path, png, cube):
    for args in (["image", png, *IMAGE], ["sdf", cube, *SDF]):
        out = tmp_path / args[0]
        done = fieldfit(*args, "--steps", 1, "--lr-encoding", "1e38", "--lr-decoder", "1e38",
                        "--out", out)
        assert done.returncode == 2, done.stdout
        error_line(done.stderr)
        assert not (out / CHECKPOINT_NAME).exists() and not (out / "metrics.json").exists()
        for line in (out / "metrics.jsonl").read_text().splitlines():
            json.loads(line)  # valid JSON: no bare NaN


# -- full disks -------------------------------------------------------------------------------
@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a tmpfs folder of that many bytes; skips where mounting is not allowed."""
    mounted = []

    def mount(size: int) -> Path:
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(folder)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {proc.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_full_disk_fails_in_one_line_and_keeps_the_last_checkpoint(tmp_path, png, tmpfs):
    args = ["image", png, *IMAGE, "--steps", 12, "--checkpoint-every", 4]
    probe = tmp_path / "probe"
    assert fieldfit(*args, "--out", probe).returncode == 0
    size = (probe / CHECKPOINT_NAME).stat().st_size
    tiny = fieldfit(*args, "--out", tmpfs(size // 2))  # not even one checkpoint fits
    line = error_line(tiny.stderr)
    assert tiny.returncode == 2 and "No space left" in line and "no checkpoint" in line
    # room for one checkpoint, not for the second one beside it during the atomic replace
    out = tmpfs(size * 3 // 2 + 64 * 1024)
    small = fieldfit(*args, "--out", out)
    line = error_line(small.stderr)
    assert small.returncode == 2 and "No space left" in line
    kept = load_checkpoint(out)
    assert f"last good checkpoint: {out / CHECKPOINT_NAME} (step {kept.meta['step']})" in line
    assert not list(out.glob(f"*{TMP_TAG}*"))


# -- C++ build lock ---------------------------------------------------------------------------
BUILD = ("import logging; logging.basicConfig(level=logging.INFO, format='%(message)s');"
         "from fieldfit.fields.kernels.cpp import load_kernels; load_kernels()")


def build(env: dict, **kwargs):
    return subprocess.Popen([sys.executable, "-c", BUILD], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_stale_cpp_build_lock_is_removed_with_a_message():
    from fieldfit.fields.kernels.cpp import build_directory, load_kernels

    load_kernels()  # built (or loaded) here first
    lock = build_directory() / "lock"
    lock.write_text("")  # what a build killed by kill -9 leaves
    proc = build(ENV)
    _, stderr = proc.communicate(timeout=HANG)
    assert proc.returncode == 0, stderr
    assert "removing" in stderr and str(lock) in stderr
    assert not lock.exists()


@pytest.mark.slow
def test_kill_9_during_the_first_cpp_build(tmp_path):
    env = {**ENV, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = build(env, start_new_session=True)  # its own group: the compiler dies with it
    deadline = time.monotonic() + HANG
    while not list((tmp_path / "cache").rglob("lock")):
        assert first.poll() is None, first.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    second = build(env)
    _, stderr = second.communicate(timeout=HANG)
    assert second.returncode == 0, stderr
    assert "removing" in stderr


# -- a second Ctrl-C (in process: the signals are sent from inside the step or the save) -----
def small_image_task():
    from fieldfit.scenes import ImageTarget

    from fieldfit.tasks import ImageTask, ImageTaskConfig, build_task

    return build_task(ImageTask, ImageTarget(procedural_image(32, 32)),
                      ImageTaskConfig(log2_table=10, batch_size=256, backend="torch"),
                      torch.device("cpu"), seed=0)


def test_second_ctrl_c_during_the_save_waits_for_it(tmp_path, monkeypatch, caplog):
    from fieldfit.interrupts import Interrupted
    from fieldfit.run import run_task
    from fieldfit.trainer import Trainer, TrainerConfig

    task = small_image_task()
    original_step, original_write = task.train_step, Trainer._write
    monkeypatch.setattr(task, "train_step", lambda step, g: (
        step == 7 and os.kill(os.getpid(), signal.SIGINT)) or original_step(step, g))

    def write_with_ctrl_c(self, step, data):
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, while saving
        original_write(self, step, data)

    monkeypatch.setattr(Trainer, "_write", write_with_ctrl_c)
    with pytest.raises(Interrupted):
        run_task(task, TrainerConfig(steps=50, checkpoint_every=0), tmp_path, progress=False)
    assert load_checkpoint(tmp_path).meta["step"] == 8  # the save it announced happened
    assert "stopped at step 8; checkpoint saved" in caplog.text


def test_second_ctrl_c_before_the_step_ends_says_nothing_was_saved(tmp_path, monkeypatch,
                                                                  caplog):
    from fieldfit.run import run_task
    from fieldfit.trainer import TrainerConfig

    task = small_image_task()
    original = task.train_step

    def two_ctrl_c_at_7(step, generator):
        if step == 7:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return original(step, generator)

    monkeypatch.setattr(task, "train_step", two_ctrl_c_at_7)
    with pytest.raises(KeyboardInterrupt):
        run_task(task, TrainerConfig(steps=50, checkpoint_every=5), tmp_path, progress=False)
    assert load_checkpoint(tmp_path).meta["step"] == 5  # the last periodic one, as reported
    assert "without saving" in caplog.text
    assert f"last good checkpoint: {tmp_path / CHECKPOINT_NAME} (step 5)" in caplog.text
