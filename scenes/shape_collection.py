"""Shape collections: a generated labelled collection of solids, and the reader of a folder in
ModelNet's layout, ``ROOT/CLASS/{train,test}/*.{off,obj,ply,stl}`` (or a flat folder of meshes,
an unlabelled collection).

The generated collection has ten classes of parametric and deformed solids with random
proportions and poses (any yaw, a tilt of up to 15 degrees), deterministic from a seed. Every
mesh is one closed, outward-oriented surface, so signed distances are exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .images import SceneError
from .meshes import MESH_SUFFIXES

SPLITS = ("train", "test")


@dataclass(frozen=True)
class CollectionShape:
    """One mesh of a collection."""

    path: Path
    shape_id: str
    """the path relative to the root, without suffix, '/'-separated (e.g. 'cone/train/cone_0003')"""
    label: str | None
    """class (folder name); None in an unlabelled collection"""
    split: str | None
    """'train' or 'test'; None in an unlabelled collection"""


def _meshes_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)


def scan_collection(root: str | Path) -> list[CollectionShape]:
    """The shapes under ``root``, sorted by id: ModelNet's layout when ``root`` has class folders
    holding train/ or test/, otherwise the meshes directly in ``root`` (unlabelled).

    Raises SceneError for a missing folder, a folder without meshes and a class without train
    shapes (naming the folder).
    """
    root = Path(root)
    if not root.is_dir():
        raise SceneError(f"{root}: no such folder")
    classes = sorted(d for d in root.iterdir()
                     if d.is_dir() and any((d / s).is_dir() for s in SPLITS))
    if not classes:
        flat = _meshes_in(root)
        if not flat:
            raise SceneError(f"{root}: no meshes ({', '.join(MESH_SUFFIXES)}) and no "
                             f"CLASS/{{train,test}} folders")
        return [CollectionShape(p, p.stem, None, None) for p in flat]
    shapes = []
    for folder in classes:
        per_split = {s: _meshes_in(folder / s) if (folder / s).is_dir() else [] for s in SPLITS}
        if not per_split["train"]:
            raise SceneError(f"{folder}: class {folder.name!r} has no train shapes in "
                             f"{folder / 'train'}")
        shapes += [CollectionShape(p, f"{folder.name}/{split}/{p.stem}", folder.name, split)
                   for split, paths in per_split.items() for p in paths]
    return sorted(shapes, key=lambda s: s.shape_id)


# --- the generated collection -----------------------------------------------------------------


def _revolve(profile: np.ndarray, sections: int = 48):
    """Closed solid of revolution about z of a (n, 2) (radius, z) profile; radius 0 at both ends."""
    import trimesh

    return trimesh.creation.revolve(profile, sections=sections)


def _ellipsoid(rng):
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=3)
    mesh.apply_scale(rng.uniform([0.5, 0.5, 0.8], [0.7, 0.7, 1.3]))
    return mesh


def _box(rng):
    import trimesh

    return trimesh.creation.box(extents=rng.uniform([0.9, 0.9, 0.9], [1.6, 1.6, 1.6]))


def _cylinder(rng):
    import trimesh

    return trimesh.creation.cylinder(radius=rng.uniform(0.3, 0.5), height=rng.uniform(1.2, 2.0),
                                     sections=48)


def _cone(rng):
    import trimesh

    return trimesh.creation.cone(radius=rng.uniform(0.5, 0.8), height=rng.uniform(1.2, 2.0),
                                 sections=48)


def _torus(rng):
    import trimesh

    major = rng.uniform(0.6, 0.8)
    return trimesh.creation.torus(major_radius=major, minor_radius=major * rng.uniform(0.2, 0.4),
                                  major_sections=48, minor_sections=24)


def _capsule(rng):
    import trimesh

    return trimesh.creation.capsule(height=rng.uniform(1.0, 1.6), radius=rng.uniform(0.25, 0.4),
                                    count=[24, 24])


def _pyramid(rng):
    import trimesh

    half, height = rng.uniform(0.5, 0.8), rng.uniform(0.9, 1.5)
    points = [[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0],
              [0, 0, height]]
    return trimesh.convex.convex_hull(np.asarray(points))


def _hourglass(rng):
    z = np.linspace(-1.0, 1.0, 33) * rng.uniform(0.8, 1.0)
    end, waist = rng.uniform(0.5, 0.7), rng.uniform(0.15, 0.3)
    radius = waist + (end - waist) * (z / z[-1]) ** 2
    profile = np.concatenate([[[0.0, z[0]]], np.stack([radius, z], 1), [[0.0, z[-1]]]])
    return _revolve(profile)


def _twisted_box(rng):
    import trimesh

    mesh = trimesh.creation.box(extents=rng.uniform([0.5, 0.9, 1.4], [0.7, 1.2, 2.0]))
    for _ in range(4):
        mesh = mesh.subdivide()
    v = mesh.vertices.copy()
    angle = rng.uniform(0.6, 1.2) * v[:, 2]
    c, s = np.cos(angle), np.sin(angle)
    mesh.vertices = np.stack([c * v[:, 0] - s * v[:, 1], s * v[:, 0] + c * v[:, 1], v[:, 2]], 1)
    return mesh


def _blob(rng):
    """A sphere with radial bumps of random spherical frequencies."""
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=4)
    v = mesh.vertices
    bumps = np.zeros(len(v))
    for _ in range(3):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        bumps += np.sin(rng.uniform(3.0, 5.0) * v @ direction + rng.uniform(0, 2 * np.pi))
    mesh.vertices = v * (1.0 + 0.12 * bumps)[:, None]
    return mesh


SHAPE_CLASSES: dict[str, Callable] = {
    "ellipsoid": _ellipsoid, "box": _box, "cylinder": _cylinder, "cone": _cone,
    "torus": _torus, "capsule": _capsule, "pyramid": _pyramid, "hourglass": _hourglass,
    "twisted_box": _twisted_box, "blob": _blob,
}
"""class name -> generator(rng) of a trimesh.Trimesh in its canonical pose"""


def random_pose(rng: np.random.Generator, max_tilt_deg: float = 15.0) -> np.ndarray:
    """(4, 4) rotation: any yaw about z, then a tilt of up to ``max_tilt_deg`` about a random
    horizontal axis (upright shapes in random poses, as in ModelNet)."""
    import trimesh

    yaw = trimesh.transformations.rotation_matrix(rng.uniform(0, 2 * np.pi), [0, 0, 1])
    phi = rng.uniform(0, 2 * np.pi)
    tilt = trimesh.transformations.rotation_matrix(np.radians(rng.uniform(0, max_tilt_deg)),
                                                   [np.cos(phi), np.sin(phi), 0.0])
    return tilt @ yaw


def generate_shape(label: str, index: int, seed: int = 0):
    """The ``index``-th shape of class ``label`` (trimesh.Trimesh), deterministic in
    (seed, class, index)."""
    classes = list(SHAPE_CLASSES)
    rng = np.random.default_rng([seed, classes.index(label), index])
    mesh = SHAPE_CLASSES[label](rng)
    mesh.apply_transform(random_pose(rng))
    return mesh


def write_shape_collection(root: str | Path, n_train: int = 16, n_test: int = 4,
                           classes: list[str] | None = None, seed: int = 0) -> Path:
    """Write ``ROOT/CLASS/{train,test}/CLASS_NNNN.off`` for each class (all ten by default);
    existing files are kept. Returns ``root``."""
    root = Path(root)
    for label in classes or list(SHAPE_CLASSES):
        if label not in SHAPE_CLASSES:
            raise SceneError(f"unknown shape class {label!r}; choose from {list(SHAPE_CLASSES)}")
        for index in range(n_train + n_test):
            split = "train" if index < n_train else "test"
            path = root / label / split / f"{label}_{index:04d}.off"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                generate_shape(label, index, seed).export(path)
    return root
