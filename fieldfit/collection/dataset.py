"""A fitted collection on disk, written shard by shard, resumable, sharded over torchrun ranks.

Layout of ``DATASET``::

    recipe.json                 the FitRecipe (a rerun with another recipe is refused)
    shards/rR-SSSSSS.safetensors one per fitted batch: '{shape_id}/triplane' (3, C, R, R) and
                                '{shape_id}/decoder.{layer}.weight|bias'; R = rank, S = the
                                batch's first shape index
    parts/rR.jsonl              one line per finished (or failed) shape of rank R, appended
                                after its shard is renamed into place
    index.json                  merged by rank 0 when every rank is done: recipe, classes, one
                                entry per shape (path, class, split, status, reason, shard, fit
                                metrics, seconds)

Shape i of the sorted collection belongs to rank ``i % world_size``. A rerun (any world size)
skips every shape with a line in parts/, so a killed rank loses only its unfinished batch.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fieldfit.fields import from_dict, to_dict
from fieldfit.scenes.meshes import load_mesh
from fieldfit.scenes.shape_collection import CollectionShape, scan_collection

from .. import distributed
from ..errors import UserError
from ..io import atomic_write, prepare_out_dir, write_json
from .fit import FitRecipe, evaluate_shape, fit_batch, make_pool

log = logging.getLogger("fieldfit")

FORMAT_VERSION = 1
INDEX, RECIPE = "index.json", "recipe.json"


COLLECTION_TIMEOUT_S = 7 * 24 * 3600.0
"""ranks wait for the slowest at the final barrier: allow a long collection"""


def distributed_rank() -> tuple[int, int]:
    """(rank, world_size); joins torchrun's process group when launched by it, otherwise
    (0, 1). The group only synchronises ranks (barriers) and fitting runs on the CPU, so it is
    gloo on every machine."""
    distributed.join("gloo", COLLECTION_TIMEOUT_S)
    return distributed.rank(), distributed.world_size()


def shape_seed(shape_id: str, seed: int) -> int:
    """Per-shape seed: stable under adding or removing other shapes."""
    return zlib.crc32(shape_id.encode()) + (seed << 32)


def read_parts(out: Path) -> dict[str, dict]:
    """Entries of every finished or failed shape in ``out/parts``, by shape id (a torn last line
    of a killed rank is ignored)."""
    entries = {}
    for part in sorted((out / "parts").glob("r*.jsonl")):
        for line in part.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            entries[entry["shape_id"]] = entry
    return entries


def _check_recipe(out: Path, recipe: FitRecipe, rank: int) -> None:
    path = out / RECIPE
    wanted = to_dict(recipe)
    if rank == 0 and not path.exists():
        write_json(path, wanted)
    distributed.barrier()
    if json.loads(path.read_text()) != wanted:
        raise UserError(f"{out}: holds a collection fitted with another recipe ({path}); use a "
                        f"new --out or the same options")


@dataclass
class FitOptions:
    """How a collection is fitted (beyond the per-shape recipe)."""

    batch_shapes: int = 16
    """shapes fitted together in one batch (the paper: 128)"""
    seed: int = 0
    """seed of every per-shape initialisation and point draw"""
    eval_resolution: int = 64
    """marching-cubes cells per axis for the fit metrics (Chamfer, F-score)"""
    eval_points: int = 32_768
    """uniform box points for the fit IoU"""


def fit_collection(root: Path, out: Path, recipe: FitRecipe, options: FitOptions,
                   progress: bool = True) -> dict:
    """Fit this rank's unfinished shapes of the collection at ``root`` into ``out``; rank 0
    then writes index.json. Returns the index (on every rank, as written by rank 0)."""
    from tqdm import tqdm

    if options.batch_shapes < 1:
        raise UserError(f"--batch-shapes {options.batch_shapes}: must be >= 1")
    try:
        shapes = scan_collection(root)
    except ValueError as err:
        raise UserError(str(err)) from None
    rank, world = distributed_rank()
    if rank == 0:
        prepare_out_dir(out)
        for sub in ("shards", "parts"):
            (out / sub).mkdir(exist_ok=True)
    _check_recipe(out, recipe, rank)
    done = read_parts(out)
    mine = [(i, s) for i, s in enumerate(shapes) if i % world == rank]
    todo = [(i, s) for i, s in mine if s.shape_id not in done]
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), unit="shape", position=rank,
               desc=f"rank {rank}/{world}" if world > 1 else "fitting",
               disable=not progress, dynamic_ncols=True)
    start, n_new = time.perf_counter(), 0
    for first in range(0, len(todo), options.batch_shapes):
        batch = todo[first:first + options.batch_shapes]
        entries = _fit_and_write(batch, out, recipe, options, rank)
        _append_lines(out / "parts" / f"r{rank}.jsonl",
                      [json.dumps(e, sort_keys=True) for e in entries])
        n_new += len(batch)
        bar.update(len(batch))
        bar.set_postfix_str(f"{60 * n_new / (time.perf_counter() - start):.1f} shapes/min")
    bar.close()
    distributed.barrier()
    if rank == 0:
        write_json(out / INDEX, _merge(root, out, shapes, recipe))
    distributed.barrier()
    return json.loads((out / INDEX).read_text())


def _append_lines(path: Path, lines: list[str]) -> None:
    """Append lines and sync; a torn last line (a process killed mid-write) is ended first so
    it stays one unparsable line."""
    torn = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with open(path, "a") as part:
        part.write("\n" * torn + "".join(line + "\n" for line in lines))
        part.flush()
        os.fsync(part.fileno())


def _fit_and_write(batch: list[tuple[int, CollectionShape]], out: Path, recipe: FitRecipe,
                   options: FitOptions, rank: int) -> list[dict]:
    """Fit one batch, write its shard; one index entry per shape (failures with their reason)."""
    from safetensors.torch import save_file

    entries, meshes, pools, seeds = {}, [], [], []
    for index, shape in batch:
        entry = {"shape_id": shape.shape_id, "path": str(Path(shape.path).resolve()),
                 "label": shape.label, "split": shape.split, "index": index, "rank": rank}
        entries[shape.shape_id] = entry
        try:
            mesh = load_mesh(shape.path, margin=recipe.margin)
        except ValueError as err:  # SceneError: unreadable, empty, flat, ...
            entry.update(status="failed", error=" ".join(str(err).split()))
            log.warning("skipped %s", entry["error"])
            continue
        seed = shape_seed(shape.shape_id, options.seed)
        meshes.append((shape, mesh))
        pools.append(make_pool(mesh, recipe, seed % 2**32))
        seeds.append(seed)
    if not pools:
        return list(entries.values())
    start = time.perf_counter()
    model, losses = fit_batch(pools, recipe, seeds)
    fit_seconds = (time.perf_counter() - start) / len(pools)
    tensors = {}
    shard = f"r{rank}-{batch[0][0]:06d}.safetensors"
    for i, (shape, mesh) in enumerate(meshes):
        entry = entries[shape.shape_id]
        if not np.isfinite(losses[i]):
            entry.update(status="failed", error=f"{shape.path}: non-finite training loss")
            continue
        start = time.perf_counter()
        metrics = evaluate_shape(model, i, mesh, options.eval_resolution, options.eval_points,
                                 seed=options.seed)
        entry.update(status="ok", shard=shard, loss=float(losses[i]), **metrics,
                     fit_seconds=fit_seconds, eval_seconds=time.perf_counter() - start,
                     box_scale=mesh.transform.scale, box_centre=list(mesh.transform.centre))
        tensors.update({f"{shape.shape_id}/{k}": v.contiguous()
                        for k, v in model.shape_tensors(i).items()})
    if tensors:
        atomic_write(out / "shards" / shard, lambda p: save_file(tensors, str(p)))
    return list(entries.values())


def _merge(root: Path, out: Path, shapes: list[CollectionShape], recipe: FitRecipe) -> dict:
    done = read_parts(out)
    entries = [done[s.shape_id] for s in shapes if s.shape_id in done]
    ok = [e for e in entries if e["status"] == "ok"]
    missing = len(shapes) - len(entries)
    if missing:
        log.warning("%s: %d shapes are not fitted yet (a rank stopped early); rerun to complete",
                    out, missing)
    ious = [e["iou"] for e in ok if e.get("iou") is not None]
    chamfers = [e["chamfer_l1"] for e in ok if e.get("chamfer_l1") is not None]
    return {
        "format": FORMAT_VERSION, "root": str(Path(root).resolve()), "recipe": to_dict(recipe),
        "classes": sorted({s.label for s in shapes if s.label is not None}),
        "n_shapes": len(shapes), "n_ok": len(ok), "n_failed": len(entries) - len(ok),
        "n_missing": missing,
        "mean_iou": float(np.mean(ious)) if ious else None,
        "mean_chamfer_l1": float(np.mean(chamfers)) if chamfers else None,
        "shapes": entries,
    }


@dataclass
class FittedCollection:
    """The fitted shapes of a dataset, in index order."""

    entries: list[dict]
    """index entries of the fitted shapes (status ok)"""
    triplanes: torch.Tensor
    """(n, 3, C, R, R) float32"""
    recipe: FitRecipe
    classes: list[str]


def load_collection(dataset: Path) -> FittedCollection:
    """Read index.json and the shards; UserError naming the path when it is no dataset."""
    from safetensors import safe_open

    dataset = Path(dataset)
    path = dataset / INDEX
    if not path.exists():
        raise UserError(f"{dataset}: not a fitted collection (no {INDEX}; run `fieldfit "
                        f"collection fit` first)")
    index = json.loads(path.read_text())
    entries = [e for e in index["shapes"] if e["status"] == "ok"]
    if not entries:
        raise UserError(f"{path}: no fitted shapes")
    planes = {}
    for shard in sorted({e["shard"] for e in entries}):
        with safe_open(str(dataset / "shards" / shard), framework="pt") as f:
            for key in f.keys():
                if key.endswith("/triplane"):
                    planes[key[:-len("/triplane")]] = f.get_tensor(key)
    return FittedCollection(entries, torch.stack([planes[e["shape_id"]] for e in entries]),
                            from_dict(FitRecipe, index["recipe"], str(path)), index["classes"])
