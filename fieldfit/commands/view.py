"""`fieldfit view`: open a finished run in the browser (viser; `pip install 'fieldfit[viewer]'`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from ..checkpoint import load_checkpoint
from ..errors import UserError
from ..io import read_json
from ..tasks import TASKS, task_from_checkpoint
from ..viewer import ServerOptions, require_viser
from ..viewer.server import server_url

Flat = tyro.conf.arg(name="")


@dataclass
class ViewCommand:
    """Serve a finished run at http://HOST:PORT until Ctrl-C: a NeRF/NeuS run as its scene
    (interactive camera, RGB/depth/opacity, training cameras, render-this-view, keyframes
    saved as camera_path.json), an SDF run as its mesh with its metrics, an image run as its
    reconstruction beside the target and the error map."""

    run_dir: tyro.conf.Positional[Path]
    """run folder"""
    options: Annotated[ServerOptions, Flat] = field(default_factory=ServerOptions)
    image: Path | None = None
    """image runs: the target image to show beside the reconstruction"""
    debug: bool = False
    """show tracebacks"""

    def run_kind(self) -> str:
        config = self.run_dir / "config.json"
        if not config.exists():
            raise UserError(f"{self.run_dir}: not a run folder (no config.json)")
        kind = read_json(config).get("task")
        if kind not in TASKS:
            raise UserError(f"{config}: unknown task {kind!r}")
        return kind

    def start(self) -> tuple[str, Callable[[], None]]:
        """Start serving; returns the address and the function that stops the server."""
        kind = self.run_kind()
        viser = require_viser()
        if kind in ("nerf", "neus"):
            from ..viewer.server import SceneViewer

            task = task_from_checkpoint(load_checkpoint(self.run_dir), self.run_dir)
            viewer = SceneViewer(task, self.run_dir, self.options, live=False)
            return server_url(viewer.server), viewer.stop
        from ..viewer.files import show_image_run, show_mesh_run

        self.options.warn_if_public()
        server = viser.ViserServer(host=self.options.host, port=self.options.port,
                                   verbose=False)
        if kind == "image":
            show_image_run(server, self.run_dir, self.image)
        else:
            show_mesh_run(server, self.run_dir)
        return server_url(server), server.stop

    def run(self) -> None:
        url, stop = self.start()
        print(f"viewing {self.run_dir} at {url} (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        finally:
            stop()
