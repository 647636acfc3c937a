"""NeuRBF on radiance fields: kernels placed from the field learnt so far."""

from __future__ import annotations

import torch
from fieldfit.renderers import OccupancyConfig
from fieldfit.scenes import load_nerf_scene
from scipy.spatial import cKDTree

from fieldfit.checkpoint import load_checkpoint
from fieldfit.tasks import NerfTask, NerfTaskConfig, build_task, task_from_checkpoint
from fieldfit.trainer import Trainer, TrainerConfig


def kmeans_cost(points: torch.Tensor, weights: torch.Tensor, centres: torch.Tensor) -> float:
    """Weighted mean squared distance of (n, 3) points to their nearest of (k, 3) centres."""
    dist = cKDTree(centres.double().numpy()).query(points.double().numpy())[0]
    return float((weights.double() * torch.from_numpy(dist) ** 2).sum() / weights.sum())


def test_kernels_are_placed_from_the_occupied_cells(procedural_scene, tmp_path, monkeypatch):
    config = NerfTaskConfig(field="rbf", log2_table=10, samples_per_step=1024, video_frames=0,
                            eval_views=1, kernel_placement_step=12,
                            occupancy=OccupancyConfig(resolution=32, warmup_steps=4,
                                                      update_every=4))
    task = build_task(NerfTask, load_nerf_scene(procedural_scene), config, torch.device("cpu"),
                      seed=0)
    geometry, grid = task.model.field.geometry, task.model.grid
    (rbf,) = geometry.adaptive_modules()
    lattice = rbf.centres.detach().clone()
    seen = {}
    place = geometry.init_from_samples

    def spy(points, weights, **options):
        seen.update(points=points, weights=weights)
        return place(points, weights, **options)

    monkeypatch.setattr(geometry, "init_from_samples", spy)
    trainer = Trainer(task, TrainerConfig(steps=12, checkpoint_every=0), tmp_path,
                      progress=False)
    trainer.fit()
    assert not bool(task.model.kernels_placed) and not seen
    assert int(trainer.optimizer.state[rbf.weights]["step"]) == 12
    # step 12: kernels fitted to weighted points that fill the occupied cells
    task.before_step(12)
    assert bool(task.model.kernels_placed)
    points, weights = seen["points"], seen["weights"]
    assert bool(grid.occupied(points).all()) and len(points) >= 4 * rbf.config.n_kernels
    assert bool((weights >= 0).all()) and float(weights.max()) > 0
    unit = geometry.normalize(points)
    before = kmeans_cost(unit, weights, lattice)
    after = kmeans_cost(unit, weights, rbf.centres.detach())
    assert after < 0.5 * before, (before, after)
    # their features restart at zero, with fresh optimiser state
    assert torch.equal(rbf.weights, torch.zeros_like(rbf.weights))
    assert task.take_reset_parameters() == [rbf.weights, rbf.bias]
    assert task.take_reset_parameters() == []
    task._reset = [rbf.weights, rbf.bias]  # as before_step left it, for the trainer
    trainer.config.steps = 17
    trainer.fit()
    assert int(trainer.optimizer.state[rbf.weights]["step"]) == 5
    assert rbf.weights.abs().sum() > 0
    # placement is part of the checkpoint: a rebuilt task has the same kernels
    rebuilt = task_from_checkpoint(load_checkpoint(tmp_path), tmp_path)
    assert bool(rebuilt.model.kernels_placed)
    assert torch.equal(rebuilt.model.field.geometry.adaptive_modules()[0].centres, rbf.centres)
