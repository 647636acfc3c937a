"""Hash-grid encoding benchmark: points per second, forward and forward+backward, and peak
memory, for every hash-grid backend available on the device, at several batch sizes, in one run.

    python scripts/bench_encoding.py                      # 2D and 3D, 2^14..2^18 points
    python scripts/bench_encoding.py --dims 3 --batch-sizes 262144 --candidates

``--candidates`` adds the fast CPU backend's rivals that are not backends: torch.compile of the
reference, and a vectorised pure-torch rewrite (all levels in one gather).

Times are the best of ``--repeats`` calls after one warm-up call; the forward pass is timed as
in training, with the table requiring grad (torch.compile would otherwise compile a second,
no-grad graph). Peak memory is the growth of
the process's peak resident set (Linux VmHWM, reset before each measurement) on the CPU, and
``torch.cuda.max_memory_allocated`` on CUDA, during one forward+backward call.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from fieldfit.fields import hash_encode_torch, make_layout
from fieldfit.fields.grid_interp import HASH_PRIMES, corner_offsets, dlinear_weights
from fieldfit.fields.kernels import backend_names, load_backend, runs_on

from fieldfit.bench import report


@dataclass
class Args:
    dims: tuple[int, ...] = (2, 3)
    """input dimensions to measure"""
    batch_sizes: tuple[int, ...] = (2**14, 2**16, 2**18)
    """points per call"""
    backends: tuple[str, ...] = ()
    """backends to measure (default: every one that loads on the device)"""
    candidates: bool = False
    """also measure torch.compile of the reference and a vectorised torch rewrite"""
    repeats: int = 2
    """timed calls per measurement (the best is kept)"""
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    """cpu or cuda"""
    n_levels: int = 16
    n_features: int = 2
    log2_table: int = 19
    base_res: int = 16
    max_res: int = 2048
    out: Path = Path("bench_out/encoding")
    """where the JSON goes"""


def encode_vectorised(x: torch.Tensor, table: torch.Tensor, layout) -> torch.Tensor:
    """Candidate: the reference with all levels in one gather of (n, n_levels, 2^d) rows."""
    levels, dims, device = layout.levels, layout.dims, x.device
    scales = torch.tensor([s.scale for s in levels], dtype=x.dtype, device=device)
    res, size, offset = (torch.tensor([getattr(s, k) for s in levels], device=device)
                         for k in ("resolution", "size", "offset"))
    dense = torch.tensor([layout.is_dense(i) for i in range(len(levels))], device=device)
    corners = corner_offsets(dims, device)  # (C, d)
    pos = x[:, None, :] * scales[None, :, None] + 0.5  # (n, L, d)
    cell = torch.floor(pos)
    n, n_levels = x.shape[0], len(levels)
    weights = dlinear_weights((pos - cell).reshape(-1, dims), corners).reshape(n, n_levels, -1)
    cell = cell.long()
    dense_index = torch.zeros((), dtype=torch.int64, device=device)
    hashed = torch.zeros((), dtype=torch.int64, device=device)
    for d in range(dims):
        coord = cell[:, :, d, None] + corners[:, d]  # (n, L, C)
        dense_index = dense_index + coord * (res**d)[:, None]
        hashed = hashed ^ ((coord * HASH_PRIMES[d]) & 0xFFFFFFFF)
    index = torch.where(dense[:, None], dense_index, hashed) % size[:, None] + offset[:, None]
    feats = table[index]  # (n, L, C, F)
    return (weights.unsqueeze(-1).to(feats.dtype) * feats).sum(dim=2).reshape(n, -1)


def variants(args: Args) -> dict[str, Callable]:
    """Name -> encode function, for every backend (and candidate) that loads on the device."""
    names = args.backends or [n for n in backend_names()[1:] if runs_on(n, args.device)]
    found = {}
    for name in names:
        try:
            found[name] = load_backend(name)
        except (ImportError, RuntimeError, OSError) as err:
            print(f"skipping backend {name}: {err}")
    if args.candidates:
        found["torch.compile(reference)"] = torch.compile(hash_encode_torch, dynamic=False)
        found["vectorised torch"] = encode_vectorised
    return found


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def best_time(fn: Callable[[], object], repeats: int, device: str) -> float:
    best = math.inf
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def _vm_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise OSError(f"{key} not in /proc/self/status")


def peak_memory_mib(fn: Callable[[], object], device: str, release: torch.Tensor) -> float:
    """Peak memory growth during one call of ``fn``, in MiB, after freeing ``release.grad``."""
    release.grad = None
    if device == "cuda":
        torch.cuda.synchronize()
        start = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - start) / 2**20
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so the peak starts low
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    start = _vm_kib("VmRSS:")
    fn()
    return (_vm_kib("VmHWM:") - start) / 1024


def measure(name: str, encode: Callable, dims: int, n: int, args: Args) -> dict:
    layout = make_layout(dims, args.n_levels, args.n_features, args.log2_table, args.base_res,
                         args.max_res)
    generator = torch.Generator().manual_seed(0)
    table = (torch.rand(layout.n_entries, args.n_features, generator=generator) * 2e-4 - 1e-4)
    table = table.to(args.device).requires_grad_(True)
    x = torch.rand(n, dims, generator=generator).to(args.device)
    grad = torch.randn(n, len(layout.levels) * args.n_features, generator=generator)
    grad = grad.to(args.device)

    def forward():  # as in training: the table requires grad (no backward)
        return encode(x, table, layout)

    def forward_backward():
        table.grad = None
        encode(x, table, layout).backward(grad)

    start = time.perf_counter()
    forward_backward()  # warm-up: loads, compiles, allocates
    synchronize(args.device)
    first_call = time.perf_counter() - start
    t_forward = best_time(forward, args.repeats, args.device)
    t_both = best_time(forward_backward, args.repeats, args.device)
    return {"backend": name, "dims": dims, "points": n,
            "fwd_points_per_s": n / t_forward, "fwd_bwd_points_per_s": n / t_both,
            "fwd_ms": 1e3 * t_forward, "fwd_bwd_ms": 1e3 * t_both,
            "peak_mib": peak_memory_mib(forward_backward, args.device, release=table),
            "first_call_s": first_call}


def main(args: Args) -> None:
    found = variants(args)
    rows = []
    for dims in args.dims:
        for n in args.batch_sizes:
            group = []
            for name, encode in found.items():
                group.append(measure(name, encode, dims, n, args))
                print(group[-1], flush=True)
            reference = next((r for r in group if r["backend"] == "torch"), None)
            for row in group:
                if reference is not None:
                    row["fwd_bwd_vs_torch"] = (row["fwd_bwd_points_per_s"]
                                               / reference["fwd_bwd_points_per_s"])
            rows += group
    config = {k: getattr(args, k) for k in ("n_levels", "n_features", "log2_table", "base_res",
                                            "max_res", "repeats", "device")}
    report("bench_encoding", rows,
           ["backend", "dims", "points", "fwd_points_per_s", "fwd_bwd_points_per_s",
            "fwd_bwd_vs_torch", "peak_mib", "first_call_s"],
           args.out, extra={"config": config})


if __name__ == "__main__":
    main(tyro.cli(Args))
