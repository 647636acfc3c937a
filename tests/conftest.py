"""Shared fixtures and markers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def shared_data(relative: str) -> Path:
    """Path under ../shared/data, skipping the test when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def png(tmp_path_factory) -> Path:
    """A 64 x 64 procedural image as a PNG file."""
    import imageio.v3 as iio
    import numpy as np
    from fieldfit.scenes import procedural_image

    path = tmp_path_factory.mktemp("img") / "target.png"
    iio.imwrite(path, (procedural_image(64, 64).numpy() * 255).astype(np.uint8))
    return path


@pytest.fixture(scope="session")
def cube(tmp_path_factory) -> Path:
    """A 1 x 0.8 x 0.6 box as an OBJ file."""
    import trimesh

    path = tmp_path_factory.mktemp("mesh") / "cube.obj"
    trimesh.creation.box(extents=(1.0, 0.8, 0.6)).export(path)
    return path


@pytest.fixture(scope="session")
def procedural_scene(tmp_path_factory) -> Path:
    """A small generated Blender-format scene (32 x 32 images), written once per session."""
    from fieldfit.scenes import write_procedural_scene

    return write_procedural_scene(tmp_path_factory.mktemp("procedural"), size=32, n_train=24,
                                  n_test=4)


def fit_nerf(scene: Path, out: Path, steps: int, **config):
    """Fit the NeRF task on ``scene`` for ``steps`` steps (seed 0, no periodic checkpoints);
    ``config`` holds NerfTaskConfig fields. Returns (task, result)."""
    from fieldfit.scenes import load_nerf_scene

    from fieldfit.run import run_task
    from fieldfit.tasks import NerfTaskConfig, build_task, ray_task_class
    from fieldfit.trainer import TrainerConfig

    config = NerfTaskConfig(**config)
    task = build_task(ray_task_class(config.geometry), load_nerf_scene(scene), config,
                      torch.device("cpu"), seed=0)
    result = run_task(task, TrainerConfig(steps=steps, checkpoint_every=0), out, progress=False)
    return task, result


TINY_NERF = {"log2_table": 12, "samples_per_step": 4096, "eval_views": 0, "video_frames": 0,
             "render_steps": 128}
"""NerfTaskConfig fields of the per-preset floor fits (24 x 24 images)"""


def nerf_floor_fit(scene: Path, out: Path, steps: int = 200, **config) -> tuple[float, float]:
    """Test PSNR (dB) of an untrained and of a ``steps``-step fit of the NeRF task with
    :data:`TINY_NERF` and ``config``."""
    from fieldfit.renderers import OccupancyConfig
    from fieldfit.scenes import load_nerf_scene

    from fieldfit.tasks import NerfTaskConfig, build_task, ray_task_class

    occupancy = OccupancyConfig(resolution=16, warmup_steps=16, update_every=4)
    options = NerfTaskConfig(**{**TINY_NERF, "occupancy": occupancy, **config})
    untrained = build_task(ray_task_class(options.geometry), load_nerf_scene(scene), options,
                           torch.device("cpu"), seed=0).evaluate()["psnr"]
    return untrained, fit_nerf(scene, out, steps, **{**TINY_NERF, "occupancy": occupancy,
                                                     **config})[1]["psnr"]


@pytest.fixture
def one_thread():
    """Run on one torch thread: for tiny tensors, thread synchronisation costs more than it
    saves, the more so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
