"""k nearest kernel centres of query points: scipy's KD-tree on the CPU, cell lists on the
query's device elsewhere.

Centres are frozen after initialisation, so the tree (and the cell lists) are built once and
rebuilt only when the centre tensor changes (a new init or ``load_state_dict``). Points
registered as fixed training points (image pixels, presampled SDF points) get their neighbours
precomputed once and are looked up by their exact coordinates afterwards. Free points (NeRF
samples) on a GPU go through :class:`CellLists`, so that no batch makes a round trip to the
CPU (NeuRBF's own code queries a CPU KD-tree every batch).
"""

from __future__ import annotations

import math

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


class CellLists:
    """Exact k nearest centres on the queries' device, from candidate lists per grid cell.

    The unit box is cut into ``G^d`` cells (about two centres per cell). A cell's list holds
    every centre within ``r_k + diag`` of the cell's centre ``c``, where ``r_k`` is the
    distance from ``c`` to its k-th nearest centre and ``diag`` the cell's diagonal: for a
    query ``q`` in the cell, ``r_k(q) <= r_k + diag / 2`` and every centre within that of
    ``q`` lies within ``r_k + diag`` of ``c`` (triangle inequality), so the k nearest of the
    list are the k nearest overall. Lists longer than ``max_candidates`` (cells far from
    every centre) are not stored; their queries, and queries outside the box, use the tree.

    Memory: the (G^d, M) int32 table, M the longest stored list; a query works on (n, M, d)
    differences in chunks of ``chunk`` points.
    """

    def __init__(self, tree: cKDTree, centres: torch.Tensor, k: int,
                 max_candidates: int = 256, chunk: int = 2**14):
        n, d = centres.shape
        self.k, self.chunk, self.dims = k, chunk, d
        self.resolution = g = max(1, min(math.ceil((n / 2) ** (1 / d)), 2 ** (21 // d)))
        axis = (np.arange(g) + 0.5) / g
        cell_centres = np.stack(np.meshgrid(*[axis] * d, indexing="ij"), -1).reshape(-1, d)
        r_k = tree.query(cell_centres, k=k, workers=-1)[0].reshape(len(cell_centres), k)[:, -1]
        lists = tree.query_ball_point(cell_centres, r_k + math.sqrt(d) / g * (1 + 1e-6),
                                      workers=-1)
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        width = int(min(lengths.max(), max_candidates))
        table = np.full((len(lists), width), -1, dtype=np.int32)
        stored = lengths <= width
        for row in np.flatnonzero(stored):
            table[row, : lengths[row]] = lists[row]
        self.tree, self.centres = tree, centres
        self.table = torch.from_numpy(table).to(centres.device)
        self.stored = torch.from_numpy(stored).to(centres.device)

    def query(self, x: torch.Tensor) -> torch.Tensor:
        """(n, k) int64 indices of the k nearest centres of (n, d) ``x`` in [0, 1]."""
        return torch.cat([self._query(part) for part in x.detach().split(self.chunk)]) \
            if len(x) else torch.empty(0, self.k, dtype=torch.int64, device=x.device)

    def _query(self, x: torch.Tensor) -> torch.Tensor:
        g = self.resolution
        ijk = (x * g).floor().long()
        inside = ((ijk >= 0) & (ijk < g)).all(-1)
        cell = torch.zeros(len(x), dtype=torch.int64, device=x.device)
        for j in range(self.dims):
            cell = cell * g + ijk[:, j].clamp(0, g - 1)
        exact = inside & self.stored[cell]
        candidates = self.table[cell].long()  # (n, M), -1 pads
        delta = x[:, None, :] - self.centres[candidates.clamp(min=0)]
        dist = delta.square().sum(-1).masked_fill(candidates < 0, math.inf)
        index = candidates.gather(1, dist.topk(self.k, dim=1, largest=False).indices)
        if not bool(exact.all()):
            index[~exact] = nearest_centres(self.tree, x[~exact], self.k)
        return index


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
        self._cells: CellLists | None = None
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
        self._cells = None  # built on the first query off the CPU
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

    def free_query(self, centres: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The k nearest centres of points not registered as fixed: the tree on the CPU, cell
        lists on other devices."""
        if x.device.type == "cpu":
            return nearest_centres(self._tree, x, self.k)
        if self._cells is None:
            self._cells = CellLists(self._tree, centres.detach(), self.k)
        return self._cells.query(x)

    def query(self, centres: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(n, k) int64 indices into ``centres`` of the k nearest centres of (n, d) ``x``."""
        self._sync(centres)
        if self._fixed_keys is None:
            return self.free_query(centres, x)
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
            index[miss] = self.free_query(centres, x[miss])
        return index
