"""tiny-cuda-nn's HashGrid encoding run on fieldfit's table (CUDA, when ``tinycudann`` imports).

Parameter layout: tiny-cuda-nn keeps a hash grid's parameters as one flat vector, level-major
(coarse to fine), then entry, then the F features of an entry contiguous; a level holds
``min(next_multiple_of_8(res**d), 2**log2_table)`` entries with ``res = ceil(scale) + 1`` and
``scale = exp2(level * log2(per_level_scale)) * base_res - 1`` in float32. That is exactly
fieldfit's (n_entries, F) table flattened row-major, so ``table.reshape(-1)`` is handed to
tiny-cuda-nn as its parameters with no conversion, gradients flow back into the table, and a
checkpoint moves between backends unchanged. :func:`_native_encoding` checks that tiny-cuda-nn
counts the same number of parameters and raises otherwise.

Differences that stay within float tolerance: tiny-cuda-nn rounds ``per_level_scale`` to float32
before taking its log2, and computes ``x * scale + 0.5`` with a fused multiply-add. Second
derivatives come from tiny-cuda-nn (gradients of input gradients in the table, the output
gradient and the input); it does not differentiate the table gradient itself.
"""

from __future__ import annotations

import functools

import torch

TCNN_FEATURES = (1, 2, 4, 8)


def encoding_config(layout) -> dict:
    """tiny-cuda-nn encoding config equal to ``layout``."""
    return {
        "otype": "HashGrid",
        "n_levels": len(layout.levels),
        "n_features_per_level": layout.n_features,
        "log2_hashmap_size": layout.log2_table,
        "base_resolution": layout.base_res,
        "per_level_scale": layout.per_level_scale,
        "interpolation": "Linear",
    }


@functools.lru_cache(maxsize=16)
def _native_encoding(layout, dtype: torch.dtype):
    import tinycudann

    if layout.n_features not in TCNN_FEATURES:
        raise ValueError(f"hash-grid backend tcnn: n_features must be one of {TCNN_FEATURES}, "
                         f"got {layout.n_features}; use backend='triton'")
    encoding = tinycudann.Encoding(layout.dims, encoding_config(layout), dtype=dtype)
    expected = layout.n_entries * layout.n_features
    if encoding.params.numel() != expected:
        raise RuntimeError(f"tiny-cuda-nn lays out {encoding.params.numel()} hash-grid "
                           f"parameters where fieldfit has {expected}")
    return encoding


def encode(x: torch.Tensor, table: torch.Tensor, layout) -> torch.Tensor:
    """(n, d) CUDA points in [0, 1] -> (n, n_levels * F) features in the table's dtype."""
    from tinycudann import modules

    if not x.is_cuda:
        raise ValueError("hash-grid backend tcnn needs CUDA tensors")
    if table.dtype not in (torch.float16, torch.float32):
        raise ValueError(f"hash-grid backend tcnn: table must be float16/32, got {table.dtype}")
    encoding = _native_encoding(layout, table.dtype)
    n = x.shape[0]
    granularity = int(modules._C.batch_size_granularity())
    padded = -(-n // granularity) * granularity
    points = torch.nn.functional.pad(x, (0, 0, 0, padded - n)) if padded != n else x
    out = modules._module_function.apply(
        encoding.native_tcnn_module, points.float().contiguous(), table.reshape(-1),
        encoding.loss_scale,
    )
    return out[:n, : encoding.n_output_dims]


def load() -> object:
    """The encode function; ImportError/OSError when tinycudann cannot be imported."""
    import tinycudann  # noqa: F401

    return encode
