"""Camera paths: nerfstudio camera_path JSON round trips, keyframe interpolation, render --path."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import fit_nerf
from fieldfit.renderers import look_at, make_cameras
from fieldfit.renderers.camera_path import interpolate_path, load_camera_path, save_camera_path

from fieldfit.cli import main


def keyframes(n: int = 4):
    """Cameras on an arc looking at the origin, with growing focal lengths."""
    eyes = [torch.tensor([3 * math.cos(a), 3 * math.sin(a), 1.0])
            for a in np.linspace(0, 2.0, n).tolist()]
    c2w = torch.stack([look_at(e, torch.zeros(3), torch.tensor([0.0, 0, 1])) for e in eyes])
    cameras = make_cameras(c2w, 50.0, 50.0, 32.0, 24.0, 64, 48)
    cameras.fx = cameras.fy = torch.linspace(40.0, 70.0, n)
    return cameras


def test_save_then_load_gives_the_same_cameras(tmp_path):
    cams = keyframes()
    save_camera_path(tmp_path / "path.json", cams, fps=12)
    loaded = load_camera_path(tmp_path / "path.json")
    torch.testing.assert_close(loaded.cameras.c2w, cams.c2w)
    torch.testing.assert_close(loaded.cameras.fy, cams.fy)  # through the vertical fov
    torch.testing.assert_close(loaded.cameras.fx, cams.fy)  # square pixels
    assert (loaded.cameras.width, loaded.cameras.height, loaded.fps) == (64, 48, 12)
    torch.testing.assert_close(loaded.times, torch.arange(4) / 12)


def test_nerfstudio_keyframes_only_file_is_interpolated(tmp_path):
    """A viewer export without camera_path (matrices as strings, as nerfstudio writes them)."""
    cams = keyframes(3)
    keys = []
    for i in range(3):
        c2w = torch.cat([cams.c2w[i], torch.tensor([[0.0, 0, 0, 1]])])
        fov = math.degrees(2 * math.atan(24 / float(cams.fy[i])))
        keys.append({"matrix": json.dumps(c2w.reshape(-1).tolist()), "fov": fov, "aspect": 4 / 3})
    data = {"keyframes": keys, "render_width": 64, "render_height": 48, "fps": 10,
            "seconds": 0.9, "camera_type": "perspective", "is_cycle": False}
    (tmp_path / "keys.json").write_text(json.dumps(data))
    path = load_camera_path(tmp_path / "keys.json")
    assert len(path.cameras) == 9
    # frames 0, 4 and 8 sit on the keyframes (knots 0, 1, 2 of the spline)
    torch.testing.assert_close(path.cameras.c2w[[0, 4, 8]], cams.c2w, atol=1e-5, rtol=0)
    torch.testing.assert_close(path.cameras.fy[[0, 4, 8]], cams.fy, atol=1e-3, rtol=0)


def test_interpolated_path_is_smooth_and_rigid():
    cams = keyframes(4)
    path = interpolate_path(cams, 61)
    rot = path.c2w[:, :, :3]
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, torch.eye(3).expand(61, 3, 3),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(path.c2w[::20], cams.c2w, atol=1e-5, rtol=0)
    steps = path.centers.diff(dim=0).norm(dim=-1)
    # a smooth curve: consecutive steps change by a small fraction (no kinks at the keyframes)
    assert (steps.diff().abs() / steps[1:]).max() < 0.05
    closed = interpolate_path(cams, 40, cycle=True)
    torch.testing.assert_close(closed.c2w[::10], cams.c2w, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad, message", [
    ("{", "not a readable camera path"),
    ('{"render_width": 8}', "needs render_width and render_height"),
    ('{"render_width": 8, "render_height": 8}', "no camera_path and no keyframes"),
    ('{"render_width": 8, "render_height": 8, "camera_path": [{"fov": 50}]}',
     "needs camera_to_world and fov"),
    ('{"render_width": 8, "render_height": 8, "camera_type": "fisheye", "keyframes": [1]}',
     "perspective only"),
])
def test_bad_camera_path_files_name_the_problem(tmp_path, bad, message):
    (tmp_path / "p.json").write_text(bad)
    with pytest.raises(ValueError, match=message):
        load_camera_path(tmp_path / "p.json")


@pytest.mark.slow
def test_render_along_paths(procedural_scene, tmp_path, capsys):
    fit_nerf(procedural_scene, tmp_path / "run", steps=2, samples_per_step=1024, eval_views=1,
             video_frames=0, log2_table=12)
    run = tmp_path / "run"
    save_camera_path(tmp_path / "cam.json", keyframes(3), fps=3)
    for path in ("orbit", "interpolate", str(tmp_path / "cam.json")):
        assert main(["render", str(run), "--path", path, "--fps", "3", "--seconds", "1",
                     "--resolution", "16", "12", "--out", str(tmp_path / "r")]) == 0
    import imageio.v3 as iio

    videos = sorted((tmp_path / "r").iterdir())
    assert [v.stem for v in videos] == ["cam", "interpolate", "orbit"]
    for video in videos:
        frames = iio.imread(video)
        assert frames.shape[0] == 3 and frames.shape[1:3] == (12, 16)
    assert main(["render", str(run), "--path", "nowhere.json"]) == 2
    assert "--path nowhere.json" in capsys.readouterr().err
