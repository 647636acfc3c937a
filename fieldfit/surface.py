"""A fitted implicit surface (SDF fits and NeuS scenes) and its extraction to a mesh."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fieldfit.renderers.mesh import extract_mesh
from fieldfit.renderers.mesh_image import shade_mesh

from .io import write_image, write_mesh
from .progress import Tracker


@dataclass
class Surface:
    """What `fieldfit mesh` needs to extract the zero level of a fitted field."""

    sdf: Callable[[torch.Tensor], torch.Tensor]
    """(n, 3) points -> (n,) values, negative inside"""
    bounds: torch.Tensor
    """(2, 3) box to extract over, on the field's device"""
    to_input: Callable[[np.ndarray], np.ndarray]
    """(n, 3) box points -> (n, 3) points in the frame of the fitted data"""
    distance: bool = True
    """whether ``sdf`` is a distance (extracted over a narrow band) or any level-set function
    such as a thresholded density (sampled everywhere)"""

    def write(self, path: Path, resolution: int, chunk: int = 2**18) -> tuple[int, int]:
        """Extract the zero level by marching cubes (``resolution`` cells per axis), write it
        to ``path`` (.ply/.obj, in the data's frame) and a shaded PNG beside it; returns the
        vertex and face counts."""
        with Tracker("extracting the surface", "pt", unit_scale=True) as advance:
            vertices, faces = extract_mesh(self.sdf, resolution, self.bounds, chunk, advance,
                                           narrow=self.distance)
        write_mesh(path, self.to_input(vertices), faces)
        write_image(path.with_suffix(".png"), shade_mesh(vertices, faces))
        return len(vertices), len(faces)
