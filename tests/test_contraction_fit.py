"""A capture with distant content fits better with the scene contraction than without; the
learned far-field colour shows on rays that meet no sample."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from fieldfit.renderers import OccupancyConfig, focal_from_fov, image_rays, look_at, make_cameras
from fieldfit.scenes.procedural_scene import CAMERA_ANGLE_X, cast_rays

STEPS = 200
BACKDROP_RADIUS = 5.0


def backdrop(origins: torch.Tensor, directions: torch.Tensor,
             radius: float = BACKDROP_RADIUS) -> torch.Tensor:
    """(n, 3) smooth colour waves on a sphere of ``radius`` around the scene, seen from inside
    (at infinity, ``radius=math.inf``: waves over the directions, a sky)."""
    if math.isinf(radius):
        return 0.5 + 0.4 * torch.sin(2.5 * directions + torch.tensor([0.0, 2.0, 4.0]))
    b = (origins * directions).sum(-1)
    c = (origins * origins).sum(-1) - radius**2
    p = origins + (-b + torch.sqrt(b * b - c))[:, None] * directions
    return 0.5 + 0.4 * torch.sin(1.2 * p + torch.tensor([0.0, 2.0, 4.0]))


def write_capture(root, size: int = 24, views: int = 24,
                  radius: float = BACKDROP_RADIUS) -> None:
    """transforms.json + PNGs: the procedural shapes inside a coloured sphere of ``radius``
    (cameras about 2.5 from the centre, all the way round)."""
    import imageio.v3 as iio

    eyes, gen = [], torch.Generator().manual_seed(0)
    for i in range(views):
        a = 2 * float(np.pi) * i / views
        eyes.append(torch.tensor([2.5 * math.cos(a), 2.5 * math.sin(a), 0.6 * (i % 3 - 1)]))
    poses = torch.stack([look_at(e + 0.1 * torch.randn(3, generator=gen), torch.zeros(3),
                                 torch.tensor([0.0, 0, 1])) for e in eyes])
    focal = focal_from_fov(CAMERA_ANGLE_X * 1.5, size)
    cameras = make_cameras(poses, focal, focal, size / 2, size / 2, size, size)
    (root / "images").mkdir(parents=True)
    frames = []
    for i in range(views):
        rays = image_rays(cameras, i)
        color, depth = cast_rays(rays.origins, rays.directions)
        color = torch.where(torch.isfinite(depth)[:, None], color,
                            backdrop(rays.origins, rays.directions, radius))
        iio.imwrite(root / "images" / f"{i:02d}.png",
                    (color.reshape(size, size, 3).numpy() * 255 + 0.5).astype(np.uint8))
        pose = torch.cat([cameras.c2w[i], torch.tensor([[0.0, 0, 0, 1]])])
        frames.append({"file_path": f"images/{i:02d}.png", "transform_matrix": pose.tolist()})
    meta = {"fl_x": focal, "fl_y": focal, "cx": size / 2, "cy": size / 2, "w": size, "h": size,
            "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))


def fit_capture(root, out, contraction: str) -> dict:
    """Test metrics of a short fit of the capture at ``root``."""
    from fieldfit.scenes import SceneOptions, load_nerf_scene

    from fieldfit.run import run_task
    from fieldfit.tasks import NerfTask, NerfTaskConfig, build_task
    from fieldfit.trainer import TrainerConfig

    scene = load_nerf_scene(root, SceneOptions(scene_contraction=contraction, eval_holdout=6))
    assert scene.contracted == (contraction == "on")
    config = NerfTaskConfig(samples_per_step=2**15, render_steps=128, log2_table=14,
                            video_frames=0, eval_views=0,
                            occupancy=OccupancyConfig(resolution=32))
    task = build_task(NerfTask, scene, config, torch.device("cpu"), seed=0)
    assert task.model.far_field is None  # the default: the scene's background colour
    return run_task(task, TrainerConfig(steps=STEPS, checkpoint_every=0), out, progress=False)


@pytest.mark.slow
def test_contraction_fits_distant_content_better(tmp_path):
    write_capture(tmp_path / "scene")
    psnr = {mode: fit_capture(tmp_path / "scene", tmp_path / mode, mode)["psnr"]
            for mode in ("on", "off")}
    print(f"test PSNR after {STEPS} steps: {psnr}")
    assert psnr["on"] > psnr["off"] + 1.0


def test_far_field_colours_the_rays_that_meet_no_sample(tmp_path):
    """With every occupancy cell empty, a view is the learned far-field colour of its view
    directions, and a training step's gradient reaches the far field's parameters."""
    from fieldfit.scenes import SceneOptions, load_nerf_scene

    from fieldfit.tasks import NerfTask, NerfTaskConfig, build_task

    write_capture(tmp_path / "scene", size=8, views=6, radius=math.inf)
    scene = load_nerf_scene(tmp_path / "scene", SceneOptions(eval_holdout=3))
    config = NerfTaskConfig(samples_per_step=2**10, log2_table=12, video_frames=0,
                            far_field="learned", occupancy=OccupancyConfig(resolution=16))
    task = build_task(NerfTask, scene, config, torch.device("cpu"), seed=0)
    far = task.model.far_field
    with torch.no_grad():
        far.linear.weight.normal_(generator=torch.Generator().manual_seed(1))
    task.model.grid.binaries.fill_(False)
    cameras = scene.splits["test"].cameras
    view = task.render_view(cameras, 0)
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    rays = scene.camera_rays(cameras, torch.zeros(64, dtype=torch.int64), cols.reshape(-1),
                             rows.reshape(-1))
    with torch.no_grad():
        expected = far(rays.view_directions).reshape(8, 8, 3)
    torch.testing.assert_close(torch.from_numpy(view["rgb"]), expected.clamp(0, 1))
    task.model.train()
    task.train_step(0, torch.Generator().manual_seed(0))["loss"].backward()
    assert far.linear.weight.grad is not None and far.linear.weight.grad.abs().sum() > 0
