"""One rank of the distributed tests (started by ``torchrun``): fits the runs described by a
JSON plan through :func:`fieldfit.run.run_task`, then saves this rank's model state.

``python -m torch.distributed.run --nproc-per-node 2 tests/distributed_worker.py PLAN.json``;
the plan is a list of ``{"task", "data", "config", "steps", "out", "resume"}`` (a constant
lr, no periodic checkpoints), and each rank writes ``OUT/state_rank{R}.safetensors``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from fieldfit.fields import from_dict
from fieldfit.scenes import ImageTarget, SceneOptions, load_image
from safetensors.torch import save_file

from fieldfit import distributed
from fieldfit.commands.image import build_image_task
from fieldfit.commands.nerf import build_nerf_task
from fieldfit.commands.sdf import build_sdf_task
from fieldfit.run import run_task
from fieldfit.tasks import TASKS, ImageTask
from fieldfit.trainer import TrainerConfig


def build(name: str, data: Path, config, train: TrainerConfig):
    """The task as its command builds it (same data source, so the CLI can resume it)."""
    if name == "image":
        target = ImageTarget(load_image(data))
        return build_image_task(target, config, train, ImageTask.source_of(target, data, "white"))
    if name == "sdf":
        return build_sdf_task(data, config, train)
    return build_nerf_task(data, SceneOptions(), config, train)


def main(plan_path: str) -> None:
    torch.set_num_threads(1)
    for run in json.loads(Path(plan_path).read_text()):
        # a constant lr: a run resumed with more steps follows the longer run's schedule
        train = TrainerConfig(steps=run["steps"], checkpoint_every=0, log_every=1,
                              schedule="constant")
        config = from_dict(TASKS[run["task"]].config_type, run["config"], "task")
        task = build(run["task"], Path(run["data"]), config, train)  # joins the process group
        run_task(task, train, Path(run["out"]), resume=run.get("resume", False),
                 progress=False)
        state = {k: v.detach().clone().contiguous() for k, v in task.model.state_dict().items()}
        save_file(state, str(Path(run["out"]) / f"state_rank{distributed.rank()}.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1])
