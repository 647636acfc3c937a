"""NeuRBF adaptive radial-basis encoding (Chen et al., ICCV 2023).

Each of ``n_kernels`` kernels has a centre, a shape and ``F`` feature weights. A point x
combines its k nearest kernels i:

    phi_i   = 1 / (1 + (x - c_i)^T P_i (x - c_i))          (ivq: anisotropic inverse quadratic)
            = prod_j max(0, 1 - |x_j - c_ij| s_i)           (nlin: isotropic N-linear tent)
    phi~_i  = phi_i / (sum_k phi_k  [detached] + 1e-8)      (normalize)
    feature = sum_i sin(phi~_i * m) * w_i  + b              (m log-spaced over the F channels)

Centres and shapes are frozen parameters: they count towards the parameter budget, as in
NeuRBF's rule, but are never trained. They come from the target through
:meth:`RBFEncoding.init_from_samples` (weighted k-means and cluster covariances); before that
they sit on a regular lattice. ``P_i`` is stored as the packed lower-triangular Cholesky factor
L_i of the precision matrix (d(d+1)/2 numbers, P = L L^T), so ``(x-c)^T P (x-c) = |L^T (x-c)|^2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .mlp import log_spaced
from .neighbours import NeighbourSearch
from .rbf_init import clipped_precision_factors, cluster_covariances, weighted_kmeans

KERNELS = ("ivq", "nlin")


@dataclass
class RBFConfig:
    """NeuRBF adaptive radial bases, each point using its k nearest kernels."""

    n_kernels: int = 4096
    """number of kernels (presets derive it from the parameter budget)"""
    n_features: int = 32
    """feature weights per kernel F (the encoding's output width)"""
    kernel: str = "ivq"
    """ivq: anisotropic inverse quadratic 1/(1 + d^T P d); nlin: isotropic N-linear tent"""
    n_neighbours: int = 4
    """nearest kernels combined at each point (k)"""
    frequencies: tuple[float, float] | None = (2.0**-3, 2.0**12)
    """sinusoidal composition sin(phi * m), m log-spaced from low to high over the F channels;
    None: plain phi * w"""
    normalize: bool = True
    """divide each point's k kernel values by their (detached) sum + 1e-8"""
    alpha: float = 0.5
    """kernel covariance = weighted cluster covariance / alpha"""
    kmeans_iters: int = 10
    """Lloyd iterations of the weighted k-means"""
    data_res: int = 512
    """samples per axis of the target: kernel std is clipped to [1/(200 data_res), 1/10]"""
    init_scale: float = 1e-4
    """feature weights and bias initialised U(-init_scale, init_scale)"""
    chunk: int = 2**16
    """points per chunk of the neighbour search and the (chunk, k, F) gathers"""

    name: ClassVar[str] = "rbf"

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"rbf: kernel {self.kernel!r} unknown; choose from {KERNELS}")
        if self.n_kernels < 1 or self.n_features < 1 or self.chunk < 1:
            raise ValueError("rbf: n_kernels, n_features and chunk must be >= 1")
        if not 1 <= self.n_neighbours <= self.n_kernels:
            raise ValueError(f"rbf: n_neighbours={self.n_neighbours} must be in "
                             f"[1, n_kernels={self.n_kernels}]")
        f = self.frequencies
        if f is not None and not (len(f) == 2 and 0 < f[0] <= f[1]):
            raise ValueError(f"rbf: frequencies {f} must be (low, high), 0 < low <= high")
        if not self.alpha > 0:
            raise ValueError("rbf: alpha must be > 0")

    def shape_size(self, dims: int) -> int:
        """Numbers per kernel shape: packed Cholesky factor (ivq) or one inverse width (nlin)."""
        return dims * (dims + 1) // 2 if self.kernel == "ivq" else 1

    def build(self, dims: int) -> RBFEncoding:
        return RBFEncoding(self, dims)


class RBFEncoding(nn.Module):
    """(n, d) points in [0, 1] -> (n, n_features).

    Memory: points go through in chunks of ``config.chunk``; a chunk's working set is the
    (chunk, k) neighbour indices and kernel values plus two (chunk, k, F) float tensors (the
    gathered weights and the sinusoids), e.g. 2 * 65536 * 4 * 32 * 4 B = 64 MiB for images.
    Under autograd those (chunk, k, F) tensors are kept for backward, so training holds about
    2 * n * k * F floats for a batch of n points.
    """

    def __init__(self, config: RBFConfig, dims: int):
        super().__init__()
        self.config, self.dims = config, dims
        k, f = config.n_kernels, config.n_features
        centres, shapes = self._lattice(k, dims)
        self.centres = nn.Parameter(centres, requires_grad=False)
        self.shapes = nn.Parameter(shapes, requires_grad=False)
        self.weights = nn.Parameter(torch.empty(k, f).uniform_(-config.init_scale,
                                                               config.init_scale))
        self.bias = nn.Parameter(torch.empty(f).uniform_(-config.init_scale, config.init_scale))
        rows, cols = torch.tril_indices(dims, dims)
        self.register_buffer("tril_rows", rows, persistent=False)
        self.register_buffer("tril_cols", cols, persistent=False)
        freqs = log_spaced(*config.frequencies, f) if config.frequencies else torch.ones(0)
        self.register_buffer("freqs", freqs, persistent=False)
        self.search = NeighbourSearch(config.n_neighbours)

    @property
    def n_output_dims(self) -> int:
        return self.config.n_features

    def _lattice(self, k: int, dims: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Centres on a regular lattice over [0, 1]^d (the first k of n^d >= k vertices) with
        shapes matching the spacing h: P = (2/h)^2 I (ivq) or s = 1/h (nlin)."""
        n = math.ceil(k ** (1 / dims) - 1e-9)
        axis = torch.linspace(0, 1, n) if n > 1 else torch.full((1,), 0.5)
        grid = torch.meshgrid(*[axis] * dims, indexing="ij")
        centres = torch.stack([g.reshape(-1) for g in reversed(grid)], dim=-1)[:k]
        spacing = 1.0 / max(n - 1, 1)
        if self.config.kernel == "nlin":
            return centres, torch.full((k, 1), 1.0 / spacing)
        factor = (2.0 / spacing) * torch.eye(dims)  # Cholesky factor of (2/h)^2 I
        return centres, factor[torch.tril_indices(dims, dims).unbind()].expand(k, -1).clone()

    # -- initialisation from the target --------------------------------------------------
    @torch.no_grad()
    def init_from_samples(self, x: torch.Tensor, weights: torch.Tensor,
                          training_points: bool = False) -> None:
        """Place the kernels from weighted samples (NeuRBF Sec. 3.3).

        Args:
            x: (n, d) sample points in [0, 1].
            weights: (n,) importance >= 0 (points of weight 0 are ignored).
            training_points: precompute the neighbours of ``x`` for later forward passes.
        """
        c = self.config
        points = x.detach().double()
        centres = weighted_kmeans(points, weights.double(), c.n_kernels, c.kmeans_iters)
        cov = cluster_covariances(points, weights.double(), centres, c.alpha)
        lo, hi = 1.0 / (200 * c.data_res), 0.1  # kernel std bounds (NeuRBF's clip)
        if c.kernel == "nlin":  # width^2 = trace(cov) * 4, so phi = 0.5 at distance width/2
            var = (4 * cov.diagonal(dim1=-2, dim2=-1).sum(-1)).clamp(lo**2, hi**2)
            shapes = var.rsqrt()[:, None]
        else:
            factor = clipped_precision_factors(cov, lo**2, hi**2)
            shapes = factor[:, self.tril_rows, self.tril_cols]
        self.centres.copy_(centres)
        self.shapes.copy_(shapes)
        if training_points:
            self.search.remember(self.centres, x)

    @torch.no_grad()
    def reset_features(self) -> None:
        """Zero the feature weights and bias (kernels placed anew in the middle of a fit)."""
        self.weights.zero_()
        self.bias.zero_()

    # -- evaluation -----------------------------------------------------------------------
    def kernel_values(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """(c, k) kernel values at (c, d) points ``x`` of the kernels ``index`` (c, k)."""
        delta = x[:, None, :] - self.centres[index]  # (c, k, d)
        shapes = self.shapes[index]  # (c, k, p)
        if self.config.kernel == "nlin":
            return (1.0 - delta.abs() * shapes).clamp(0.0, 1.0).prod(-1)
        # y = L^T delta: y_e = sum over packed (row, col=e) of delta_row * L_row,col
        y = torch.zeros_like(delta).index_add(-1, self.tril_cols, delta[..., self.tril_rows]
                                              * shapes)
        return 1.0 / (1.0 + y.square().sum(-1))

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        index = self.search.query(self.centres, x)  # (c, k)
        phi = self.kernel_values(x, index)
        if self.config.normalize:
            phi = phi / (phi.detach().sum(-1, keepdim=True) + 1e-8)
        phi = phi.unsqueeze(-1)  # (c, k, 1)
        basis = torch.sin(phi * self.freqs) if self.config.frequencies else phi
        return (basis * self.weights[index]).sum(1)  # (c, F)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self._encode(chunk) for chunk in x.split(self.config.chunk)]
        out = torch.cat(parts) if parts else x.new_zeros(0, self.config.n_features)
        return out + self.bias

    def extra_repr(self) -> str:
        c = self.config
        return (f"dims={self.dims}, kernels={c.n_kernels}, features={c.n_features}, "
                f"kernel={c.kernel}, k={c.n_neighbours}, frequencies={c.frequencies}")
