"""nerfacc's CUDA kernels behind the renderer's API (CUDA only; imported lazily).

The pure-PyTorch functions in :mod:`.marching` and :mod:`.volume` are the reference; these
wrappers take and return the same packed tensors, and the test suite compares both on CUDA.
"""

from __future__ import annotations

from types import ModuleType

import torch

from .packed import RaySamples


def make_estimator(nerfacc: ModuleType, aabb: torch.Tensor, resolution: int):
    """A one-level ``nerfacc.OccGridEstimator`` over ``aabb`` (6,) on its device."""
    estimator = nerfacc.OccGridEstimator(roi_aabb=aabb, resolution=resolution, levels=1)
    return estimator.to(aabb.device)


def nerfacc_sample(estimator, origins: torch.Tensor, directions: torch.Tensor,
                   binaries: torch.Tensor, occs: torch.Tensor, step_size: float,
                   near_planes: torch.Tensor, far_planes: torch.Tensor, sigma_fn=None,
                   alpha_fn=None, early_stop_eps: float = 1e-4,
                   alpha_thre: float = 0.0) -> RaySamples:
    """:meth:`.backends.Renderer.sample` through ``OccGridEstimator.sampling``.

    The estimator is handed the caller's grid buffers (nerfacc's layout: ``binaries``
    (1, R, R, R), ``occs`` (R^3,)); per-ray near planes go in as ``t_min`` so a caller's jitter
    is kept, and nerfacc's own jitter stays off.
    """
    estimator.binaries = binaries.reshape(1, *binaries.shape[-3:])
    estimator.occs = occs
    ray_indices, t_starts, t_ends = estimator.sampling(
        origins, directions, sigma_fn=sigma_fn, alpha_fn=alpha_fn, near_plane=0.0,
        t_min=near_planes, t_max=far_planes, render_step_size=step_size,
        early_stop_eps=early_stop_eps, alpha_thre=alpha_thre, stratified=False)
    return RaySamples(ray_indices.long(), t_starts, t_ends)


def nerfacc_weights_from_density(nerfacc: ModuleType, samples: RaySamples,
                                 sigmas: torch.Tensor, n_rays: int):
    """:func:`.volume.weights_from_density` with nerfacc's fused scan."""
    return nerfacc.render_weight_from_density(
        samples.t_starts, samples.t_ends, sigmas, ray_indices=samples.ray_indices,
        n_rays=n_rays)


def nerfacc_weights_from_alpha(nerfacc: ModuleType, alphas: torch.Tensor,
                               ray_indices: torch.Tensor, n_rays: int):
    """:func:`.volume.weights_from_alpha` with nerfacc's fused scan."""
    return nerfacc.render_weight_from_alpha(alphas, ray_indices=ray_indices, n_rays=n_rays)
