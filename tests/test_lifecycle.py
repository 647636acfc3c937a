"""One task lifecycle: seeds that seed, every tensor on the run's device, and one generic
rebuild from a checkpoint for every registered task."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
from fieldfit.renderers import OccupancyConfig
from fieldfit.scenes import (
    ImageTarget,
    load_image,
    load_nerf_scene,
    load_video,
    procedural_image,
    procedural_video,
)
from fieldfit.scenes.meshes import load_mesh

from fieldfit.checkpoint import load_checkpoint
from fieldfit.cli import main
from fieldfit.errors import UserError
from fieldfit.io import write_image
from fieldfit.run import run_task
from fieldfit.tasks import (
    TASKS,
    ImageTask,
    ImageTaskConfig,
    NerfTask,
    NerfTaskConfig,
    NeusTask,
    SdfTask,
    SdfTaskConfig,
    VideoTask,
    VideoTaskConfig,
    build_task,
    task_from_checkpoint,
)
from fieldfit.trainer import TrainerConfig

CPU = torch.device("cpu")
NERF = {"log2_table": 10, "samples_per_step": 2048, "video_frames": 0, "eval_views": 1,
        "chunk": 512, "occupancy": OccupancyConfig(resolution=16, warmup_steps=2,
                                                   update_every=2)}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, procedural_scene):
    """An image file, a folder of video frames, a mesh file and a scene folder."""
    root = tmp_path_factory.mktemp("inputs")
    write_image(root / "image.png", procedural_image(24, 24).numpy())
    (root / "frames").mkdir()
    for i, frame in enumerate(procedural_video(3, 16, 16)):
        write_image(root / "frames" / f"{i}.png", frame.numpy())
    trimesh.creation.icosphere(2, radius=0.6).export(root / "sphere.obj")
    return {"image": root / "image.png", "frames": root / "frames",
            "mesh": root / "sphere.obj", "scene": procedural_scene}


def make(name: str, inputs, device=CPU, seed: int = 0, **config):
    """A fresh task of the registered ``name`` on small settings."""
    if name == "image":
        target = ImageTarget(load_image(inputs["image"]))
        cfg = ImageTaskConfig(**{"log2_table": 10, "batch_size": 256, **config})
        return build_task(ImageTask, target, cfg, device, seed,
                          ImageTask.source_of(target, inputs["image"], "white"))
    if name == "video":
        clip = load_video(inputs["frames"])
        cfg = VideoTaskConfig(**{"log2_table": 10, "batch_size": 256, **config})
        return build_task(VideoTask, clip, cfg, device, seed,
                          VideoTask.source_of(clip, inputs["frames"]))
    if name == "sdf":
        mesh = load_mesh(inputs["mesh"])
        cfg = SdfTaskConfig(**{"log2_table": 10, "max_res": 64, "n_samples": 4096,
                               "batch_size": 512, "eval_points": 4096,
                               "eval_surface_points": 2000, "resolution": 32, **config})
        return build_task(SdfTask, mesh, cfg, device, seed,
                          SdfTask.source_of(mesh, inputs["mesh"]))
    geometry = {"nerf": "density", "neus": "sdf"}[name]
    cfg = NerfTaskConfig(**{**NERF, "geometry": geometry, "mesh_resolution": 0, **config})
    return build_task(TASKS[name], load_nerf_scene(inputs["scene"]), cfg, device, seed)


def test_registry_holds_every_task():
    assert TASKS == {"image": ImageTask, "sdf": SdfTask, "nerf": NerfTask, "neus": NeusTask,
                     "video": VideoTask}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_build_task_refuses_an_unknown_field_in_one_line(name, inputs):
    """Whatever the config came from (CLI, --load-config, the API), one message."""
    with pytest.raises(UserError, match=r"^--field nope: unknown field; choose from .*grid"):
        make(name, inputs, field="nope")


@pytest.mark.parametrize("name", ["image", "sdf", "nerf"])
def test_seeds_seed_the_weights_whatever_the_global_rng(name, inputs):
    def weights(seed: int, global_seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(global_seed)  # the caller's RNG must not matter
        return make(name, inputs, seed=seed, field="rbf").model.state_dict()

    a, b, c = weights(5, 0), weights(5, 123), weights(6, 0)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    learnable = [k for k in a if a[k].is_floating_point() and a[k].numel() > 1
                 and not torch.equal(a[k], torch.zeros_like(a[k]))]
    assert learnable and any(not torch.equal(a[k], c[k]) for k in learnable)


def test_same_seed_same_metrics_and_other_seed_other_metrics(inputs, tmp_path):
    results = []
    for i, seed in enumerate([3, 3, 4]):
        torch.manual_seed(1000 + i)
        task = make("image", inputs, seed=seed)
        train = TrainerConfig(steps=20, seed=seed, checkpoint_every=0)
        results.append(run_task(task, train, tmp_path / str(i), progress=False)["psnr"])
    assert results[0] == results[1]
    assert results[0] != results[2]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_tensor_lives_on_the_run_device(name, inputs, tmp_path):
    """With torch's default device set to 'meta', any tensor a step, an evaluation or an
    output creates without naming the run's device would be a meta tensor and fail."""
    task = make(name, inputs)
    torch.set_default_device("meta")
    try:
        run_task(task, TrainerConfig(steps=4, checkpoint_every=0, device="cpu"), tmp_path,
                 progress=False)
    finally:
        torch.set_default_device(None)
    tensors = [*task.model.parameters(), *task.model.buffers()]
    assert tensors and all(t.device == CPU for t in tensors)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_one_function_rebuilds_every_task(name, inputs, tmp_path):
    task = make(name, inputs)
    run_task(task, TrainerConfig(steps=6, checkpoint_every=0), tmp_path, progress=False)
    rebuilt = task_from_checkpoint(load_checkpoint(tmp_path), tmp_path)
    assert type(rebuilt) is type(task) and rebuilt.config == task.config
    for key, value in task.model.state_dict().items():
        assert torch.equal(rebuilt.model.state_dict()[key], value), key
    task.model.eval()
    with torch.no_grad():
        if name == "image":
            torch.testing.assert_close(rebuilt.predict(), task.predict(), rtol=0, atol=0)
        elif name == "video":
            torch.testing.assert_close(rebuilt.predict_frame(2), task.predict_frame(2),
                                       rtol=0, atol=0)
        elif name == "sdf":
            x = torch.rand(256, 3) * 2 - 1
            torch.testing.assert_close(rebuilt.sdf(x), task.sdf(x), rtol=0, atol=0)
        else:
            cameras = task.scene.splits["test"].cameras
            a, b = rebuilt.render_view(cameras, 0), task.render_view(cameras, 0)
            np.testing.assert_array_equal(a["rgb"], b["rgb"])


def test_eval_of_an_image_run_reproduces_its_psnr(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["image", str(inputs["image"]), "--out", str(out), "--steps", "30",
                 "--log2-table", "10", "--batch-size", "256", "--device", "cpu"]) == 0
    assert main(["eval", str(out)]) == 0
    fitted = json.loads((out / "metrics.json").read_text())
    again = json.loads((out / "eval.json").read_text())
    assert again["psnr"] == pytest.approx(fitted["psnr"], abs=1e-6)
    assert again["ssim"] == pytest.approx(fitted["ssim"], abs=1e-6)
    capsys.readouterr()


def test_device_and_precision_options_fail_in_one_line(inputs, tmp_path, capsys, monkeypatch):
    image = str(inputs["image"])
    assert main(["image", image, "--out", str(tmp_path), "--device", "tpu"]) == 2
    assert "--device tpu" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["image", image, "--out", str(tmp_path), "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    monkeypatch.setattr("fieldfit.device.cpu_has_bfloat16", lambda: False)  # an older CPU
    assert main(["image", image, "--out", str(tmp_path), "--precision", "mixed",
                 "--device", "cpu"]) == 2
    assert "--precision mixed: this CPU has no bfloat16" in capsys.readouterr().err
