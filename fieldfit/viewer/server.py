"""The scene viewer: a viser server showing a NeRF task, live during a fit or for a finished run.

Views are rendered by the task's own evaluation renderer (:meth:`NerfTask.render_view`) on a
private copy of the model; during a fit, the trainer hook :meth:`SceneViewer.on_step` hands that
copy a snapshot of the weights (a clone of the state dict, taken between optimiser steps) at
most every ``snapshot_seconds``. One render thread serves every open tab progressively under a
:class:`FrameBudget`.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fieldfit.renderers import Cameras
from fieldfit.renderers.camera_path import interpolate_path, resized, save_camera_path

from ..io import write_image
from ..media import colorize_depth
from . import ServerOptions, require_viser
from .budget import FrameBudget
from .cameras import c2w_from_viser, fov_of, viewer_cameras, viser_from_c2w

log = logging.getLogger("fieldfit")

MODES = ("rgb", "depth", "opacity")
PATH_FPS = 24.0
"""frames per second of the camera paths the viewer saves"""


def server_url(server) -> str:
    """The address a viser server listens on (viser takes the next free port when the one
    asked for is taken)."""
    return f"http://{server.get_host()}:{server.get_port()}"


class SnapshotRenderer:
    """Renders cameras through ``task.render_view`` on a copy of its model (``live``: training
    keeps the original) or on the task itself (a finished run)."""

    def __init__(self, task, live: bool):
        self.task = copy.copy(task) if live else task
        if live:
            self.task.model = copy.deepcopy(task.model)
        self.version = 0
        """bumped by every snapshot offered"""
        self._pending: dict[str, torch.Tensor] | None = None
        self._pending_lock = threading.Lock()
        self._render_lock = threading.Lock()

    def offer(self, state: dict[str, torch.Tensor]) -> None:
        """Hand over a cloned state dict (from the training thread); the next render uses it."""
        with self._pending_lock:
            self._pending = state
            self.version += 1

    def render(self, cameras) -> dict[str, np.ndarray]:
        """``render_view`` of camera 0 of ``cameras`` with the newest snapshot."""
        with self._render_lock:
            with self._pending_lock:
                state, self._pending = self._pending, None
            if state is not None:
                self.task.model.load_state_dict(state)
            return self.task.render_view(cameras, 0)


def view_image(view: dict[str, np.ndarray], mode: str) -> np.ndarray:
    """(H, W, 3) float image of a render: its colour, its depth (colour-mapped where opaque) or
    its opacity (grey)."""
    if mode == "depth":
        return colorize_depth(view["depth"], view["opacity"] > 0.5)
    if mode == "opacity":
        return np.repeat(view["opacity"][..., None], 3, axis=-1)
    return view["rgb"]


def z_depth(view: dict[str, np.ndarray], cameras, far: float = 100.0) -> np.ndarray:
    """(H, W) depth along the camera axis (viser's background depth) of a render's distance
    along unit rays; ``far`` where the render is transparent."""
    rows, cols = np.mgrid[0:cameras.height, 0:cameras.width] + 0.5
    u = (cols - float(cameras.cx[0])) / float(cameras.fx[0])
    v = (rows - float(cameras.cy[0])) / float(cameras.fy[0])
    depth = view["depth"] / np.sqrt(1.0 + u**2 + v**2)
    return np.where(view["opacity"] > 0.5, depth, far).astype(np.float32)


@dataclass
class _ClientView:
    """What a tab last showed."""

    key: tuple | None = None
    changed_at: float = 0.0
    height: int | None = None
    version: int = -1


class SceneViewer:
    """A viser server showing ``task`` (a NerfTask) with its training cameras; ``live`` when a
    fit runs beside it (stats, pause/resume, weight snapshots, a CPU budget for rendering)."""

    def __init__(self, task, run_dir: Path, options: ServerOptions, live: bool,
                 snapshot_seconds: float = 1.0, budget: FrameBudget | None = None):
        viser = require_viser()
        options.warn_if_public()
        self.run_dir, self.live, self.snapshot_seconds = run_dir, live, snapshot_seconds
        self.renderer = SnapshotRenderer(task, live)
        self.ndc = task.scene.ndc
        self.dynamic = bool(getattr(task, "dynamic", False))
        train = task.scene.splits["train"]
        self.full_height = train.cameras.height
        self.budget = budget or FrameBudget(self.full_height, share=0.15 if live else 1.0)
        self.keyframes: list[Cameras] = []
        self._resume = threading.Event()
        self._resume.set()
        self._stop = threading.Event()
        self._last_snapshot = -math.inf
        self._last_stats = -math.inf
        self._rate: tuple[int, float] | None = None  # (step, elapsed) of the last stats
        self._views: dict[int, _ClientView] = {}
        self._saved = 0

        self.server = viser.ViserServer(host=options.host, port=options.port, verbose=False)
        self._add_scene(task)
        self._add_gui()
        self.server.on_client_disconnect(self._on_disconnect)
        self._thread = threading.Thread(target=self._render_loop, name="viewer", daemon=True)
        self._thread.start()
        log.info("viewer: %s", server_url(self.server))

    # -- scene -------------------------------------------------------------------------
    def _add_scene(self, task) -> None:
        split = task.scene.splits["train"]
        cams = split.cameras
        if task.scene.ndc:  # the box is in NDC: look one unit ahead of the mean camera
            center = (cams.centers.mean(0) - cams.c2w[:, :, 2].mean(0)).numpy()
        else:
            center = task.scene.aabb.mean(0).numpy()
        up = torch.nn.functional.normalize(cams.c2w[:, :, 1].mean(0), dim=0).numpy()
        self.server.scene.set_up_direction(up)
        initial = self.server.initial_camera
        # behind training camera 0, so that its frustum is in view
        initial.position = center + 1.3 * (cams.c2w[0, :, 3].numpy() - center)
        initial.look_at = center
        initial.up = up
        initial.fov = fov_of(cams, 0)
        extent = float((cams.centers - torch.as_tensor(center)).norm(dim=-1).mean())
        thumbs = split.composited(task.scene.background)
        stride = max(1, cams.height // 48)
        fov, aspect = fov_of(cams, 0), cams.width / cams.height
        self._frustums = []
        for i in range(len(cams)):
            wxyz, position = viser_from_c2w(cams.c2w[i].numpy())
            image = (thumbs[i, ::stride, ::stride].numpy() * 255).astype(np.uint8)
            self._frustums.append(self.server.scene.add_camera_frustum(
                f"/training_cameras/{i:03d}", fov=fov, aspect=aspect, scale=0.04 * extent,
                thickness=0.0015 * extent, image=image, wxyz=wxyz, position=position))

    # -- GUI ---------------------------------------------------------------------------
    def _add_gui(self) -> None:
        gui = self.server.gui
        self.mode = gui.add_dropdown("view", MODES, initial_value="rgb")
        show = gui.add_checkbox("training cameras", initial_value=True)
        # a dynamic scene is shown at one moment, chosen here
        self.time = gui.add_slider("time", min=0.0, max=1.0, step=0.01, initial_value=0.0) \
            if self.dynamic else None

        @show.on_update
        def _(_event) -> None:
            for frustum in self._frustums:
                frustum.visible = show.value

        if self.live:
            self.stats = gui.add_markdown("waiting for the first step")
            self.pause = gui.add_button("pause training")
            self.pause.on_click(lambda _event: self.toggle_pause())
        render = gui.add_button("render this view")
        render.on_click(lambda event: self.render_full(event.client))
        add = gui.add_button("add keyframe")
        add.on_click(lambda event: self.add_keyframe(event.client))
        self.path_seconds = gui.add_number("path seconds", initial_value=4.0, min=0.1)
        save = gui.add_button("save camera path")
        save.on_click(lambda _event: self.save_camera_path())
        self.message = gui.add_markdown("")

    def toggle_pause(self) -> None:
        if self._resume.is_set():
            self._resume.clear()
            self.pause.label = "resume training"
        else:
            self._resume.set()
            self.pause.label = "pause training"

    def _on_disconnect(self, client) -> None:
        self._views.pop(client.client_id, None)
        if self.live and not self.server.get_clients() and not self._resume.is_set():
            self.toggle_pause()  # the last tab closed: never leave the fit paused

    @staticmethod
    def _camera(client) -> tuple[np.ndarray, float, float]:
        cam = client.camera
        return c2w_from_viser(cam.wxyz, cam.position), float(cam.fov), float(cam.aspect)

    def _cameras(self, c2w: np.ndarray, fov: float, aspect: float, height: int) -> Cameras:
        """The tab's camera at ``height`` pixels, at the time slider's moment in a dynamic
        scene."""
        cameras = viewer_cameras(c2w, fov, aspect, height)
        if self.time is not None:
            cameras.times = torch.tensor([float(self.time.value)])
        return cameras

    def render_full(self, client) -> Path:
        """Write the tab's view at the training images' height into ``run/viewer/``."""
        c2w, fov, aspect = self._camera(client)
        view = self.renderer.render(self._cameras(c2w, fov, aspect, self.full_height))
        (self.run_dir / "viewer").mkdir(parents=True, exist_ok=True)
        while (path := self.run_dir / "viewer" / f"view_{self._saved:03d}.png").exists():
            self._saved += 1
        write_image(path, view_image(view, self.mode.value))
        self.message.content = f"wrote {path}"
        return path

    def add_keyframe(self, client) -> None:
        c2w, fov, aspect = self._camera(client)
        self.keyframes.append(viewer_cameras(c2w, fov, aspect, self.full_height))
        self.message.content = f"{len(self.keyframes)} keyframe(s)"

    def save_camera_path(self) -> Path | None:
        if not self.keyframes:
            self.message.content = "add a keyframe first"
            return None
        first = self.keyframes[0]
        keys = [resized(k, first.width, first.height) for k in self.keyframes]
        keys = Cameras(*(torch.cat([getattr(k, f) for k in keys]) for f in
                         ("c2w", "fx", "fy", "cx", "cy")), first.width, first.height)
        frames = interpolate_path(keys, max(round(float(self.path_seconds.value) * PATH_FPS), 1))
        path = self.run_dir / "camera_path.json"
        save_camera_path(path, frames, PATH_FPS, keyframes=keys)
        self.message.content = f"wrote {path} (render it with `fieldfit render --path {path}`)"
        return path

    # -- trainer hook ------------------------------------------------------------------
    def on_step(self, trainer) -> None:
        """After each optimiser step: stats twice a second, a weight snapshot every
        ``snapshot_seconds`` while a tab is open, and a wait while paused."""
        now = time.monotonic()
        if not self.server.get_clients():
            return
        if now - self._last_stats >= 0.5:
            self._last_stats = now
            self.stats.content = self._stats_text(trainer)
        if now - self._last_snapshot >= self.snapshot_seconds:
            self._last_snapshot = now
            state = trainer.task.model.state_dict()
            self.renderer.offer({k: v.detach().clone() for k, v in state.items()})
        while not self._resume.wait(0.2) and not self._stop.is_set():
            pass

    def _stats_text(self, trainer) -> str:
        step, elapsed = trainer.step, trainer.elapsed
        last = next((r for r in reversed(trainer.history) if "loss" in r), {})
        rate = math.nan
        if self._rate is not None and elapsed > self._rate[1]:
            rate = (step - self._rate[0]) / (elapsed - self._rate[1])
        self._rate = (step, elapsed)
        total, seconds = trainer.planned_steps, trainer.config.seconds
        left = [(total - step) / rate] if total and rate > 0 else []
        left += [seconds - elapsed] if seconds else []
        lines = [f"step **{step}**" + (f" / {total}" if total else ""),
                 f"loss {last.get('loss', math.nan):.4g}, PSNR {last.get('psnr', math.nan):.2f}"
                 " dB", f"{rate:.2f} steps/s, {last.get('samples', math.nan) * rate:,.0f} "
                 "samples/s", f"ETA {max(min(left), 0):.0f} s" if left else "ETA -"]
        return "  \n".join(lines)

    # -- rendering ---------------------------------------------------------------------
    def _render_loop(self) -> None:
        while not self._stop.is_set():
            spent = 0.0
            for client in list(self.server.get_clients().values()):
                try:
                    spent += self._serve(client)
                except Exception:  # a tab that closed mid-frame, or a render that failed
                    log.debug("viewer: frame for client %s failed", client.client_id,
                              exc_info=True)
            if spent == 0.0:
                self._stop.wait(0.02)
                continue
            paused = self.live and not self._resume.is_set()
            self._stop.wait(self.budget.rest_after(spent, 1.0 if paused else None))

    def _serve(self, client) -> float:
        """Render the next frame for ``client`` if its view needs one; returns the seconds
        spent (0 when nothing was due)."""
        state = self._views.setdefault(client.client_id, _ClientView())
        c2w, fov, aspect = self._camera(client)
        key = (tuple(np.round(c2w, 5).ravel()), round(fov, 5), round(aspect, 4),
               None if self.time is None else float(self.time.value), self.mode.value)
        now = time.monotonic()
        if key != state.key:
            state.key, state.changed_at, state.height = key, now, None
        version = self.renderer.version
        if state.height is not None and version != state.version:
            height = state.height  # new weights: the same sharpness again
        elif state.height is None or (now - state.changed_at >= self.budget.settle_seconds
                                      and not self.budget.is_sharp(state.height)):
            height = self.budget.next_height(now - state.changed_at, state.height, aspect)
        else:
            return 0.0
        t0 = time.perf_counter()
        cameras = self._cameras(c2w, fov, aspect, height)
        view = self.renderer.render(cameras)
        image = (view_image(view, key[-1]) * 255 + 0.5).astype(np.uint8)
        # the depth lets the browser hide the frustums behind the object (not in NDC scenes)
        depth = None if self.ndc else z_depth(view, cameras)
        client.scene.set_background_image(image, format="jpeg", jpeg_quality=90, depth=depth)
        seconds = time.perf_counter() - t0
        self.budget.record(height, aspect, seconds)
        state.height, state.version = height, version
        return seconds

    def stop(self) -> None:
        self._stop.set()
        self._resume.set()
        self._thread.join(timeout=30)
        self.server.stop()
