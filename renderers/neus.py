"""NeuS: volume rendering of a signed distance field (Wang et al., NeurIPS 2021).

The opacity of a ray interval comes from the logistic CDF ``Phi_s(f) = sigmoid(s f)`` of the
SDF ``f`` at its two ends (NeuS Eq. 13):

    alpha = max((Phi_s(f(t_start)) - Phi_s(f(t_end))) / Phi_s(f(t_start)), 0)

with a learned sharpness ``s`` (:class:`Sharpness`). As in NeuS's code, the end values are
estimated from the SDF and its gradient at the interval's midpoint, so one field query per
sample suffices; compositing then uses :func:`~.volume.weights_from_alpha`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .cameras import Rays
from .occupancy import OccupancyGrid
from .render import MarchOptions, generator_device, render_front_to_back
from .volume import RenderOutput

# (points (n, 3), directions (n, 3)) -> (colours (n, 3), sdf (n,), sdf gradients (n, 3))
SdfRadianceFn = Callable[[torch.Tensor, torch.Tensor],
                         tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class Sharpness(nn.Module):
    """NeuS's learned sharpness ``s = exp(10 v)`` (its "single variance network"); the
    logistic density has standard deviation ``pi / (s sqrt(3))``. ``v`` starts at ``init``
    (0.3: s = e^3 = 20)."""

    def __init__(self, init: float = 0.3):
        super().__init__()
        self.variance = nn.Parameter(torch.tensor(float(init)))

    def forward(self) -> torch.Tensor:
        """() the current ``s``."""
        return torch.exp(self.variance * 10.0).clamp(1e-6, 1e6)


def neus_alpha(sdf: torch.Tensor, cos: torch.Tensor, dt: torch.Tensor, s: torch.Tensor,
               cos_anneal_ratio: float = 1.0) -> torch.Tensor:
    """Opacities (n,) of ray intervals.

    Args:
        sdf: (n,) SDF at the intervals' midpoints.
        cos: (n,) cosine between the ray direction and the SDF gradient there.
        dt: (n,) interval lengths.
        s: () sharpness.
        cos_anneal_ratio: NeuS's warm-up: 0 lets intervals facing away from the surface keep
            some opacity (``cos`` mapped to ``(cos - 1) / 2``), 1 is the exact formula.
    """
    iter_cos = -(F.relu(-cos * 0.5 + 0.5) * (1.0 - cos_anneal_ratio)
                 + F.relu(-cos) * cos_anneal_ratio)
    prev_cdf = torch.sigmoid((sdf - iter_cos * dt * 0.5) * s)
    next_cdf = torch.sigmoid((sdf + iter_cos * dt * 0.5) * s)
    # NeuS also adds 1e-5 to the numerator; with the hundreds of samples per ray of a fine
    # marcher that floor adds up to visible fog, so only the denominator keeps it
    return ((prev_cdf - next_cdf) / (prev_cdf + 1e-5)).clamp(0.0, 1.0)


def sdf_occupancy(sdf: torch.Tensor, s: torch.Tensor, step: float) -> torch.Tensor:
    """(n,) the largest opacity an interval of length ``step`` centred where the SDF is ``sdf``
    (n,) can have (ray along the gradient): the value an occupancy grid thresholds."""
    return neus_alpha(sdf, torch.full_like(sdf, -1.0), torch.full_like(sdf, step), s)


def render_sdf_rays(rays: Rays, grid: OccupancyGrid, options: MarchOptions,
                    field_fn: SdfRadianceFn, s: torch.Tensor,
                    background: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, cos_anneal_ratio: float = 1.0,
                    backend: str = "auto") -> tuple[RenderOutput, torch.Tensor]:
    """Volume-render ``rays`` of an SDF field through the occupied cells of ``grid``.

    Samples are evaluated front to back, once each, and a ray stops once its transmittance
    falls below ``options.early_stop_eps`` (:func:`~.render.render_front_to_back`). Returns
    the render and the (n_evaluated, 3) SDF gradients at every evaluated sample, for an eikonal
    term.
    """
    n_rays = len(rays)
    origins, directions, views = rays.origins, rays.directions, rays.view_directions
    near = torch.full((n_rays,), options.near, device=origins.device)
    if options.stratified:
        jitter = torch.rand(n_rays, generator=generator, device=generator_device(generator))
        near = near + jitter.to(origins.device) * options.step_size
    samples = grid.sample(origins, directions, options.step_size, near,
                          torch.full_like(near, options.far), skip_empty=options.skip_empty,
                          backend=backend)
    gradients: list[torch.Tensor] = []

    def rgb_alpha_fn(t_starts, t_ends, ray_indices):
        mids = 0.5 * (t_starts + t_ends)
        d = directions[ray_indices]
        rgb, sdf, grad = field_fn(origins[ray_indices] + mids[:, None] * d, views[ray_indices])
        gradients.append(grad)
        cos = (d * grad).sum(-1)
        return rgb, neus_alpha(sdf, cos, t_ends - t_starts, s, cos_anneal_ratio)

    out = render_front_to_back(samples, n_rays, background=background,
                               early_stop_eps=options.early_stop_eps, rgb_alpha_fn=rgb_alpha_fn,
                               backend=backend)
    return out, torch.cat(gradients) if gradients else origins.new_zeros(0, 3)
