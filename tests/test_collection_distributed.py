"""`torchrun --nproc-per-node 2 ... fieldfit collection fit`: each rank fits its share (gloo),
rank 0 merges the index, and the fields equal a single-process fit of the same shapes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import torch
from fieldfit.scenes.shape_collection import write_shape_collection

from fieldfit.collection.dataset import FitOptions, fit_collection, load_collection
from fieldfit.collection.fit import RECIPES


def test_two_ranks_shard_the_collection_and_match_one_process(tmp_path):
    root = write_shape_collection(tmp_path / "root", n_train=2, n_test=1,
                                  classes=["box", "torus"])
    out = tmp_path / "ds2"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "fieldfit.cli", "collection", "fit", str(root),
               "--out", str(out), "--steps", "6", "--pool-points", "5000", "--batch-shapes", "2",
               "--eval-resolution", "16", "--eval-points", "1000", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    index = json.loads((out / "index.json").read_text())
    assert index["n_ok"] == index["n_shapes"] == 6
    assert {e["rank"] for e in index["shapes"]} == {0, 1}
    assert all(e["rank"] == e["index"] % 2 for e in index["shapes"])
    assert sorted(p.name for p in (out / "parts").iterdir()) == ["r0.jsonl", "r1.jsonl"]

    single = tmp_path / "ds1"
    fit_collection(root, single, dataclasses.replace(RECIPES["fast"], steps=6, pool_points=5000),
                   FitOptions(batch_shapes=3, eval_resolution=16, eval_points=1000),
                   progress=False)
    two, one = load_collection(out), load_collection(single)
    assert [e["shape_id"] for e in two.entries] == [e["shape_id"] for e in one.entries]
    torch.testing.assert_close(two.triplanes, one.triplanes, atol=1e-5, rtol=1e-4)
