"""Config round trips, registries and the pointwise losses."""

from __future__ import annotations

import importlib

import pytest
import torch
from fieldfit.fields import (
    ConfigError,
    FieldConfig,
    PresetContext,
    field_names,
    field_preset,
    from_dict,
    to_dict,
)
from fieldfit.losses import parse_loss, relative_l2

from fieldfit.trainer import TrainerConfig


def test_every_preset_round_trips_through_json():
    for name in field_names():
        for dims in (2, 3):
            cfg = field_preset(name, PresetContext(task="image", dims=dims, max_res=64))
            assert from_dict(FieldConfig, to_dict(cfg)) == cfg


def test_unknown_keys_and_kinds_are_errors():
    data = to_dict(field_preset("grid", PresetContext(task="image", dims=2)))
    data["encoding"]["bogus"] = 1
    with pytest.raises(ConfigError, match="bogus"):
        from_dict(FieldConfig, data)
    with pytest.raises(ConfigError, match="unknown kind"):
        from_dict(None, {"kind": "nope"})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(TrainerConfig, {"stepz": 3})


def test_unknown_field_lists_valid_names():
    with pytest.raises(ValueError, match="choose from"):
        field_preset("nope", PresetContext(task="image", dims=2))


def test_loss_spec_sums_terms():
    pred, target = torch.rand(64, 3), torch.rand(64, 3)
    loss = parse_loss("mse+l1", weights={"l1": 0.5})
    total, terms = loss(pred, target)
    mse = ((pred - target) ** 2).mean()
    l1 = (pred - target).abs().mean()
    torch.testing.assert_close(terms["mse"], mse)
    torch.testing.assert_close(total, mse + 0.5 * l1)
    with pytest.raises(ValueError, match="unknown loss"):
        parse_loss("mse+nope")


def test_relative_l2_closed_form():
    pred = torch.tensor([[0.5]], requires_grad=True)
    value = relative_l2(pred, torch.tensor([[0.0]]))
    torch.testing.assert_close(value, torch.tensor(0.25 / (0.25 + 1e-2)))
    value.backward()  # gradient treats the denominator as a constant
    torch.testing.assert_close(pred.grad, torch.tensor([[2 * 0.5 / (0.25 + 1e-2)]]))


@pytest.mark.parametrize("module", ["fieldfit.fields", "fieldfit.losses", "fieldfit.scenes",
                                    "fieldfit.renderers", "fieldfit.tasks"])
def test_all_exports_exist(module):
    mod = importlib.import_module(module)
    for name in getattr(mod, "__all__", []):
        assert hasattr(mod, name), f"{module}.{name}"
