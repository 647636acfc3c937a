"""Image loading: bit depths, grey, alpha modes, and coordinates."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from fieldfit.scenes import SceneError, load_image, pixel_coords


def test_8_and_16_bit_png(tmp_path):
    a8 = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    a16 = (np.arange(4 * 5, dtype=np.uint16) * 3000).reshape(4, 5)
    iio.imwrite(tmp_path / "a8.png", a8)
    iio.imwrite(tmp_path / "a16.png", a16)
    torch.testing.assert_close(load_image(tmp_path / "a8.png"),
                               torch.from_numpy(a8.astype(np.float32) / 255))
    grey = load_image(tmp_path / "a16.png")
    assert grey.shape == (4, 5, 1)
    torch.testing.assert_close(grey[..., 0], torch.from_numpy(a16.astype(np.float32) / 65535))


def test_rgba_composited_or_kept(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = [[0, 255], [128, 255]]
    iio.imwrite(tmp_path / "a.png", rgba)
    white = load_image(tmp_path / "a.png", alpha="white")
    black = load_image(tmp_path / "a.png", alpha="black")
    kept = load_image(tmp_path / "a.png", alpha="keep")
    assert white.shape == black.shape == (2, 2, 3) and kept.shape == (2, 2, 4)
    torch.testing.assert_close(white[0, 0], torch.ones(3))
    torch.testing.assert_close(black[0, 0], torch.zeros(3))
    a = 128 / 255
    torch.testing.assert_close(white[1, 0], torch.tensor([1.0, 1 - a, 1 - a]))


def test_jpeg_loads(tmp_path):
    iio.imwrite(tmp_path / "a.jpg", np.full((8, 8, 3), 200, np.uint8))
    img = load_image(tmp_path / "a.jpg")
    assert img.shape == (8, 8, 3) and abs(img.mean().item() - 200 / 255) < 0.02


def test_zero_size_image_rejected(tmp_path, monkeypatch):
    path = tmp_path / "z.png"
    path.write_bytes(b"x")
    monkeypatch.setattr(iio, "imread", lambda p: np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(SceneError, match="zero size"):
        load_image(path)


def test_pixel_coords_are_centres():
    c = pixel_coords(2, 4)
    assert c.shape == (8, 2)
    torch.testing.assert_close(c[0], torch.tensor([0.125, 0.25]))
    torch.testing.assert_close(c[-1], torch.tensor([0.875, 0.75]))
