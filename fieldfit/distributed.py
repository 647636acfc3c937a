"""The process group of a run launched by ``torchrun``: joining it, the rank's share of a
global batch, gradient averaging, and the few collectives the trainer and tasks need.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) every function is the one-process
identity: rank 0 of 1, shares are the whole batch, reductions return their input.

Every collective goes through :func:`_collective`, which turns the error of a peer that died
(or stopped answering within ``--dist-timeout``) into :class:`PeerLost`, one line naming this
rank.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import torch

from .device import stream_seed
from .errors import UserError

T = TypeVar("T")

BUCKET_BYTES = 4 << 20
"""gradients of at least this size are reduced in place, one call each; smaller ones are
packed into flat buckets of about this size"""


class PeerLost(UserError):
    """A collective failed: another rank died or did not answer within the timeout."""


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (``WORLD_SIZE`` is set)."""
    return "WORLD_SIZE" in os.environ


def restarted() -> bool:
    """Whether ``torchrun --max-restarts`` restarted this worker after a failure."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def _dist():
    import torch.distributed as dist

    return dist


_device = torch.device("cpu")  # where the backend's collectives take their tensors


def active() -> bool:
    """Whether this process is in an initialised process group."""
    dist = _dist()
    return dist.is_available() and dist.is_initialized()


def join(backend: str, timeout_s: float) -> None:
    """Join ``torchrun``'s process group (``gloo`` or ``nccl``) unless already in one; a
    collective that waits longer than ``timeout_s`` seconds for a peer fails."""
    if not launched() or active():
        return
    global _device
    if backend == "nccl":
        _device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(_device)
    timeout = timedelta(seconds=timeout_s)
    try:
        _dist().init_process_group(backend, timeout=timeout, **_attempt_store(timeout))
    except (RuntimeError, ValueError) as err:
        raise UserError(f"rank {os.environ.get('RANK', '?')}: could not join the process group "
                        f"({_first_line(err)})") from None


def _attempt_store(timeout: timedelta) -> dict:
    """The process group's store under ``torchrun --max-restarts``: the agent's store, with
    its keys under the restart's prefix. (A restarted group that shares the agent's store
    reads the dead workers' addresses otherwise, and fails to connect.) Empty, for the
    default ``env://`` set-up, on a first attempt or when the agent shares no store."""
    if not restarted() or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    dist = _dist()
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                          int(os.environ["WORLD_SIZE"]), is_master=False, timeout=timeout)
    prefix = f"/fieldfit/attempt_{os.environ['TORCHELASTIC_RESTART_COUNT']}"
    return {"store": dist.PrefixStore(prefix, store), "rank": int(os.environ["RANK"]),
            "world_size": int(os.environ["WORLD_SIZE"])}


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return _dist().get_rank() if active() else 0


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    return _dist().get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the one that writes metrics, outputs and checkpoints."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """``device`` for this rank: CUDA ranks take the GPU of their ``LOCAL_RANK``."""
    if device.type != "cuda" or not launched():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise UserError(f"local rank {local}: only {torch.cuda.device_count()} CUDA device(s) "
                        "here; use --nproc-per-node <= the GPU count")
    return torch.device("cuda", local)


def backend_for(device: torch.device) -> str:
    """nccl for CUDA runs, gloo on the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def _first_line(err: BaseException) -> str:
    """The first sentence of ``err``, without a leading ``[source:line]``."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(err).strip())
    return text.splitlines()[0].split(". ")[0] if text else type(err).__name__


def _collective(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn`` as a collective; its failure becomes :class:`PeerLost`."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as err:  # DistBackendError, gloo's connection and timeout errors
            raise PeerLost(f"rank {rank()} of {world_size()} lost its peers "
                           f"({_first_line(err)})") from None

    return wrapped


# -- the rank's share of a global batch ---------------------------------------------------
def check_share(n: int, option: str) -> int:
    """The per-rank share of a global count ``n``; ValueError naming ``option`` unless the
    ranks split it evenly."""
    world = world_size()
    if n % world:
        raise ValueError(f"{option} {n}: must be a multiple of the {world} ranks (it is the "
                         "global batch, split evenly across them)")
    return n // world


def share(x: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous slice of the global batch ``x`` (n, ...), n a multiple of the
    world size: rank r takes rows [r n / w, (r + 1) n / w)."""
    world = world_size()
    if world == 1:
        return x
    size = check_share(len(x), "batch")
    return x[rank() * size:(rank() + 1) * size]


def rank_generator(generator: torch.Generator, step: int) -> torch.Generator:
    """The generator of this rank's own draws at ``step``, once the shared global-batch
    draws are done (e.g. the stratified jitter of its rays): ``generator`` itself on one
    process; on several, a fresh one seeded from ``generator``'s seed, the step and the rank,
    so the shared stream is not advanced and stays the same at any world size."""
    if world_size() == 1:
        return generator
    seed = stream_seed(generator.initial_seed(), f"step{step}", rank())
    return torch.Generator(generator.device).manual_seed(seed)


# -- reductions -----------------------------------------------------------------------------
@_collective
def all_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over the ranks (a new tensor; ``x`` itself on one process)."""
    if world_size() == 1:
        return x
    total = x.to(_device, copy=True)
    _dist().all_reduce(total)
    return total.to(x.device)


@_collective
def mean_values(values: dict[str, float]) -> dict[str, float]:
    """Each float averaged over the ranks (every rank must pass the same keys)."""
    if world_size() == 1:
        return values
    stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=_device)
    _dist().all_reduce(stacked)
    return dict(zip(values, (stacked / world_size()).tolist(), strict=True))


@_collective
def barrier() -> None:
    """Wait for every rank."""
    if world_size() > 1:
        _dist().barrier()


@_collective
def broadcast_object(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (pickled)."""
    if world_size() == 1:
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


@_collective
def all_gather_objects(obj: Any) -> list:
    """Every rank's ``obj``, in rank order (pickled)."""
    if world_size() == 1:
        return [obj]
    boxes: list = [None] * world_size()
    _dist().all_gather_object(boxes, obj)
    return boxes


@_collective
def broadcast_module(module: torch.nn.Module) -> None:
    """Overwrite ``module``'s parameters and buffers with rank 0's, in place."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            _dist().broadcast(tensor.data, src=0)


class GradientAverager:
    """Averages the gradients of ``params`` over the ranks with explicit all-reduces.

    A gradient of at least :data:`BUCKET_BYTES` (a hash table) is reduced in place, one call,
    no copy; the small ones (MLPs) are packed, per dtype, into flat buckets with one flag per
    parameter that counts the ranks where it had a gradient, so a parameter no rank touched
    keeps ``grad = None`` (Adam then leaves it alone, as on one process). ``seconds`` sums
    the time spent in the all-reduces.
    """

    def __init__(self, params: Sequence[torch.nn.Parameter], bucket_bytes: int = BUCKET_BYTES):
        self.params = list(params)
        self.bucket_bytes = bucket_bytes
        self.seconds = 0.0
        self.calls = 0

    @_collective
    def average(self) -> bool:
        """All-reduce and average the gradients; returns whether any parameter has one."""
        dist, world = _dist(), world_size()
        t0 = time.perf_counter()
        large = [p for p in self.params if p.numel() * p.element_size() >= self.bucket_bytes]
        small = [p for p in self.params if p.numel() * p.element_size() < self.bucket_bytes]
        flags = torch.tensor([p.grad is not None for p in self.params],
                             dtype=torch.float32, device=self.params[0].device)
        for p in large:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
        for bucket in self._buckets(small):
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p))
                              .reshape(-1) for p in bucket])
            dist.all_reduce(flat)
            offset = 0
            for p in bucket:
                p.grad = flat[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
        dist.all_reduce(flags)
        any_grad = False
        for p, flag in zip(self.params, flags.tolist(), strict=True):
            if flag == 0:
                p.grad = None
            else:
                p.grad.div_(world)
                any_grad = True
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return any_grad

    def _buckets(self, params: list[torch.nn.Parameter]) -> list[list[torch.nn.Parameter]]:
        """``params`` grouped by dtype and device into buckets of about ``bucket_bytes``."""
        buckets: list[list[torch.nn.Parameter]] = []
        sizes: list[int] = []
        keys: list[tuple] = []
        for p in params:
            key = (p.dtype, p.device)
            nbytes = p.numel() * p.element_size()
            i = next((i for i, k in enumerate(keys)
                      if k == key and sizes[i] + nbytes <= self.bucket_bytes), None)
            if i is None:
                buckets.append([])
                sizes.append(0)
                keys.append(key)
                i = len(buckets) - 1
            buckets[i].append(p)
            sizes[i] += nbytes
        return buckets
