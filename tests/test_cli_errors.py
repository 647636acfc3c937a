"""Every bad input through the real CLI: exit 2, one line on stderr naming the culprit."""

from __future__ import annotations

import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from fieldfit.scenes import procedural_image


def fieldfit(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "fieldfit.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=900)  # a hang bound


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "ok.png"
    iio.imwrite(path, (procedural_image(32, 32).numpy() * 255).astype(np.uint8))
    return path


def bad_inputs(tmp, png):
    missing = tmp / "missing.png"
    text = tmp / "notes.png"
    text.write_text("not an image")
    truncated = tmp / "truncated.png"
    truncated.write_bytes(png.read_bytes()[:300])
    empty = tmp / "empty.png"
    empty.write_bytes(b"")
    zero = tmp / "zero.png"  # a PNG whose header declares a 0 x 0 image
    zero.write_bytes(png.read_bytes()[:16] + bytes(8) + png.read_bytes()[24:])
    blocker = tmp / "blocker"
    blocker.write_text("a file where a folder should be")
    corrupt = tmp / "corrupt_run"
    corrupt.mkdir()
    (corrupt / "checkpoint.safetensors").write_bytes(b"\x00garbage" * 10)
    return [
        ((missing,), str(missing)),
        ((text,), str(text)),
        ((truncated,), str(truncated)),
        ((empty,), str(empty)),
        ((png, "--field", "nope"), "--field nope"),
        ((png, "--bogus-option", "1"), "--bogus-option"),
        ((png, "--steps", "-5"), "--steps -5"),
        ((png, "--out", blocker / "sub"), "--out"),
        ((png, "--out", corrupt, "--resume"), "corrupt_run/checkpoint.safetensors"),
        ((png, "--out", tmp / "fresh", "--resume"), "--resume"),
        ((zero,), str(zero)),
    ]


def test_bad_inputs_exit_2_with_one_line(tmp_path, png):
    for args, culprit in bad_inputs(tmp_path, png):
        proc = fieldfit("image", *args, cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(lines) == 1, (args, proc.stderr)
        assert lines[0].startswith("fieldfit: error:"), lines
        assert culprit in lines[0], (culprit, lines[0])


def test_mismatched_checkpoint_on_resume(tmp_path, png):
    out = tmp_path / "run"
    # the torch backend: no first-use C++ build in this subprocess (minutes on a loaded machine)
    first = fieldfit("image", png, "--out", out, "--steps", "3", "--log2-table", "10",
                     "--backend", "torch")
    assert first.returncode == 0, first.stderr
    before = (out / "checkpoint.safetensors").read_bytes()
    proc = fieldfit("image", png, "--out", out, "--steps", "6", "--log2-table", "12", "--resume",
                    "--backend", "torch")
    assert proc.returncode == 2
    assert "checkpoint.safetensors" in proc.stderr and "different" in proc.stderr
    assert (out / "checkpoint.safetensors").read_bytes() == before  # earlier output intact


def test_debug_shows_traceback(tmp_path):
    proc = fieldfit("image", tmp_path / "missing.png", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_help_everywhere():
    for args in ([], ["image"], ["demo"]):
        proc = fieldfit(*args, "--help")
        assert proc.returncode == 0 and "usage: fieldfit" in proc.stdout, args
