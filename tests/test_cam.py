"""CAM on any preset's decoder (``--cam``), the MLP fields' defaults and the short-budget
warning."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from fieldfit.fields import CAMConfig, MLPConfig, PresetContext, field_names, field_preset
from fieldfit.scenes import ImageTarget, procedural_image

from fieldfit.tasks import ImageTask, ImageTaskConfig, build_task
from fieldfit.time_budget import PACE_STEPS, short_budget_warning
from fieldfit.trainer import TrainerConfig


def normalised_mlp(mlp, h: torch.Tensor) -> torch.Tensor:
    """The CAM decoder's MLP with every hidden layer normalised and not modulated."""
    return mlp(h, between=lambda i, z: F.layer_norm(z, z.shape[-1:], eps=1e-5))


@pytest.mark.parametrize(("task", "dims", "cam", "grid_shape"), [
    ("image", 2, "point", (32, 32)), ("sdf", 3, "point", (16, 16, 16)),
    ("nerf", 3, "direction", (10, 3)), ("video", 3, "time", (12,))])
@pytest.mark.parametrize("name", field_names())
def test_cam_on_every_preset_starts_as_its_normalised_decoder(name, task, dims, cam,
                                                              grid_shape):
    ctx = PresetContext(task=task, dims=dims, max_res=64, log2_table=10, out_dims=4,
                        time_res=12 if task == "video" else 0, cam=cam)
    config = field_preset(name, ctx)
    assert isinstance(config.decoder, CAMConfig)
    assert (config.decoder.coordinate, config.decoder.grid_shape) == (cam, grid_shape)
    assert config.decoder.per_channel == (task == "video")  # CAM's video modulation
    plain = field_preset(name, PresetContext(task=task, dims=dims, max_res=64, log2_table=10,
                                             out_dims=4, time_res=ctx.time_res))
    base = plain.decoder.mlp if isinstance(plain.decoder, CAMConfig) else plain.decoder
    assert config.decoder.mlp == base and config.encoding == plain.encoding
    torch.manual_seed(0)
    field = config.build(dims, 4)
    if field.adaptive_modules():
        field.init_from_samples(torch.rand(256, dims), torch.rand(256))
    field = field.double()
    x = torch.rand(64, dims, dtype=torch.float64)
    d = F.normalize(torch.randn(64, 3, dtype=torch.float64), dim=-1)
    with torch.no_grad():  # gamma 1 and beta 0: the modulation is the identity
        want = normalised_mlp(field.decoder.mlp, field.encoding(field.normalize(x)))
        torch.testing.assert_close(field(x, d), want)
        field.decoder.gamma.add_(torch.rand_like(field.decoder.gamma))
        assert not torch.allclose(field(x, d), want)  # and the grids do act


def test_cam_time_reads_the_last_axis_only():
    cfg = CAMConfig(mlp=MLPConfig(width=8, n_hidden=2), grid_shape=(4,), coordinate="time",
                    per_channel=True)
    dec = cfg.build(5, 3)
    with torch.no_grad():
        dec.gamma.normal_()
        dec.beta.normal_()
    h, point = torch.randn(6, 5), torch.rand(6, 3)
    moved = point.clone()
    moved[:, :2] = torch.rand(6, 2)  # another place, the same time
    torch.testing.assert_close(dec(h, point), dec(h, moved))
    later = point.clone()
    later[:, 2] = (later[:, 2] + 0.5) % 1.0
    assert not torch.allclose(dec(h, point), dec(h, later))
    with pytest.raises(ValueError, match="1D grid_shape"):
        CAMConfig(grid_shape=(4, 4), coordinate="time")


@pytest.mark.parametrize(("ctx", "message"), [
    (dict(task="image", dims=2, cam="time"), "no time axis"),
    (dict(task="sdf", dims=3, cam="direction"), "view direction"),
    (dict(task="nerf", dims=3, cam="direction", view_dependent=False), "view direction"),
    (dict(task="image", dims=2, cam="colour"), "choose from")])
def test_cam_refuses_a_coordinate_the_target_lacks(ctx, message):
    with pytest.raises(ValueError, match=message):
        PresetContext(**ctx)


def test_image_task_uses_the_presets_batch_unless_set():
    target = ImageTarget(procedural_image(16, 16))
    mlp = build_task(ImageTask, target, ImageTaskConfig(field="mlp"), torch.device("cpu"), 0)
    grid = build_task(ImageTask, target, ImageTaskConfig(log2_table=8), torch.device("cpu"), 0)
    chosen = build_task(ImageTask, target, ImageTaskConfig(field="cam", batch_size=100),
                        torch.device("cpu"), 0)
    assert (mlp.batch_size, grid.batch_size, chosen.batch_size) == (2**13, 2**16, 100)
    assert mlp.field_config.lr == {"decoder": 1e-3} and mlp.field_config.min_steps > 0
    assert chosen.field_config.lr == {"decoder": 3e-3}


def fake_trainer(step: int, elapsed: float, **config) -> SimpleNamespace:
    return SimpleNamespace(step=step, elapsed=elapsed, config=TrainerConfig(**config))


def test_a_budget_too_short_for_the_field_is_warned_about_once(caplog):
    hook = short_budget_warning(min_steps=200)
    with caplog.at_level(logging.WARNING, logger="fieldfit"):
        hook(fake_trainer(PACE_STEPS, PACE_STEPS * 3.0, seconds=60))  # 3 s/step: 20 steps
        hook(fake_trainer(PACE_STEPS + 1, (PACE_STEPS + 1) * 3.0, seconds=60))
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "about 20 steps" in message and "--seconds 600" in message, message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fieldfit"):
        hook(fake_trainer(PACE_STEPS, PACE_STEPS * 0.1, seconds=60))  # 600 steps: enough
        hook(fake_trainer(PACE_STEPS, PACE_STEPS * 3.0, steps=1000))  # no time budget
    assert not caplog.records
