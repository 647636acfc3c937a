"""`fieldfit image|sdf|nerf --load-config RUN/config.json`: a run's options, with overrides."""

from __future__ import annotations

import json

from fieldfit.scenes import procedural_image

from fieldfit.cli import main
from fieldfit.io import write_image


def test_load_config_repeats_a_run_with_overrides(tmp_path, capsys):
    image = tmp_path / "img.png"
    write_image(image, procedural_image(24, 24).numpy())
    first = tmp_path / "first"
    assert main(["image", str(image), "--out", str(first), "--steps", "4", "--log2-table", "10",
                 "--backend", "torch", "--loss", "l1", "--seed", "7"]) == 0
    second = tmp_path / "second"
    assert main(["image", "--load-config", str(first / "config.json"), "--out", str(second),
                 "--steps", "3"]) == 0
    capsys.readouterr()
    a, b = (json.loads((run / "config.json").read_text()) for run in (first, second))
    assert b["trainer_config"] == {**a["trainer_config"], "steps": 3}
    assert b["task_config"] == a["task_config"]  # the same image, field, loss and seed
    assert b["inputs"] == a["inputs"]
    assert main(["sdf", "--load-config", str(first)]) == 2  # a run folder of another task
    assert "not a `fieldfit sdf` run config" in capsys.readouterr().err
    assert main(["image", "--load-config", str(tmp_path / "none.json")]) == 2
    assert "no such run config" in capsys.readouterr().err
