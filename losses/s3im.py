"""S3IM, stochastic structural similarity (Xie et al., ICCV 2023), and its strided SSIM.

S3IM scores a batch of independently sampled rays or pixels by the SSIM of a pseudo-image tiled
from the batch and random re-orderings of it, so that a pointwise loss on the same rays gains a
term that couples them. Layout, window and constants follow the authors' release
(``model_components/s3im.py`` and ``ssim.py`` of S3IM-Neural-Fields):

- the batch in its own order plus ``repeats - 1`` random permutations, concatenated and filled
  row by row into a (1, C, patch_height, n * repeats / patch_height) pseudo-image;
- SSIM over a ``kernel_size`` x ``kernel_size`` Gaussian window (sigma 1.5) whose taps are
  exp(-(x - K//2)^2 / (2 sigma^2)) for x = 0..K-1 (asymmetric for even K: about
  [0.136, 0.266, 0.332, 0.266] for K = 4), moved by ``stride`` with zero padding (K-1)//2;
- C1 = 0.01^2, C2 = 0.03^2 (data range 1); the term is 1 - mean of the SSIM map.

This SSIM is a training signal with the paper's parameters; image quality is reported with the
standard 11x11 SSIM of ``fieldfit.metrics.ssim``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2


@dataclass
class S3IMOptions:
    """S3IM options as flat task-config fields (``--s3im-weight`` ...); a task config that
    subclasses this and passes itself to ``parse_loss(..., options=config)`` supports
    ``--loss mse+s3im``."""

    s3im_weight: float = 1.0
    """weight of the S3IM term (1 - SSIM) when --loss includes s3im"""
    s3im_kernel_size: int = 4
    """S3IM: SSIM window size"""
    s3im_stride: int = 4
    """S3IM: SSIM window stride"""
    s3im_repeats: int = 10
    """S3IM: orderings of the batch tiled into the pseudo-image (the first is the batch order)"""
    s3im_patch_height: int = 64
    """S3IM: pseudo-image height (batch size x repeats must be a multiple of it)"""


def gaussian_taps(kernel_size: int, sigma: float) -> torch.Tensor:
    """(kernel_size,) float64 normalised Gaussian taps centred on index ``kernel_size // 2``.

    Hand-written because kornia's ``get_gaussian_kernel1d`` centres an even window between two
    taps (symmetric), which is not the authors' window.
    """
    x = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    taps = torch.exp(-(x**2) / (2 * sigma**2))
    return taps / taps.sum()


def strided_ssim(a: torch.Tensor, b: torch.Tensor, kernel_size: int = 4, stride: int = 4,
                 sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of (B, C, H, W) images over a strided Gaussian window (see module docstring).

    Written with ``conv2d`` because kornia's SSIM has neither a stride nor the authors' even,
    asymmetric window. Padding is zero padding of (kernel_size - 1) // 2 on every side.
    """
    c = a.shape[1]
    taps = gaussian_taps(kernel_size, sigma).to(a)
    window = torch.outer(taps, taps).expand(5 * c, 1, kernel_size, kernel_size).contiguous()
    # One grouped convolution gives E[a], E[b], E[a^2], E[b^2], E[ab] per channel and window.
    moments = F.conv2d(torch.cat([a, b, a * a, b * b, a * b], dim=1), window, stride=stride,
                       padding=(kernel_size - 1) // 2, groups=5 * c)
    mu_a, mu_b, e_aa, e_bb, e_ab = moments.split(c, dim=1)
    var_a, var_b = e_aa - mu_a**2, e_bb - mu_b**2
    cov = e_ab - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_a**2 + mu_b**2 + SSIM_C1) * (var_a + var_b + SSIM_C2))
    return ssim_map.mean()


def s3im_orderings(n: int, repeats: int, generator: torch.Generator | None) -> torch.Tensor:
    """(repeats * n,) int64: ``arange(n)`` then ``repeats - 1`` draws of ``randperm(n)``, on
    the generator's device."""
    device = "cpu" if generator is None else generator.device
    orders = [torch.arange(n, device=device)]
    orders += [torch.randperm(n, generator=generator, device=device) for _ in range(repeats - 1)]
    return torch.cat(orders)


def tile_pseudo_image(values: torch.Tensor, index: torch.Tensor, height: int) -> torch.Tensor:
    """(1, C, height, len(index) / height) image of ``values[index]`` ((n, C)), filled row by
    row as the authors' ``permute(1, 0).reshape(...)``.

    ``index_select`` rather than ``values[index]``: on the CPU the backward of the latter adds
    the repeated rows with threaded atomics, so gradients (and a resumed run) would not repeat
    bit for bit.
    """
    return values.index_select(0, index).T.reshape(1, values.shape[1], height, -1)


@dataclass(frozen=True)
class S3IM:
    """The S3IM term ``1 - SSIM(pseudo-image of pred, pseudo-image of target)``.

    Call with (n, C) predictions and targets of the same rays (any C) and the generator that
    draws the permutations (``None``: torch's global RNG). Its weight lambda is the loss
    composition's term weight (``parse_loss(..., weights={"s3im": lambda})``).
    """

    kernel_size: int = 4
    stride: int = 4
    repeats: int = 10
    patch_height: int = 64

    def __post_init__(self) -> None:
        for name in ("kernel_size", "stride", "repeats", "patch_height"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                flag = "--s3im-" + name.replace("_", "-")
                raise ValueError(f"{flag} {value}: must be an integer >= 1")
        if self._padded(self.patch_height) < self.kernel_size:
            raise ValueError(f"--s3im-patch-height {self.patch_height}: lower than the "
                             f"--s3im-kernel-size {self.kernel_size} window")

    def _padded(self, size: int) -> int:
        return size + 2 * ((self.kernel_size - 1) // 2)

    @property
    def batch_multiple(self) -> int:
        """Batch sizes that tile the pseudo-image are the multiples of this."""
        return self.patch_height // math.gcd(self.patch_height, self.repeats)

    def check_batch(self, n: int) -> None:
        """ValueError naming --batch-size unless ``n`` rays tile the pseudo-image."""
        m = self.batch_multiple
        if n % m == 0 and n > 0:
            width = n * self.repeats // self.patch_height
            if self._padded(width) < self.kernel_size:
                raise ValueError(f"--batch-size {n}: too small for S3IM (its pseudo-image would "
                                 f"be {width} wide, narrower than the window)")
            return
        near = sorted({k for k in (n // m * m, n // m * m + m) if k > 0})
        raise ValueError(
            f"--batch-size {n}: S3IM arranges batch x {self.repeats} repeats into a pseudo-image "
            f"of --s3im-patch-height {self.patch_height} rows, so the batch size must be a "
            f"multiple of {m} (e.g. {' or '.join(map(str, near))})")

    def __call__(self, pred: torch.Tensor, target: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        if pred.ndim != 2 or pred.shape != target.shape:
            raise ValueError(f"S3IM needs (n, C) pred and target of one shape, got "
                             f"{tuple(pred.shape)} and {tuple(target.shape)}")
        self.check_batch(len(pred))
        index = s3im_orderings(len(pred), self.repeats, generator).to(pred.device)
        # SSIM in at least float32: its window variances and C2 = 9e-4 are too fine for fp16.
        dtype = torch.promote_types(pred.dtype, torch.float32)
        a = tile_pseudo_image(pred.to(dtype), index, self.patch_height)
        b = tile_pseudo_image(target.to(dtype), index, self.patch_height)
        return 1.0 - strided_ssim(a, b, self.kernel_size, self.stride)


def s3im_from_options(options: S3IMOptions | None, batch_size: int | None) -> S3IM:
    """The :class:`S3IM` term of a task config; checks ``batch_size`` tiles when it is given."""
    options = options or S3IMOptions()
    term = S3IM(kernel_size=options.s3im_kernel_size, stride=options.s3im_stride,
                repeats=options.s3im_repeats, patch_height=options.s3im_patch_height)
    if batch_size is not None:
        term.check_batch(batch_size)
    return term
