"""Cell lists give exactly the KD-tree's k nearest centres (the GPU path, run on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fieldfit.fields.neighbours import CellLists
from scipy.spatial import cKDTree


def clustered(n: int, dims: int, generator: torch.Generator) -> torch.Tensor:
    """Centres crowded on a sphere of radius 0.3 (like kernels on a surface) plus a few
    uniform ones."""
    on = torch.nn.functional.normalize(torch.randn(n - n // 10, dims, generator=generator), dim=-1)
    on = 0.5 + 0.3 * on + 0.01 * torch.randn(on.shape, generator=generator)
    return torch.cat([on, torch.rand(n // 10, dims, generator=generator)]).clamp(0, 1)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("layout", ["uniform", "clustered"])
def test_cell_lists_find_the_trees_neighbours(dims, layout):
    gen = torch.Generator().manual_seed(dims)
    centres = (torch.rand(3000, dims, generator=gen) if layout == "uniform"
               else clustered(3000, dims, gen)).double()
    k = 8
    tree = cKDTree(centres.numpy())
    # small lists force some cells onto the tree fallback; points outside the box too
    cells = CellLists(tree, centres, k, max_candidates=48, chunk=1000)
    assert 0 < int(cells.stored.sum()) < len(cells.stored)  # both paths are taken
    x = torch.cat([torch.rand(5000, dims, generator=gen, dtype=torch.float64),
                   torch.rand(50, dims, generator=gen, dtype=torch.float64) * 1.4 - 0.2])
    index = cells.query(x)
    assert index.shape == (len(x), k)
    ours = np.sort(np.linalg.norm(x.numpy()[:, None] - centres.numpy()[index.numpy()], axis=-1))
    truth = tree.query(x.numpy(), k=k)[0]
    np.testing.assert_allclose(ours, truth, rtol=0, atol=1e-12)
    assert all(len(set(row)) == k for row in index.tolist())
