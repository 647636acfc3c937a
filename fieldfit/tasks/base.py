"""The task interface: what the trainer needs from image, SDF and NeRF fitting."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from fieldfit.fields import ParamGroup


class Task(ABC):
    """A fitting target: owns its model, sampler, loss terms, evaluation and outputs.

    The trainer is task-agnostic: it calls :meth:`train_step` for the loss terms, steps the
    optimiser over :meth:`param_groups`, and calls :meth:`evaluate` and :meth:`write_outputs`.
    """

    name: ClassVar[str]
    model: nn.Module

    @abstractmethod
    def config_dict(self) -> dict[str, Any]:
        """JSON-able task config (saved in checkpoints; must match on resume)."""

    @abstractmethod
    def param_groups(self) -> list[ParamGroup]:
        """Trainable parameters grouped by learning-rate key."""

    @abstractmethod
    def train_step(self, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One batch: returns loss terms; ``"loss"`` is the total to minimise and ``"mse"``,
        where present, is shown as PSNR."""

    def before_step(self, step: int) -> None:  # noqa: B027  (optional hook)
        """Called before every training step (e.g. occupancy-grid updates)."""

    def lr_defaults(self) -> dict[str, float]:
        """Learning rates per lr key recommended by the field (used where the user sets none)."""
        return {}

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Held-out or full-target metrics."""

    @abstractmethod
    def write_outputs(self, out_dir: Path) -> list[Path]:
        """Write renders/meshes/metrics; returns the paths written."""
