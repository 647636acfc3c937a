"""The task registry and the two ways a task is made: fresh from data under the run's seed,
or rebuilt from a checkpoint. Adding a task = its module + one line in :data:`TASKS`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fieldfit.fields import FieldConfig, check_budget, field_names, from_dict

from ..checkpoint import Checkpoint, check_matches
from ..device import seeded
from ..errors import UserError
from .base import Task
from .image import ImageTask
from .nerf import NerfTask
from .neus import NeusTask
from .sdf import SdfTask
from .video import VideoTask

TASKS: dict[str, type[Task]] = {
    "image": ImageTask,
    "sdf": SdfTask,
    "nerf": NerfTask,
    "neus": NeusTask,
    "video": VideoTask,
}
"""task name (as stored in checkpoints) -> task class"""


def ray_task_class(geometry: str) -> type[Task]:
    """The radiance-field head for ``--geometry density|sdf``."""
    return next(cls for cls in TASKS.values() if getattr(cls, "geometry", None) == geometry)


def build_task(cls: type[Task], data: Any, config: Any, device: torch.device, seed: int,
               source: dict | None = None) -> Task:
    """A fresh task on ``device``: its model is built and initialised from the data with
    torch's RNG seeded from ``seed`` (identical weights for one seed on any device, other
    weights for another seed); the caller's RNG state is left as it was. An unknown field
    preset and ValueErrors of the config become UserErrors."""
    name = getattr(config, "field", None)
    if name is not None and name.lower() not in field_names():
        raise UserError(f"--field {name}: unknown field; choose from {field_names()}")
    try:
        with seeded(seed, device):
            task = cls(data, config, device=device, source=source)
            task.initialize()
        check_budget(getattr(config, "params", None), task.budgeted_parameters(), "--params")
    except UserError:
        raise
    except ValueError as err:
        raise UserError(str(err)) from None
    return task


def task_from_checkpoint(ckpt: Checkpoint, path: Path,
                         device: torch.device | str = "cpu") -> Task:
    """Rebuild the task of any checkpoint: its class from the registry, its config and data
    source from the metadata, its weights (and buffers such as occupancy grids) from the
    tensors. The data is read again only when the task first needs it."""
    name = ckpt.meta.get("task")
    if name not in TASKS:
        raise UserError(f"{path}: checkpoint of task {name!r}; fieldfit knows {sorted(TASKS)}")
    cls = TASKS[name]
    saved = ckpt.meta.get("task_config") or {}
    try:
        config = from_dict(cls.config_type, saved["task"], "task")
        field_config = from_dict(FieldConfig, saved["field"], "field")
        task = cls(None, config, device=device, source=saved["data"], field_config=field_config)
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path}: checkpoint config not understood ({err})") from None
    check_matches(ckpt, path, task.model)
    try:
        task.model.load_state_dict(ckpt.model)
    except RuntimeError as err:
        reason = str(err).splitlines()[0]
        raise UserError(f"{path}: checkpoint does not match its model ({reason})") from None
    task.model.eval()
    return task
