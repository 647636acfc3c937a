"""Finished image and SDF runs in the viewer: their outputs as written into the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError


def _read_image(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    if not path.exists():
        raise UserError(f"{path}: missing (was the run finished?)")
    image = np.asarray(iio.imread(path))
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.dtype != np.uint8:  # 16-bit targets
        image = (image / np.iinfo(image.dtype).max * 255 + 0.5).astype(np.uint8)
    return image[..., :3]


def metrics_markdown(run_dir: Path) -> str:
    """The run's metrics.json as a markdown list (numbers to 4 significant digits)."""
    path = run_dir / "metrics.json"
    if not path.exists():
        return "no metrics.json"
    metrics = json.loads(path.read_text())
    return "  \n".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
                       for k, v in sorted(metrics.items()) if not isinstance(v, dict | list))


def show_image_run(server, run_dir: Path, target: Path | None) -> None:
    """Reconstruction, the ``target`` image (when given) and the error map side by side."""
    panels = [("reconstruction", _read_image(run_dir / "reconstruction.png"))]
    if target is not None:
        panels.append(("target", _read_image(target)))
    panels.append(("error", _read_image(run_dir / "error.png")))
    height, width = panels[0][1].shape[:2]
    w, h = 1.0, height / width
    server.scene.set_up_direction("+y")
    for i, (name, image) in enumerate(panels):
        # seen from -z (below), +x is to the left: the first panel goes leftmost
        x = ((len(panels) - 1) / 2 - i) * 1.05 * w
        # viser images lie in their local xy plane; a half-turn about x makes +y the image's up
        server.scene.add_image(f"/{name}", image, render_width=w, render_height=h,
                               wxyz=(0.0, 1.0, 0.0, 0.0), position=(x, 0.0, 0.0))
        server.scene.add_label(f"/{name}_label", name, position=(x, 0.55 * h + 0.05, 0.0))
    server.initial_camera.position = (0.0, 0.0, -0.8 * len(panels))
    server.initial_camera.look_at = (0.0, 0.0, 0.0)
    server.initial_camera.up = (0.0, 1.0, 0.0)
    server.gui.add_markdown(metrics_markdown(run_dir))


def show_mesh_run(server, run_dir: Path) -> None:
    """The extracted mesh.ply with the run's metrics."""
    import trimesh

    path = run_dir / "mesh.ply"
    if not path.exists():
        raise UserError(f"{path}: missing (was the run finished?)")
    mesh = trimesh.load(path, force="mesh", process=False)
    vertices, faces = np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32)
    server.scene.add_mesh_simple("/mesh", vertices, faces, color=(180, 180, 200))
    center = (vertices.min(0) + vertices.max(0)) / 2
    radius = float(np.linalg.norm(vertices.max(0) - vertices.min(0)))
    server.initial_camera.look_at = center
    server.initial_camera.position = center + 0.6 * radius * np.array([0.6, 0.5, 0.6])
    server.gui.add_markdown(metrics_markdown(run_dir))
