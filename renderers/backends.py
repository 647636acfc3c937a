"""Renderer backends behind one switch: marching, weights and compositing (forward and backward).

A backend is a :class:`Renderer`; every ray batch goes through the one :func:`get_renderer`
picked for its device. Backends load lazily (import, or compile for ``cpp``) on first use;
``auto`` picks the best one available per device type, once, and logs its choice, as the
hash-grid kernels' registry does (:mod:`fieldfit.fields.kernels`):

- ``torch``: the PyTorch reference (:mod:`.marching`, :mod:`.volume`), any device;
- ``cpp``: fused C++/OpenMP kernels for the CPU (``render_cpu.cpp``): the occupancy-grid
  march, the front-to-back rounds, and compositing with its backward as one autograd function;
- ``nerfacc``: nerfacc's CUDA kernels; samples are chosen by a density pass first
  (:attr:`Renderer.density_pass`), as nerfacc does.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import torch
from fieldfit.fields.kernels import BackendRegistry

from .marching import (
    BLOCKS,
    DensityFn,
    filter_visible,
    front_to_back,
    march_rays,
    occupied_blocks,
    occupied_box,
    ray_aabb_intersect,
)
from .nerfacc_backend import (
    make_estimator,
    nerfacc_sample,
    nerfacc_weights_from_alpha,
    nerfacc_weights_from_density,
)
from .packed import RaySamples, segment_counts
from .volume import (
    RenderOutput,
    SampleFn,
    composite,
    visible_samples,
    weights_from_alpha,
    weights_from_density,
)

log = logging.getLogger("fieldfit")

CPP_SOURCE = Path(__file__).with_name("render_cpu.cpp")


class Renderer:
    """The PyTorch reference; other backends override what their kernels do faster."""

    name = "torch"
    density_pass = False
    """samples are chosen with a density-only pass before rendering (else front to back)"""

    @staticmethod
    def first_round() -> int:
        """Samples per ray in the first front-to-back round (:func:`.marching.front_to_back`).

        64 while training: every round that autograd records costs the backward a dense
        gradient of each hash table it read (a fresh allocation of the whole table), so fewer,
        larger rounds pay although they evaluate more samples behind surfaces; 16 without
        gradients, where each extra sample is pure cost (measured on lego_200, 2 CPU threads:
        +10% composited samples/s in training, -20% render time)."""
        return 64 if torch.is_grad_enabled() else 16

    def march(self, origins: torch.Tensor, directions: torch.Tensor, aabb: torch.Tensor,
              binaries: torch.Tensor | None, near_planes: torch.Tensor,
              far_planes: torch.Tensor, step_size: float,
              box: torch.Tensor | None = None,
              blocks: list[torch.Tensor] | None = None) -> RaySamples:
        """:func:`.marching.march_rays`; ``box`` and ``blocks`` are the
        :func:`.marching.occupied_box` and :func:`.marching.occupied_blocks` of ``binaries``
        where the caller keeps them (None: computed here, if used)."""
        return march_rays(origins, directions, aabb, binaries, near_planes, far_planes,
                          step_size, box)

    def sample(self, grid, origins: torch.Tensor, directions: torch.Tensor, step_size: float,
               near_planes: torch.Tensor, far_planes: torch.Tensor,
               sigma_fn: DensityFn | None, alpha_fn: DensityFn | None,
               early_stop_eps: float, alpha_thre: float, skip_empty: bool = True) -> RaySamples:
        """Samples through the occupied cells of ``grid`` (an :class:`.OccupancyGrid`; the
        whole box unless ``skip_empty``), then, given a closure, only the visible ones
        (:func:`.marching.filter_visible`)."""
        binaries, box, blocks = ((grid.binaries[0], grid.occupied_box(), grid.occupied_blocks())
                                 if skip_empty else (None, None, None))
        samples = self.march(origins, directions, grid.aabb, binaries, near_planes, far_planes,
                             step_size, box, blocks)
        if sigma_fn is None and alpha_fn is None:
            return samples
        return filter_visible(samples, origins.shape[0], sigma_fn, alpha_fn, early_stop_eps,
                              alpha_thre)

    def weights_from_density(self, samples: RaySamples, sigmas: torch.Tensor, n_rays: int):
        """:func:`.volume.weights_from_density`."""
        return weights_from_density(samples, sigmas, n_rays)

    def weights_from_alpha(self, alphas: torch.Tensor, ray_indices: torch.Tensor, n_rays: int):
        """:func:`.volume.weights_from_alpha`."""
        return weights_from_alpha(alphas, ray_indices, n_rays)

    def render_front_to_back(self, samples: RaySamples, n_rays: int, rgb_alpha_fn: SampleFn,
                             background: torch.Tensor | None, early_stop_eps: float,
                             alpha_thre: float) -> RenderOutput:
        """Evaluate ``rgb_alpha_fn`` once per sample, front to back
        (:func:`.marching.front_to_back`), and composite the visible samples
        (:func:`.volume.visible_samples`); ``n_queries`` counts the others."""
        results = []

        def alpha_of(chosen: torch.Tensor) -> torch.Tensor:
            sub = samples.select(chosen)
            results.append(rgb_alpha_fn(sub.t_starts, sub.t_ends, sub.ray_indices))
            return results[-1][1].detach()

        visited, trans, order = front_to_back(samples, n_rays, alpha_of, early_stop_eps,
                                              self.first_round())
        if not results:  # no sample at all: every ray shows the background
            empty = samples.t_starts.new_zeros(0)
            return composite(samples, empty, empty.reshape(0, 1).expand(0, 3), n_rays,
                             background)
        rgbs = torch.cat([r for r, _ in results])[order]
        alphas = torch.cat([a for _, a in results])[order]
        keep = visible_samples(trans, alphas.detach(), early_stop_eps, alpha_thre)
        kept = samples.select(visited[keep])
        weights = self.weights_from_alpha(alphas[keep], kept.ray_indices, n_rays)[0]
        out = composite(kept, weights, rgbs[keep], n_rays, background)
        out.n_queries = len(visited) - len(kept)
        return out


class CppRenderer(Renderer):
    """The fused CPU kernels of ``render_cpu.cpp`` (same samples, values and gradients as the
    reference)."""

    name = "cpp"

    def __init__(self) -> None:
        from fieldfit.fields.kernels.cpp import load_library

        load_library(CPP_SOURCE, "C++ renderer kernels")
        self.ops = torch.ops.fieldfit_render

    def march(self, origins, directions, aabb, binaries, near_planes, far_planes, step_size,
              box=None, blocks=None):
        if binaries is None or origins.dtype != torch.float32:
            return super().march(origins, directions, aabb, binaries, near_planes, far_planes,
                                 step_size, box)
        # per ray, as the reference: the lattice range inside the occupied box
        box = occupied_box(binaries, aabb) if box is None else box
        blocks = occupied_blocks(binaries) if blocks is None else blocks
        t_min, t_max, hits = ray_aabb_intersect(origins, directions, box)
        t_lo, t_hi = torch.maximum(t_min, near_planes), torch.minimum(t_max, far_planes)
        k_first = torch.ceil((t_lo - near_planes) / step_size - 0.5)
        k_end = torch.ceil((t_hi - near_planes) / step_size - 0.5)
        counts = torch.where(hits & (t_hi > t_lo), (k_end - k_first).clamp(min=0), 0).long()
        ray_indices, t_starts, t_ends = self.ops.march(
            origins.contiguous(), directions.contiguous(), near_planes.contiguous(),
            k_first.contiguous(), counts, step_size, aabb.float().contiguous(),
            binaries.reshape(-1).contiguous(), binaries.shape[0], blocks, list(BLOCKS))
        return RaySamples(ray_indices, t_starts, t_ends)

    def render_front_to_back(self, samples, n_rays, rgb_alpha_fn, background, early_stop_eps,
                             alpha_thre):
        starts, counts = segment_counts(samples.ray_indices, n_rays)
        cpu = samples.t_starts.device  # the C++ kernels' tensors: on the samples' (CPU) device
        trans = torch.ones(n_rays, dtype=torch.float64, device=cpu)
        alive = counts > 0
        rows = torch.full((len(samples),), -1, dtype=torch.int64, device=cpu)  # visited rows
        rgbs, alphas = [], []
        visited, lo, size = 0, 0, self.first_round()
        while bool(alive.any()):
            chosen, offsets = self.ops.round_select(starts, counts, alive, lo, lo + size)
            sub = samples.select(chosen)
            rgb, alpha = rgb_alpha_fn(sub.t_starts, sub.t_ends, sub.ray_indices)
            rows[chosen] = torch.arange(visited, visited + len(chosen), device=cpu)
            self.ops.round_advance(trans, alive, offsets, alpha.detach().float().contiguous(),
                                   counts, lo + size, early_stop_eps)
            rgbs.append(rgb)
            alphas.append(alpha)
            visited, lo, size = visited + len(chosen), lo + size, 2 * size
        dtype = samples.t_starts.dtype
        rgb, opacity, depth, kept = _Composite.apply(
            torch.cat(alphas) if alphas else samples.t_starts.new_zeros(0),
            torch.cat(rgbs).to(dtype) if rgbs else samples.t_starts.new_zeros(0, 3),
            samples.t_mids.contiguous(), starts, counts, rows, float(early_stop_eps),
            float(alpha_thre))
        if background is not None:
            rgb = rgb + (1.0 - opacity) * background
        n_kept = int(kept.sum())
        return RenderOutput(rgb, opacity, depth, n_kept, visited - n_kept)


class _Composite(torch.autograd.Function):
    """``composite_forward`` / ``composite_backward`` of ``render_cpu.cpp``: (m,) alphas and
    (m, 3) colours of the visited samples (``rows`` (n_samples,) maps each packed sample to
    its row, -1 where not visited) -> per-ray colour, opacity, depth and kept counts."""

    @staticmethod
    def forward(ctx, alphas, rgbs, t_mids, starts, counts, rows, eps, thre):
        alphas, rgbs = alphas.contiguous(), rgbs.contiguous()
        ops = torch.ops.fieldfit_render
        rgb, opacity, depth, kept = ops.composite_forward(alphas, rgbs, t_mids, starts, counts,
                                                          rows, eps, thre)
        ctx.save_for_backward(alphas, rgbs, t_mids, starts, counts, rows)
        ctx.eps, ctx.thre = eps, thre
        ctx.mark_non_differentiable(kept)
        return rgb, opacity, depth, kept

    @staticmethod
    def backward(ctx, grad_rgb, grad_opacity, grad_depth, _):
        alphas, rgbs, t_mids, starts, counts, rows = ctx.saved_tensors
        n = starts.shape[0]

        def dense(g, c):
            return (alphas.new_zeros(n, c) if g is None else g).contiguous()

        grad_a, grad_c = torch.ops.fieldfit_render.composite_backward(
            dense(grad_rgb, 3), dense(grad_opacity, 1), dense(grad_depth, 1), alphas, rgbs,
            t_mids, starts, counts, rows, ctx.eps, ctx.thre)
        return grad_a, grad_c, None, None, None, None, None, None


class NerfaccRenderer(Renderer):
    """nerfacc's CUDA kernels: its estimator marches and filters, its scans weigh."""

    name = "nerfacc"
    density_pass = True

    def __init__(self) -> None:
        try:
            self.nerfacc = importlib.import_module("nerfacc")
        except ImportError:
            raise ImportError("renderer backend 'nerfacc' needs the nerfacc package: "
                              "pip install 'fieldfit[cuda]'") from None

    def sample(self, grid, origins, directions, step_size, near_planes, far_planes, sigma_fn,
               alpha_fn, early_stop_eps, alpha_thre, skip_empty=True):
        if not skip_empty:
            return super().sample(grid, origins, directions, step_size, near_planes, far_planes,
                                  sigma_fn, alpha_fn, early_stop_eps, alpha_thre, False)
        if "_estimator" not in grid.__dict__:  # cached outside the module's state dict
            grid.__dict__["_estimator"] = make_estimator(self.nerfacc, grid.aabb,
                                                         grid.resolution)
        return nerfacc_sample(grid.__dict__["_estimator"], origins, directions, grid.binaries,
                              grid.occs, step_size, near_planes, far_planes, sigma_fn,
                              alpha_fn, early_stop_eps, alpha_thre)

    def weights_from_density(self, samples, sigmas, n_rays):
        return nerfacc_weights_from_density(self.nerfacc, samples, sigmas, n_rays)

    def weights_from_alpha(self, alphas, ray_indices, n_rays):
        return nerfacc_weights_from_alpha(self.nerfacc, alphas, ray_indices, n_rays)


RENDERERS = BackendRegistry("renderer backend", {"cuda": ("nerfacc", "torch"),
                                                 "cpu": ("cpp", "torch")})
RENDERERS.register("torch", Renderer, ("any",))
RENDERERS.register("cpp", CppRenderer, ("cpu",))
RENDERERS.register("nerfacc", NerfaccRenderer, ("cuda",))
renderer_names = RENDERERS.names
renderer_runs_on = RENDERERS.runs_on


def get_renderer(name: str, device: torch.device) -> Renderer:
    """The backend ``name`` for tensors on ``device``; ``auto`` resolves once per device type
    (ValueError for an unknown name or a backend that does not run there)."""
    if name not in RENDERERS.loaders and name != "auto":
        raise ValueError(f"unknown renderer backend {name!r}; choose from {renderer_names()}")
    return RENDERERS.get(name, torch.device(device).type)
