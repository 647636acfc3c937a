"""Shape collections: the generated collection and its reader, batched tri-plane fitting against
per-shape references, the dataset's resume and bad-mesh handling, and the CLI's errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from fieldfit.fields.triplane import TriPlane
from fieldfit.scenes.images import SceneError
from fieldfit.scenes.meshes import load_mesh
from fieldfit.scenes.shape_collection import (
    generate_shape,
    scan_collection,
    write_shape_collection,
)

from fieldfit.collection.dataset import FitOptions, fit_collection, load_collection, read_parts
from fieldfit.collection.fit import (
    RECIPES,
    BatchedTriPlaneFields,
    FitRecipe,
    ShapePool,
    evaluate_shape,
    fit_batch,
    labels_from_sdf,
    make_pool,
    signed_from_logits,
)
from fieldfit.errors import UserError

TINY = FitRecipe(steps=20, points_per_step=256, pool_points=4000, lr=1e-3, plane_lr=1e-2)
FAST_OPTIONS = FitOptions(batch_shapes=2, eval_resolution=24, eval_points=2000)


@pytest.fixture(scope="module")
def small_collection(tmp_path_factory):
    """Two classes x (2 train + 1 test) generated shapes."""
    return write_shape_collection(tmp_path_factory.mktemp("coll"), n_train=2, n_test=1,
                                  classes=["box", "torus"])


def test_scan_reads_modelnet_layout(small_collection):
    shapes = scan_collection(small_collection)
    assert [s.shape_id for s in shapes] == [
        "box/test/box_0002", "box/train/box_0000", "box/train/box_0001",
        "torus/test/torus_0002", "torus/train/torus_0000", "torus/train/torus_0001"]
    assert {(s.label, s.split) for s in shapes} == {
        ("box", "train"), ("box", "test"), ("torus", "train"), ("torus", "test")}


def test_scan_flat_folder_and_errors(tmp_path, small_collection):
    flat = tmp_path / "flat"
    flat.mkdir()
    generate_shape("cone", 0).export(flat / "a.off")
    (flat / "notes.txt").write_text("not a mesh")
    assert [(s.shape_id, s.label, s.split) for s in scan_collection(flat)] == [
        ("a", None, None)]
    with pytest.raises(SceneError, match="no such folder"):
        scan_collection(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SceneError, match="no meshes"):
        scan_collection(tmp_path / "empty")
    lonely = tmp_path / "lonely" / "cone" / "test"
    lonely.mkdir(parents=True)
    generate_shape("cone", 0).export(lonely / "a.off")
    with pytest.raises(SceneError, match="'cone' has no train shapes"):
        scan_collection(tmp_path / "lonely")


def test_generated_shapes_are_deterministic_closed_and_varied():
    a, b = generate_shape("twisted_box", 3, seed=1), generate_shape("twisted_box", 3, seed=1)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    c = generate_shape("twisted_box", 4, seed=1)
    assert not np.allclose(a.bounds, c.bounds)
    for label in ("hourglass", "pyramid", "blob", "capsule"):
        mesh = generate_shape(label, 0)
        assert mesh.is_watertight and mesh.volume > 0, label


def test_labels_and_their_inverse_closed_form():
    sdf = torch.tensor([-0.3, -0.1, -0.05, 0.0, 0.05, 0.1, 0.3])
    np.testing.assert_allclose(labels_from_sdf(sdf, "sdf"), [0, 0, 0.25, 0.5, 0.75, 1, 1],
                               atol=1e-6)
    np.testing.assert_allclose(labels_from_sdf(sdf, "udf"), [0, 0, 0.5, 1, 0.5, 0, 0],
                               atol=1e-6)
    np.testing.assert_array_equal(labels_from_sdf(sdf, "occupancy"), [1, 1, 1, 0, 0, 0, 0])
    labels = labels_from_sdf(sdf, "sdf").clamp(1e-6, 1 - 1e-6)
    np.testing.assert_allclose(signed_from_logits(torch.logit(labels), "sdf"),
                               sdf.clamp(-0.1, 0.1), atol=1e-6)


def test_batched_fields_match_triplane_encoding_and_mlp():
    """Each shape of the batched module is TriPlane -> FrequencyEncoding -> MLP (the
    library's modules, built from the recipe and loaded with that shape's parameters)."""
    recipe = RECIPES["paper"]
    model = BatchedTriPlaneFields(recipe, [torch.Generator().manual_seed(s) for s in (1, 2)])
    with torch.no_grad():  # planes large enough that the features matter
        model.planes.mul_(300.0)
    x = torch.rand(2, 500, 3, generator=torch.Generator().manual_seed(0))
    batched = model(x)
    encoding = recipe.encoding.build(3)
    for i in range(2):
        planes = TriPlane(recipe.planes, 3)
        mlp = recipe.decoder.build(recipe.planes.n_features + encoding.n_output_dims, 1)
        linears = [m for m in mlp.net if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            planes.planes[0].copy_(model.planes[i])
            for layer, linear in enumerate(linears):
                linear.weight.copy_(model.weights[layer][i])
                linear.bias.copy_(model.biases[layer][i])
        reference = mlp(torch.cat([planes(x[i]), encoding(x[i])], -1))[:, 0]
        torch.testing.assert_close(batched[i], reference, atol=1e-5, rtol=1e-5)
    assert batched[0].std() > 0.01  # the comparison is not between constants


def _toy_pool(seed: int, n: int = 3000) -> ShapePool:
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(n, 3, generator=g)
    sdf = (points - 0.5).norm(dim=1) - 0.2 - 0.1 * seed
    return ShapePool(points, labels_from_sdf(sdf, "sdf"))


def test_batched_fit_equals_fitting_one_by_one():
    recipe = dataclasses.replace(TINY, steps=8)
    pools, seeds = [_toy_pool(0), _toy_pool(1), _toy_pool(2)], [11, 12, 13]
    batched, batched_losses = fit_batch(pools, recipe, seeds)
    for i, (pool, seed) in enumerate(zip(pools, seeds, strict=True)):
        alone, alone_losses = fit_batch([pool], recipe, [seed])
        for name, value in alone.shape_tensors(0).items():
            torch.testing.assert_close(batched.shape_tensors(i)[name], value, atol=2e-5,
                                       rtol=1e-4)
        assert batched_losses[i] == pytest.approx(alone_losses[0], rel=1e-4)
    init = BatchedTriPlaneFields(recipe, [torch.Generator().manual_seed(11)])
    assert not torch.allclose(init.planes[0], batched.planes[0])  # it did train


def test_fast_recipe_fits_a_shape():
    mesh = load_mesh_from_generated("ellipsoid")
    recipe = dataclasses.replace(RECIPES["fast"], steps=200, pool_points=20_000)
    model, _ = fit_batch([make_pool(mesh, recipe, 0)], recipe, [0])
    metrics = evaluate_shape(model, 0, mesh, resolution=32, n_points=8000, n_surface=4000)
    assert metrics["iou"] > 0.9 and metrics["chamfer_l1"] < 0.02
    untrained = BatchedTriPlaneFields(recipe, [torch.Generator().manual_seed(0)])
    assert evaluate_shape(untrained, 0, mesh, resolution=32, n_points=8000)["iou"] < 0.5


def load_mesh_from_generated(label: str):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{label}.off"
        generate_shape(label, 0).export(path)
        return load_mesh(path)


def test_dataset_resume_bad_mesh_and_recipe_check(tmp_path, small_collection):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(small_collection, root)
    broken = "OFF\n3 1 0\n0 0 0\nnan 0 0\n0 1 0\n3 0 1 2\n"
    (root / "box" / "train" / "broken.off").write_text(broken)
    out = tmp_path / "ds"
    index = fit_collection(root, out, TINY, FAST_OPTIONS, progress=False)
    assert (index["n_shapes"], index["n_ok"], index["n_failed"]) == (7, 6, 1)
    failed = [e for e in index["shapes"] if e["status"] == "failed"]
    assert "broken.off" in failed[0]["error"] and "non-finite" in failed[0]["error"]
    ok = [e for e in index["shapes"] if e["status"] == "ok"]
    assert all(0.0 <= e["iou"] <= 1.0 and e["fit_seconds"] > 0 for e in ok)
    first = load_collection(out)
    assert first.triplanes.shape == (6, 3, 16, 32, 32)

    # a rerun fits nothing; losing the last batch (a killed rank) refits exactly it
    part = out / "parts" / "r0.jsonl"
    lines = part.read_text().splitlines()
    fit_collection(root, out, TINY, FAST_OPTIONS, progress=False)
    assert part.read_text().splitlines() == lines
    last = json.loads(lines[-1])
    part.write_text("\n".join(lines[:-2]) + "\n" + lines[-2][:10])  # torn last line
    (out / "shards" / last["shard"]).unlink()
    assert last["shape_id"] not in read_parts(out)
    again = fit_collection(root, out, TINY, FAST_OPTIONS, progress=False)
    assert again["n_ok"] == 6 and len(read_parts(out)) == 7
    torch.testing.assert_close(load_collection(out).triplanes, first.triplanes, atol=1e-4,
                               rtol=1e-3)  # only the batch composition differs

    with pytest.raises(UserError, match="another recipe"):
        fit_collection(root, out, dataclasses.replace(TINY, steps=21), FAST_OPTIONS,
                       progress=False)


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such folder"),
    (lambda p: p.mkdir(), "no meshes"),
    (lambda p: (p / "chair" / "test").mkdir(parents=True)
     or generate_shape("box", 0).export(p / "chair" / "test" / "c.off"),
     "'chair' has no train shapes"),
])
def test_cli_one_line_errors(tmp_path, capsys, make, message):
    from fieldfit.cli import main

    root = tmp_path / "root"
    make(root)
    assert main(["collection", "fit", str(root), "--out", str(tmp_path / "ds"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fieldfit: error:") and message in err and "\n" not in err


def test_classify_rejects_a_missing_dataset(tmp_path, capsys):
    from fieldfit.cli import main

    assert main(["collection", "classify", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "not a fitted collection" in capsys.readouterr().err
