"""Batched tri-plane fitting: one tri-plane and one SIREN decoder per shape, many shapes per
optimiser step (the tri-plane paper's recipe, Cardace et al., ICLR 2024).

Per-shape parameters are stacked along a leading shape axis (planes (n_shapes, 3, C, R, R),
decoder weights (n_shapes, out, in)) and evaluated with one ``grid_sample`` and one ``bmm`` per
layer. The loss is the sum over shapes of each shape's mean, and Adam is elementwise, so every
shape follows the same trajectory as when it is fitted alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from fieldfit.fields import FieldConfig, PresetContext, field_preset
from fieldfit.fields.frequency import FrequencyConfig
from fieldfit.fields.mlp import MLPConfig
from fieldfit.fields.triplane import TriPlaneConfig
from fieldfit.scenes.meshes import SdfMesh, sample_sdf

TARGETS = ("sdf", "udf", "occupancy")
CLIP = 0.1
ALL = slice(None)
"""SDF/UDF labels are clipped to +-CLIP box units (the paper's 0.1)"""


def _paper_field() -> FieldConfig:
    """The tri-plane paper's per-shape field, shared with `fieldfit sdf --field triplane-recipe`."""
    return field_preset("triplane-recipe", PresetContext("sdf", 3))


@dataclass
class FitRecipe:
    """How one shape's field is fitted; identical for every shape of a dataset."""

    planes: TriPlaneConfig = field(default_factory=lambda: _paper_field().encoding.parts[0])
    """per-shape tri-plane (one level, summed planes; the 'triplane-recipe' field preset)"""
    encoding: FrequencyConfig = field(default_factory=lambda: _paper_field().encoding.parts[1])
    """positional encoding concatenated to the plane features (the preset's)"""
    decoder: MLPConfig = field(default_factory=lambda: _paper_field().decoder)
    """per-shape decoder (SIREN 3 x 64, sin(30 x); the preset's)"""
    target: str = "sdf"
    """sdf: BCE on (clip(sdf) + 0.1) / 0.2; udf: BCE on 1 - clip(udf) / 0.1; occupancy: BCE on
    inside (1) / outside (0)"""
    steps: int = 1000
    """Adam steps"""
    points_per_step: int = 50_000
    """query points per shape per step, drawn from the shape's pool"""
    pool_points: int = 600_000
    """points sampled once per shape (surface, Gaussian around it, uniform; scenes.meshes mix)"""
    lr: float = 1e-4
    """Adam learning rate of the decoders"""
    plane_lr: float = 1e-4
    """Adam learning rate of the tri-planes"""
    margin: float = 0.1
    """meshes are scaled so their longest side spans 2 * (1 - margin) of the box [-1, 1]^3"""

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"--target {self.target!r}: choose from {TARGETS}")
        if self.planes.n_levels != 1 or self.planes.aggregation != "sum":
            raise ValueError("collection fitting needs a one-level tri-plane with sum aggregation")
        if min(self.steps, self.points_per_step, self.pool_points) < 1:
            raise ValueError("--steps, --points-per-step and --pool-points must be >= 1")
        if self.points_per_step > self.pool_points:
            raise ValueError(f"--points-per-step {self.points_per_step} exceeds --pool-points "
                             f"{self.pool_points}")


RECIPES = {
    "paper": FitRecipe(),
    # CPU scale: 400 steps of 2048 points, learning rates 3x (decoders) and 100x (planes)
    # (a decoder lr of 1e-3 lets some fits collapse to a constant)
    "fast": FitRecipe(steps=400, points_per_step=2048, pool_points=100_000, lr=3e-4,
                      plane_lr=1e-2),
}
"""named recipes: the paper's and a CPU-scale one (see the README for their fit quality)"""


def labels_from_sdf(sdf: torch.Tensor, target: str) -> torch.Tensor:
    """(n,) box-unit signed distances -> (n,) BCE labels in [0, 1] for ``target``."""
    if target == "sdf":
        return (sdf.clamp(-CLIP, CLIP) + CLIP) / (2 * CLIP)
    if target == "udf":
        return 1.0 - sdf.abs().clamp(max=CLIP) / CLIP
    return (sdf < 0).float()


def signed_from_logits(logits: torch.Tensor, target: str) -> torch.Tensor:
    """Decoder logits -> a field that is negative inside (sdf, occupancy) or below a 0.01 shell
    around the surface (udf), for marching cubes at level 0."""
    if target == "sdf":
        return torch.sigmoid(logits) * (2 * CLIP) - CLIP
    if target == "udf":
        return (1.0 - torch.sigmoid(logits)) * CLIP - 0.01
    return -logits


@dataclass
class ShapePool:
    """One shape's training points and their labels."""

    points: torch.Tensor
    """(pool_points, 3) float32 in [0, 1]^3 (the box mapped to the unit cube)"""
    labels: torch.Tensor
    """(pool_points,) float32"""


def make_pool(mesh: SdfMesh, recipe: FitRecipe, seed: int) -> ShapePool:
    samples = sample_sdf(mesh, recipe.pool_points, seed)
    return ShapePool((samples.points + 1.0) / 2.0, labels_from_sdf(samples.sdf, recipe.target))


class BatchedTriPlaneFields(torch.nn.Module):
    """``n_shapes`` tri-plane fields: (n_shapes, n, 3) points in [0, 1]^3 -> (n_shapes, n)
    logits. Shape i is ``decoder_i(cat(sum of its planes' features, PE(x)))``, the same function
    as ``TriPlane`` -> ``FrequencyEncoding`` -> ``MLP`` built from the recipe (tested)."""

    PAIRS = ((0, 1), (0, 2), (1, 2))

    def __init__(self, recipe: FitRecipe, generators: list[torch.Generator]):
        """One shape per generator, each initialised from its own generator: planes
        N(init_mean, init_std^2), SIREN weights (fields.mlp.siren_init), nn.Linear's biases."""
        super().__init__()
        self.recipe = recipe
        p = recipe.planes
        self.encoding = recipe.encoding.build(3)
        widths = [p.n_features + self.encoding.n_output_dims,
                  *[recipe.decoder.width] * recipe.decoder.n_hidden, 1]
        planes, weights, biases = [], [[] for _ in widths[1:]], [[] for _ in widths[1:]]
        for g in generators:
            planes.append(torch.randn(3, p.n_features, p.resolution, p.resolution, generator=g)
                          * p.init_std + p.init_mean)
            for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
                bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / recipe.decoder.omega
                weights[i].append((torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * bound)
                biases[i].append((torch.rand(fan_out, generator=g) * 2 - 1) / math.sqrt(fan_in))
        self.planes = torch.nn.Parameter(torch.stack(planes))
        self.weights = torch.nn.ParameterList([torch.stack(w) for w in weights])
        self.biases = torch.nn.ParameterList([torch.stack(b) for b in biases])

    @property
    def n_shapes(self) -> int:
        return self.planes.shape[0]

    def features(self, x: torch.Tensor, shapes: slice = ALL) -> torch.Tensor:
        """(b, n, 3) -> (b, n, C): bilinear samples summed over the planes of ``shapes``."""
        b, n, _ = x.shape
        p = self.recipe.planes
        uv = torch.stack([x[..., list(pair)] for pair in self.PAIRS], 1) * 2.0 - 1.0
        out = F.grid_sample(self.planes[shapes].flatten(0, 1), uv.reshape(b * 3, 1, n, 2),
                            mode="bilinear", padding_mode=p.padding,
                            align_corners=p.align_corners)  # (b * 3, C, 1, n)
        return out.view(b, 3, p.n_features, n).sum(1).transpose(1, 2)

    def forward(self, x: torch.Tensor, shapes: slice = ALL) -> torch.Tensor:
        """(b, n, 3) points of the ``shapes`` (b of them; all by default) -> (b, n) logits."""
        b, n, _ = x.shape
        h = torch.cat([self.features(x, shapes), self.encoding(x.reshape(b * n, 3)).view(b, n, -1)],
                      -1)
        omega = self.recipe.decoder.omega
        last = len(self.weights) - 1
        for i, (w, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(bias[shapes].unsqueeze(1), h, w[shapes].transpose(1, 2))
            if i < last:
                h = torch.sin(omega * h)
        return h.squeeze(-1)

    def shape_tensors(self, i: int) -> dict[str, torch.Tensor]:
        """Shape i's parameters: 'triplane' (3, C, R, R) and 'decoder.{layer}.weight/bias'."""
        out = {"triplane": self.planes[i].detach()}
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            out[f"decoder.{layer}.weight"] = w[i].detach()
            out[f"decoder.{layer}.bias"] = b[i].detach()
        return out


def fit_batch(pools: list[ShapePool], recipe: FitRecipe, seeds: list[int],
              progress=None) -> tuple[BatchedTriPlaneFields, np.ndarray]:
    """Fit one field per pool in one batch; shape i's init and point draws come from
    ``seeds[i]`` alone. Returns the fields and the (n_shapes,) final training losses.
    ``progress(step)`` is called after each step."""
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    model = BatchedTriPlaneFields(recipe, gens)
    optimizer = torch.optim.Adam([
        {"params": [model.planes], "lr": recipe.plane_lr},
        {"params": [*model.weights, *model.biases], "lr": recipe.lr},
    ])
    n = recipe.points_per_step
    losses = torch.zeros(len(pools))
    for step in range(recipe.steps):
        index = [torch.randint(len(p.points), (n,), generator=g) for p, g in
                 zip(pools, gens, strict=True)]
        x = torch.stack([p.points[i] for p, i in zip(pools, index, strict=True)])
        y = torch.stack([p.labels[i] for p, i in zip(pools, index, strict=True)])
        per_shape = F.binary_cross_entropy_with_logits(model(x), y, reduction="none").mean(1)
        optimizer.zero_grad(set_to_none=True)
        per_shape.sum().backward()
        optimizer.step()
        losses = per_shape.detach()
        if progress is not None:
            progress(step)
    return model, losses.numpy()


@torch.no_grad()
def evaluate_shape(model: BatchedTriPlaneFields, i: int, mesh: SdfMesh, resolution: int = 64,
                   n_points: int = 32_768, n_surface: int = 10_000,
                   seed: int = 0) -> dict[str, float | None]:
    """Fit quality of shape ``i`` against its mesh, in box units: occupancy IoU at ``n_points``
    uniform box points (sdf and occupancy targets; None for udf), and Chamfer-L1 / F-score (at
    0.01) / normal angle error of the marching-cubes surface at ``resolution`` cells per axis
    (for udf: the 0.01 shell)."""
    from fieldfit.renderers.mesh import extract_mesh
    from fieldfit.scenes.meshes import BOX

    from ..mesh_metrics import occupancy_iou, surface_metrics

    target = model.recipe.target

    def signed(x: torch.Tensor) -> torch.Tensor:  # (n, 3) box points -> (n,)
        logits = _one_shape(model, i, (x + BOX) / (2 * BOX))
        return signed_from_logits(logits, target)

    iou = None
    if target != "udf":
        points = np.random.default_rng(seed).uniform(-BOX, BOX, (n_points, 3))
        inside = signed(torch.from_numpy(points).float()).numpy() < 0
        iou = occupancy_iou(inside, mesh.contains(points))
    bounds = torch.tensor([[-BOX] * 3, [BOX] * 3])
    vertices, faces = extract_mesh(signed, resolution, bounds)
    surface = surface_metrics(vertices, faces, mesh.vertices, mesh.faces, n_surface, 0.01, seed)
    return {"iou": iou, "chamfer_l1": surface["chamfer_l1"], "fscore": surface["fscore"],
            "nae_deg": surface["nae_deg"]}


def _one_shape(model: BatchedTriPlaneFields, i: int, x: torch.Tensor,
               chunk: int = 2**16) -> torch.Tensor:
    """Shape i's logits (n,) at (n, 3) unit-cube points, in chunks."""
    return torch.cat([model(c.unsqueeze(0), slice(i, i + 1))[0] for c in x.split(chunk)])
