"""`fieldfit view` in headless Chromium: the scene render reaches the page and follows the camera.

Needs viser, the python playwright package and Debian's chromium (/usr/bin/chromium); skips
when any is absent.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import fit_nerf

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if process.poll() is not None:
            raise AssertionError(f"fieldfit view exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"fieldfit view did not listen on port {port} in {seconds} s")


def _canvas(page) -> np.ndarray:
    """(h, w, 3) uint8 screenshot of the page's 3D canvas (the render is its background),
    cropped below the notification and left of the control panel."""
    import imageio.v3 as iio

    png = page.locator("canvas").first.screenshot()
    image = np.asarray(iio.imread(io.BytesIO(png)))[..., :3]
    h, w = image.shape[:2]
    return image[int(0.3 * h):int(0.95 * h), int(0.05 * w):int(0.55 * w)]


def _wait_for_image(page, seconds: float, differs_from: np.ndarray | None = None) -> np.ndarray:
    """Poll the canvas until it shows a scene (many colours; different from ``differs_from``
    when given) and has stopped changing (the render refined); returns the last screenshot."""
    end, last = time.monotonic() + seconds, None
    while time.monotonic() < end:
        time.sleep(2.0)
        image = _canvas(page)
        colours = len(np.unique(image.reshape(-1, 3) // 16, axis=0))
        moved = differs_from is None or np.abs(image.astype(int) - differs_from).mean() > 2.0
        if colours > 50 and moved and last is not None and np.array_equal(image, last):
            return image
        last = image
    raise AssertionError(f"no settled scene render on the page within {seconds} s")


@contextlib.contextmanager
def viewing(run: Path, tmp_path: Path):
    """`fieldfit view RUN` in a subprocess and a headless Chromium page on it, the training
    cameras' frustums hidden (the canvas then shows only the render); yields the page."""
    pytest.importorskip("viser")
    pytest.importorskip("playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    port = _free_port()
    fieldfit = shutil.which("fieldfit", path=str(Path(sys.executable).parent))
    log = open(tmp_path / "view.log", "w")  # noqa: SIM115  (closed with the process)
    process = subprocess.Popen([fieldfit, "view", str(run), "--port", str(port)],
                               env={**os.environ, "OMP_NUM_THREADS": "1"},
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, 120)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 800, "height": 600})
            page.goto(f"http://127.0.0.1:{port}")
            page.get_by_text("training cameras").wait_for()
            page.locator("input[type=checkbox]:visible").first.uncheck()
            yield page
            browser.close()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.slow
def test_view_shows_the_scene_and_follows_the_camera(procedural_scene, tmp_path):
    run = tmp_path / "run"
    fit_nerf(procedural_scene, run, steps=60, samples_per_step=4096, log2_table=14,
             video_frames=0, eval_views=1)
    with viewing(run, tmp_path) as page:
        before = _wait_for_image(page, 120)
        # not a blank or single-colour canvas: the render has the scene's colours
        assert before.std(axis=(0, 1)).max() > 20
        box = page.locator("canvas").first.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 150, y + 40, steps=10)
        page.mouse.up()
        after = _wait_for_image(page, 120, differs_from=before)
        assert np.abs(after.astype(int) - before).mean() > 2.0


@pytest.mark.slow
def test_view_of_a_dynamic_scene_follows_the_time_slider(tmp_path):
    from fieldfit.scenes import write_procedural_scene

    scene = write_procedural_scene(tmp_path / "scene", size=32, n_train=30, n_test=5,
                                   supersample=2, n_times=5)
    run = tmp_path / "run"
    fit_nerf(scene, run, steps=150, samples_per_step=8192, log2_table=14, video_frames=0,
             eval_views=1)
    with viewing(run, tmp_path) as page:
        before = _wait_for_image(page, 120)  # time 0
        page.get_by_role("slider").first.focus()
        page.keyboard.press("End")  # time 1: the spheres have moved and grown
        after = _wait_for_image(page, 120, differs_from=before)
        assert np.abs(after.astype(int) - before).mean() > 2.0
