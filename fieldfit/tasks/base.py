"""The task interface: what the trainer and the commands need from a fitting target."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from fieldfit.fields import FieldConfig, ParamGroup, to_dict


@dataclass
class BudgetOptions:
    """The one parameter-budget option of every task."""

    params: int | None = None
    """parameter count (trainable and frozen, e.g. NeuRBF's centres) to size the field
    preset to, within 1%; unset: the preset's own size"""

    def __post_init__(self) -> None:
        if self.params is not None and self.params < 1:
            raise ValueError(f"--params {self.params}: must be >= 1")


class Task(ABC):
    """A fitting target: owns its model, sampler, loss terms, evaluation and outputs.

    A task is built from its config, its data (or, when rebuilt from a checkpoint, only the
    JSON ``source`` that describes the data: the data is then read on first use), a device and
    an optional field config. Subclasses set ``name`` and ``config_type``, and implement
    :meth:`load_data` (read the data that ``source`` describes) and :meth:`describe` (the
    ``source`` of loaded data); :func:`fieldfit.tasks.build_task` and
    :func:`fieldfit.tasks.task_from_checkpoint` are the only ways they are constructed.

    The trainer is task-agnostic: it calls :meth:`train_step` for the loss terms, steps the
    optimiser over :meth:`param_groups`, and calls :meth:`evaluate` and :meth:`write_outputs`.
    """

    name: ClassVar[str]
    config_type: ClassVar[type]
    sharded_evaluation: ClassVar[bool] = False
    """under torchrun, :meth:`evaluate` is called on every rank and splits its work across
    them (else rank 0 evaluates alone)"""
    model: nn.Module
    field_config: FieldConfig

    def __init__(self, data: Any, config: Any, device: torch.device | str | None = None,
                 source: dict | None = None):
        if data is None and source is None:
            raise ValueError(f"task {self.name}: needs its data or the source of its data")
        self.config = config
        self.device = torch.device(device or "cpu")
        self._data = data
        self.source = source if source is not None else self.describe(data)

    # -- data ----------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def load_data(cls, source: dict, config: Any) -> Any:
        """Read the data described by ``source`` (the output of :meth:`describe`)."""

    @abstractmethod
    def describe(self, data: Any) -> dict:
        """JSON-able description of ``data``: where to read it again, and what the model
        depends on (shapes, boxes, transforms), so a checkpoint rebuilds without reading it."""

    def build_on_cpu(self, build: Callable[[], nn.Module]) -> nn.Module:
        """``build()`` on the CPU (one seed gives the same weights on any device), then moved
        to the task's device."""
        with torch.device("cpu"):
            model = build()
        return model.to(self.device)

    @property
    def data(self) -> Any:
        """The task's data, read from :attr:`source` on first use when rebuilt."""
        if self._data is None:
            self._data = self.load_data(self.source, self.config)
        return self._data

    # -- training --------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """JSON-able task config (saved in checkpoints; must match on resume)."""
        return {"task": to_dict(self.config), "field": to_dict(self.field_config),
                "data": self.source}

    def budgeted_parameters(self) -> int:
        """Parameters that ``--params`` sizes (trainable and frozen)."""
        return self.model.n_parameters(trainable_only=False)

    def initialize(self) -> None:  # noqa: B027  (optional hook)
        """Data-driven initialisation of a fresh model (e.g. NeuRBF kernel placement); runs
        under the run's seeded RNG, never for a model rebuilt from a checkpoint."""

    def param_groups(self) -> list[ParamGroup]:
        """Trainable parameters grouped by learning-rate key."""
        return self.model.param_groups()

    def lr_defaults(self) -> dict[str, float]:
        """Learning rates per lr key recommended by the field (used where the user sets none)."""
        return dict(self.field_config.lr)

    @abstractmethod
    def train_step(self, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One batch: returns loss terms; ``"loss"`` is the total to minimise and ``"mse"``,
        where present, is shown as PSNR. A ``"loss"`` that does not require grad (nothing in
        the batch reached a parameter) skips the optimiser step."""

    def before_step(self, step: int) -> None:  # noqa: B027  (optional hook)
        """Called before every training step (e.g. occupancy-grid updates)."""

    def take_reset_parameters(self) -> list[nn.Parameter]:
        """Parameters that :meth:`before_step` re-initialised (their optimiser state is
        dropped by the trainer); each is returned once."""
        return []

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Held-out or full-target metrics."""

    @abstractmethod
    def write_outputs(self, out_dir: Path) -> list[Path]:
        """Write renders/meshes/metrics; returns the paths written."""
