"""Fused hash-grid kernels in Triton: one forward kernel over all levels and 2^d corners, and one
backward kernel scattering table gradients with atomic adds (plus input gradients on request).

Conventions are those of ``hash_encode_torch`` (tiny-cuda-nn's): ``pos = x * scale + 0.5`` with
two roundings (the kernels are compiled without floating-point contraction), corners in binary
order, dense row-major index when ``res**d <= size`` else the xor-prime hash on uint32, modulo the
level size. Points and weights use the points' dtype; the table may be float16 (CUDA), float32 or
float64, and features are accumulated in float32 or wider, then stored in the table's dtype.

Importing this module imports triton: with ``TRITON_INTERPRET=1`` set before that, the kernels
run on CPU tensors under Triton's interpreter (how their parity is tested without a GPU).
"""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

from .fused import FusedKernels

PRIME_1 = 2654435761
PRIME_2 = 805459861
BLOCK = 128
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _corner_rows(c0, c1, c2, bits: tl.constexpr, D: tl.constexpr, res, size, offset, dense):
    """(BLOCK,) int64 table rows of one corner (``bits``: its offset, dim 0 in bit 0)."""
    k0 = c0 + (bits & 1)
    k1 = c1 + ((bits >> 1) & 1)
    dense_index = k0 + k1 * res
    hashed = (k0 & 0xFFFFFFFF) ^ ((k1 * PRIME_1) & 0xFFFFFFFF)
    if D == 3:
        k2 = c2 + ((bits >> 2) & 1)
        dense_index += k2 * res * res
        hashed = hashed ^ ((k2 * PRIME_2) & 0xFFFFFFFF)
    index = tl.where(dense, dense_index, hashed) % size
    index = tl.where(index < 0, index + size, index)  # Python-style modulo, as torch's %
    return offset + index


@triton.jit
def _factor(frac, bit: tl.constexpr):
    if bit:
        return frac
    else:
        return 1.0 - frac


@triton.jit
def _weight(f0, f1, f2, bits: tl.constexpr, D: tl.constexpr):
    """d-linear weight of a corner, multiplied in dim order as the reference does."""
    w = _factor(f0, bits & 1) * _factor(f1, (bits >> 1) & 1)
    if D == 3:
        w = w * _factor(f2, (bits >> 2) & 1)
    return w


@triton.jit
def _weight_grads(f0, f1, f2, bits: tl.constexpr, D: tl.constexpr):
    """d weight / d frac for each dim (the third is unused when D == 2)."""
    a0 = _factor(f0, bits & 1)
    a1 = _factor(f1, (bits >> 1) & 1)
    s0: tl.constexpr = 2.0 * (bits & 1) - 1.0
    s1: tl.constexpr = 2.0 * ((bits >> 1) & 1) - 1.0
    if D == 3:
        a2 = _factor(f2, (bits >> 2) & 1)
        s2: tl.constexpr = 2.0 * ((bits >> 2) & 1) - 1.0
        return s0 * a1 * a2, s1 * a0 * a2, s2 * a0 * a1
    else:
        return s0 * a1, s1 * a0, f2 * 0.0


@triton.jit
def _locate(x_ptr, p, mask, level, scales_ptr, res_ptr, sizes_ptr, offsets_ptr,
            D: tl.constexpr):
    """Cell corner 0, fractional position and level constants of BLOCK points at one level."""
    scale = tl.load(scales_ptr + level)
    res = tl.load(res_ptr + level)
    size = tl.load(sizes_ptr + level)
    offset = tl.load(offsets_ptr + level)
    cells = res * res
    if D == 3:
        cells = cells * res
    dense = cells <= size
    pos0 = tl.load(x_ptr + p * D, mask=mask, other=0.0) * scale + 0.5
    pos1 = tl.load(x_ptr + p * D + 1, mask=mask, other=0.0) * scale + 0.5
    fl0 = tl.floor(pos0)
    fl1 = tl.floor(pos1)
    if D == 3:
        pos2 = tl.load(x_ptr + p * D + 2, mask=mask, other=0.0) * scale + 0.5
        fl2 = tl.floor(pos2)
    else:
        pos2 = pos0 * 0.0
        fl2 = pos2
    return (fl0.to(tl.int64), fl1.to(tl.int64), fl2.to(tl.int64), pos0 - fl0, pos1 - fl1,
            pos2 - fl2, scale, res, size, offset, dense)


@triton.jit
def _encode_forward(x_ptr, table_ptr, out_ptr, scales_ptr, res_ptr, sizes_ptr, offsets_ptr,
                    n, n_levels, D: tl.constexpr, F: tl.constexpr, FP: tl.constexpr,
                    BLOCK: tl.constexpr):
    p = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
    mask = p < n
    feats = tl.arange(0, FP)
    mask2 = mask[:, None] & (feats < F)[None, :]
    for level in range(n_levels):
        c0, c1, c2, f0, f1, f2, scale, res, size, offset, dense = _locate(
            x_ptr, p, mask, level, scales_ptr, res_ptr, sizes_ptr, offsets_ptr, D)
        acc = tl.zeros((BLOCK, FP), dtype=f0.dtype)
        for bits in tl.static_range(2**D):
            rows = _corner_rows(c0, c1, c2, bits, D, res, size, offset, dense)
            w = _weight(f0, f1, f2, bits, D)
            values = tl.load(table_ptr + rows[:, None] * F + feats[None, :], mask=mask2, other=0.0)
            acc += w[:, None] * values.to(acc.dtype)
        out = out_ptr + p[:, None] * (n_levels * F) + level * F + feats[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=mask2)


@triton.jit
def _encode_backward(grad_out_ptr, x_ptr, table_ptr, grad_table_ptr, grad_x_ptr, scales_ptr,
                     res_ptr, sizes_ptr, offsets_ptr, n, n_levels, D: tl.constexpr,
                     F: tl.constexpr, FP: tl.constexpr, INPUT_GRAD: tl.constexpr,
                     BLOCK: tl.constexpr):
    p = (tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
    mask = p < n
    feats = tl.arange(0, FP)
    mask2 = mask[:, None] & (feats < F)[None, :]
    dx0 = tl.zeros((BLOCK,), dtype=x_ptr.dtype.element_ty)
    dx1 = tl.zeros((BLOCK,), dtype=x_ptr.dtype.element_ty)
    dx2 = tl.zeros((BLOCK,), dtype=x_ptr.dtype.element_ty)
    for level in range(n_levels):
        c0, c1, c2, f0, f1, f2, scale, res, size, offset, dense = _locate(
            x_ptr, p, mask, level, scales_ptr, res_ptr, sizes_ptr, offsets_ptr, D)
        g_ptr = grad_out_ptr + p[:, None] * (n_levels * F) + level * F + feats[None, :]
        g = tl.load(g_ptr, mask=mask2, other=0.0).to(grad_table_ptr.dtype.element_ty)
        l0 = tl.zeros((BLOCK,), dtype=f0.dtype)
        l1 = tl.zeros((BLOCK,), dtype=f0.dtype)
        l2 = tl.zeros((BLOCK,), dtype=f0.dtype)
        for bits in tl.static_range(2**D):
            rows = _corner_rows(c0, c1, c2, bits, D, res, size, offset, dense)
            w = _weight(f0, f1, f2, bits, D)
            cell_ptr = rows[:, None] * F + feats[None, :]
            tl.atomic_add(grad_table_ptr + cell_ptr, w[:, None].to(g.dtype) * g, mask=mask2)
            if INPUT_GRAD:
                values = tl.load(table_ptr + cell_ptr, mask=mask2, other=0.0)
                dot = tl.sum(values.to(g.dtype) * g, axis=1).to(f0.dtype)
                d0, d1, d2 = _weight_grads(f0, f1, f2, bits, D)
                l0 += d0 * dot
                l1 += d1 * dot
                l2 += d2 * dot
        if INPUT_GRAD:
            dx0 += l0 * scale
            dx1 += l1 * scale
            dx2 += l2 * scale
    if INPUT_GRAD:
        tl.store(grad_x_ptr + p * D, dx0, mask=mask)
        tl.store(grad_x_ptr + p * D + 1, dx1, mask=mask)
        if D == 3:
            tl.store(grad_x_ptr + p * D + 2, dx2, mask=mask)


@functools.lru_cache(maxsize=32)
def _level_tensors(layout, device: torch.device, dtype: torch.dtype):
    """(scales, resolutions, sizes, offsets) of a layout as tensors on ``device``."""
    levels = layout.levels
    scales = torch.tensor([s.scale for s in levels], dtype=dtype, device=device)
    ints = [torch.tensor([getattr(s, k) for s in levels], dtype=torch.int64, device=device)
            for k in ("resolution", "size", "offset")]
    return (scales, *ints)


def _check(x: torch.Tensor, table: torch.Tensor) -> None:
    if not (x.is_cuda or INTERPRETED):
        raise ValueError("hash-grid backend triton needs CUDA tensors "
                         "(or TRITON_INTERPRET=1 set before triton is imported)")
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"hash-grid backend triton: points must be float32/64, got {x.dtype}")
    if table.dtype not in (torch.float16, torch.float32, torch.float64):
        raise ValueError(f"hash-grid backend triton: table must be float16/32/64, "
                         f"got {table.dtype}")


def _launch_options(n: int) -> tuple[tuple[int], dict]:
    grid = (triton.cdiv(n, BLOCK),)
    return grid, ({} if INTERPRETED else {"enable_fp_fusion": False})


def _forward(x, table, layout):
    _check(x, table)
    x, table = x.contiguous(), table.contiguous()
    n, dims = x.shape
    n_features = table.shape[1]
    out = torch.empty(n, len(layout.levels) * n_features, dtype=table.dtype, device=x.device)
    grid, options = _launch_options(n)
    _encode_forward[grid](x, table, out, *_level_tensors(layout, x.device, x.dtype), n,
                          len(layout.levels), D=dims, F=n_features,
                          FP=triton.next_power_of_2(n_features), BLOCK=BLOCK, **options)
    return out


def _backward(grad_out, x, table, layout, input_grad):
    x, table, grad_out = x.contiguous(), table.contiguous(), grad_out.contiguous()
    n, dims = x.shape
    n_features = table.shape[1]
    acc_dtype = torch.float64 if table.dtype == torch.float64 else torch.float32
    grad_table = torch.zeros(table.shape, dtype=acc_dtype, device=x.device)
    grad_x = torch.empty_like(x) if input_grad else grad_table  # grad_table: an unused pointer
    grid, options = _launch_options(n)
    _encode_backward[grid](grad_out, x, table, grad_table, grad_x,
                           *_level_tensors(layout, x.device, x.dtype), n, len(layout.levels),
                           D=dims, F=n_features, FP=triton.next_power_of_2(n_features),
                           INPUT_GRAD=input_grad, BLOCK=BLOCK, **options)
    return grad_table.to(table.dtype), (grad_x if input_grad else None)


KERNELS = FusedKernels(_forward, _backward)
