"""One PSNR-vs-training-time plot from several ``bench_nerf.py`` runs (their JSON), e.g. two
checkouts of fieldfit measured on the same machine.

    python scripts/plot_nerf_curves.py bench_out/main/bench_nerf.json=main \\
        bench_out/nerf/bench_nerf.json=branch --out docs/nerf_psnr_vs_time.png
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro
from bench_nerf import plot_curves


@dataclass
class Args:
    runs: tyro.conf.Positional[tuple[str, ...]]
    """bench_nerf JSON files, each optionally as PATH=LABEL (the label prefixes its curves)"""
    out: Path = Path("bench_out/psnr_vs_time.png")


def main(args: Args) -> None:
    curves = {}
    for spec in args.runs:
        path, _, label = spec.partition("=")
        try:
            runs = json.loads(Path(path).read_text())["curves"]
        except (OSError, ValueError, KeyError) as err:
            print(f"plot_nerf_curves: {path}: not a bench_nerf JSON ({err})", file=sys.stderr)
            sys.exit(2)
        for name, points in runs.items():
            curves[f"{label}: {name}" if label else name] = points
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_curves(curves, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main(tyro.cli(Args))
