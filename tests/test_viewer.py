"""The viewer's pure parts: camera conversion, frame budget, camera-path JSON (no viser)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fieldfit.renderers import look_at, pixel_rays
from scipy.spatial.transform import Rotation

from fieldfit.viewer.budget import FrameBudget
from fieldfit.viewer.cameras import c2w_from_viser, fov_of, viewer_cameras, viser_from_c2w


# -- camera conversion ---------------------------------------------------------------------
def test_identity_quaternion_is_an_opencv_camera_looking_down_world_z():
    """viser's identity pose looks along +z with image rows going down +y; in fieldfit's
    OpenGL axes that is x right, y up = -world y, backwards = -world z."""
    c2w = c2w_from_viser(np.array([1.0, 0, 0, 0]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(c2w, [[1, 0, 0, 1], [0, -1, 0, 2], [0, 0, -1, 3]], atol=1e-12)


def test_quarter_turn_about_world_y():
    """wxyz = (cos 45deg, 0, sin 45deg, 0) turns +z (the OpenCV forward) onto +x."""
    h = math.sqrt(0.5)
    c2w = c2w_from_viser(np.array([h, 0, h, 0]), np.zeros(3))
    forward = -c2w[:, 2]  # OpenGL cameras look down -z
    np.testing.assert_allclose(forward, [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(c2w[:, 1], [0, -1, 0], atol=1e-12)  # up = -y (OpenCV y down)


def test_pose_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        quat = rng.normal(size=4)
        wxyz = quat / np.linalg.norm(quat)
        position = rng.normal(size=3)
        c2w = c2w_from_viser(wxyz, position)
        back_wxyz, back_position = viser_from_c2w(c2w)
        # q and -q are the same rotation
        assert min(np.abs(back_wxyz - wxyz).max(), np.abs(back_wxyz + wxyz).max()) < 1e-9
        np.testing.assert_allclose(back_position, position)


def test_rays_match_an_opencv_pinhole_projection():
    """A world point projected by viser's pose (OpenCV: x right, y down, z forward) onto pixel
    (u, v) lies on fieldfit's ray through that pixel of the converted camera."""
    wxyz = Rotation.from_euler("xyz", [0.3, -0.5, 0.2]).as_quat()[[3, 0, 1, 2]]
    position = np.array([0.5, -1.0, 2.0])
    fov, aspect, height = 0.8, 1.5, 40
    cameras = viewer_cameras(c2w_from_viser(wxyz, position), fov, aspect, height)
    assert (cameras.width, cameras.height) == (60, 40)
    focal = 0.5 * height / math.tan(0.5 * fov)
    rotation = Rotation.from_quat(wxyz[[1, 2, 3, 0]]).as_matrix()  # camera (OpenCV) -> world
    point_cam = np.array([0.4, -0.3, 3.0])
    u = focal * point_cam[0] / point_cam[2] + 30.0
    v = focal * point_cam[1] / point_cam[2] + 20.0
    point = rotation @ point_cam + position
    rays = pixel_rays(cameras, torch.zeros(1, dtype=torch.int64),
                      torch.tensor([u - 0.5]), torch.tensor([v - 0.5]))  # pixel centre = u, v
    to_point = torch.as_tensor(point, dtype=torch.float32) - rays.origins[0]
    expected = to_point / to_point.norm()
    torch.testing.assert_close(rays.directions[0], expected, atol=1e-5, rtol=0)
    assert fov_of(cameras) == pytest.approx(fov, rel=1e-6)


def test_frustum_pose_of_a_look_at_camera_faces_its_target():
    c2w = look_at(torch.tensor([0.0, -3.0, 1.0]), torch.zeros(3), torch.tensor([0.0, 0, 1]))
    wxyz, position = viser_from_c2w(c2w.numpy())
    forward_cv = Rotation.from_quat(wxyz[[1, 2, 3, 0]]).as_matrix()[:, 2]
    expected = -position / np.linalg.norm(position)
    np.testing.assert_allclose(forward_cv, expected, atol=1e-6)


# -- frame budget --------------------------------------------------------------------------
def test_moving_frames_fit_the_moving_time_budget():
    budget = FrameBudget(full_height=200, moving_seconds=0.1, seconds_per_pixel=1e-5)
    height = budget.moving_height(aspect=1.0)
    assert height == 100  # 100 x 100 pixels at 1e-5 s each = 0.1 s
    assert budget.moving_height(aspect=4.0) == 50  # 50 x 200 pixels


def test_heights_double_once_still_up_to_full_and_restart_on_change():
    budget = FrameBudget(full_height=200, moving_seconds=0.01, seconds_per_pixel=1e-5,
                         settle_seconds=0.25)
    assert budget.moving_height(1.0) == 31
    assert budget.next_height(still_for=0.0, last_height=None, aspect=1.0) == 31
    assert budget.next_height(still_for=0.1, last_height=31, aspect=1.0) == 31  # not yet still
    heights, last = [], 31
    while not budget.is_sharp(last):
        last = budget.next_height(still_for=1.0, last_height=last, aspect=1.0)
        heights.append(last)
    assert heights == [62, 124, 200]
    assert budget.next_height(still_for=5.0, last_height=None, aspect=1.0) == 31


def test_cost_estimate_follows_measured_frames():
    budget = FrameBudget(full_height=100, seconds_per_pixel=1e-3, smoothing=0.5)
    budget.record(height=10, aspect=2.0, seconds=0.2)  # 200 pixels at 1e-3 s
    assert budget.seconds_per_pixel == pytest.approx(1e-3)
    budget.record(height=10, aspect=2.0, seconds=0.6)  # 3e-3 s per pixel
    assert budget.seconds_per_pixel == pytest.approx(2e-3)


def test_rest_keeps_rendering_within_its_share_of_wall_time():
    budget = FrameBudget(full_height=100, share=0.2)
    frame = 0.3
    rest = budget.rest_after(frame)
    assert frame / (frame + rest) == pytest.approx(0.2)
    assert budget.rest_after(frame, share=1.0) == 0.0
    with pytest.raises(ValueError, match="share"):
        FrameBudget(full_height=100, share=0.0)


# -- rendering on a snapshot, and the missing extra ---------------------------------------
def test_snapshot_renders_match_the_evaluation_renderer(procedural_scene, one_thread):
    """The viewer renders a snapshot through NerfTask.render_view on its own copy of the
    model: identical to the task's own render once the snapshot is handed over, and the
    training model is never touched."""
    from fieldfit.scenes import load_nerf_scene

    from fieldfit.tasks.nerf import NerfTask, NerfTaskConfig
    from fieldfit.viewer.server import SnapshotRenderer

    task = NerfTask(load_nerf_scene(procedural_scene),
                    NerfTaskConfig(log2_table=12, max_res=64, samples_per_step=4096))
    task.model.grid.binaries.fill_(True)  # an untrained grid would skip every sample
    renderer = SnapshotRenderer(task, live=True)
    assert renderer.task.model is not task.model
    cameras = task.scene.splits["test"].cameras.scaled(0.5)[0]
    initial = renderer.render(cameras)["rgb"]
    with torch.no_grad():  # stands in for optimiser steps
        for p in task.model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    np.testing.assert_array_equal(renderer.render(cameras)["rgb"], initial)  # no snapshot yet
    renderer.offer({k: v.detach().clone() for k, v in task.model.state_dict().items()})
    expected = task.render_view(cameras, 0)
    got = renderer.render(cameras)
    for key in ("rgb", "depth", "opacity"):
        np.testing.assert_array_equal(got[key], expected[key])
    assert np.abs(got["rgb"] - initial).max() > 0.01


def test_viewer_without_viser_says_how_to_install(monkeypatch, procedural_scene, capsys):
    import sys

    from fieldfit.cli import main

    monkeypatch.setitem(sys.modules, "viser", None)  # import viser -> ImportError
    assert main(["nerf", str(procedural_scene), "--viewer", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("fieldfit: error: the viewer needs viser: pip install "
                             "'fieldfit[viewer]'")
    assert main(["view", str(procedural_scene)]) == 2  # not a run folder: said first
    assert "no config.json" in capsys.readouterr().err


def test_background_depth_of_a_fronto_parallel_plane_is_constant():
    """A plane 2 units in front of the camera: distance along each pixel's unit ray is
    2 / cos(angle to the axis); the depth viser composites with is 2 everywhere."""
    from fieldfit.viewer.server import z_depth

    cameras = viewer_cameras(np.eye(4)[:3], fov=1.0, aspect=1.5, height=8)
    rays = pixel_rays(cameras, torch.zeros(96, dtype=torch.int64),
                      torch.arange(12).repeat(8), torch.arange(8).repeat_interleave(12))
    cos = -rays.directions[:, 2].reshape(8, 12).numpy()  # the camera looks down -z
    opacity = np.ones((8, 12), np.float32)
    opacity[0, 0] = 0.0
    depth = z_depth({"depth": 2.0 / cos, "opacity": opacity}, cameras, far=50.0)
    assert depth[0, 0] == 50.0
    np.testing.assert_allclose(depth.reshape(-1)[1:], 2.0, rtol=1e-5)
