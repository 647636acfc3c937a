"""--tensorboard mirrors metrics.jsonl into TensorBoard event files (optional extra)."""

from __future__ import annotations

import pytest

from fieldfit.cli import main
from fieldfit.io import read_jsonl


def test_tensorboard_scalars_match_the_log(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from fieldfit.scenes import procedural_image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from fieldfit.io import write_image

    write_image(tmp_path / "img.png", procedural_image(32, 32).numpy())
    out = tmp_path / "run"
    assert main(["image", str(tmp_path / "img.png"), "--out", str(out), "--steps", "20",
                 "--log-every", "5", "--log2-table", "10", "--backend", "torch",
                 "--tensorboard"]) == 0
    capsys.readouterr()
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    logged = [r for r in read_jsonl(out / "metrics.jsonl") if "loss" in r]
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [r["step"] for r in logged] == [5, 10, 15, 20]
    assert [e.value for e in losses] == pytest.approx([r["loss"] for r in logged], rel=1e-6)
    final = [r["eval"] for r in read_jsonl(out / "metrics.jsonl") if "eval" in r][-1]
    assert events.Scalars("eval/psnr")[-1].value == pytest.approx(final["psnr"], rel=1e-6)
