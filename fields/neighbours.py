"""k nearest kernel centres of query points, on the CPU with scipy's KD-tree.

Centres are frozen after initialisation, so the tree is built once and rebuilt only when the
centre tensor changes (a new init or ``load_state_dict``). Points registered as fixed training
points (image pixels, presampled SDF points) get their neighbours precomputed once and are
looked up by their exact coordinates afterwards.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

QUERY_CHUNK = 2**18
"""points per KD-tree query: bounds the float64 copy and the (chunk, k) result arrays"""

_KEY_BITS = 21  # bits per coordinate of a point's lookup key; 3 * 21 < 63


def nearest_centres(tree: cKDTree, points: torch.Tensor, k: int) -> torch.Tensor:
    """(n, k) int64 indices of the k nearest centres (Euclidean) of (n, d) ``points``.

    Queried on the CPU in chunks of :data:`QUERY_CHUNK` points; returned on ``points.device``.
    """
    chunks = []
    for part in points.detach().split(QUERY_CHUNK):
        _, index = tree.query(part.cpu().double().numpy(), k=k, workers=-1)
        chunks.append(torch.from_numpy(np.asarray(index, dtype=np.int64).reshape(len(part), k)))
    if not chunks:
        return torch.empty(0, k, dtype=torch.int64, device=points.device)
    return torch.cat(chunks).to(points.device)


def point_keys(points: torch.Tensor) -> torch.Tensor:
    """(n,) int64 keys of (n, d <= 3) points in [0, 1]: coordinates quantised to 2^-20."""
    q = (points.detach() * 2**20).round().long().clamp(0, 2**_KEY_BITS - 1)
    key = torch.zeros(len(points), dtype=torch.int64, device=points.device)
    for j in range(points.shape[1]):
        key = key | (q[:, j] << (_KEY_BITS * j))
    return key


class NeighbourSearch:
    """The k nearest of a set of frozen centres, for any query points.

    Memory: the tree holds the centres; a query works in chunks of :data:`QUERY_CHUNK` points;
    fixed points cost 8 (key) + 4 d (coordinates) + 4 k (neighbours) bytes each.
    """

    def __init__(self, k: int):
        self.k = k
        self._version: tuple | None = None
        self._tree: cKDTree | None = None
        self._fixed_points: torch.Tensor | None = None  # (m, d), sorted by key
        self._fixed_keys: torch.Tensor | None = None  # (m,) int64, sorted
        self._fixed_index: torch.Tensor | None = None  # (m, k) int32

    def _sync(self, centres: torch.Tensor) -> None:
        """Rebuild the tree (and the fixed points' table) when ``centres`` has changed."""
        # a tensor's _version counts its in-place writes, such as load_state_dict's copies
        version = (centres.data_ptr(), centres._version, tuple(centres.shape))
        if version == self._version:
            return
        self._tree = cKDTree(centres.detach().cpu().double().numpy())
        self._version = version
        if self._fixed_points is not None:
            index = nearest_centres(self._tree, self._fixed_points, self.k)
            self._fixed_index = index.to(torch.int32)

    def remember(self, centres: torch.Tensor, points: torch.Tensor) -> None:
        """Precompute the neighbours of (m, d) fixed ``points`` (in [0, 1])."""
        keys = point_keys(points)
        keys, order = torch.sort(keys)
        first = torch.ones_like(keys, dtype=torch.bool)
        first[1:] = keys[1:] != keys[:-1]  # points sharing a key: keep one, others use the tree
        self._fixed_keys = keys[first]
        self._fixed_points = points.detach()[order[first]].clone()
        self._version = None
        self._sync(centres)

    def query(self, centres: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(n, k) int64 indices into ``centres`` of the k nearest centres of (n, d) ``x``."""
        self._sync(centres)
        if self._fixed_keys is None:
            return nearest_centres(self._tree, x, self.k)
        if self._fixed_keys.device != x.device:
            self._fixed_keys = self._fixed_keys.to(x.device)
            self._fixed_points = self._fixed_points.to(x.device)
            self._fixed_index = self._fixed_index.to(x.device)
        keys = point_keys(x)
        pos = torch.searchsorted(self._fixed_keys, keys).clamp(max=len(self._fixed_keys) - 1)
        hit = (self._fixed_keys[pos] == keys) & (self._fixed_points[pos] == x.detach()).all(-1)
        index = self._fixed_index[pos].long()
        if not bool(hit.all()):
            miss = ~hit
            index[miss] = nearest_centres(self._tree, x[miss], self.k)
        return index
