"""The wheel holds every module of the source folders under fieldfit.*, and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"fieldfit": "fieldfit", "fields": "fieldfit.fields", "renderers": "fieldfit.renderers",
           "losses": "fieldfit.losses", "scenes": "fieldfit.scenes"}


def source_modules() -> list[str]:
    """Dotted names of every .py file in the source folders of the checkout."""
    names = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            names.append(".".join((package, *parts)))
    return names


def test_wheel_holds_and_imports_every_module(tmp_path):
    # a real (non-editable) install, as `pip install .` or a wheel gives, from a copy of the
    # checkout without build outputs (setuptools would reuse a stale build/ folder)
    source, target = tmp_path / "source", tmp_path / "site"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", ".cache", "runs", "bench_out",
        "__pycache__", ".pytest_cache", ".ruff_cache"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-compile", "--target", str(target), str(source)],
                   check=True, capture_output=True)
    top = sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info"))
    assert set(top) <= {"fieldfit", "bin"}, top
    modules = source_modules()
    assert "fieldfit.commands.image" in modules and "fieldfit.fields.kernels.cpp" in modules
    code = ("import importlib, sys\n"
            "for name in sys.argv[1:]:\n"
            "    module = importlib.import_module(name)\n"
            f"    assert module.__file__.startswith({str(target)!r}), (name, module.__file__)\n"
            "print(len(sys.argv) - 1)")
    proc = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True,
                          cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == [str(len(modules))]
    assert (target / "fieldfit" / "fields" / "kernels" / "hashgrid_cpu.cpp").exists()
