"""COLMAP models and transforms.json captures: importers, undistortion and bad input."""

from __future__ import annotations

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from fieldfit.renderers import look_at
from fieldfit.scenes import SceneError, SceneOptions, load_nerf_scene
from fieldfit.scenes.capture import distort, normalize_capture

from fieldfit.cli import main

pycolmap = pytest.importorskip("pycolmap")

W, H = 32, 24
MODELS = {  # model name -> params
    "SIMPLE_PINHOLE": [30.0, 16.0, 12.0],
    "PINHOLE": [30.0, 28.0, 15.5, 12.5],
    "SIMPLE_RADIAL": [30.0, 16.0, 12.0, 0.05],
    "RADIAL": [30.0, 16.0, 12.0, 0.05, -0.02],
    "OPENCV": [30.0, 28.0, 15.5, 12.5, 0.05, -0.02, 0.001, -0.002],
}


def true_poses(n: int = 5) -> np.ndarray:
    """(n, 4, 4) OpenGL camera-to-world poses on an arc looking at the origin."""
    poses = []
    for i in range(n):
        a = 0.3 * i
        eye = torch.tensor([4 * math.sin(a), 1.0 + 0.2 * i, 4 * math.cos(a)])
        pose = np.eye(4)
        pose[:3] = look_at(eye, torch.zeros(3), torch.tensor([0.0, 1, 0])).double().numpy()
        poses.append(pose)
    return np.stack(poses)


def write_model(root, model: str, binary: bool, poses: np.ndarray | None = None):
    """A COLMAP scene folder (sparse/0 + images/) written by pycolmap itself: one camera of
    ``model``, an image per pose, 3D points seen by every image."""
    poses = true_poses() if poses is None else poses
    rec = pycolmap.Reconstruction()
    camera = pycolmap.Camera.create_from_model_name(1, model, 30.0, W, H)
    camera.params = MODELS[model]
    rec.add_camera_with_trivial_rig(camera)
    points = np.random.default_rng(0).uniform(-1, 1, (20, 3))
    (root / "images").mkdir(parents=True)
    tracks = [pycolmap.Track() for _ in points]
    for i, c2w in enumerate(poses):
        w2c = np.linalg.inv(c2w @ np.diag([1.0, -1, -1, 1]))  # OpenGL -> COLMAP (OpenCV) axes
        cam_points = points @ w2c[:3, :3].T + w2c[:3, 3]
        keypoints = camera.img_from_cam(cam_points)
        name = f"im_{i}.png"
        image = pycolmap.Image(name=name, keypoints=keypoints, camera_id=1, image_id=i + 1)
        rotation = pycolmap.Rotation3d(w2c[:3, :3])
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(rotation, w2c[:3, 3]))
        for j, track in enumerate(tracks):
            track.add_element(i + 1, j)
        iio.imwrite(root / "images" / name, np.full((H, W, 3), 40 * i, np.uint8))
    for xyz, track in zip(points, tracks, strict=True):
        rec.add_point3D(xyz, track)
    (root / "sparse" / "0").mkdir(parents=True)
    (rec.write_binary if binary else rec.write_text)(str(root / "sparse" / "0"))
    return rec, points


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_colmap_models_round_trip(tmp_path, model, binary):
    from fieldfit.scenes.colmap import frames_from_reconstruction, read_colmap_model

    poses = true_poses()
    _, points = write_model(tmp_path, model, binary, poses)
    frames = frames_from_reconstruction(read_colmap_model(tmp_path / "sparse" / "0"),
                                        tmp_path / "images", "model")
    np.testing.assert_allclose(np.stack([f.c2w for f in frames]), poses, atol=1e-6)
    p = MODELS[model]
    f = frames[0]
    if model.startswith("SIMPLE") or model == "RADIAL":  # one focal length, then k1 (k2)
        p = [p[0], *p]
    expected = (p + [0.0] * 8)[:8]
    np.testing.assert_allclose((f.fx, f.fy, f.cx, f.cy, *f.distortion), expected)
    # depth bounds: the extreme depths of the points the camera sees
    depth = -(points - poses[0][:3, 3]) @ poses[0][:3, 2]
    assert depth.min() <= f.near_far[0] < f.near_far[1] <= depth.max() + 1e-9
    scene = load_nerf_scene(tmp_path, SceneOptions(eval_holdout=2))
    assert scene.kind == "colmap" and len(scene.splits["train"]) == 2
    assert len(scene.splits["test"]) == 3 and scene.ndc  # a 69-degree arc: forward-facing
    # normalised poses are a similarity of the true ones: distances scale by one factor
    new = torch.cat([scene.splits["test"].cameras.centers, scene.splits["train"].cameras.centers])
    old = torch.from_numpy(poses[[0, 2, 4, 1, 3], :3, 3]).float()
    ratio = torch.pdist(new) / torch.pdist(old)
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(ratio[0])))


def test_distortion_matches_colmap():
    """fieldfit's OpenCV distortion (used to undistort images) equals COLMAP's projection."""
    camera = pycolmap.Camera.create_from_model_name(1, "OPENCV", 30.0, W, H)
    camera.params = MODELS["OPENCV"]
    xy = np.random.default_rng(1).uniform(-0.5, 0.5, (50, 2))
    pixels = camera.img_from_cam(np.c_[xy, np.ones(50)])
    fx, fy, cx, cy, *k = MODELS["OPENCV"]
    xd, yd = distort(torch.from_numpy(xy[:, 0]), torch.from_numpy(xy[:, 1]), tuple(k))
    np.testing.assert_allclose(np.c_[fx * xd + cx, fy * yd + cy], pixels, atol=1e-9)


def test_undistortion_moves_a_dot_to_its_pinhole_place(tmp_path):
    """A dot drawn where the distorted camera sees a point lands, after undistortion, where
    a pinhole camera with the same intrinsics sees it."""
    size, (fx, fy, cx, cy, *k) = 80, [40.0, 40.0, 40.0, 40.0, 0.3, 0.05, 0.0, 0.0]
    x = y = 0.6  # normalised image coordinates of the point
    xd, yd = distort(torch.tensor(x), torch.tensor(y), tuple(k))
    u, v = float(fx * xd + cx), float(fy * yd + cy)
    image = np.zeros((size, size, 3), np.uint8)
    image[int(v) - 1:int(v) + 2, int(u) - 1:int(u) + 2] = 255
    (tmp_path / "images").mkdir()
    iio.imwrite(tmp_path / "images" / "a.png", image)
    iio.imwrite(tmp_path / "images" / "b.png", image)
    frame = {"transform_matrix": np.eye(4).tolist()}
    meta = {"fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": size, "h": size, "k1": k[0],
            "k2": k[1], "frames": [{**frame, "file_path": "images/a.png"},
                                   {**frame, "file_path": "images/b.png"}]}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    scene = load_nerf_scene(tmp_path, SceneOptions(eval_holdout=2))
    out = scene.splits["train"].colors[0, ..., 0]
    row, col = np.unravel_index(int(out.argmax()), out.shape)
    assert abs(col + 0.5 - (fx * x + cx)) <= 1.0 and abs(row + 0.5 - (fy * y + cy)) <= 1.0
    assert abs(u - (fx * x + cx)) > 4  # the distortion moved the dot by more than that


def test_transforms_json_with_per_frame_intrinsics(tmp_path):
    poses = true_poses(4)
    (tmp_path / "images").mkdir()
    frames = []
    for i, pose in enumerate(poses):
        iio.imwrite(tmp_path / "images" / f"{i}.png", np.full((H, W, 3), 9 * i, np.uint8))
        frames.append({"file_path": f"images/{i}.png", "transform_matrix": pose.tolist(),
                       "fl_x": 20.0 + i, "fl_y": 21.0 + i, "cx": 16.0, "cy": 12.0,
                       "w": W, "h": H})
    (tmp_path / "transforms.json").write_text(json.dumps({"frames": frames, "aabb_scale": 2}))
    scene = load_nerf_scene(tmp_path, SceneOptions(eval_holdout=4))
    assert scene.kind == "transforms"
    torch.testing.assert_close(scene.splits["train"].cameras.fx, torch.tensor([21.0, 22, 23]))
    torch.testing.assert_close(scene.splits["train"].cameras.fy, torch.tensor([22.0, 23, 24]))
    torch.testing.assert_close(scene.aabb, torch.tensor([[-2.0] * 3, [2.0] * 3]))


def test_normalisation_record_maps_old_centres_to_new():
    poses = true_poses()
    new, _, record = normalize_capture(poses, None)
    transform = np.array(record["transform"])
    mapped = poses[:, :3, 3] @ transform[:3, :3].T + transform[:3, 3]
    np.testing.assert_allclose(mapped, new[:, :3, 3], atol=1e-9)
    assert record["kind"] == "360" and np.linalg.norm(new[:, :3, 3], axis=1).max() == \
        pytest.approx(1.0)
    np.testing.assert_allclose(new[:, :3, 1].mean(0) / np.linalg.norm(new[:, :3, 1].mean(0)),
                               [0, 0, 1], atol=1e-9)


def test_unsupported_camera_model_is_one_line(tmp_path, capsys):
    write_model(tmp_path, "PINHOLE", binary=True)
    rec = pycolmap.Reconstruction(tmp_path / "sparse" / "0")
    fisheye = pycolmap.Camera.create_from_model_name(1, "OPENCV_FISHEYE", 30.0, W, H)
    rec.cameras[1].model, rec.cameras[1].params = fisheye.model, fisheye.params
    rec.write_binary(str(tmp_path / "sparse" / "0"))
    with pytest.raises(SceneError, match="OPENCV_FISHEYE is not supported"):
        load_nerf_scene(tmp_path)
    assert main(["nerf", str(tmp_path), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "OPENCV_FISHEYE is not supported" in err[0]


@pytest.mark.parametrize("case", ["no images", "unreadable video", "too few matches"])
def test_bad_process_inputs_exit_2_with_one_line(tmp_path, capsys, case):
    if case == "no images":
        (tmp_path / "empty").mkdir()
        source, message = tmp_path / "empty", "0 images"
    elif case == "unreadable video":
        (tmp_path / "clip.mp4").write_text("not a video")
        source, message = tmp_path / "clip.mp4", "not a readable video"
    else:  # flat grey photos: no features at all
        (tmp_path / "flat").mkdir()
        for i in range(3):
            iio.imwrite(tmp_path / "flat" / f"{i}.png", np.full((64, 64, 3), 128, np.uint8))
        source, message = tmp_path / "flat", "too few feature matches"
    assert main(["process", str(source), "--out", str(tmp_path / "data")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "fieldfit: error" in line]
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "data").exists()
    assert not list(tmp_path.glob(".data.partial-*"))


def test_video_frames_are_the_sharpest_of_even_windows(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    from scipy.ndimage import uniform_filter

    from fieldfit.process import extract_video_frames

    rng = np.random.default_rng(0)
    sharp = (rng.random((8, 48, 64, 1)) > 0.5).repeat(3, -1).astype(np.float32)
    frames = []
    for i in range(8):  # 8 windows of 3 frames; the sharp one sits at a different place
        for j in range(3):
            blurred = uniform_filter(sharp[i], size=(7, 7, 1))
            frames.append(sharp[i] if j == i % 3 else blurred)
    video = np.stack([(f * 255).astype(np.uint8) for f in frames])
    iio.imwrite(tmp_path / "clip.mp4", video, extension=".mp4", plugin="FFMPEG", fps=24,
                macro_block_size=1)
    paths = extract_video_frames(tmp_path / "clip.mp4", tmp_path / "frames", 8)
    assert [p.name for p in paths] == [f"frame_{3 * i + i % 3:05d}.png" for i in range(8)]
