"""SDF fitting end to end: every registered field preset, the CLI, checkpoints -> meshes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
from fieldfit.fields import field_names
from fieldfit.scenes import ImageTarget, procedural_image
from fieldfit.scenes.meshes import closest_faces, to_sdf_mesh

from fieldfit.cli import main
from fieldfit.run import run_task
from fieldfit.tasks import ImageTask, ImageTaskConfig, build_task
from fieldfit.tasks.sdf import SdfTask, SdfTaskConfig
from fieldfit.trainer import Trainer, TrainerConfig

SMALL = dict(log2_table=12, max_res=64, resolution=24, eval_points=2**13,
             eval_surface_points=2000)


@pytest.fixture(scope="module")
def sphere():
    return to_sdf_mesh(trimesh.creation.icosphere(3), name="sphere")


# one learning rate for every preset (some recommend NeuRBF's 1e-4, meant for 20k steps)
def fit(mesh, tmp_path, field: str, steps: int, batch: int, lr: float = 1e-3,
        **task) -> dict:
    config = SdfTaskConfig(field=field, n_samples=8 * batch, batch_size=batch,
                           **{"loss": "l1", **SMALL, **task})
    trainer = TrainerConfig(steps=steps, lr_encoding=lr, lr_decoder=lr, warmup=10 / steps,
                            checkpoint_every=0)
    task = build_task(SdfTask, mesh, config, torch.device("cpu"), seed=0)
    return Trainer(task, trainer, tmp_path, progress=False).fit()


# The lowest IoU over seeds 0, 1 and 2 after these steps at 100 k parameters, less 0.05
# (measured: cam 0.811, dense 0.925, frequency 0.750, grid 0.747, mlp 0.831, rbf 0.562,
# triplane 0.948; triplane-recipe 0.888 after 300 steps, its SIREN decoder at this lr often
# still all-inside after 100). All-inside scores 0.38 and the untrained presets 0 to 0.38.
SPHERE_FLOORS = {"cam": 0.76, "dense": 0.87, "frequency": 0.70, "grid": 0.70, "mlp": 0.78,
                 "rbf": 0.51, "triplane": 0.90, "triplane-recipe": 0.83}
SPHERE_STEPS = {"triplane-recipe": 300}


@pytest.mark.parametrize("field", field_names())
def test_every_preset_fits_a_sphere(sphere, tmp_path, field):
    result = fit(sphere, tmp_path, field, steps=SPHERE_STEPS.get(field, 100), batch=1024,
                 params=100_000)
    assert result["iou"] > SPHERE_FLOORS[field], result


@pytest.mark.slow
@pytest.mark.parametrize("field", field_names())
def test_every_preset_fits_a_torus_closely(tmp_path, field):
    torus = to_sdf_mesh(trimesh.creation.torus(0.6, 0.25), name="torus")
    result = fit(torus, tmp_path, field, steps=400, batch=2048, resolution=64,
                 eval_points=2**16, eval_surface_points=20_000)
    # the Fourier MLP is the slow learner: IoU 0.857-0.872, normal error 36-41 degrees after
    # these 400 steps over seeds 0-2; every other preset passes the close floor
    iou, nae = (0.8, 45) if field == "frequency" else (0.95, 15)
    assert result["iou"] > iou and result["nae_deg"] < nae, result


@pytest.mark.parametrize(("options", "floor"), [  # measured IoU 0.867, 0.748, 0.808 (seed 0)
    (dict(eikonal_weight=0.02, normal_weight=0.02), 0.82),
    (dict(eikonal_weight=0.02, gradient="finite_difference", fd_step=5e-3), 0.7),
    (dict(loss="bce"), 0.76),
])
def test_gradient_terms_and_losses_train(sphere, tmp_path, options, floor):
    """The eikonal and normal terms (autograd or finite differences) and the bce loss fit."""
    config = SdfTaskConfig(field="grid", n_samples=4096, batch_size=512, **{**SMALL, **options})
    terms = SdfTask(sphere, config).train_step(0, torch.Generator().manual_seed(0))
    for name in ("eikonal", "normal"):
        assert (name in terms) == (options.get(f"{name}_weight", 0) > 0)
        assert name not in terms or torch.isfinite(terms[name])
    result = fit(sphere, tmp_path, "grid", steps=60, batch=1024, lr=1e-2, **options)
    assert result["iou"] > floor, result  # all-inside: 0.38, untrained grid: 0.38


def test_eikonal_with_bce_rejected():
    with pytest.raises(ValueError, match="--eikonal-weight"):
        SdfTaskConfig(loss="bce", eikonal_weight=0.1)


@pytest.fixture(scope="module")
def mesh_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("mesh") / "torus.ply"
    torus = trimesh.creation.torus(0.6, 0.25)
    torus.apply_translation([10.0, -3.0, 2.0])
    torus.apply_scale(5.0)
    torus.export(path)
    return path


CLI_FIT = ["--steps", "60", "--warmup", "0.08", "--batch-size", "512", "--n-samples", "4096",
           "--log2-table", "12", "--max-res", "64", "--resolution", "32", "--eval-points", "8192",
           "--eval-surface-points", "2000", "--lr-encoding", "1e-2"]


def test_cli_fits_and_extracts_in_the_input_frame(tmp_path, mesh_file, capsys):
    out = tmp_path / "run"
    assert main(["sdf", str(mesh_file), "--out", str(out), *CLI_FIT]) == 0
    for name in ("mesh.ply", "mesh.png", "metrics.json", "checkpoint.safetensors",
                 "training_curve.png"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    # 60 steps reach IoU 0.375 (seed 0) on this torus; the untrained field scores 0.114
    assert metrics["iou"] > 0.3 and metrics["resolution"] == 32
    fitted = trimesh.load(out / "mesh.ply")
    truth = trimesh.load(mesh_file)
    # the extracted surface lies in the input's frame (the box is 50 units away): most of it
    # near the truth after this short fit
    distance, _ = closest_faces(truth.vertices, truth.faces, fitted.vertices)
    assert np.median(distance) < 0.1 * truth.extents.max()
    # `fieldfit mesh` on the checkpoint rebuilds the same field: the same mesh at the same
    # resolution, and a finer one on request
    assert main(["mesh", str(out), "--resolution", "32", "--out", str(tmp_path / "m.obj")]) == 0
    again = trimesh.load(tmp_path / "m.obj", process=False)
    first = trimesh.load(out / "mesh.ply", process=False)
    np.testing.assert_allclose(np.sort(again.vertices, axis=0), np.sort(first.vertices, axis=0),
                               atol=1e-5 * truth.extents.max())
    assert (tmp_path / "m.png").exists()
    assert main(["mesh", str(out), "--resolution", "48"]) == 0
    assert len(trimesh.load(out / "mesh_48.ply").faces) > len(first.faces)


def cli_error(capsys, *args) -> str:
    assert main([str(a) for a in args]) == 2, args
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fieldfit: error:"), lines
    return lines[0]


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, mesh_file, capsys):
    from test_sdf_meshes import bad_mesh_files

    for path, message in bad_mesh_files(tmp_path):
        line = cli_error(capsys, "sdf", path, "--out", tmp_path / "out")
        assert str(path) in line and message in line, line
    assert "--field nope" in cli_error(capsys, "sdf", mesh_file, "--field", "nope")
    assert "--resolution 1" in cli_error(capsys, "sdf", mesh_file, "--resolution", "1")
    # an image checkpoint has no surface
    image_run = tmp_path / "image_run"
    task = build_task(ImageTask, ImageTarget(procedural_image(16, 16)),
                      ImageTaskConfig(log2_table=10), torch.device("cpu"), seed=0)
    run_task(task, TrainerConfig(steps=1), image_run, progress=False)
    line = cli_error(capsys, "mesh", image_run)
    assert "image_run/checkpoint.safetensors" in line and "'image'" in line
    assert "no such checkpoint" in cli_error(capsys, "mesh", tmp_path / "nothing")
    line = cli_error(capsys, "mesh", image_run, "--resolution", "100000")
    assert "--resolution 100000" in line and "use a resolution of" in line
    assert "--out" in cli_error(capsys, "mesh", image_run, "--out", tmp_path / "m.stl")
