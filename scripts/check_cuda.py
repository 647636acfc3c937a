"""Every CUDA path of fieldfit in one run, as one table (and JSON in bench_out/check_cuda/).

    python scripts/check_cuda.py                 # about 5 minutes on one GPU
    python scripts/check_cuda.py --fit-seconds 20

Checks, each a row: hash-grid parity of the Triton (fp32 and fp16 tables) and tiny-cuda-nn
backends against the torch reference (values, table and input gradients); nerfacc's samples
AND compositing against the torch renderer on an analytic ball; encoding throughput per
backend (fwd+bwd points/s); and short image, SDF and NeRF fits through the command line with
``--device cuda`` (Kodak / bunny / lego_200 from ../shared/data when present, otherwise data
the project generates). Without CUDA it says so in one line and exits 0.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

from fieldfit.bench import report

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@dataclass
class Args:
    fit_seconds: float = 60.0
    """training seconds of each of the image, SDF and NeRF fits"""
    points: int = 2**18
    """points per call of the throughput rows"""
    out: Path = Path("bench_out/check_cuda")
    """where the JSON goes"""


def parity(backend: str, dims: int, table_dtype: torch.dtype) -> dict:
    """Largest differences of values and gradients between ``backend`` and the reference."""
    from fieldfit.fields import hash_encode_torch, make_layout
    from fieldfit.fields.kernels import load_backend

    encode = load_backend(backend)
    layout = make_layout(dims, n_levels=8, n_features=2, log2_table=14, base_res=4, max_res=256)
    gen = torch.Generator(device="cuda").manual_seed(0)
    table = torch.randn(layout.n_entries, 2, device="cuda", generator=gen).to(table_dtype)
    x = torch.rand(100_003, dims, device="cuda", generator=gen)
    results = []
    for fn in (encode, hash_encode_torch):
        t, p = table.clone().requires_grad_(True), x.clone().requires_grad_(True)
        out = fn(p, t, layout)
        grad = torch.linspace(-1, 1, out.numel(), device="cuda").reshape(out.shape)
        results.append((out.float(), *(g.float() for g in torch.autograd.grad(
            out, (p, t), grad.to(out.dtype)))))
    (out, gx, gt), (ref, rx, rt) = results
    tol = 1e-2 if table_dtype == torch.float16 else 1e-4
    err = {"value": (out - ref).abs().max().item(),
           "table_grad": (gt - rt).abs().max().item(),
           "input_grad": ((gx - rx).abs().max() / rx.abs().max().clamp(min=1)).item()}
    return {"result": max(err.values()), "tolerance": tol,
            "ok": all(v <= tol for v in err.values()), **err}


def nerfacc_parity() -> dict:
    """nerfacc's sampling and compositing against the torch renderer on a ball of density."""
    from fieldfit.renderers import MarchOptions, OccupancyConfig, OccupancyGrid, Rays, render_rays

    def density(x, d=None):
        return 50.0 * (x.norm(dim=-1) < 0.5).float()

    def radiance(x, d):
        return density(x), torch.sigmoid(x * 3.0)

    grid = OccupancyGrid(torch.tensor([-1.0, -1, -1, 1, 1, 1]),
                         OccupancyConfig(resolution=64)).cuda()
    grid.update(0, lambda x: density(x) * 0.01, torch.Generator().manual_seed(0))
    gen = torch.Generator(device="cuda").manual_seed(0)
    origins = torch.nn.functional.normalize(torch.randn(8192, 3, device="cuda", generator=gen),
                                            dim=-1) * 1.5
    directions = torch.nn.functional.normalize(
        -origins + 0.3 * torch.randn(8192, 3, device="cuda", generator=gen), dim=-1)
    rays = Rays(origins, directions)
    options = MarchOptions(step_size=0.005, early_stop_eps=1e-4, alpha_thre=0.0,
                           stratified=False)
    background = torch.ones(3, device="cuda")
    out = {b: render_rays(rays, grid, options, density, radiance, background, None, backend=b)
           for b in ("torch", "nerfacc")}
    err = {"rgb": (out["nerfacc"].rgb - out["torch"].rgb).abs().max().item(),
           "opacity": (out["nerfacc"].opacity - out["torch"].opacity).abs().max().item(),
           "samples_rel": abs(out["nerfacc"].n_samples - out["torch"].n_samples)
           / max(out["torch"].n_samples, 1)}
    tol = 5e-3
    return {"result": max(err.values()), "tolerance": tol,
            "ok": all(v <= tol for v in err.values()), **err}


def throughput(backend: str, n: int) -> dict:
    """fwd+bwd points/s of the 3D default hash grid (16 levels x 2, 2^19 table)."""
    from fieldfit.fields import make_layout
    from fieldfit.fields.kernels import load_backend

    encode = load_backend(backend)
    layout = make_layout(3, n_levels=16, n_features=2, log2_table=19, base_res=16, max_res=2048)
    table = (torch.randn(layout.n_entries, 2, device="cuda") * 1e-4).requires_grad_(True)
    x = torch.rand(n, 3, device="cuda")
    best = math.inf
    for _ in range(6):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        encode(x, table, layout).square().sum().backward()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return {"result": n / best, "ok": True}


def fit(kind: str, seconds: float, work: Path) -> dict:
    """A `fieldfit image|sdf|nerf` run with --device cuda; its headline metric."""
    work.mkdir(parents=True, exist_ok=True)
    if kind == "image":
        kodak = SHARED / "images" / "kodak24" / "kodim01.png"
        if kodak.exists():
            target = kodak
        else:
            from fieldfit.scenes import procedural_image

            from fieldfit.io import write_image
            target = work / "procedural.png"
            write_image(target, procedural_image(512, 512).numpy())
        cmd, key = ["image", str(target)], "psnr"
    elif kind == "sdf":
        bunny = SHARED / "meshes" / "bunny.obj"
        if not bunny.exists():
            import trimesh
            bunny = work / "sphere.obj"
            trimesh.creation.icosphere(4).export(bunny)
        cmd, key = ["sdf", str(bunny)], "iou"
    else:
        lego = SHARED / "nerf" / "lego_200"
        if not lego.exists():
            from fieldfit.scenes import write_procedural_scene
            lego = write_procedural_scene(work / "scene", size=128)
        cmd, key = ["nerf", str(lego), "--eval-views", "25", "--video-frames", "0"], "psnr"
    out = work / f"run_{kind}"
    done = subprocess.run([sys.executable, "-m", "fieldfit.cli", *cmd, "--out", str(out),
                           "--overwrite", "--device", "cuda", "--seconds", str(seconds)],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    return {"result": metrics[key], "metric": key, "steps": metrics["steps"], "ok": True}


def main(args: Args) -> None:
    if not torch.cuda.is_available():
        print(f"check_cuda: no CUDA device here (torch {torch.__version__}); nothing to check")
        return
    from fieldfit.fields.kernels import backend_names, runs_on

    cuda = [b for b in backend_names() if b not in ("auto", "torch") and runs_on(b, "cuda")]
    checks: list[tuple[str, Callable[[], dict]]] = []
    for backend in cuda:
        for dims in (2, 3):
            for dtype in (torch.float32, torch.float16):
                label = f"parity {backend} {dims}D {str(dtype)[6:]} (max error)"
                checks.append((label, lambda b=backend, d=dims, t=dtype: parity(b, d, t)))
    checks.append(("parity nerfacc samples+compositing (max error)", nerfacc_parity))
    for backend in ["torch", *cuda]:
        checks.append((f"throughput {backend} 3D (points/s)",
                       lambda b=backend: throughput(b, args.points)))
    work = Path(tempfile.mkdtemp(prefix="check_cuda_"))
    for kind in ("image", "sdf", "nerf"):
        checks.append((f"fit {kind} {args.fit_seconds:.0f} s", lambda k=kind: fit(
            k, args.fit_seconds, work)))
    rows = []
    for label, check in checks:
        start = time.perf_counter()
        try:
            row = check()
        except ImportError as err:
            row = {"result": None, "ok": None, "note": f"skipped: {err}"}
        except Exception as err:  # a failed check is a row, the others still run
            traceback.print_exc()
            row = {"result": None, "ok": False, "note": f"{type(err).__name__}: {err}"}
        rows.append({"check": label, **row, "seconds": time.perf_counter() - start})
        print(rows[-1], flush=True)
    report("check_cuda", rows, ["check", "result", "tolerance", "ok", "note", "seconds"],
           args.out)


if __name__ == "__main__":
    main(tyro.cli(Args))
