"""Image quality metrics on [0, 1] data."""

from __future__ import annotations

import math

import torch


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for data range 1."""
    return -10.0 * math.log10(max(mse, 1e-20))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of any-shaped tensors with data range 1."""
    return psnr_from_mse(torch.mean((pred.float() - target.float()) ** 2).item())


def ssim(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Standard SSIM (11x11 Gaussian window, sigma 1.5) of (H, W, C) images, via kornia."""
    from kornia.metrics import ssim as kornia_ssim

    # contiguous: kornia takes its 3x faster channels-last CPU path only for contiguous images
    a = pred.float().clamp(0, 1).permute(2, 0, 1).unsqueeze(0).contiguous()
    b = target.float().permute(2, 0, 1).unsqueeze(0).contiguous()
    return kornia_ssim(a, b, window_size=11, max_val=1.0).mean().item()
