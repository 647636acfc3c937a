"""Mesh loading, repair and SDF sampling against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from fieldfit.scenes import SceneError
from fieldfit.scenes.meshes import (
    NOISE_SIGMAS,
    SAMPLE_MIX,
    load_mesh,
    sample_sdf,
    to_sdf_mesh,
)


def box_sdf(p: np.ndarray, half: float) -> np.ndarray:
    """Exact signed distance of an axis-aligned cube of half-side ``half`` at the origin."""
    q = np.abs(p) - half
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


def cube(half: float = 1.0) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(2 * half,) * 3)


def test_cube_signed_distance_is_exact():
    mesh = to_sdf_mesh(cube(), margin=0.1)
    half = 0.9  # the cube is scaled into [-0.9, 0.9]^3
    assert mesh.watertight and not mesh.notes
    p = np.random.default_rng(0).uniform(-1, 1, (5000, 3))
    np.testing.assert_allclose(mesh.signed_distance(p), box_sdf(p, half), atol=1e-9)


def test_sphere_signed_distance_matches_closed_form():
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=2.0)
    mesh = to_sdf_mesh(sphere, margin=0.1)
    radius = 2.0 * mesh.transform.scale
    centre = mesh.transform.to_box(np.zeros((1, 3)))
    p = np.random.default_rng(1).uniform(-1, 1, (5000, 3))
    want = np.linalg.norm(p - centre, axis=1) - radius
    # an inscribed polyhedron: the error is at most the sagitta of its edges (~1e-4 of r here)
    np.testing.assert_allclose(mesh.signed_distance(p), want, atol=2e-3 * radius)


def test_samples_follow_the_recipe():
    mesh = to_sdf_mesh(cube(), margin=0.1)
    n = 24_000
    s = sample_sdf(mesh, n, seed=3)
    p = s.points.double().numpy()
    assert s.points.shape == (n, 3) and s.sdf.shape == (n,)
    assert np.abs(p).max() <= 1.0
    np.testing.assert_allclose(s.sdf.numpy(), box_sdf(p, 0.9), atol=1e-5)
    counts = np.floor(n * np.asarray(SAMPLE_MIX) / sum(SAMPLE_MIX)).astype(int)
    n_surface = n - counts[1:].sum()
    assert len(s.normals) == n_surface
    assert np.all(s.sdf[:n_surface].numpy() == 0)
    np.testing.assert_allclose(box_sdf(p[:n_surface], 0.9), 0, atol=1e-6)
    # the surface normal of a cube face is the axis of its largest coordinate
    axis = np.abs(p[:n_surface]).argmax(1)
    want = np.zeros((n_surface, 3))
    want[np.arange(n_surface), axis] = np.sign(p[np.arange(n_surface), axis])
    np.testing.assert_allclose(s.normals.numpy(), want, atol=1e-6)
    # the finest perturbation band stays within a few sigma of the surface
    band = np.abs(s.sdf[n_surface:n_surface + counts[1]].numpy())
    assert np.median(band) < 2 * NOISE_SIGMAS[0] and band.max() < 8 * NOISE_SIGMAS[0]


def test_samples_are_deterministic_per_seed():
    mesh = to_sdf_mesh(cube())
    a, b, c = (sample_sdf(mesh, 1000, seed) for seed in (5, 5, 6))
    torch.testing.assert_close(a.points, b.points)
    assert not torch.equal(a.points, c.points)


def open_cube() -> trimesh.Trimesh:
    mesh = cube()
    top = mesh.triangles_center[:, 2] > 0.99
    return trimesh.Trimesh(mesh.vertices, mesh.faces[~top])


@pytest.mark.parametrize("make,note", [
    (lambda: cube(), None),
    (lambda: trimesh.Trimesh(cube().vertices, cube().faces[:, ::-1]), "inverted"),
    (open_cube, "not watertight"),
    (lambda: trimesh.Trimesh(open_cube().vertices, open_cube().faces[:, ::-1]), "inverted"),
])
def test_signs_of_inverted_and_open_meshes(make, note):
    mesh = to_sdf_mesh(make(), margin=0.1)
    if note is None:
        assert not mesh.notes
    else:
        assert any(note in n for n in mesh.notes), mesh.notes
    inside = np.array([[0.0, 0.0, 0.0], [0.5, -0.5, 0.3], [-0.8, 0.8, -0.8]])
    outside = np.array([[0.0, 0.0, 0.95], [0.95, 0.0, 0.0], [-0.95, -0.95, 0.95]])
    assert (mesh.signed_distance(inside) < 0).all()
    assert (mesh.signed_distance(outside) > 0).all()
    np.testing.assert_allclose(np.abs(mesh.signed_distance(inside)), -box_sdf(inside, 0.9),
                               atol=1e-9)


def test_inconsistent_winding_is_repaired():
    sphere = trimesh.creation.icosphere(3)
    faces = sphere.faces.copy()
    faces[::7] = faces[::7, ::-1]
    mesh = to_sdf_mesh(trimesh.Trimesh(sphere.vertices, faces), margin=0.1)
    assert any("inconsistent" in n for n in mesh.notes)
    assert mesh.signed_distance(np.zeros((1, 3)))[0] < 0
    assert mesh.signed_distance(np.full((1, 3), 0.95))[0] > 0


def test_duplicate_vertices_merged_by_position(tmp_path):
    soup = cube()
    tri = soup.vertices[soup.faces].reshape(-1, 3)  # every face with its own vertices
    trimesh.Trimesh(tri, np.arange(len(tri)).reshape(-1, 3), process=False).export(
        tmp_path / "soup.obj")
    mesh = load_mesh(tmp_path / "soup.obj")
    assert mesh.watertight and len(mesh.vertices) == 8


def test_loads_every_format(tmp_path):
    for suffix in (".obj", ".ply", ".stl", ".off"):
        cube().export(tmp_path / f"c{suffix}")
        mesh = load_mesh(tmp_path / f"c{suffix}")
        assert mesh.watertight and len(mesh.faces) == 12, suffix
        np.testing.assert_allclose(mesh.transform.from_box(mesh.vertices).min(0), -1, atol=1e-6)


def bad_mesh_files(tmp):
    """(path, expected message part) of broken mesh inputs."""
    (tmp / "empty.obj").write_text("")
    (tmp / "garbage.ply").write_bytes(b"ply\nformat nonsense\n\x00\x01\x02")
    (tmp / "points.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    (tmp / "nan.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 nan 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\n"
                                 "f 1 3 4\nf 2 3 4\n")
    (tmp / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 2 4 3\n")
    (tmp / "mesh.xyz").write_text("0 0 0\n")
    return [
        (tmp / "missing.obj", "no such file"),
        (tmp / "empty.obj", "empty"),
        (tmp / "garbage.ply", "not a readable mesh"),
        (tmp / "points.obj", "no faces"),
        (tmp / "nan.obj", "non-finite"),
        (tmp / "flat.obj", "flat"),
        (tmp / "mesh.xyz", "unsupported mesh format"),
        (tmp, "is a folder"),
    ]


def test_bad_mesh_files_raise_scene_error(tmp_path):
    for path, message in bad_mesh_files(tmp_path):
        with pytest.raises(SceneError, match=message) as info:
            load_mesh(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
