"""Spatial gradients of a scalar field: by autograd, or by central finite differences for
encodings whose backend has no second derivative (an eikonal loss on an autograd gradient needs
one; on a finite-difference gradient it needs only first derivatives)."""

from __future__ import annotations

from collections.abc import Callable

import torch

GRADIENT_METHODS = ("autograd", "finite_difference")


def spatial_gradient(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     method: str = "autograd", step: float = 1e-3,
                     create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Values and spatial gradients of ``fn`` at ``x``.

    Args:
        fn: (n, d) points -> (n,) values, or (n, k) outputs whose first column is the value
            differentiated (the other columns come back with it, at ``x``).
        x: (n, d) points.
        method: ``autograd`` (exact; ``create_graph`` keeps it differentiable) or
            ``finite_difference`` (central differences ``(f(x + h e_k) - f(x - h e_k)) / 2h``,
            differentiable in ``fn``'s parameters through first derivatives only).
        step: the finite-difference step h, in the units of ``x``.
    Returns:
        outputs (n,) or (n, k) at ``x``, and gradients (n, d) of the values.
    """
    if method == "autograd":
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            out = fn(x)
            values = out if out.dim() == 1 else out[:, 0]
            (grad,) = torch.autograd.grad(values.sum(), x, create_graph=create_graph)
        return out, grad
    if method == "finite_difference":
        n, d = x.shape
        offsets = step * torch.eye(d, dtype=x.dtype, device=x.device)
        shifted = torch.cat([x[None] + offsets[:, None], x[None] - offsets[:, None]])  # (2d, n, d)
        out = fn(torch.cat([x, shifted.reshape(-1, d)]))
        values = out if out.dim() == 1 else out[:, 0]
        plus, minus = values[n:].reshape(2, d, n)
        return out[:n], ((plus - minus) / (2.0 * step)).T
    raise ValueError(f"gradient method {method!r} unknown; choose from {GRADIENT_METHODS}")
