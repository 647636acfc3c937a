"""transforms.json captures without COLMAP: the downscaled copies beside the images."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import torch
from fieldfit.renderers import look_at
from fieldfit.scenes import SceneOptions, load_nerf_scene

W, H = 32, 24


def write_capture(root, copies: bool) -> None:
    """Four frames of one grey level each; ``copies`` adds images_2/ with other levels."""
    (root / "images").mkdir()
    if copies:
        (root / "images_2").mkdir()
    frames = []
    for i in range(4):
        angle = i * np.pi / 2
        eye = torch.tensor([3 * np.cos(angle), 3 * np.sin(angle), 1.0], dtype=torch.float32)
        pose = np.eye(4)
        pose[:3] = look_at(eye, torch.zeros(3), torch.tensor([0.0, 0.0, 1.0])).numpy()
        iio.imwrite(root / "images" / f"{i}.png", np.full((H, W, 3), 40 * i, np.uint8))
        if copies:
            iio.imwrite(root / "images_2" / f"{i}.png",
                        np.full((H // 2, W // 2, 3), 40 * i + 20, np.uint8))
        frames.append({"file_path": f"images/{i}.png", "transform_matrix": pose.tolist()})
    meta = {"fl_x": 30.0, "fl_y": 30.0, "cx": 16.0, "cy": 12.0, "w": W, "h": H,
            "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))


def test_downscale_reads_the_images_n_copies_when_present(tmp_path):
    for copies in (True, False):
        root = tmp_path / str(copies)
        root.mkdir()
        write_capture(root, copies)
        split = load_nerf_scene(root, SceneOptions(downscale=2, eval_holdout=4)).splits["train"]
        assert split.colors.shape[1:3] == (H // 2, W // 2)
        levels = torch.tensor([40.0 * i + (20 if copies else 0) for i in (1, 2, 3)]) / 255
        torch.testing.assert_close(split.colors[:, 0, 0, 0], levels, atol=1e-6, rtol=0)
        torch.testing.assert_close(split.cameras.fx, torch.full((3,), 15.0))
        torch.testing.assert_close(split.cameras.cx, torch.full((3,), 8.0))
