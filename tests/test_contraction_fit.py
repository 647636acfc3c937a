"""A capture with distant content fits better with the scene contraction than without."""

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


def backdrop(origins: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """(n, 3) smooth colour waves on a sphere of radius 5 around the scene, seen from inside."""
    b = (origins * directions).sum(-1)
    c = (origins * origins).sum(-1) - BACKDROP_RADIUS**2
    p = origins + (-b + torch.sqrt(b * b - c))[:, None] * directions
    return 0.5 + 0.4 * torch.sin(1.2 * p + torch.tensor([0.0, 2.0, 4.0]))


def write_capture(root, size: int = 24, views: int = 24) -> None:
    """transforms.json + PNGs: the procedural shapes inside a coloured sphere of radius 5
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
                            backdrop(rays.origins, rays.directions))
        iio.imwrite(root / "images" / f"{i:02d}.png",
                    (color.reshape(size, size, 3).numpy() * 255 + 0.5).astype(np.uint8))
        pose = torch.cat([cameras.c2w[i], torch.tensor([[0.0, 0, 0, 1]])])
        frames.append({"file_path": f"images/{i:02d}.png", "transform_matrix": pose.tolist()})
    meta = {"fl_x": focal, "fl_y": focal, "cx": size / 2, "cy": size / 2, "w": size, "h": size,
            "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))


@pytest.mark.slow
def test_contraction_fits_distant_content_better(tmp_path):
    from fieldfit.scenes import SceneOptions, load_nerf_scene

    from fieldfit.run import run_task
    from fieldfit.tasks import NerfTask, NerfTaskConfig, build_task
    from fieldfit.trainer import TrainerConfig

    write_capture(tmp_path / "scene")
    psnr = {}
    for mode in ("on", "off"):
        options = SceneOptions(scene_contraction=mode, eval_holdout=6)
        scene = load_nerf_scene(tmp_path / "scene", options)
        assert scene.contracted == (mode == "on")
        config = NerfTaskConfig(samples_per_step=2**15, render_steps=128, log2_table=14,
                                video_frames=0, eval_views=0,
                                occupancy=OccupancyConfig(resolution=32))
        task = build_task(NerfTask, scene, config, torch.device("cpu"), seed=0)
        result = run_task(task, TrainerConfig(steps=STEPS, checkpoint_every=0), tmp_path / mode,
                          progress=False)
        psnr[mode] = result["psnr"]
    print(f"test PSNR after {STEPS} steps: {psnr}")
    assert psnr["on"] > psnr["off"] + 1.0
