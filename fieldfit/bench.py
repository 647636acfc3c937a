"""Helpers for benchmark scripts: machine description, tables, JSON results."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from .io import write_json


def machine_info() -> dict:
    """CPU model, cores, torch threads and versions, GPU if any."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Markdown table of ``rows`` (floats to 4 significant digits)."""

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def report(name: str, rows: list[dict], columns: list[str], out_dir: Path, extra=None) -> None:
    """Print the table with the machine noted, and write ``out_dir/name.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    print(f"\n## {name}\nmachine: {machine}\n")
    print(format_table(rows, columns))
    write_json(out_dir / f"{name}.json", {"machine": machine, "rows": rows, **(extra or {})})
    print(f"\nwrote {out_dir / (name + '.json')}")
