"""HashGrid (torch reference) against an independent per-point, per-corner implementation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from fieldfit.fields import HashGridConfig, hash_encode_torch, make_layout

PRIMES = (1, 2654435761, 805459861)


def slow_encode(x, table, dims, n_levels, n_features, log2_table, base_res, max_res):
    """Explicit loops over points, levels and corners, written from the Instant-NGP paper with
    tiny-cuda-nn's conventions (scale = base * b^l - 1, pos = x * scale + 0.5)."""
    b = math.exp(math.log(max_res / base_res) / (n_levels - 1))
    out = torch.zeros(x.shape[0], n_levels * n_features, dtype=table.dtype)
    offset = 0
    for level in range(n_levels):
        scale = float(torch.exp2(torch.tensor(level * math.log2(b), dtype=torch.float32))
                      * base_res - 1.0)
        res = math.ceil(scale) + 1
        size = min(-(-(res**dims) // 8) * 8, 2**log2_table)
        for p in range(x.shape[0]):
            pos = [float(x[p, d]) * scale + 0.5 for d in range(dims)]
            cell = [math.floor(v) for v in pos]
            frac = [pos[d] - cell[d] for d in range(dims)]
            for corner in itertools.product((0, 1), repeat=dims):
                w = 1.0
                for d in range(dims):
                    w *= frac[d] if corner[d] else 1.0 - frac[d]
                c = [cell[d] + corner[d] for d in range(dims)]
                if res**dims <= size:
                    idx = sum(c[d] * res**d for d in range(dims))
                else:
                    idx = 0
                    for d in range(dims):
                        idx ^= (c[d] * PRIMES[d]) % 2**32
                idx %= size
                out[p, level * n_features:(level + 1) * n_features] += w * table[offset + idx]
        offset += size
    return out


@pytest.mark.parametrize("dims,log2_table", [(2, 8), (3, 10), (2, 14), (3, 6)])
def test_reference_matches_slow_loops(dims, log2_table):
    cfg = dict(n_levels=4, n_features=2, log2_table=log2_table, base_res=4, max_res=64)
    layout = make_layout(dims, **cfg)
    dense = [layout.is_dense(level) for level in range(4)]
    table = torch.randn(layout.n_entries, 2, dtype=torch.float64)
    x = torch.rand(37, dims, dtype=torch.float64)
    x[0] = 0.0
    x[1] = 1.0
    x[2] = 0.25  # on cell borders at several levels
    got = hash_encode_torch(x, table, layout)
    want = slow_encode(x, table, dims, **cfg)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert layout.n_entries == sum(s.size for s in layout.levels)
    if log2_table <= 8:
        assert not all(dense), "test should cover hashed levels"
    assert any(dense), "test should cover dense levels"


@pytest.mark.parametrize("dims", [2, 3])
def test_gradcheck_table_and_inputs(dims):
    layout = make_layout(dims, n_levels=3, n_features=2, log2_table=7, base_res=3, max_res=17)
    table = torch.randn(layout.n_entries, 2, dtype=torch.float64, requires_grad=True)
    # keep points away from cell borders, where the d-linear map has kinks
    x = (torch.rand(11, dims, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t, p: hash_encode_torch(p, t, layout), (table, x))


def test_layout_sizes_and_growth():
    layout = make_layout(3, n_levels=16, n_features=2, log2_table=19, base_res=16, max_res=2048)
    res = [s.resolution for s in layout.levels]
    assert res[0] == 16 and res == sorted(res)
    assert abs(res[-1] - 2048) <= 1
    assert all(s.size <= 2**19 and s.size % 8 == 0 for s in layout.levels)
    assert layout.is_dense(0) and not layout.is_dense(15)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="log2_table"):
        HashGridConfig(log2_table=40)
    with pytest.raises(ValueError, match="base_res"):
        HashGridConfig(base_res=64, max_res=32)
