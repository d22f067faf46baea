"""Small shared helpers on point sets and polylines (one home for each, used by several stages)."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving, for merges done one at a time (Kruskal-style walks); for the
    components of a whole edge list use :func:`components`."""

    def __init__(self, n: int):
        self.parent = np.arange(n)
        self._size = np.ones(n, dtype=np.int64)

    def find(self, a: int) -> int:
        p = self.parent
        while p[a] != a:
            p[a] = p[p[a]]
            a = p[a]
        return int(a)

    def link(self, root_a: int, root_b: int) -> int:
        """Put the set of root ``root_b`` under root ``root_a``; returns ``root_a`` (callers that keep a value per set,
        indexed by its root, choose which root survives)."""
        self.parent[root_b] = root_a
        self._size[root_a] += self._size[root_b]
        return root_a

    def union(self, a: int, b: int) -> bool:
        """Join the sets holding ``a`` and ``b`` (``a``'s root survives); False when they were one set already."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.link(ra, rb)
        return True

    def size(self, a: int) -> int:
        """Members of the set holding ``a``."""
        return int(self._size[self.find(a)])


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected-component labels (n,) int64 of the graph on n nodes with edges (i, j) (union-find, in C)."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    g = coo_matrix((np.ones(len(i), dtype=np.int8), (np.asarray(i), np.asarray(j))), shape=(n, n))
    return connected_components(g, directed=False)[1].astype(np.int64)


def cluster_points(z: np.ndarray, tol: float) -> np.ndarray:
    """Labels (N,) of the connected components of points (N, d) closer than ``tol`` (KD-tree pairs)."""
    if len(z) == 0:
        return np.zeros(0, dtype=np.int64)
    pairs = cKDTree(z).query_pairs(tol, output_type="ndarray")
    return components(len(z), pairs[:, 0], pairs[:, 1])


def arc_length(poly: np.ndarray) -> np.ndarray:
    """Cumulative arc length (M,) along the polyline ``poly`` (M, d), starting at 0, in its own units."""
    poly = np.asarray(poly, dtype=float)
    seg = np.linalg.norm(np.diff(poly, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def minimax_levels(n: int, i: np.ndarray, j: np.ndarray, level: np.ndarray, qi: np.ndarray, qj: np.ndarray
                   ) -> np.ndarray:
    """For each query pair (qi, qj), the lowest ``level`` at which edges (i, j) with those levels first join them:
    the minimax edge level over all paths (bottleneck distance), inf where no path joins them, the node's own
    -inf where qi == qj.

    Kruskal over the edges sorted by level, with each set keeping its pending queries; a merge walks the smaller set's
    queries (small-to-large), so Q queries cost O((E + Q log n) α(n)) rather than a tree walk per query.

    Args:
        n: nodes 0..n-1.
        i, j, level: (E,) edge end points and levels.
        qi, qj: (Q,) query pairs.
    Returns:
        (Q,) float levels.
    """
    qi, qj = np.asarray(qi, dtype=np.int64), np.asarray(qj, dtype=np.int64)
    out = np.full(len(qi), np.inf)
    out[qi == qj] = -np.inf
    pending: dict[int, list[int]] = {}
    for q in np.nonzero(qi != qj)[0].tolist():
        pending.setdefault(int(qi[q]), []).append(q)
        pending.setdefault(int(qj[q]), []).append(q)
    uf = UnionFind(n)
    order = np.argsort(np.asarray(level, dtype=float), kind="stable")
    ii, jj, ll = np.asarray(i)[order].tolist(), np.asarray(j)[order].tolist(), np.asarray(level, dtype=float)[order]
    for a, b, lev in zip(ii, jj, ll.tolist()):
        ra, rb = uf.find(int(a)), uf.find(int(b))
        if ra == rb:
            continue
        qa, qb = pending.pop(ra, []), pending.pop(rb, [])
        if len(qa) < len(qb):
            ra, rb, qa, qb = rb, ra, qb, qa
        # ra's set is the one with more pending queries: it survives, the smaller list is walked
        keep = qa
        for q in qb:
            if np.isinf(out[q]) and out[q] > 0:
                other = int(qj[q]) if uf.find(int(qi[q])) == rb else int(qi[q])
                if uf.find(other) == ra:
                    out[q] = lev
                else:
                    keep.append(q)
        uf.link(ra, rb)
        if keep:
            pending[ra] = keep
    return out
