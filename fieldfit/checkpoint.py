"""Checkpoints: one safetensors file holding weights, optimiser state, RNG state and the
run's JSON config in its metadata. Written atomically; loading never unpickles anything."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UserError
from .io import atomic_write

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.safetensors"


@dataclass
class Checkpoint:
    """Everything needed to resume a run or to rebuild its field."""

    meta: dict
    """JSON-able: format, task, task_config, trainer_config, step, elapsed, optimizer groups"""
    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]
    rng: torch.Tensor | None = None


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, list]:
    """Split an optimiser state dict into flat tensors and JSON-able group settings."""
    state = optimizer.state_dict()
    tensors = {}
    for index, slots in state["state"].items():
        for slot, value in slots.items():
            value = value if torch.is_tensor(value) else torch.tensor(value, device="cpu")
            tensors[f"{index}/{slot}"] = value.detach().clone().contiguous()
    return tensors, state["param_groups"]


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], groups: list) -> dict:
    """Inverse of :func:`optimizer_to_tensors`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        index, slot = key.split("/", 1)
        state.setdefault(int(index), {})[slot] = value
    return {"state": state, "param_groups": groups}


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    from safetensors.torch import save_file

    tensors = {f"model/{k}": v.detach().cpu().contiguous().clone() for k, v in ckpt.model.items()}
    tensors.update({f"optim/{k}": v.cpu() for k, v in ckpt.optimizer.items()})
    if ckpt.rng is not None:
        tensors["rng/generator"] = ckpt.rng.cpu()
    meta = {"fieldfit": json.dumps({"format": FORMAT_VERSION, **ckpt.meta})}
    atomic_write(Path(path), lambda p: save_file(tensors, str(p), metadata=meta))


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint; UserError naming the file if it is missing, corrupt or foreign."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise UserError(f"{path}: no such checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get("fieldfit")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise UserError(f"{path}: not a readable checkpoint ({err})") from None
    if raw_meta is None:
        raise UserError(f"{path}: not a fieldfit checkpoint (no fieldfit metadata)")
    try:
        meta = json.loads(raw_meta)
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: corrupt checkpoint metadata ({err})") from None
    if meta.get("format") != FORMAT_VERSION:
        raise UserError(f"{path}: checkpoint format {meta.get('format')} not supported")
    parts: dict[str, dict[str, torch.Tensor]] = {"model": {}, "optim": {}, "rng": {}}
    for key, value in tensors.items():
        head, _, rest = key.partition("/")
        parts.setdefault(head, {})[rest] = value
    return Checkpoint(meta=meta, model=parts["model"], optimizer=parts["optim"],
                      rng=parts["rng"].get("generator"))
