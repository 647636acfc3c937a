"""Every registered hash-grid backend against the torch reference: values and gradients."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_cuda
from fieldfit.fields import hash_encode_torch, make_layout
from fieldfit.fields import kernels as registry
from fieldfit.fields.kernels import cpp, get_backend, load_backend, runs_on
from fieldfit.fields.kernels.tcnn_adapter import encoding_config
from fieldfit.scenes import ImageTarget, procedural_image

from fieldfit.tasks import ImageTask, ImageTaskConfig, build_task
from fieldfit.trainer import Trainer, TrainerConfig

FAST = [name for name in registry.backend_names() if name not in ("auto", "torch")]
CPU_BACKENDS = [name for name in FAST if runs_on(name, "cpu")]
CUDA_BACKENDS = [name for name in FAST if runs_on(name, "cuda")]
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def load_or_skip(name: str):
    """A backend's encode; skips when its optional package is missing (build errors fail)."""
    try:
        return load_backend(name)
    except ImportError as err:
        pytest.skip(f"hash-grid backend {name} not installed: {err}")


def small_layout(dims: int, n_features: int = 2):
    # 4 levels, res 4..64: dense coarse levels and hashed fine ones in both 2D and 3D
    layout = make_layout(dims, n_levels=4, n_features=n_features,
                         log2_table=8 if dims == 2 else 10,
                         base_res=4, max_res=64)
    dense = [layout.is_dense(i) for i in range(4)]
    assert any(dense) and not all(dense)
    return layout


def points(n: int, dims: int, layout, dtype) -> torch.Tensor:
    """Random points, with the first rows on the box edges, on cell borders and outside."""
    x = torch.rand(n, dims, dtype=torch.float64)
    scale = layout.levels[1].scale
    special = torch.tensor([[0.0] * dims, [1.0] * dims, [0.25] * dims,
                            [(3 - 0.5) / scale] * dims,  # pos = x * scale + 0.5 lands on 3
                            [0.0, 1.0, 0.5][:dims], [1.0, 0.5 / scale, 0.0][:dims],
                            [-0.3] * dims, [1.2, -0.1, 1.05][:dims]],  # outside: rows wrap
                           dtype=torch.float64)
    if n == 1:
        special = special[1:2]
    x[: len(special)] = special[:n]
    return x.to(dtype)


def check_parity(encode, dims: int, n: int, dtype=torch.float32, table_dtype=None,
                 device="cpu", n_features: int = 2) -> None:
    """Values, table gradients and input gradients of ``encode`` equal the reference's."""
    layout = small_layout(dims, n_features)
    table_dtype = table_dtype or dtype
    table = torch.randn(layout.n_entries, n_features, dtype=torch.float64).to(device,
                                                                              table_dtype)
    x = points(n, dims, layout, dtype).to(device)
    tight = dtype == torch.float64 and table_dtype == torch.float64
    tol = dict(rtol=1e-10, atol=1e-10) if tight else dict(rtol=1e-4, atol=1e-4)
    if table_dtype == torch.float16:
        tol = dict(rtol=1e-2, atol=1e-2)
    results = []
    for fn in (encode, hash_encode_torch):
        t = table.clone().requires_grad_(True)
        p = x.clone().requires_grad_(True)
        out = fn(p, t, layout)
        grad = torch.linspace(-1, 1, out.numel(), dtype=torch.float64, device=device)
        grad = grad.reshape(out.shape).to(out.dtype)
        g_x, g_t = torch.autograd.grad(out, (p, t), grad)
        results.append((out, g_t, g_x))
    (out, g_t, g_x), (ref, ref_t, ref_x) = results
    assert out.shape == ref.shape == (n, 4 * n_features) and out.dtype == ref.dtype
    torch.testing.assert_close(out, ref, **tol)
    torch.testing.assert_close(g_t, ref_t, **tol)
    # input gradients carry the level scales (up to 64): compare relative to their size
    torch.testing.assert_close(g_x / 64, ref_x / 64, **tol)


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("n", [1, 7, 1023])
def test_parity_cpu(name, dims, n):
    check_parity(load_or_skip(name), dims, n)


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("n_features", [1, 3, 4, 8])
def test_parity_cpu_other_feature_counts(name, n_features):
    # the C++ kernels compile the common widths (1, 2, 4, 8) and take any other at run time
    check_parity(load_or_skip(name), 3, 1023, n_features=n_features)


@pytest.mark.parametrize("dims", [2, 3])
def test_cpp_results_do_not_depend_on_thread_count(dims):
    """The C++ kernels split levels, not points, over threads for the table gradient, so the
    summation order and every bit of the results are the same on 1 and 2 threads."""
    encode = load_or_skip("cpp")
    layout = small_layout(dims)
    table = torch.randn(layout.n_entries, 2)
    x = points(20000, dims, layout, torch.float32)
    threads = torch.get_num_threads()
    results = []
    try:
        for n_threads in (1, 2):
            torch.set_num_threads(n_threads)
            t, p = table.clone().requires_grad_(True), x.clone().requires_grad_(True)
            out = encode(p, t, layout)
            results.append((out, *torch.autograd.grad(out, (p, t), torch.cos(out * 7))))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("n", [33, 10007])  # 10007: several threads and point blocks
def test_parity_float64(name, dims, n):
    # float64, so that the large batch's sums over ~10^3 points per row agree in any order
    check_parity(load_or_skip(name), dims, n, dtype=torch.float64)


@pytest.mark.parametrize("name", CPU_BACKENDS)
@pytest.mark.parametrize("dims", [2, 3])
def test_second_derivatives(name, dims):
    """Gradients of input gradients (eikonal losses) in the table, the output gradient and x."""
    encode = load_or_skip(name)
    layout = make_layout(dims, n_levels=2, n_features=2, log2_table=5, base_res=3, max_res=9)
    table = torch.randn(layout.n_entries, 2, dtype=torch.float64, requires_grad=True)
    # away from cell borders, where the d-linear map has kinks
    x = (torch.rand(5, dims, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda p, t: encode(p, t, layout), (x, table))


@pytest.mark.skipif(not INTERPRETED, reason="float16 tables: only the Triton interpreter here")
def test_parity_triton_float16_table():
    check_parity(load_or_skip("triton"), 3, 257, table_dtype=torch.float16)


def test_triton_under_interpreter():
    """The Triton kernels on CPU tensors under TRITON_INTERPRET=1, in a fresh process (the
    variable must be set before triton is imported)."""
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
           "-k", "parity and triton and not cuda"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-1000:]


@requires_cuda
@pytest.mark.parametrize("name", CUDA_BACKENDS)
@pytest.mark.parametrize("dims", [2, 3])
def test_parity_cuda(name, dims):
    encode = load_or_skip(name)
    check_parity(encode, dims, 1023, device="cuda")
    check_parity(encode, dims, 1023, table_dtype=torch.float16, device="cuda")


def test_tcnn_config_reproduces_layout():
    """tiny-cuda-nn's level formulas (float32), fed our config, give our layout."""
    for dims in (2, 3):
        layout = make_layout(dims, n_levels=16, n_features=2, log2_table=19, base_res=16,
                             max_res=2048)
        cfg = encoding_config(layout)
        log2_scale = np.log2(np.float32(cfg["per_level_scale"]))
        offset = 0
        for level, spec in enumerate(layout.levels):
            scale = np.exp2(np.float32(level) * log2_scale) * np.float32(cfg["base_resolution"])
            scale = float(scale - np.float32(1.0))
            res = int(np.ceil(scale)) + 1
            entries = min(res**dims, 2 ** cfg["log2_hashmap_size"])
            entries = -(-entries // 8) * 8
            assert abs(scale - spec.scale) <= 1e-6 * spec.scale
            assert (res, entries, offset) == (spec.resolution, spec.size, spec.offset)
            offset += entries
        assert cfg["n_levels"] * cfg["n_features_per_level"] == 32
        assert offset == layout.n_entries


def test_auto_prefers_fast_cpu_backend(monkeypatch):
    monkeypatch.setattr(registry.BACKENDS, "auto_choice", {})
    assert get_backend("auto", torch.device("cpu")) is load_backend("cpp")
    assert registry.BACKENDS.auto_order["cpu"][-1] == "torch"
    assert registry.BACKENDS.auto_order["cuda"] == ("tcnn", "triton", "torch")


def test_auto_falls_back_with_one_warning(monkeypatch, caplog):
    def broken():
        raise RuntimeError("C++ hash-grid kernels did not build: no compiler")

    monkeypatch.setattr(registry.BACKENDS, "auto_choice", {})
    monkeypatch.setattr(registry.BACKENDS, "loaded", {})
    monkeypatch.setitem(registry.BACKENDS.loaders, "cpp", (broken, ("cpu",)))
    with caplog.at_level(logging.INFO, logger="fieldfit"):
        assert get_backend("auto", torch.device("cpu")) is hash_encode_torch
        get_backend("auto", torch.device("cpu"))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no compiler" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    with pytest.raises(RuntimeError, match="did not build"):
        get_backend("cpp", torch.device("cpu"))


def test_backend_on_wrong_device_is_refused():
    with pytest.raises(ValueError, match="'cpp' runs on"):
        get_backend("cpp", torch.device("cuda"))
    if not INTERPRETED:
        with pytest.raises(ValueError, match="'triton' runs on"):
            get_backend("triton", torch.device("cpu"))


def test_cpp_build_failure_is_one_line(tmp_path, monkeypatch):
    broken = tmp_path / "broken.cpp"
    broken.write_text("#error this does not compile\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(cpp, "SOURCE", broken)
    assert cpp.build_directory().is_relative_to(tmp_path / "cache")
    with pytest.raises(RuntimeError, match="did not build") as info:
        cpp.load_kernels()
    assert "\n" not in str(info.value)


def test_cpp_rejects_mixed_dtypes():
    encode = load_or_skip("cpp")
    layout = small_layout(2)
    with pytest.raises(ValueError, match="float32 or both float64"):
        encode(torch.rand(4, 2), torch.zeros(layout.n_entries, 2, dtype=torch.float64), layout)


def fit_psnr(backend: str, out_dir: Path) -> float:
    task = build_task(ImageTask, ImageTarget(procedural_image(32, 32)),
                      ImageTaskConfig(log2_table=10, batch_size=512, backend=backend),
                      torch.device("cpu"), seed=0)
    assert task.model.encoding.backend == backend
    out_dir.mkdir()
    trainer = Trainer(task, TrainerConfig(steps=150), out_dir, progress=False)
    return trainer.fit()["psnr"]


@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_fit_reaches_reference_psnr(name, tmp_path, one_thread):
    load_or_skip(name)
    reference = fit_psnr("torch", tmp_path / "torch")
    fast = fit_psnr(name, tmp_path / name)
    assert reference > 20.0  # learns the image (a constant colour scores about 9 dB)
    assert abs(fast - reference) < 0.1
