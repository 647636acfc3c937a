"""Classifiers of fitted collections: channel-permutation invariance of the tri-plane
transformer, both classifiers learn separable toy data, and `fieldfit collection classify`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fieldfit.collection.classify import (
    ChannelTransformer,
    ClassifyOptions,
    PointNet,
    train_classifier,
    triplane_inputs,
)


def test_channel_transformer_is_invariant_to_channel_order():
    torch.manual_seed(0)
    model = ChannelTransformer(token_dims=36, n_classes=5, d_model=32, n_layers=2,
                               n_heads=4).double().eval()
    x = torch.randn(3, 48, 6, 6, dtype=torch.float64)
    permuted = x[:, torch.randperm(48)]
    with torch.no_grad():
        out, out_permuted = model(x), model(permuted)
        changed = x.clone()
        changed[:, 5] += 1.0
        out_changed = model(changed)
    torch.testing.assert_close(out_permuted, out, atol=1e-12, rtol=0)
    assert (out_changed - out).abs().max() > 1e-3  # the output does depend on the channels


def test_triplane_inputs_normalise_each_location():
    planes = torch.randn(2, 3, 4, 5, 5)
    x = triplane_inputs(planes)
    assert x.shape == (2, 12, 5, 5)
    torch.testing.assert_close(x.norm(dim=1), torch.ones(2, 5, 5))
    norm = planes[1, :, :, 2, 3].norm()
    torch.testing.assert_close(x[1, 4:8, 2, 3] * norm, planes[1, 1, :, 2, 3])


def _toy_planes(n_per_class: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes of (24, 10, 10) 'tri-planes': every channel a randomly scaled horizontal
    ramp, vertical ramp or centred bump (by class), channels in random order, plus noise."""
    u = torch.linspace(-1, 1, 10)
    patterns = torch.stack([u.expand(10, 10), u[:, None].expand(10, 10),
                            torch.exp(-4 * (u[:, None] ** 2 + u ** 2))])
    y = torch.arange(3).repeat_interleave(n_per_class)
    scale = 0.5 + torch.rand(len(y), 24, 1, 1, generator=g)
    x = patterns[y][:, None] * scale + 0.3 * torch.randn(len(y), 24, 10, 10, generator=g)
    return x, y


def test_channel_transformer_learns_separable_toy_collection():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = _toy_planes(20, g)
    train = torch.arange(len(y)) % 4 != 0
    options = ClassifyOptions(epochs=25, batch_size=16, lr=3e-3, crop_scale_min=0.8)
    model = ChannelTransformer(8 * 8, 3, d_model=32, n_layers=1, n_heads=2, dropout=0.0)
    predictions, history = train_classifier(model, "triplane", x, y, train, options, crop=8,
                                            progress=False)
    assert (predictions == y[~train]).float().mean() >= 0.9  # chance: 1/3
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_pointnet_learns_spheres_from_cubes():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    n, k = 40, 128
    directions = torch.randn(n, k, 3, generator=g)
    spheres = directions / directions.norm(dim=2, keepdim=True)
    cubes = directions / directions.abs().amax(dim=2, keepdim=True)
    scale = 0.5 + 0.5 * torch.rand(2 * n, 1, 1, generator=g)
    x, y = torch.cat([spheres, cubes]) * scale, torch.arange(2).repeat_interleave(n)
    train = torch.arange(2 * n) % 4 != 0
    options = ClassifyOptions(model="pointnet", epochs=20, batch_size=16, lr=3e-3)
    predictions, _ = train_classifier(PointNet(2, (32, 64)), "pointnet", x, y, train, options,
                                      crop=0, progress=False)
    assert (predictions == y[~train]).float().mean() >= 0.9  # chance: 1/2


@pytest.mark.parametrize("model", ["triplane", "pointnet"])
def test_classify_command_writes_consistent_outputs(tmp_path, model):
    from fieldfit.scenes.shape_collection import write_shape_collection

    from fieldfit.cli import main
    from fieldfit.collection.dataset import FitOptions, fit_collection
    from fieldfit.collection.fit import FitRecipe

    root = write_shape_collection(tmp_path / "root", n_train=2, n_test=1,
                                  classes=["box", "torus", "cone"])
    fit_collection(root, tmp_path / "ds", FitRecipe(steps=5, points_per_step=128,
                                                    pool_points=2000),
                   FitOptions(batch_shapes=4, eval_resolution=16, eval_points=1000),
                   progress=False)
    run = tmp_path / "run"
    assert main(["collection", "classify", str(tmp_path / "ds"), "--out", str(run), "--model",
                 model, "--epochs", "2", "--n-points", "64", "--d-model", "16", "--quiet"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    confusion = np.array(metrics["confusion"])
    assert confusion.sum() == metrics["n_test"] == 3 and metrics["n_train"] == 6
    assert metrics["accuracy"] == pytest.approx(np.trace(confusion) / 3)
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert (run / "confusion.png").stat().st_size > 0
    assert (run / "training_curve.png").stat().st_size > 0
