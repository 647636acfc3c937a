"""COLMAP sparse models (``cameras``, ``images``, ``points3D`` as .bin or .txt), read with
pycolmap (COLMAP's own bindings, the optional extra ``photos``).

A scene folder holds the model in ``sparse/0/``, ``sparse/`` or the folder itself, and the
photos in ``images/``. COLMAP's poses map world to camera in OpenCV axes (x right, y down,
looking down +z); they become OpenGL camera-to-world matrices. Depth bounds per image come
from the 3D points it observes (their 0.1 and 99.9 percentiles, as LLFF's ``imgs2poses``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .capture import CaptureFrame, load_capture
from .images import SceneError
from .nerf_scene import NerfScene, SceneOptions

MODEL_FOLDERS = ("sparse/0", "sparse", ".")
INSTALL_HINT = "pycolmap is not installed: pip install 'fieldfit[photos]' (or pip install pycolmap)"
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


def import_pycolmap():
    """The pycolmap module; SceneError with the install line when it is missing."""
    try:
        import pycolmap
    except ImportError:
        raise SceneError(INSTALL_HINT) from None
    return pycolmap


def find_colmap_model(root: Path) -> Path | None:
    """The folder under ``root`` holding ``cameras.bin`` or ``cameras.txt``, if any."""
    for sub in MODEL_FOLDERS:
        folder = Path(root) / sub
        if (folder / "cameras.bin").exists() or (folder / "cameras.txt").exists():
            return folder
    return None


def read_colmap_model(folder: Path):
    """A ``pycolmap.Reconstruction`` from ``folder``; SceneError naming it when unreadable."""
    pycolmap = import_pycolmap()
    folder = Path(folder)
    for part in ("cameras", "images", "points3D"):
        if not any((folder / f"{part}{suffix}").exists() for suffix in (".bin", ".txt")):
            raise SceneError(f"{folder}: COLMAP model without {part}.bin or {part}.txt")
    try:
        return pycolmap.Reconstruction(folder)
    except Exception as err:  # pycolmap raises plain RuntimeError/ValueError on bad files
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise SceneError(f"{folder}: not a readable COLMAP model ({first})") from None


def pinhole_and_distortion(camera, where: str):
    """(fx, fy, cx, cy) and OpenCV (k1, k2, p1, p2) of a pycolmap camera; SceneError for
    models other than SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL and OPENCV."""
    model, p = camera.model.name, [float(v) for v in camera.params]
    if model == "SIMPLE_PINHOLE":
        return (p[0], p[0], p[1], p[2]), (0.0, 0.0, 0.0, 0.0)
    if model == "PINHOLE":
        return tuple(p[:4]), (0.0, 0.0, 0.0, 0.0)
    if model == "SIMPLE_RADIAL":
        return (p[0], p[0], p[1], p[2]), (p[3], 0.0, 0.0, 0.0)
    if model == "RADIAL":
        return (p[0], p[0], p[1], p[2]), (p[3], p[4], 0.0, 0.0)
    if model == "OPENCV":
        return tuple(p[:4]), tuple(p[4:8])
    raise SceneError(f"{where}: camera model {model} is not supported (use SIMPLE_PINHOLE, "
                     "PINHOLE, SIMPLE_RADIAL, RADIAL or OPENCV, e.g. `colmap image_undistorter`)")


def _depth_bounds(reconstruction, image) -> tuple[float, float] | None:
    ids = [p.point3D_id for p in image.points2D if p.has_point3D()]
    if len(ids) < 2:
        return None
    xyz = np.stack([reconstruction.points3D[i].xyz for i in ids])
    depth = (image.cam_from_world().matrix() @ np.c_[xyz, np.ones(len(xyz))].T)[2]
    depth = depth[depth > 0]
    if len(depth) < 2:
        return None
    near, far = np.percentile(depth, [0.1, 99.9])
    return float(near), float(far)


def frames_from_reconstruction(reconstruction, image_dir: Path, where: str) -> list[CaptureFrame]:
    """One frame per registered image of ``reconstruction`` (photos in ``image_dir``)."""
    frames = []
    images = [reconstruction.images[i] for i in reconstruction.reg_image_ids()]
    for image in sorted(images, key=lambda im: im.name):
        camera = reconstruction.cameras[image.camera_id]
        (fx, fy, cx, cy), distortion = pinhole_and_distortion(
            camera, f"{where}: camera {image.camera_id} (image {image.name})")
        w2c = np.eye(4)
        w2c[:3] = image.cam_from_world().matrix()
        frames.append(CaptureFrame(
            image=image_dir / image.name, c2w=np.linalg.inv(w2c) @ OPENCV_TO_OPENGL,
            fx=fx, fy=fy, cx=cx, cy=cy, width=int(camera.width), height=int(camera.height),
            distortion=distortion, near_far=_depth_bounds(reconstruction, image)))
    if not frames:
        raise SceneError(f"{where}: no registered images")
    return frames


def load_colmap(root: Path, options: SceneOptions) -> NerfScene:
    """A folder with a COLMAP model (see the module docstring) and ``images/``."""
    root = Path(root)
    folder = find_colmap_model(root)
    if folder is None:
        raise SceneError(f"{root}: no COLMAP model (sparse/0/cameras.bin or .txt)")
    image_dir = root / "images"
    if not image_dir.is_dir():
        raise SceneError(f"{image_dir}: not found (the COLMAP model's photos)")
    frames = frames_from_reconstruction(read_colmap_model(folder), image_dir, str(folder))
    return load_capture(frames, root, options, kind="colmap")
