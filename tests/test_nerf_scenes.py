"""Blender and LLFF loaders: conventions, options and every kind of bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from conftest import shared_data
from fieldfit.renderers import pixel_rays
from fieldfit.scenes import SceneError, SceneOptions, load_nerf_scene
from fieldfit.scenes.procedural_scene import scene_sdf

from fieldfit.cli import main

POSE = [[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]


def write_blender(root: Path, size: int = 8, n_train: int = 2) -> Path:
    """A camera at (0, 0, 4) looking down -z at a white dot in the middle of a clear image."""
    image = np.zeros((size, size, 4), np.uint8)
    image[size // 2 - 1: size // 2 + 1, size // 2 - 1: size // 2 + 1] = 255
    for split, n in (("train", n_train), ("test", 1)):
        (root / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for i in range(n):
            iio.imwrite(root / split / f"r_{i}.png", image)
            frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": POSE})
        meta = {"camera_angle_x": 0.6, "frames": frames}
        (root / f"transforms_{split}.json").write_text(json.dumps(meta))
    return root


def test_blender_loader_reads_the_opengl_convention(tmp_path):
    scene = load_nerf_scene(write_blender(tmp_path), SceneOptions(background="black"))
    train = scene.splits["train"]
    assert train.colors.shape == (2, 8, 8, 3) and train.alphas is not None
    assert train.cameras.fx[0] == pytest.approx(4 / math.tan(0.3))
    # the dot at the image centre is the point of the scene straight ahead, down -z
    ids, centre = torch.tensor([0]), torch.tensor([3.5])  # pixel 3.5 + 0.5 = cx
    ray = pixel_rays(train.cameras, ids, centre, centre)
    torch.testing.assert_close(ray.directions, torch.tensor([[0.0, 0.0, -1.0]]))
    torch.testing.assert_close(ray.origins, torch.tensor([[0.0, 0.0, 4.0]]))
    assert train.alphas[0, 3:5, 3:5].min() == 1 and train.alphas[0, 0, 0] == 0
    torch.testing.assert_close(scene.aabb, torch.tensor([[-1.5] * 3, [1.5] * 3]))


def test_downscale_averages_premultiplied_colour(tmp_path):
    scene = load_nerf_scene(write_blender(tmp_path), SceneOptions(downscale=2))
    train = scene.splits["train"]
    assert train.colors.shape == (2, 4, 4, 3) and train.cameras.width == 4
    assert train.cameras.fx[0] == pytest.approx(2 / math.tan(0.3))
    assert train.cameras.cx[0] == pytest.approx(2.0)
    # the 2x2 dot spreads over four 2x2 blocks, a quarter each
    torch.testing.assert_close(train.alphas[0, 1:3, 1:3, 0], torch.full((2, 2), 0.25))
    torch.testing.assert_close(train.composited(torch.zeros(3))[0, 1, 1],
                               torch.full((3,), 0.25))


def test_procedural_scene_depth_lies_on_its_surfaces(procedural_scene):
    scene = load_nerf_scene(procedural_scene)
    test = scene.splits["test"]
    depth = torch.from_numpy(np.load(procedural_scene / "test" / "r_1_depth.npy"))
    rows, cols = torch.nonzero(torch.isfinite(depth), as_tuple=True)
    assert 100 < len(rows) < depth.numel()
    rays = scene.rays("test", torch.ones_like(rows), cols, rows)
    points = rays.origins + depth[rows, cols, None] * rays.directions
    assert scene_sdf(points).abs().max() < 1e-4
    # pixels whose central ray hits a surface are (nearly) opaque in the image
    assert test.alphas[1, rows, cols].mean() > 0.9


def fieldfit_cli(capsys, *args):
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.strip().splitlines()


def edit_json(path: Path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def bad_blender_cases(tmp: Path):
    """(scene folder, text the one-line error must contain)."""
    cases = []

    def case(name, change=None, expect=None):
        root = write_blender(tmp / name)
        if change is not None:
            change(root)
        cases.append((root, expect(root) if callable(expect) else expect))

    case("no_train", lambda r: (r / "transforms_train.json").unlink(), "poses_bounds.npy")
    case("not_json", lambda r: (r / "transforms_train.json").write_text("{oops"),
         lambda r: f"{r / 'transforms_train.json'}: not valid JSON")
    case("no_frames", lambda r: edit_json(r / "transforms_train.json",
                                          lambda m: m.update(frames=[])), "no frames")
    case("missing_image", lambda r: (r / "train" / "r_1.png").unlink(),
         lambda r: f"{r / 'transforms_train.json'}: frame 1 (./train/r_1): image")
    case("bad_image", lambda r: (r / "train" / "r_0.png").write_bytes(b"not a png"),
         lambda r: f"frame 0 (./train/r_0): {r / 'train' / 'r_0.png'}: not a readable image")
    case("nan_pose", lambda r: edit_json(r / "transforms_train.json", lambda m: m["frames"][1]
                                         .update(transform_matrix=[[float("nan")] * 4] * 4)),
         "frame 1 (./train/r_1): camera pose has non-finite values")
    scaled = [[2.0, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 4], [0, 0, 0, 1]]
    case("scaled_pose", lambda r: edit_json(r / "transforms_test.json", lambda m: m["frames"][0]
                                            .update(transform_matrix=scaled)),
         "frame 0 (./test/r_0): camera pose is not rigid")
    case("zero_angle", lambda r: edit_json(r / "transforms_train.json",
                                           lambda m: m.update(camera_angle_x=0.0)),
         "focal length must be > 0")
    case("negative_focal", lambda r: edit_json(r / "transforms_train.json",
                                               lambda m: m.update(fl_x=-5.0)),
         "fl_x=-5.0 must be > 0")
    case("no_focal", lambda r: edit_json(r / "transforms_train.json",
                                         lambda m: m.pop("camera_angle_x")),
         "needs camera_angle_x or fl_x")
    case("sizes", lambda r: iio.imwrite(r / "train" / "r_1.png", np.zeros((6, 8, 4), np.uint8)),
         "frame 1 (./train/r_1): image is 8x6")
    case("no_test", lambda r: (r / "transforms_test.json").unlink(),
         "needs transforms_test.json or transforms_val.json")
    return cases


def test_bad_blender_scenes_give_one_line_errors(tmp_path, capsys):
    good = write_blender(tmp_path / "good")
    cases = [*((root, [], expect) for root, expect in bad_blender_cases(tmp_path)),
             (tmp_path / "absent", [], f"{tmp_path / 'absent'}: no such folder"),
             (good, ["--field", "nope"], "--field nope"),
             (good, ["--downscale", "0"], "--downscale 0"),
             (good, ["--samples-per-step", "3"], "--samples-per-step")]
    for root, extra, expect in cases:
        code, lines = fieldfit_cli(capsys, "nerf", root, "--out", tmp_path / "run", "--steps", 1,
                                   *extra)
        assert code == 2, (root, lines)
        assert len(lines) == 1 and lines[0].startswith("fieldfit: error:"), lines
        assert expect in lines[0], (expect, lines[0])


def test_help_of_the_nerf_commands(capsys):
    for command in ("nerf", "render", "eval", "demo"):
        assert main([command, "--help"]) == 0
        assert f"usage: fieldfit {command}" in capsys.readouterr().out


def write_llff(root: Path, n: int = 5, size=(12, 16)) -> Path:
    """Forward-facing cameras near the origin looking down -z (LLFF axes: down, right, back)."""
    (root / "images_8").mkdir(parents=True)
    rows = []
    for i in range(n):
        iio.imwrite(root / "images_8" / f"img{i}.png",
                    np.full((*size, 3), 40 * i, np.uint8))
        down, right, back = [0, -1, 0], [1, 0, 0], [0, 0, 1]
        centre = [0.1 * i, 0.05 * i, 0.0]
        pose = np.array([down, right, back, centre, [size[0] * 8, size[1] * 8, 100.0]]).T
        rows.append(np.concatenate([pose.reshape(-1), [2.0, 20.0]]))
    np.save(root / "poses_bounds.npy", np.array(rows))
    return root


def test_llff_loader_recentres_scales_and_holds_out(tmp_path):
    scene = load_nerf_scene(write_llff(tmp_path), SceneOptions(eval_holdout=2))
    assert scene.ndc and scene.kind == "llff"
    train, test = scene.splits["train"], scene.splits["test"]
    assert len(test) == 3 and len(train) == 2  # images 0, 2, 4 are held out
    assert test.names == ["img0.png", "img2.png", "img4.png"]
    poses = torch.cat([train.cameras.c2w, test.cameras.c2w])
    torch.testing.assert_close(poses[:, :, 3].mean(0), torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(poses[:, :, :3], torch.eye(3).expand(5, 3, 3), atol=1e-6,
                               rtol=0)
    assert train.cameras.fx[0] == pytest.approx(12.5)  # focal 100 scaled from 128 to 16 pixels
    # rays start on the NDC near plane and stay in the scene box
    rays = scene.rays("train", torch.zeros(4, dtype=torch.int64), torch.tensor([0, 15, 0, 15]),
                      torch.tensor([0, 0, 11, 11]))
    torch.testing.assert_close(rays.origins[:, 2], torch.full((4,), -1.0))
    assert (rays.origins[:, :2].abs() <= 1.5).all()


def test_bad_llff_inputs(tmp_path):
    root = write_llff(tmp_path / "a")
    np.save(root / "poses_bounds.npy", np.zeros((5, 15)))
    with pytest.raises(SceneError, match=r"poses_bounds.npy: expected shape \(N, 17\)"):
        load_nerf_scene(root)
    root = write_llff(tmp_path / "b")
    (root / "images_8" / "img4.png").unlink()
    with pytest.raises(SceneError, match="5 poses but 4 images"):
        load_nerf_scene(root)
    root = write_llff(tmp_path / "c")
    with pytest.raises(SceneError, match="images_4: not found"):
        load_nerf_scene(root, SceneOptions(llff_factor=4))
    root = write_llff(tmp_path / "d")
    (root / "poses_bounds.npy").write_bytes(b"garbage")
    with pytest.raises(SceneError, match="not a readable .npy"):
        load_nerf_scene(root)
    with pytest.raises(SceneError, match="--downscale 0"):
        SceneOptions(downscale=0)


@pytest.mark.data
def test_lego_cameras_look_at_the_origin():
    scene = load_nerf_scene(shared_data("nerf/lego_200"))
    train = scene.splits["train"]
    assert len(train) == 100 and len(scene.splits["test"]) == 200
    assert train.colors.shape[1:] == (200, 200, 3) and train.alphas is not None
    # the origin projects to the image centre of every camera (OpenGL: in front is -z)
    w2c = torch.linalg.inv(torch.cat([train.cameras.c2w, torch.tensor([[[0.0, 0, 0, 1]]])
                                      .expand(100, 1, 4)], 1))
    local = w2c[:, :3, 3]  # the origin in camera coordinates
    assert (local[:, 2] < -3).all()
    col = train.cameras.cx + train.cameras.fx * local[:, 0] / -local[:, 2]
    row = train.cameras.cy - train.cameras.fy * local[:, 1] / -local[:, 2]
    assert (col - 100).abs().max() < 8 and (row - 100).abs().max() < 8
    assert train.alphas[:, 95:105, 95:105].mean() > 0.5  # lego is in the middle


@pytest.mark.data
def test_fern_loads_with_its_holdout():
    scene = load_nerf_scene(shared_data("nerf/fern"))
    assert len(scene.splits["test"]) == 3 and len(scene.splits["train"]) == 17
    assert scene.splits["train"].colors.shape[1:] == (378, 504, 3)
    rays = scene.rays("test", torch.zeros(1, dtype=torch.int64), torch.tensor([252]),
                      torch.tensor([189]))
    assert rays.directions[0, 2] > 0.9  # into the scene, towards +z in NDC
