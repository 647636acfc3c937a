"""Autograd glue for fused hash-grid kernels (the C++ CPU kernels and the Triton kernels).

A backend supplies a forward and a first-order backward kernel. Second derivatives (the gradient
of an input gradient, as in an eikonal loss on SDF normals) are computed exactly by
differentiating the torch reference twice: correct, but at the reference's speed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# forward(x, table, layout) -> (n, n_levels * F)
ForwardKernel = Callable[..., torch.Tensor]
# backward(grad_out, x, table, layout, input_grad) -> (grad_table, grad_x or None)
BackwardKernel = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class FusedKernels:
    """A backend's kernels; :meth:`encode` has the contract of ``hash_encode_torch``."""

    forward: ForwardKernel
    backward: BackwardKernel

    def encode(self, x: torch.Tensor, table: torch.Tensor, layout) -> torch.Tensor:
        """(n, d) points in [0, 1] -> (n, n_levels * F) features, differentiable twice."""
        return _FusedEncode.apply(x, table, layout, self)


class _FusedEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, layout, kernels):
        ctx.save_for_backward(x, table)
        ctx.layout, ctx.kernels = layout, kernels
        return kernels.forward(x, table, layout)

    @staticmethod
    def backward(ctx, grad_out):
        x, table = ctx.saved_tensors
        input_grad = ctx.needs_input_grad[0]
        grad_table, grad_x = _FusedEncodeBackward.apply(
            grad_out, x, table, ctx.layout, ctx.kernels, input_grad
        )
        return grad_x, grad_table, None, None


class _FusedEncodeBackward(torch.autograd.Function):
    """First-order backward as a function of (grad_out, x, table), so it can be differentiated."""

    @staticmethod
    def forward(ctx, grad_out, x, table, layout, kernels, input_grad):
        ctx.save_for_backward(grad_out, x, table)
        ctx.layout, ctx.input_grad = layout, input_grad
        return kernels.backward(grad_out, x, table, layout, input_grad)

    @staticmethod
    def backward(ctx, gg_table, gg_x):
        from ..hashgrid import hash_encode_torch

        grad_out, x, table = ctx.saved_tensors
        layout, input_grad = ctx.layout, ctx.input_grad

        def first_order(g, points, weights):
            _, vjp = torch.func.vjp(lambda p, w: hash_encode_torch(p, w, layout), points, weights)
            gx, gt = vjp(g)
            return (gt, gx) if input_grad else (gt,)

        _, vjp2 = torch.func.vjp(first_order, grad_out, x, table)
        cotangents = (gg_table, gg_x) if input_grad else (gg_table,)
        d_grad_out, d_x, d_table = vjp2(cotangents)
        return d_grad_out, d_x, d_table, None, None, None
