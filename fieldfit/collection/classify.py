"""Classifying a fitted collection: the tri-plane paper's channel-token transformer, and PointNet
on point clouds of the same meshes as the reference point.

Tri-plane input (paper): the 3 planes concatenated to (3C, R, R), each location's 3C-vector
L2-normalised, a random resized crop (train) or centre crop (test) to R - 2. Every channel is a
token with no positional embedding, so the network is invariant to the order of the channels,
the symmetry of fitted fields.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..io import prepare_out_dir, write_json
from .dataset import FittedCollection, load_collection


class ChannelTransformer(nn.Module):
    """(b, n_channels, H, W) -> (b, n_classes) logits: each channel's H * W values are one
    token (linear embedding, no positional embedding), a transformer encoder, max-pool over the
    tokens, a linear head. Permuting the channels leaves the output unchanged."""

    def __init__(self, token_dims: int, n_classes: int, d_model: int = 128, n_layers: int = 4,
                 n_heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Linear(token_dims, d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x.flatten(2))).amax(1))


class PointNet(nn.Module):
    """(b, n_points, 3) -> (b, n_classes) logits: a shared per-point MLP with batch norm,
    max-pool over the points, an MLP head (Qi et al. 2017, without the T-Nets)."""

    def __init__(self, n_classes: int, widths: tuple[int, ...] = (64, 128, 256),
                 dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip((3, *widths[:-1]), widths, strict=True):
            layers += [nn.Conv1d(fan_in, fan_out, 1), nn.BatchNorm1d(fan_out), nn.ReLU()]
        self.points = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(widths[-1], widths[-1] // 2),
                                  nn.BatchNorm1d(widths[-1] // 2), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(widths[-1] // 2, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.points(x.transpose(1, 2)).amax(2))


def triplane_inputs(triplanes: torch.Tensor) -> torch.Tensor:
    """(n, 3, C, R, R) -> (n, 3C, R, R), each location's 3C-vector L2-normalised."""
    return F.normalize(triplanes.flatten(1, 2), dim=1)


@dataclass
class ClassifyOptions:
    """Classifier training on the train split, evaluation on the test split."""

    model: Literal["triplane", "pointnet"] = "triplane"
    """triplane: channel-token transformer on the fitted tri-planes; pointnet: PointNet on
    point clouds sampled from the same meshes"""
    epochs: int = 100
    """passes over the train split"""
    batch_size: int = 32
    """shapes per step"""
    lr: float = 1e-3
    """AdamW peak learning rate (one-cycle schedule)"""
    weight_decay: float = 1e-3
    """AdamW weight decay"""
    d_model: int = 128
    """transformer width (the paper: 512)"""
    n_layers: int = 4
    """transformer layers (the paper: 8)"""
    n_heads: int = 4
    """attention heads"""
    crop_scale_min: float = 0.5
    """smallest area share of the train-time random resized crop (torchvision's default 0.08)"""
    n_points: int = 1024
    """PointNet: surface points per shape"""
    seed: int = 0
    """seed of initialisation, batches, augmentation and point sampling"""

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.n_points) < 1:
            raise ValueError("--epochs, --batch-size and --n-points must be >= 1")
        if not 0 < self.crop_scale_min <= 1:
            raise ValueError(f"--crop-scale-min {self.crop_scale_min}: must be in (0, 1]")


def _labels(data: FittedCollection) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Class indices (n,), train mask (n,), classes; UserError for an unusable split."""
    if not data.classes:
        raise UserError("the collection is unlabelled (a flat folder): classification needs "
                        "ROOT/CLASS/{train,test} folders")
    y = np.array([data.classes.index(e["label"]) for e in data.entries])
    train = np.array([e["split"] == "train" for e in data.entries])
    for c, name in enumerate(data.classes):
        if not (train & (y == c)).any():
            raise UserError(f"class {name!r} has no fitted train shapes")
    if train.all():
        raise UserError("the collection has no fitted test shapes")
    return y, train, data.classes


def _point_clouds(data: FittedCollection, n_points: int, seed: int) -> torch.Tensor:
    """(n, n_points, 3) surface samples of each mesh, in the same box as its fitted field."""
    from fieldfit.scenes.meshes import load_mesh

    clouds = []
    for i, e in enumerate(data.entries):
        mesh = load_mesh(e["path"], margin=data.recipe.margin)
        clouds.append(mesh.sample_surface(n_points, np.random.default_rng([seed, i]))[0])
    return torch.from_numpy(np.stack(clouds)).float()


def _augment(model: str, x: torch.Tensor, crop: int, scale_min: float,
             g: torch.Generator) -> torch.Tensor:
    """Train-time augmentation: a random resized crop of the planes (the paper's), or a random
    anisotropic scale and jitter of the points."""
    if model == "pointnet":
        scale = 0.8 + 0.45 * torch.rand(len(x), 1, 3, generator=g)
        return x * scale + 0.01 * torch.randn(x.shape, generator=g)
    import kornia.augmentation as K

    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=g)))
        return K.RandomResizedCrop((crop, crop), scale=(scale_min, 1.0))(x)


def _centre(model: str, x: torch.Tensor, crop: int) -> torch.Tensor:
    if model == "pointnet":
        return x
    r = x.shape[-1]
    lo = (r - crop) // 2
    return x[..., lo:lo + crop, lo:lo + crop]


def train_classifier(model: nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor,
                     train: torch.Tensor, options: ClassifyOptions, crop: int,
                     progress: bool = True) -> tuple[torch.Tensor, list[dict]]:
    """Train on ``x[train]``, evaluate on ``x[~train]`` after every epoch. Returns the test
    predictions (n_test,) of the last epoch and the history (epoch, loss, test accuracy)."""
    from tqdm import tqdm

    g = torch.Generator().manual_seed(options.seed)
    xs, ys = x[train], y[train]
    steps_per_epoch = -(-len(xs) // options.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr,
                                  weight_decay=options.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, options.lr,
                                                   total_steps=options.epochs * steps_per_epoch)
    history, bar = [], tqdm(range(options.epochs), desc=f"training {kind}", unit="epoch",
                            disable=not progress, dynamic_ncols=True)
    for epoch in bar:
        model.train()
        order, total = torch.randperm(len(xs), generator=g), 0.0
        for batch in order.split(options.batch_size):
            inputs = _augment(kind, xs[batch], crop, options.crop_scale_min, g)
            loss = F.cross_entropy(model(inputs), ys[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        predictions = predict(model, _centre(kind, x[~train], crop))
        accuracy = float((predictions == y[~train]).float().mean())
        history.append({"epoch": epoch + 1, "loss": total / len(xs), "test_accuracy": accuracy})
        bar.set_postfix_str(f"loss {total / len(xs):.3f}, test acc {accuracy:.3f}")
    return predictions, history


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    model.eval()
    return torch.cat([model(c).argmax(1) for c in x.split(chunk)])


def classify_collection(dataset: Path, out: Path, options: ClassifyOptions,
                        progress: bool = True) -> dict:
    """Train ``options.model`` on the train split of the fitted collection at ``dataset``, test
    it on the test split; writes metrics.json, confusion.png and training_curve.png to ``out``."""
    data = load_collection(dataset)
    y_np, train_np, classes = _labels(data)
    out = prepare_out_dir(out)
    torch.manual_seed(options.seed)
    r = data.triplanes.shape[-1]
    crop = r - 2
    if options.model == "triplane":
        x = triplane_inputs(data.triplanes)
        model: nn.Module = ChannelTransformer(crop * crop, len(classes), options.d_model,
                                              options.n_layers, options.n_heads)
    else:
        x = _point_clouds(data, options.n_points, options.seed)
        model = PointNet(len(classes))
    y, train = torch.from_numpy(y_np), torch.from_numpy(train_np)
    start = time.perf_counter()
    predictions, history = train_classifier(model, options.model, x, y, train, options, crop,
                                            progress)
    seconds = time.perf_counter() - start
    truth = y[~train].numpy()
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(confusion, (truth, predictions.numpy()), 1)
    per_class = {name: float(confusion[c, c] / confusion[c].sum()) if confusion[c].sum() else None
                 for c, name in enumerate(classes)}
    result = {"model": options.model, "accuracy": float(np.trace(confusion) / confusion.sum()),
              "per_class_accuracy": per_class, "confusion": confusion.tolist(),
              "classes": classes, "n_classes": len(classes), "n_train": int(train.sum()),
              "n_test": int((~train).sum()), "seconds": seconds,
              "params": sum(p.numel() for p in model.parameters()),
              "options": {k: getattr(options, k) for k in options.__dataclass_fields__},
              "history": history}
    write_json(out / "metrics.json", result)
    from .plots import plot_classifier_curve, plot_confusion

    plot_confusion(confusion, classes, out / "confusion.png",
                   f"{options.model}: test accuracy {result['accuracy']:.3f}")
    plot_classifier_curve(history, out / "training_curve.png", options.model)
    return result
