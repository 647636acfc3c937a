"""NeuRBF initialisation from the target: sample weights, weighted k-means for the kernel
centres and weighted in-cluster covariances for their shapes (NeuRBF Sec. 3.3, supp. B)."""

from __future__ import annotations

import torch
from scipy.spatial import cKDTree

from .neighbours import nearest_centres


def image_weights(image: torch.Tensor) -> torch.Tensor:
    """(H*W,) importance of each pixel of an (H, W, C) image: the L2 norm over channels and
    both directions of its normalised Sobel gradient (kornia), row-major like the pixels."""
    from kornia.filters import SpatialGradient

    grad = SpatialGradient(mode="sobel", normalized=True)(image.permute(2, 0, 1)[None].float())
    return grad.square().sum(dim=(1, 2)).sqrt().reshape(-1)  # (1, C, 2, H, W) -> (H*W,)


def sdf_weights(sdf: torch.Tensor) -> torch.Tensor:
    """(n,) importance 1 / (|sdf| + 1e-9) of SDF samples: kernels gather at the surface."""
    return 1.0 / (sdf.reshape(-1).abs() + 1e-9)


def _kept(points: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points with weight > 0 and their weights divided by the mean weight."""
    weights = weights.reshape(-1).to(points)
    if weights.shape[0] != points.shape[0]:
        raise ValueError(f"rbf init: {points.shape[0]} points but {weights.shape[0]} weights")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("rbf init: weights must be finite and >= 0")
    keep = weights > 0
    if not keep.any():
        raise ValueError("rbf init: every sample has weight 0")
    return points[keep], weights[keep] / weights[keep].mean()


def _assign(centres: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(n,) index of the nearest centre of each point."""
    return nearest_centres(cKDTree(centres.double().cpu().numpy()), points, 1)[:, 0]


def weighted_kmeans(points: torch.Tensor, weights: torch.Tensor, n_clusters: int,
                    n_iters: int = 10) -> torch.Tensor:
    """Weighted Lloyd k-means: (n_clusters, d) centres of (n, d) ``points``.

    Seeds are drawn with probability proportional to the weight (without replacement while
    there are enough weighted points); each iteration assigns points to the nearest centre
    (KD-tree) and moves centres to their clusters' weighted means; an empty cluster keeps its
    centre. Points of weight 0 are ignored. Uses the global torch RNG.
    """
    points, weights = _kept(points, weights)
    seeds = torch.multinomial(weights, n_clusters, replacement=n_clusters > len(points))
    centres = points[seeds].clone()
    for _ in range(n_iters):
        assign = _assign(centres, points)
        mass = points.new_zeros(n_clusters).index_add_(0, assign, weights)
        sums = torch.zeros_like(centres).index_add_(0, assign, points * weights[:, None])
        filled = mass > 0
        centres[filled] = sums[filled] / mass[filled, None]
    return centres


def cluster_covariances(points: torch.Tensor, weights: torch.Tensor, centres: torch.Tensor,
                        alpha: float) -> torch.Tensor:
    """(K, d, d) weighted covariance of each centre's cluster about the centre, divided by
    ``alpha`` (< 1 widens the kernels); empty clusters get 1e-10 on the diagonal."""
    points, weights = _kept(points, weights)
    k, d = centres.shape
    assign = _assign(centres, points)
    offset = points - centres[assign]
    outer = (offset[:, :, None] * offset[:, None, :]).reshape(-1, d * d) * weights[:, None]
    sums = points.new_zeros(k, d * d).index_add_(0, assign, outer)
    mass = points.new_zeros(k).index_add_(0, assign, weights)
    cov = (sums / mass.clamp_min(1e-30)[:, None]).reshape(k, d, d) / alpha
    cov[mass == 0] = 1e-10 * torch.eye(d, dtype=points.dtype, device=points.device)
    return cov


def clipped_precision_factors(cov: torch.Tensor, min_var: float, max_var: float
                              ) -> torch.Tensor:
    """(K, d, d) lower Cholesky factors L of the precisions inv(C') = L L^T, where C' is each
    (K, d, d) covariance with its eigenvalues (the variance along every principal direction)
    clamped to [min_var, max_var]. The clamp bounds the kernel's std in every direction, not
    only along the axes, so a flat or collinear cluster (rank-deficient covariance) still
    gives a positive-definite precision."""
    var, axes = torch.linalg.eigh(cov)
    precision = (axes / var.clamp(min_var, max_var)[:, None, :]) @ axes.transpose(-1, -2)
    return torch.linalg.cholesky(0.5 * (precision + precision.transpose(-1, -2)))
