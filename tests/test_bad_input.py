"""Every bad input of the reliability probe through the real CLI (``fieldfit.cli.main``): exit
2, one line naming the file or option, before any training (no metrics.jsonl is written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from fieldfit.scenes import procedural_image

from fieldfit.checkpoint import CHECKPOINT_NAME, content_digest
from fieldfit.cli import main

SMALL = ["--steps", "3", "--log2-table", "10", "--batch-size", "256"]


def run_cli(capsys, *args) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.strip().splitlines()


def assert_refused(capsys, args, culprit: str, out: Path | None = None) -> None:
    code, lines = run_cli(capsys, *args)
    assert code == 2, (args, lines)
    assert len(lines) == 1 and lines[0].startswith("fieldfit: error:"), (args, lines)
    assert culprit in lines[0], (culprit, lines[0])
    if out is not None:
        assert not (out / "metrics.jsonl").exists(), f"{args}: trained before refusing"


def write_png(path: Path, array: np.ndarray) -> Path:
    iio.imwrite(path, array)
    return path


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "ok.png"
    return write_png(path, (procedural_image(32, 32).numpy() * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def cube(tmp_path_factory) -> Path:
    import trimesh

    path = tmp_path_factory.mktemp("mesh") / "cube.obj"
    trimesh.creation.box(extents=(1.0, 0.8, 0.6)).export(path)
    return path


def image_cases(tmp: Path, png: Path) -> list[tuple[list, str]]:
    small = {name: write_png(tmp / f"{name}.png", np.zeros(shape, np.uint8))
             for name, shape in (("1x1", (1, 1, 3)), ("5x5", (5, 5, 3)), ("1x500", (1, 500)))}
    from PIL import Image

    huge = tmp / "huge.png"  # 12000^2: refused from the header, before decoding
    Image.fromarray(np.zeros((12000, 12000), np.uint8)).save(huge)
    out = tmp / "out"
    return [
        *[([path, "--out", out], str(path)) for path in small.values()],
        ([huge, "--out", out], str(huge)),
        ([png, "--out", out, "--eval-chunk", "0"], "--eval-chunk 0"),
        ([png, "--out", out, "--params", "1"], "--params 1:"),
        ([png, "--out", out, "--params", "100000000000"], "--params 100000000000"),
        ([png, "--out", out, "--params", "1e11"], "--params"),
        ([png, "--out", out, "--final-lr-factor", "-1"], "--final-lr-factor -1"),
        ([png, "--out", out, "--final-lr-factor", "nan"], "--final-lr-factor nan"),
    ]


def test_bad_images_and_image_options(tmp_path, capsys, png):
    for args, culprit in image_cases(tmp_path, png):
        assert_refused(capsys, ["image", *args], culprit, tmp_path / "out")


def test_16_bit_rgb_png_read_at_full_precision(tmp_path):
    import png as pypng
    from fieldfit.scenes import load_image

    values = (np.arange(12 * 13 * 3, dtype=np.uint32) * 997 % 65536).astype(np.uint16)
    values = values.reshape(12, 13, 3)
    path = tmp_path / "rgb16.png"
    pypng.from_array(values.reshape(12, -1), "RGB;16").save(str(path))
    image = load_image(path)
    torch.testing.assert_close(image, torch.from_numpy(values.astype(np.float32) / 65535),
                               rtol=0, atol=1e-7)
    assert len(np.unique(values >> 8)) < len(np.unique(values))  # 8 bits would lose levels


def test_bad_sdf_options_and_meshes(tmp_path, capsys, cube):
    far = tmp_path / "far.obj"
    far.write_text("v 0 0 0\nv 1e200 0 0\nv 0 1e200 0\nv 0 0 1e200\n"
                   "f 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n")
    out = tmp_path / "out"
    small = ["--n-samples", "4096", "--eval-points", "4096", "--resolution", "16",
             "--steps", "2", "--out", out]
    for args, culprit in [
        ([cube, "--params", "1", *small], "--params 1:"),
        ([cube, "--max-res", "-5", *small], "--max-res -5"),
        ([far, *small], str(far)),
    ]:
        assert_refused(capsys, ["sdf", *args], culprit, out)


def test_bad_nerf_mesh_and_demo_options(tmp_path, capsys, procedural_scene):
    out = tmp_path / "out"
    for args, culprit in [
        (["nerf", procedural_scene, "--out", out, "--render-steps", "100000000"],
         "--render-steps 100000000"),
        (["nerf", procedural_scene, "--out", out, "--geometry", "sdf",
          "--mesh-resolution", "100000"], "--mesh-resolution 100000"),
        (["mesh", tmp_path, "--chunk", "0"], "--chunk 0"),
        (["demo", "--out", out, "--size", "0"], "--size 0"),
        (["demo", "--out", out, "--size", "-3"], "--size -3"),
        (["demo", "--out", out, "--seconds", "0"], "--seconds 0"),
    ]:
        assert_refused(capsys, args, culprit, out)


# -- tampered checkpoints ---------------------------------------------------------------------
def rewrite(path: Path, meta=None, tensors=None, rehash: bool = True, raw_meta=None) -> None:
    """Rewrite the checkpoint at ``path`` with ``meta(dict)`` / ``tensors(dict)`` applied,
    with a fresh checksum unless ``rehash`` is False (or raw metadata text)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        saved = json.loads(f.metadata()["fieldfit"])
        data = {k: f.get_tensor(k) for k in f.keys()}
    if tensors:
        tensors(data)
    if rehash:
        saved["sha256"] = content_digest(data)
    if meta:
        saved = meta(saved)
    path.unlink()
    save_file(data, str(path), metadata={"fieldfit": raw_meta or json.dumps(saved)})


def flip_a_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF
    path.write_bytes(bytes(raw))


def nan_weight(data: dict) -> None:
    name = next(k for k in data if k.startswith("model/") and data[k].is_floating_point())
    data[name] = data[name].clone().view(-1).index_fill(0, torch.tensor([0]), float("nan")) \
        .view_as(data[name])


def wrong_optimiser_shape(data: dict) -> None:
    name = next(k for k in data if k.endswith("exp_avg"))
    data[name] = torch.zeros(3, 5)


def wrong_rng(data: dict) -> None:
    data["rng/generator"] = torch.zeros(7, dtype=torch.uint8)


TAMPERED = {
    "flipped_bytes": lambda p: flip_a_byte(p),
    "nan_weights": lambda p: rewrite(p, tensors=nan_weight),
    "optimiser_shape": lambda p: rewrite(p, tensors=wrong_optimiser_shape),
    "elapsed_nan": lambda p: rewrite(p, meta=lambda m: {**m, "elapsed": float("nan")}),
    "step_negative": lambda p: rewrite(p, meta=lambda m: {**m, "step": -1000}),
    "step_text": lambda p: rewrite(p, meta=lambda m: {**m, "step": "abc"}),
    "meta_list": lambda p: rewrite(p, raw_meta="[1, 2, 3]"),
    "rng_size": lambda p: rewrite(p, tensors=wrong_rng),
    "no_checksum": lambda p: rewrite(p, meta=lambda m: {k: v for k, v in m.items()
                                                        if k != "sha256"}),
}


def test_tampered_checkpoints_are_refused_on_resume(tmp_path, capsys, png):
    base = tmp_path / "base"
    code, lines = run_cli(capsys, "image", png, "--out", base, *SMALL)
    assert code == 0, lines
    for name, tamper in TAMPERED.items():
        case = tmp_path / name
        shutil.copytree(base, case)
        tamper(case / CHECKPOINT_NAME)
        before = (case / CHECKPOINT_NAME).read_bytes()
        assert_refused(capsys, ["image", png, "--out", case, "--resume", *SMALL[:1], "6",
                                *SMALL[2:]], str(case / CHECKPOINT_NAME))
        assert (case / CHECKPOINT_NAME).read_bytes() == before, name  # left as it was
    code, lines = run_cli(capsys, "image", png, "--out", base, "--resume", "--steps", "6",
                          *SMALL[2:])
    assert code == 0, lines  # the untouched run resumes


def test_resume_with_other_input_of_the_same_size(tmp_path, capsys, png):
    other = write_png(tmp_path / "other.png",
                      (procedural_image(32, 32).numpy()[::-1] * 255).astype(np.uint8))
    out = tmp_path / "run"
    assert run_cli(capsys, "image", png, "--out", out, *SMALL)[0] == 0
    assert_refused(capsys, ["image", other, "--out", out, "--resume", "--steps", "6",
                            *SMALL[2:]], "--resume")
    moved = shutil.copy(png, tmp_path / "moved.png")  # same content elsewhere: accepted
    assert run_cli(capsys, "image", moved, "--out", out, "--resume", "--steps", "6",
                   *SMALL[2:])[0] == 0
