"""`pip install .` lays out fieldfit.* with no generic top-level names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pip_install_into_fresh_target(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(ROOT)], check=True)
    top = sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info"))
    assert set(top) <= {"fieldfit", "bin"}, top
    code = "import fieldfit.fields, fieldfit.losses, fieldfit.scenes, fieldfit.renderers, " \
           "fieldfit.cli; print(fieldfit.fields.__file__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin"})
    assert proc.returncode == 0, proc.stderr
    assert str(target) in proc.stdout
