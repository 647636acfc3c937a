"""Volume rendering of packed samples: weights from density or opacity, alpha compositing.

Compositing only needs each sample's opacity ``alpha``; how it is computed is up to the caller.
Density fields give ``alpha = 1 - exp(-sigma * dt)`` (:func:`weights_from_density`); SDF fields
(NeuS) compute alpha from signed distances and use :func:`weights_from_alpha`. Both are exactly
``w_i = T_i * alpha_i`` with transmittance ``T_i = prod_{j<i} (1 - alpha_j)`` along each ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .packed import RaySamples, accumulate_along_rays, exclusive_cumsum

# (t_starts, t_ends, ray_indices) -> (rgbs (n, 3), sigmas (n,)) or (rgbs (n, 3), alphas (n,))
SampleFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor],
                    tuple[torch.Tensor, torch.Tensor]]


def weights_from_density(samples: RaySamples, sigmas: torch.Tensor, n_rays: int):
    """Weights of density samples.

    Args:
        sigmas: (n_samples,) non-negative densities (per unit of t).
    Returns:
        weights, transmittances (before each sample) and alphas, each (n_samples,).
    """
    tau = sigmas * (samples.t_ends - samples.t_starts)  # optical depth of each interval
    trans = torch.exp(-exclusive_cumsum(tau, samples.ray_indices, n_rays))
    alphas = 1.0 - torch.exp(-tau)
    return trans * alphas, trans, alphas


def weights_from_alpha(alphas: torch.Tensor, ray_indices: torch.Tensor, n_rays: int):
    """Weights of samples given their opacities.

    Args:
        alphas: (n_samples,) opacities in [0, 1].
    Returns:
        weights and transmittances (before each sample), each (n_samples,).
    """
    log_pass = torch.log(torch.clamp(1.0 - alphas, min=1e-10))
    trans = torch.exp(exclusive_cumsum(log_pass, ray_indices, n_rays))
    return trans * alphas, trans


def visible_samples(trans: torch.Tensor, alphas: torch.Tensor, early_stop_eps: float = 1e-4,
                    alpha_thre: float = 0.0) -> torch.Tensor:
    """(n_samples,) bool: samples reached by at least ``early_stop_eps`` of the light and not
    nearly transparent (alpha >= ``alpha_thre``)."""
    keep = trans >= early_stop_eps
    if alpha_thre > 0:
        keep &= alphas >= alpha_thre
    return keep


@dataclass
class RenderOutput:
    """Per-ray results of volume rendering."""

    rgb: torch.Tensor
    """(n_rays, 3) colour composited over the background"""
    opacity: torch.Tensor
    """(n_rays, 1) accumulated weight, 1 - transmittance at the end of the ray"""
    depth: torch.Tensor
    """(n_rays, 1) expected distance sum(w * t_mid); divide by opacity for the visible surface"""
    n_samples: int
    """samples composited"""
    n_queries: int = 0
    """density queries made while choosing the samples (no gradient), where known"""


def composite(samples: RaySamples, weights: torch.Tensor, rgbs: torch.Tensor, n_rays: int,
              background: torch.Tensor | None = None) -> RenderOutput:
    """Sum colours and distances with ``weights``; the background (3,) or (n_rays, 3) fills the
    remaining transmittance (None: black)."""
    idx = samples.ray_indices
    rgb = accumulate_along_rays(weights, idx, n_rays, rgbs)
    opacity = accumulate_along_rays(weights, idx, n_rays)
    depth = accumulate_along_rays(weights, idx, n_rays, samples.t_mids[:, None])
    if background is not None:
        rgb = rgb + (1.0 - opacity) * background
    return RenderOutput(rgb, opacity, depth, len(samples))
