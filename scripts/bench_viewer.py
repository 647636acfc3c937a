"""Training speed of `fieldfit nerf` with the live viewer's page open, against without.

One fit with the live viewer serving, timed step by step: after ``--warmup`` steps, phases of
``--steps`` steps alternate between no page open and a headless Chromium page open that drags
the camera every ``--drag-every`` seconds (``--cycles`` times), ending with no page. Prints
steps/s of each phase and the means. The browser (software WebGL) runs on the same machine.

    python scripts/bench_viewer.py --data ../shared/data/nerf/lego_200 --steps 60
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def drive(url: str, stop_file: Path, drag_every: float, screenshot: str | None) -> None:
    """Keep a headless Chromium page on ``url`` until ``stop_file`` exists, dragging the
    camera."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(url)
        sign = 1
        while not stop_file.exists():
            time.sleep(drag_every)
            page.mouse.move(500, 400)
            page.mouse.down()
            page.mouse.move(500 + sign * 80, 400, steps=8)
            page.mouse.up()
            sign = -sign
        if screenshot:
            time.sleep(5)  # the last frame refines
            page.screenshot(path=screenshot)
        browser.close()


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of the live descendants of process ``root`` (from /proc)."""
    parents, times = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid], times[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0)
        todo += [child for child, parent in parents.items() if parent == pid]
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Blender-format scene folder")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per phase")
    parser.add_argument("--cycles", type=int, default=2, help="page-open phases")
    parser.add_argument("--samples-per-step", type=int, default=2**16)
    parser.add_argument("--browser-nice", type=int, default=0,
                        help="run the browser at this niceness (19: it yields the CPU to the "
                        "fit, as a browser on another machine would)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--settle", type=int, default=20,
                        help="steps between opening the page and timing it")
    parser.add_argument("--port", type=int, default=7031)
    parser.add_argument("--drag-every", type=float, default=2.0)
    parser.add_argument("--screenshot", default=None, help="PNG of the page at the end")
    parser.add_argument("--drive", nargs=2, metavar=("URL", "STOP_FILE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive[0], Path(args.drive[1]), args.drag_every, args.screenshot)
        return

    import torch
    from fieldfit.scenes import SceneOptions

    from fieldfit.commands.nerf import build_nerf_task
    from fieldfit.run import run_task
    from fieldfit.tasks.nerf import NerfTaskConfig
    from fieldfit.trainer import TrainerConfig
    from fieldfit.viewer import ViewerOptions
    from fieldfit.viewer.server import server_url

    train = TrainerConfig(device="cpu")
    task = build_nerf_task(args.data, SceneOptions(), NerfTaskConfig(
        video_frames=0, eval_views=1, samples_per_step=args.samples_per_step), train)
    w, s, settle = args.warmup, args.steps, args.settle
    nice = ["nice", "-n", str(args.browser_nice)] if args.browser_nice else []
    # alternating phases of s timed steps, each after `settle` untimed steps (the page loads,
    # or closes): no page, page, no page, ..., no page
    kinds = ["no page", "page open"] * args.cycles + ["no page"]
    phases = [(kind, w + i * (s + settle) + settle, w + (i + 1) * (s + settle))
              for i, kind in enumerate(kinds)]
    out = Path(tempfile.mkdtemp(prefix="bench_viewer_"))
    stamps: dict[int, tuple[float, float, float, float]] = {}
    browser: list[subprocess.Popen] = []

    def record(trainer) -> None:
        # wall time, this process's CPU time, the viewer's render time, the browser's CPU time
        cpu = os.times()
        browser_cpu = tree_cpu_seconds(browser[-1].pid) if browser else 0.0
        stamps[trainer.step] = (time.perf_counter(), cpu.user + cpu.system,
                                viewer.budget.rendered_seconds, browser_cpu)
        for i, (kind, first, last) in enumerate(phases):
            if kind == "page open" and trainer.step == first - settle:
                shot = args.screenshot if i == len(phases) - 2 else None
                command = [*nice, sys.executable, __file__, "--data", str(args.data), "--drive",
                           server_url(viewer.server), str(out / f"stop{i}"), "--drag-every",
                           str(args.drag_every), *(["--screenshot", shot] if shot else [])]
                browser.append(subprocess.Popen(command))
            if kind == "page open" and trainer.step == last:
                (out / f"stop{i}").touch()
                browser.pop().wait()

    options = ViewerOptions(viewer=True, port=args.port)
    with options.live(task, out) as hooks:
        viewer = hooks[0].__self__  # the SceneViewer whose on_step is the hook
        run_task(task, replace(train, steps=phases[-1][2], checkpoint_every=0), out,
                 progress=False, hooks=(record, *hooks))
    print(f"{args.data.name}: {task.config.samples_per_step} samples/step, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores "
          "(machine shared with other jobs: phases alternate to expose the load's drift)")
    rates: dict[str, list[float]] = {"no page": [], "page open": []}
    for kind, first, last in phases:
        wall, cpu, render, browser_cpu = (b - a for a, b in zip(stamps[first], stamps[last],
                                                                  strict=True))
        rates[kind].append((last - first) / wall)
        print(f"  steps {first:4d}-{last:4d} {kind:10s} {rates[kind][-1]:6.2f} steps/s; "
              f"per second: fit+viewer process {cpu / wall:.2f} CPU-s, viewer rendering "
              f"{render / wall:.1%} of the time, browser {browser_cpu / wall:.2f} CPU-s")
    mean = {kind: sum(v) / len(v) for kind, v in rates.items()}
    print(f"  mean: no page {mean['no page']:.2f}, page open {mean['page open']:.2f} steps/s "
          f"({mean['page open'] / mean['no page']:.0%})")


if __name__ == "__main__":
    main()
