"""Meshes as signed-distance targets: loading, repair, normalisation into the field box,
signed distances and training samples.

Signed distances come from libigl (an AABB tree for the distance; the sign from the face
pseudonormals for a closed mesh, from the fast generalised winding number for an open one), so
no Python loop ever runs per point. Distances are negative inside.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .images import SceneError

log = logging.getLogger("fieldfit")

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off")
BOX = 1.0
"""the field box is [-BOX, BOX]^3; meshes are scaled into it"""
NOISE_SIGMAS = (0.003, 0.01, 0.1)
"""std-devs (box units) of the Gaussian perturbations of surface samples (tri-plane recipe)"""
SAMPLE_MIX = (100, 200, 150, 50, 100)
MAX_COORDINATE = 1e30
"""largest accepted |vertex coordinate|: volumes (extent^3) must stay finite in float64"""
"""relative counts: surface, one per NOISE_SIGMAS, uniform in the box (tri-plane: x 1000)"""
SDF_CHUNK = 2**18
"""points per signed-distance query of :func:`sample_sdf` (one progress report each)"""


@dataclass(frozen=True)
class MeshTransform:
    """Maps input coordinates into the box: ``box = (x - centre) * scale``."""

    centre: tuple[float, float, float]
    scale: float

    def to_box(self, x: np.ndarray) -> np.ndarray:
        """(n, 3) input-frame points -> (n, 3) box points."""
        return (np.asarray(x, dtype=np.float64) - np.asarray(self.centre)) * self.scale

    def from_box(self, y: np.ndarray) -> np.ndarray:
        """(n, 3) box points -> (n, 3) input-frame points."""
        return np.asarray(y, dtype=np.float64) / self.scale + np.asarray(self.centre)


@dataclass
class SdfSamples:
    """Training points for a signed distance field."""

    points: torch.Tensor
    """(n, 3) float32 in the box"""
    sdf: torch.Tensor
    """(n,) float32 signed distances, box units, negative inside"""
    normals: torch.Tensor
    """(n_surface, 3) float32 outward unit normals of the first n_surface points (on the surface)"""


@dataclass
class SdfMesh:
    """A triangle mesh in the box with outward orientation, ready for signed distances."""

    vertices: np.ndarray
    """(n_vertices, 3) float64 in the box"""
    faces: np.ndarray
    """(n_faces, 3) int64"""
    transform: MeshTransform
    watertight: bool
    notes: list[str] = field(default_factory=list)
    """repairs and warnings, for the run's metrics"""

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """(n, 3) box points -> (n,) float64 signed distances (negative inside)."""
        return signed_distance(self.vertices, self.faces, points, closed=self.watertight)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(n, 3) box points -> (n,) bool inside (generalised winding number > 1/2)."""
        return contains(self.vertices, self.faces, points)

    def sample_surface(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` area-uniform surface points (n, 3) and their face normals (n, 3)."""
        return sample_surface(self.vertices, self.faces, n, rng)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(n_faces, 3) unit normals by the right-hand rule (zero for degenerate faces)."""
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return n / np.maximum(length, 1e-30)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` area-uniform points on a triangle mesh (n, 3) and their face normals (n, 3)."""
    import trimesh

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    points, face_index = trimesh.sample.sample_surface(mesh, n, seed=rng)
    return np.asarray(points), face_normals(vertices, faces)[face_index]


def closest_faces(vertices: np.ndarray, faces: np.ndarray,
                  points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unsigned distance (n,) from (n, 3) points to a triangle mesh, and the closest face (n,)."""
    import igl

    sq, face_index, _ = igl.point_mesh_squared_distance(
        _f64(points), _f64(vertices), np.ascontiguousarray(faces, dtype=np.int64))
    return np.sqrt(sq), face_index


def signed_distance(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray,
                    closed: bool = True) -> np.ndarray:
    """(n,) signed distances of (n, 3) points to an outward-oriented mesh (negative inside).

    The sign comes from the pseudonormal of the closest feature for a closed mesh (exact) and
    from the fast generalised winding number (inside where it exceeds 1/2) for an open one.
    """
    import igl

    if len(points) == 0:
        return np.zeros(0)
    p, v = _f64(points), _f64(vertices)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    if closed:
        sdf, *_ = igl.signed_distance(p, v, f,
                                      igl.SignedDistanceType.SIGNED_DISTANCE_TYPE_PSEUDONORMAL)
        return sdf
    # libigl's winding-number sign types scale the distance by (1 - 2w) rather than signing
    # it, so the distance and the sign are taken separately here
    distance, _ = closest_faces(v, f, p)
    return np.where(contains(v, f, p), -distance, distance)


def contains(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(n,) bool: (n, 3) points inside an outward-oriented mesh, by the fast generalised
    winding number (> 1/2). Unlike a closest-point query its cost hardly depends on where the
    points are, and it tolerates holes."""
    import igl

    w = igl.fast_winding_number(_f64(vertices), np.ascontiguousarray(faces, dtype=np.int64),
                                _f64(points))
    return w > 0.5


def _f64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _read(path: Path):
    """trimesh.Trimesh of any mesh file, or SceneError naming the file and the problem."""
    import trimesh

    if not path.exists():
        raise SceneError(f"{path}: no such file")
    if path.is_dir():
        raise SceneError(f"{path}: is a folder, not a mesh file")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise SceneError(f"{path}: unsupported mesh format {path.suffix!r}; use one of "
                         f"{', '.join(MESH_SUFFIXES)}")
    if path.stat().st_size == 0:
        raise SceneError(f"{path}: file is empty")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as err:  # trimesh raises many types for corrupt or foreign files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SceneError(f"{path}: not a readable mesh ({reason})") from None
    faces = getattr(mesh, "faces", None)
    if faces is None or len(faces) == 0:
        raise SceneError(f"{path}: mesh has no faces")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if not np.isfinite(vertices).all():
        raise SceneError(f"{path}: mesh has non-finite (NaN/inf) vertex coordinates")
    if np.abs(vertices).max() > MAX_COORDINATE:
        raise SceneError(f"{path}: vertex coordinates up to {np.abs(vertices).max():.3g}; "
                         f"fieldfit takes meshes within +-{MAX_COORDINATE:g}")
    if np.asarray(faces).max() >= len(vertices) or np.asarray(faces).min() < 0:
        raise SceneError(f"{path}: faces index vertices that do not exist")
    return mesh


def _repair(mesh, name: str) -> list[str]:
    """Merge vertices by position, drop degenerate faces, make the winding consistent and
    outward. Returns notes on what was found and done."""
    import trimesh

    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) == 0:
        raise SceneError(f"{name}: every face is degenerate (zero area)")
    extents = mesh.extents
    if extents.min() <= 1e-9 * extents.max():
        raise SceneError(f"{name}: mesh is flat (zero volume, extents {extents.tolist()})")
    notes = []
    if not mesh.is_winding_consistent:
        trimesh.repair.fix_winding(mesh)
        notes.append("inconsistent face orientation: winding made consistent")
    if mesh.is_watertight and abs(mesh.volume) <= 1e-9 * float(np.prod(extents)):
        raise SceneError(f"{name}: mesh encloses zero volume")
    if mesh.volume < 0:
        mesh.invert()
        notes.append("faces pointed inward (negative volume): mesh inverted")
    if not mesh.is_watertight:
        notes.append("mesh is not watertight: inside/outside from the generalised winding "
                      "number")
    return notes


def load_mesh(path: str | Path, margin: float = 0.1) -> SdfMesh:
    """Read an OBJ/PLY/STL/OFF mesh, repair it and scale it into the box (:func:`to_sdf_mesh`).

    Raises SceneError naming the file for a missing/unreadable file, a mesh without faces,
    non-finite vertices or a flat (zero-volume) mesh.
    """
    path = Path(path)
    return to_sdf_mesh(_read(path), margin, name=str(path))


def to_sdf_mesh(mesh, margin: float = 0.1, name: str = "mesh") -> SdfMesh:
    """A ``trimesh.Trimesh`` (modified in place) merged by position, consistently and outward
    oriented, and scaled so the longest side of its bounding box spans ``2 * (BOX - margin)``,
    centred at the origin. Repairs are logged as warnings naming ``name``."""
    if not 0.0 <= margin < BOX:
        raise SceneError(f"margin {margin}: must be in [0, {BOX})")
    notes = _repair(mesh, name)
    for note in notes:
        log.warning("%s: %s", name, note)
    lo, hi = mesh.bounds
    centre = (lo + hi) / 2.0
    transform = MeshTransform(tuple(float(c) for c in centre),
                              float((BOX - margin) / (np.max(hi - lo) / 2.0)))
    return SdfMesh(vertices=transform.to_box(mesh.vertices),
                   faces=np.ascontiguousarray(mesh.faces, dtype=np.int64),
                   transform=transform, watertight=bool(mesh.is_watertight), notes=notes)


def sample_sdf(mesh: SdfMesh, n: int, seed: int,
               progress: Callable[[int, int], None] | None = None) -> SdfSamples:
    """``n`` training points in the tri-plane mix (:data:`SAMPLE_MIX`): exact surface points
    (SDF 0, with normals), Gaussian perturbations of surface points at :data:`NOISE_SIGMAS`
    and uniform points in the box; perturbed points are clipped to the box. The distances are
    computed :data:`SDF_CHUNK` points at a time, each chunk reported as
    ``progress(points, n_off_surface)``.
    """
    rng = np.random.default_rng(seed)
    weights = np.asarray(SAMPLE_MIX, dtype=np.float64)
    counts = np.floor(n * weights / weights.sum()).astype(int)
    counts[0] += n - counts.sum()
    n_surface, n_noisy = counts[0], counts[1:-1].sum()
    surface, normals = mesh.sample_surface(n_surface + n_noisy, rng)
    noise = np.concatenate([rng.normal(0.0, s, (c, 3)) for s, c in zip(NOISE_SIGMAS, counts[1:-1],
                                                                        strict=True)])
    noisy = np.clip(surface[n_surface:] + noise, -BOX, BOX)
    uniform = rng.uniform(-BOX, BOX, (counts[-1], 3))
    off_surface = np.concatenate([noisy, uniform])
    distances = []
    for start in range(0, len(off_surface), SDF_CHUNK):
        distances.append(mesh.signed_distance(off_surface[start:start + SDF_CHUNK]))
        if progress is not None:
            progress(len(distances[-1]), len(off_surface))
    sdf = np.concatenate([np.zeros(n_surface), *distances])
    points = np.concatenate([surface[:n_surface], off_surface])
    return SdfSamples(points=torch.from_numpy(points).float(), sdf=torch.from_numpy(sdf).float(),
                      normals=torch.from_numpy(normals[:n_surface]).float())
