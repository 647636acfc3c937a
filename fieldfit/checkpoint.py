"""Checkpoints: one safetensors file holding weights, optimiser state, RNG state and the
run's JSON config in its metadata. Written atomically and synced to disk; loading never
unpickles anything, checks the metadata's schema and a SHA-256 of the tensors' content, and
:func:`check_matches` checks every tensor against the model it is loaded into."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UserError

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.safetensors"
RNG_KEY = "rng/generator"


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


def content_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def checkpoint_bytes(ckpt: Checkpoint) -> bytes:
    """The safetensors file of ``ckpt``, in memory (write it with ``io.write_bytes``)."""
    from safetensors.torch import save

    tensors = {f"model/{k}": v.detach().cpu().contiguous().clone() for k, v in ckpt.model.items()}
    tensors.update({f"optim/{k}": v.cpu() for k, v in ckpt.optimizer.items()})
    if ckpt.rng is not None:
        tensors[RNG_KEY] = ckpt.rng.cpu()
    meta = {"format": FORMAT_VERSION, **ckpt.meta, "sha256": content_digest(tensors)}
    # serialised in memory and written by our own atomic write: safetensors' save_file makes
    # its own 0600 temporary file, which a kill leaves behind
    return save(tensors, metadata={"fieldfit": json.dumps(meta, allow_nan=False)})


def _check_meta(meta, path: Path) -> None:
    """UserError naming ``path`` unless ``meta`` has the fields and types a run writes."""
    if not isinstance(meta, dict):
        raise UserError(f"{path}: corrupt checkpoint metadata (a JSON {type(meta).__name__}, "
                        "not an object)")
    if meta.get("format") != FORMAT_VERSION:
        raise UserError(f"{path}: checkpoint format {meta.get('format')} not supported")
    expected = {"task": str, "task_config": dict, "trainer_config": dict, "step": int,
                "elapsed": (int, float), "optimizer_groups": list, "sha256": str}
    for key, kind in expected.items():
        if key not in meta:
            raise UserError(f"{path}: corrupt checkpoint metadata (no {key!r})")
        value = meta[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise UserError(f"{path}: corrupt checkpoint metadata ({key!r} is {value!r})")
    if meta["step"] < 0:
        raise UserError(f"{path}: corrupt checkpoint metadata (step {meta['step']} < 0)")
    if not (math.isfinite(meta["elapsed"]) and meta["elapsed"] >= 0):
        raise UserError(f"{path}: corrupt checkpoint metadata (elapsed {meta['elapsed']})")


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
    _check_meta(meta, path)
    if content_digest(tensors) != meta["sha256"]:
        raise UserError(f"{path}: checkpoint content does not match its checksum (the file "
                        "was altered or damaged)")
    parts: dict[str, dict[str, torch.Tensor]] = {"model": {}, "optim": {}, "rng": {}}
    for key, value in tensors.items():
        head, _, rest = key.partition("/")
        parts.setdefault(head, {})[rest] = value
    for head in ("model", "optim"):
        for name, value in parts[head].items():
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise UserError(f"{path}: tensor {head}/{name} holds non-finite values")
    return Checkpoint(meta=meta, model=parts["model"], optimizer=parts["optim"],
                      rng=parts["rng"].get("generator"))


def check_matches(ckpt: Checkpoint, path: Path, model: torch.nn.Module,
                  optimizer: torch.optim.Optimizer | None = None,
                  generator: torch.Generator | None = None) -> None:
    """UserError naming ``path`` unless every tensor of ``ckpt`` has the name, shape and dtype
    that ``model`` (and the Adam-style ``optimizer`` over its parameters, and ``generator``)
    expects."""
    expected = model.state_dict()
    if set(ckpt.model) != set(expected):
        odd = sorted(set(ckpt.model) ^ set(expected))
        raise UserError(f"{path}: checkpoint does not match this model (tensors {odd[:3]} "
                        "missing or unexpected)")
    for name, value in ckpt.model.items():
        want = expected[name]
        if value.shape != want.shape or value.dtype != want.dtype:
            raise UserError(f"{path}: tensor model/{name} is {value.dtype} "
                            f"{tuple(value.shape)}, the model expects {want.dtype} "
                            f"{tuple(want.shape)}")
    if optimizer is not None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for key, value in ckpt.optimizer.items():
            index, _, slot = key.partition("/")
            if not index.isdigit() or int(index) >= len(params):
                raise UserError(f"{path}: optimiser state {key!r} names no parameter")
            want = torch.Size([]) if slot == "step" else params[int(index)].shape
            if value.shape != want or not value.is_floating_point():
                raise UserError(f"{path}: optimiser state {key} is {value.dtype} "
                                f"{tuple(value.shape)}, expected a float {tuple(want)}")
    if generator is not None and ckpt.rng is not None:
        want = generator.get_state()
        if ckpt.rng.shape != want.shape or ckpt.rng.dtype != want.dtype:
            raise UserError(f"{path}: RNG state is {ckpt.rng.dtype} {tuple(ckpt.rng.shape)}, "
                            f"expected {want.dtype} {tuple(want.shape)}")
