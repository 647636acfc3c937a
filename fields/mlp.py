"""Fully connected decoders: plain, SIREN (sine activations) and NeuRBF's sinusoidal composition
on the first hidden layer. CAM (:mod:`.cam`) modulates the hidden layers of this MLP."""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

_MIXED_DTYPE: contextvars.ContextVar[torch.dtype | None] = contextvars.ContextVar(
    "mlp_mixed_dtype", default=None)


@contextlib.contextmanager
def mixed_precision_mlps(dtype: torch.dtype | None) -> Iterator[None]:
    """Within the block, every :class:`MLP` runs its layers under autocast to ``dtype``
    (float16 on CUDA, bfloat16 on a CPU with bfloat16 matrix instructions; None: float32) and
    returns float32. Only the MLPs: ray generation, encodings, compositing and losses keep
    their own dtypes."""
    token = _MIXED_DTYPE.set(dtype)
    try:
        yield
    finally:
        _MIXED_DTYPE.reset(token)


class Sine(nn.Module):
    """``sin(omega * x)`` (SIREN, Sitzmann et al. 2020)."""

    def __init__(self, omega: float = 30.0):
        super().__init__()
        self.omega = omega

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega * x)

    def extra_repr(self) -> str:
        return f"omega={self.omega}"


def log_spaced(low: float, high: float, n: int) -> torch.Tensor:
    """(n,) frequencies from ``low`` to ``high``, evenly spaced in log2 (NeuRBF's ``m``)."""
    return torch.exp2(torch.linspace(math.log2(low), math.log2(high), n))


class SineComposition(nn.Module):
    """``h + sin(h * m0)`` on (n, width) features, ``m0`` log-spaced over the width (NeuRBF
    Eq. 7, used in place of the first hidden layer's activation)."""

    def __init__(self, width: int, low: float, high: float):
        super().__init__()
        self.register_buffer("freqs", log_spaced(low, high, width), persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + torch.sin(h * self.freqs)


ACTIVATIONS = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "sine": Sine,
    "none": nn.Identity,
}
Activation = Literal[tuple(ACTIVATIONS)]  # type: ignore[valid-type]
"""an activation name (the CLI lists and checks them)"""


def make_activation(name: str) -> nn.Module:
    """Activation module by (case-insensitive) name."""
    try:
        return ACTIVATIONS[name.lower()]()
    except KeyError:
        valid = sorted(ACTIVATIONS)
        raise ValueError(f"unknown activation {name!r}; choose from {valid}") from None


@dataclass
class MLPConfig:
    """MLP decoder: n_hidden layers of width `width`, then a linear output."""

    width: int = 64
    """hidden width"""
    n_hidden: int = 2
    """number of hidden layers"""
    activation: Activation = "relu"
    """hidden activation (sine: SIREN, with SIREN's weight init)"""
    output_activation: Activation = "none"
    """activation on the output"""
    omega: float = 30.0
    """frequency factor of the sine activation, sin(omega * x)"""
    sine_composition: tuple[float, float] | None = None
    """(low, high): the first hidden layer uses h + sin(h * m0), m0 log-spaced from low to high
    over the width, instead of its activation (NeuRBF)"""

    name: ClassVar[str] = "mlp"

    def __post_init__(self) -> None:
        if self.width < 1 or self.n_hidden < 0:
            raise ValueError("mlp: width must be >= 1 and n_hidden >= 0")
        make_activation(self.activation)
        make_activation(self.output_activation)
        sc = self.sine_composition
        if sc is not None and not (len(sc) == 2 and 0 < sc[0] <= sc[1]):
            raise ValueError(f"mlp: sine_composition {sc} must be (low, high), 0 < low <= high")

    def build(self, in_dims: int, out_dims: int) -> MLP:
        return MLP(self, in_dims, out_dims)


def siren_init(linears: list[nn.Linear], omega: float) -> None:
    """SIREN weight init: U(-1/in, 1/in) for the first layer, U(-sqrt(6/in)/omega, ...) after."""
    with torch.no_grad():
        for i, linear in enumerate(linears):
            fan_in = linear.in_features
            bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / omega
            linear.weight.uniform_(-bound, bound)


class MLP(nn.Module):
    """(n, in_dims) -> (n, out_dims). ``point`` and ``cond`` are accepted and ignored (a
    decoder's interface; CAM decoders modulate on them)."""

    def __init__(self, config: MLPConfig, in_dims: int, out_dims: int):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = in_dims
        for i in range(config.n_hidden):
            layers += [nn.Linear(width, config.width), self._hidden_activation(i)]
            width = config.width
        layers += [nn.Linear(width, out_dims), make_activation(config.output_activation)]
        self.net = nn.Sequential(*layers)
        if config.activation.lower() == "sine":
            siren_init([m for m in self.net if isinstance(m, nn.Linear)], config.omega)

    def _hidden_activation(self, layer: int) -> nn.Module:
        c = self.config
        if layer == 0 and c.sine_composition is not None:
            return SineComposition(c.width, *c.sine_composition)
        if c.activation.lower() == "sine":
            return Sine(c.omega)
        if c.activation.lower() == "relu":
            # in place on the fresh output of the layer before (or of CAM's modulation): no
            # second (n, width) tensor per layer; +3-4% NeRF steps/s on a 2-core CPU
            return nn.ReLU(inplace=True)
        return make_activation(c.activation)

    def forward(
        self, h: torch.Tensor, point: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
        between: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``between(i, z)``, when given, maps hidden layer i's pre-activation z (n, width)
        before its activation (CAM's normalise-and-modulate step)."""
        dtype = _MIXED_DTYPE.get()
        if dtype is None:
            return self.net[-1](self._linear_out(h, between))
        with torch.autocast(h.device.type, dtype=dtype):
            z = self._linear_out(h, between)
        return self.net[-1](z.float())  # the output (and its activation) in float32

    def _linear_out(self, h: torch.Tensor,
                    between: Callable[[int, torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
        """The hidden layers and the output layer, before the output activation."""
        layers = list(self.net)
        if between is None:
            for layer in layers[:-1]:
                h = layer(h)
            return h
        for i in range(self.config.n_hidden):
            h = layers[2 * i + 1](between(i, layers[2 * i](h)))
        return layers[-2](h)
