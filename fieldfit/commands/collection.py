"""`fieldfit collection fit|classify`: fit one tri-plane field per shape of a collection into a
dataset, then classify the shapes from their tri-planes (or from point clouds, PointNet)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from ..collection.classify import ClassifyOptions, classify_collection
from ..collection.dataset import FitOptions, fit_collection
from ..collection.fit import RECIPES

Flat = tyro.conf.arg(name="")


@dataclass
class CollectionFitCommand:
    """Fit one tri-plane field per mesh of ROOT (ModelNet's layout ROOT/CLASS/{train,test}/*.off
    or a flat folder) into --out: safetensors shards, index.json with fit metrics. Rerunning
    skips finished shapes; under torchrun each rank fits its share."""

    root: tyro.conf.Positional[Path]
    """collection folder"""
    out: Path = Path("runs/collection")
    """dataset folder"""
    recipe: Literal["paper", "fast"] = "fast"
    """paper: 1000 Adam steps of 50k points, lr 1e-4; fast: the CPU-scale recipe"""
    target: Literal["sdf", "udf", "occupancy"] = "sdf"
    """field target, each a BCE on labels in [0, 1] (see FitRecipe)"""
    steps: int | None = None
    """override the recipe's Adam steps"""
    points_per_step: int | None = None
    """override the recipe's query points per shape per step"""
    pool_points: int | None = None
    """override the recipe's points sampled once per shape"""
    options: Annotated[FitOptions, Flat] = field(default_factory=FitOptions)
    quiet: bool = False
    """no progress bar"""
    debug: bool = False
    """show tracebacks"""

    def run(self) -> dict:
        overrides = {"steps": self.steps, "points_per_step": self.points_per_step,
                     "pool_points": self.pool_points}
        recipe = dataclasses.replace(RECIPES[self.recipe], target=self.target,
                                     **{k: v for k, v in overrides.items() if v is not None})
        index = fit_collection(self.root, self.out, recipe, self.options,
                               progress=not self.quiet)
        iou = index["mean_iou"]
        print(f"{index['n_ok']} of {index['n_shapes']} shapes fitted ({index['n_failed']} "
              f"failed, {index['n_missing']} missing); mean IoU "
              f"{'n/a' if iou is None else f'{iou:.4f}'}, mean Chamfer-L1 "
              f"{index['mean_chamfer_l1']:.4g}; index in {self.out / 'index.json'}")
        return index


@dataclass
class CollectionClassifyCommand:
    """Train a classifier on the train split of a fitted collection and evaluate it on the test
    split: metrics.json (accuracy, per-class accuracy), confusion.png, training_curve.png."""

    dataset: tyro.conf.Positional[Path]
    """dataset folder written by `fieldfit collection fit`"""
    out: Path = Path("runs/classify")
    """run folder"""
    options: Annotated[ClassifyOptions, Flat] = field(default_factory=ClassifyOptions)
    quiet: bool = False
    """no progress bar"""
    debug: bool = False
    """show tracebacks"""

    def run(self) -> dict:
        result = classify_collection(self.dataset, self.out, self.options,
                                     progress=not self.quiet)
        print(f"{self.options.model}: test accuracy {result['accuracy']:.4f} on "
              f"{result['n_test']} shapes ({result['n_classes']} classes); outputs in {self.out}")
        return result


@dataclass
class CollectionCommand:
    """Shape collections: fit a tri-plane per shape (fit), learn from the tri-planes
    (classify)."""

    command: Annotated[
        Annotated[CollectionFitCommand, tyro.conf.subcommand("fit", prefix_name=False)]
        | Annotated[CollectionClassifyCommand,
                    tyro.conf.subcommand("classify", prefix_name=False)],
        Flat]

    @property
    def debug(self) -> bool:
        return self.command.debug

    def run(self) -> dict:
        return self.command.run()
