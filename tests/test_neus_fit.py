"""NeuS: an SDF radiance field fitted to posed images, and its surface extracted."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import fit_nerf
from fieldfit.fields import RadianceConfig, SdfGeometryConfig, SdfRadianceField, field_preset
from fieldfit.fields.presets import PresetContext
from fieldfit.renderers import OccupancyConfig
from fieldfit.renderers.mesh import extract_mesh
from fieldfit.scenes import load_nerf_scene
from fieldfit.scenes.procedural_scene import scene_sdf, write_procedural_scene

from fieldfit.checkpoint import load_checkpoint
from fieldfit.cli import main
from fieldfit.mesh_metrics import surface_metrics
from fieldfit.run import run_task
from fieldfit.tasks import NerfTaskConfig, NeusTask, build_task, task_from_checkpoint
from fieldfit.trainer import TrainerConfig

AABB = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
SMALL = {"geometry": "sdf", "log2_table": 14, "samples_per_step": 16384, "video_frames": 0,
         "mesh_resolution": 48,
         "occupancy": OccupancyConfig(resolution=32, warmup_steps=32, update_every=8)}


def sdf_field(method: str, field: str = "mlp") -> SdfRadianceField:
    ctx = PresetContext(task="nerf", dims=3, out_dims=16, view_dependent=False)
    return SdfRadianceField(field_preset(field, ctx), AABB, RadianceConfig(),
                            SdfGeometryConfig(gradient=method, fd_step=1e-4))


def test_sdf_field_starts_as_a_sphere_and_its_gradients_agree():
    """The SDF is the initial sphere plus the network output; with the network's output layer
    zeroed both gradient methods give the sphere's closed form, and otherwise they agree
    but where a ReLU kink lies within the finite-difference step."""
    field = sdf_field("autograd")
    x = torch.rand(256, 3) * 1.6 - 0.8
    directions = torch.nn.functional.normalize(torch.randn(256, 3), dim=-1)
    sphere = x.norm(dim=-1) - 0.5
    rgb, sdf, grad = field(x, directions)
    assert rgb.shape == (256, 3) and ((rgb >= 0) & (rgb <= 1)).all()
    assert (sdf - sphere).abs().max() < 0.5  # the sphere dominates the untrained field
    torch.testing.assert_close(sdf, field.sdf(x))
    fd = sdf_field("finite_difference")
    fd.load_state_dict(field.state_dict())
    _, sdf_fd, grad_fd = fd(x, directions)
    torch.testing.assert_close(sdf_fd, sdf)
    assert (grad_fd - grad).abs().median() < 1e-2  # ReLU kinks spoil a few points
    x.requires_grad_(True)
    (want,) = torch.autograd.grad(field.sdf(x).sum(), x)
    torch.testing.assert_close(grad, want)
    x = x.detach()
    last = [m for m in field.geometry.decoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    fd.load_state_dict(field.state_dict())
    for model in (field, fd):
        _, sdf, grad = model(x, directions)
        torch.testing.assert_close(sdf, sphere)
        torch.testing.assert_close(grad, x / x.norm(dim=-1, keepdim=True), atol=1e-3, rtol=0)


def test_sdf_does_not_depend_on_the_view_direction():
    field = sdf_field("finite_difference", field="cam")
    x = torch.rand(64, 3) - 0.5
    _, a, _ = field(x, torch.tensor([[1.0, 0.0, 0.0]]).expand(64, 3))
    _, b, _ = field(x, torch.tensor([[0.0, 0.0, -1.0]]).expand(64, 3))
    torch.testing.assert_close(a, b)


@pytest.fixture(scope="module")
def neus_run(procedural_scene, tmp_path_factory):
    """A 150-step NeuS fit of the 32 x 32 procedural scene (about 10 s on 2 cores)."""
    out = tmp_path_factory.mktemp("neus_run")
    return (*fit_nerf(procedural_scene, out, steps=150, **SMALL), out)


def test_neus_fit_learns_and_writes_a_mesh(neus_run, capsys):
    task, result, out = neus_run
    # the untrained field scores 11.7 dB on these views and 150 steps reach 14.7 (seed 0)
    assert result["psnr"] > 14.0
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in log if "eikonal" in r]
    assert train and all(np.isfinite(r["eikonal"]) for r in train)
    # the sharpness is learnt (it starts at e^3)
    assert abs(train[-1]["sharpness"] / math.exp(3.0) - 1) > 0.01
    assert (out / "mesh.ply").exists() and (out / "mesh.png").exists()
    # `fieldfit mesh` extracts the same surface from the checkpoint
    assert main(["mesh", str(out), "--resolution", "32", "--out", str(out / "m.obj")]) == 0
    assert "faces" in capsys.readouterr().out
    surface = task_from_checkpoint(load_checkpoint(out), out).surface()
    x = torch.rand(100, 3) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(surface.sdf(x), task.model.field.sdf(x))


@pytest.mark.slow
def test_neus_recovers_the_procedural_surface(tmp_path):
    """Four minutes of NeuS on the 64 x 64 procedural scene: the extracted surface lies within
    a floor of the true one (Chamfer-L1 against marching cubes of the exact scene SDF)."""
    scene = write_procedural_scene(tmp_path / "scene", size=64, n_train=40, n_test=4)
    config = NerfTaskConfig(geometry="sdf", video_frames=0, mesh_resolution=0, eval_views=2)
    task = build_task(NeusTask, load_nerf_scene(scene), config, torch.device("cpu"), seed=0)
    run_task(task, TrainerConfig(seconds=240, checkpoint_every=0), tmp_path / "run",
             progress=False)
    bounds = task.model.field.aabb
    task.model.eval()
    pred = extract_mesh(task.model.field.sdf, 128, bounds)
    true = extract_mesh(scene_sdf, 256, bounds)
    metrics = surface_metrics(*pred, *true, n_samples=50_000, threshold=0.02)
    # box units: the scene spans about 2; the bottom faces are seen from few views
    assert metrics["chamfer_l1"] < 0.02, metrics
    assert metrics["fscore"] > 0.8, metrics
