"""Which pairs of minima to join by bands: near-linear in the number of minima K.

Three questions, one function each:

- :func:`candidate_pairs`: the first round, each minimum's k nearest neighbours plus a spanning tree of the
  neighbour graph (the Euclidean minimum spanning tree wherever that lies inside the k-nearest-neighbour graph, which
  it almost always does; components of that graph are bridged by their nearest points);
- :func:`missing_connections`: the pairs that would join the remaining components, Dijkstra over the same sparse
  neighbour graph with the components contracted (Wales' "missing connection" strategy);
- :func:`lower_line_pairs`: the tree check. For each minimum's ``k_probe`` nearest neighbours the straight segment
  between them is a path, so its highest energy bounds the minimax barrier between them from above. Where that bound
  is below the barrier the network currently implies, the network has missed a lower saddle and its merge tree is
  provably wrong at that pair: those pairs are tried next.

Every graph here is a KD-tree neighbour graph: O(K k log K) time and O(K k) memory, never a K × K matrix.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra, minimum_spanning_tree
from scipy.spatial import cKDTree

from energyscope._geometry import minimax_levels

LINE_POINTS = 24          # interior points per probed segment
PROBE_ROWS = 65536        # energy rows per probe batch (memory: rows × d × 8 bytes)
GOLDEN_STEPS = 40         # golden-section steps refining each segment's maximum (interval × 0.618^40 ≈ 4e-9)


def neighbour_pairs(z: np.ndarray, k: int) -> np.ndarray:
    """(P, 2) pairs i < j where j is among i's ``k`` nearest neighbours (or i among j's), sorted, no repeats."""
    K = len(z)
    k = min(int(k), K - 1)
    if k <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    _, idx = cKDTree(z).query(z, k=k + 1)
    idx = np.atleast_2d(idx)
    a = np.repeat(np.arange(K), idx.shape[1])
    b = idx.ravel()
    keep = a != b
    p = np.column_stack([np.minimum(a, b), np.maximum(a, b)])[keep]
    return np.unique(p, axis=0).astype(np.int64)


def _bridges(z: np.ndarray, labels: np.ndarray, n_each: int = 1) -> np.ndarray:
    """(P, 2) pairs joining each component (``labels``) to its ``n_each`` nearest points outside it."""
    out = []
    for c in np.unique(labels):
        inside, outside = np.nonzero(labels == c)[0], np.nonzero(labels != c)[0]
        if not len(outside):
            continue
        dist, idx = cKDTree(z[outside]).query(z[inside], k=1)
        best = np.argsort(dist)[:n_each]
        for r in best:
            a, b = int(inside[r]), int(outside[int(idx[r])])
            out.append((min(a, b), max(a, b)))
    return np.array(sorted(set(out)), dtype=np.int64).reshape(-1, 2)


def neighbour_graph(z: np.ndarray, k: int) -> np.ndarray:
    """(P, 2) pairs: the k-nearest-neighbour graph (at least 1 neighbour), plus bridges until it is connected."""
    K = len(z)
    p = neighbour_pairs(z, max(int(k), 1))
    while True:
        n_comp, labels = connected_components(_adjacency(K, p), directed=False)
        if n_comp <= 1:
            return p
        p = np.unique(np.concatenate([p, _bridges(z, labels)]), axis=0)


def _adjacency(K: int, p: np.ndarray, w: np.ndarray | None = None) -> coo_matrix:
    w = np.ones(len(p)) if w is None else w
    return coo_matrix((w, (p[:, 0], p[:, 1])), shape=(K, K)).tocsr()


def candidate_pairs(z: np.ndarray, k_nearest: int, k_graph: int | None = None) -> list[tuple[int, int]]:
    """Pairs (i < j) from each point's ``k_nearest`` nearest neighbours plus a spanning tree of short segments.

    The tree is the minimum spanning tree of the ``k_graph``-nearest-neighbour graph (default max(k_nearest, 8)),
    bridged where that graph falls apart: the Euclidean minimum spanning tree in all but contrived point sets, at
    O(K k log K) cost.

    Args:
        z: (K, d) positions.
        k_nearest: neighbours per point (0 for the spanning tree alone).
        k_graph: neighbours per point in the graph the tree is taken from.
    """
    K = len(z)
    if K < 2:
        return []
    z = np.asarray(z, dtype=float)
    pairs = {tuple(p) for p in neighbour_pairs(z, k_nearest).tolist()}
    g = neighbour_graph(z, max(int(k_nearest), 8) if k_graph is None else int(k_graph))
    dist = np.linalg.norm(z[g[:, 0]] - z[g[:, 1]], axis=1)
    # a zero length (coincident points) would read as "no edge"; keep it as a tiny positive weight
    mst = minimum_spanning_tree(_adjacency(K, g, np.maximum(dist, np.finfo(float).tiny))).tocoo()
    pairs.update((min(int(a), int(b)), max(int(a), int(b))) for a, b in zip(mst.row, mst.col))
    return sorted(pairs)


def missing_connections(z: np.ndarray, energy: np.ndarray, comp: np.ndarray, usable: np.ndarray, blocked: set,
                        k_graph: int = 8) -> list[tuple[int, int]]:
    """Pairs to try next so that every component joins the lowest usable minimum's.

    Dijkstra from that minimum over squared segment lengths in a sparse graph: the ``k_graph``-nearest-neighbour
    graph of the usable minima, bridged between components, minus the ``blocked`` pairs (tries used up), with each
    component's members chained at zero cost. Each other component is reached at its nearest member, and the pairs
    on that route that cross components are returned. A component that the graph cannot reach gets up to 8 more
    bridges per round of the graph, so no reachable component is given up while untried pairs remain.

    Args:
        z: (K, d) minima; energy: (K,); comp: (K,) component label of each minimum in the network.
        usable: (K,) bool, minima that may be paired.
        blocked: pairs (i < j) not to use.
        k_graph: neighbours per minimum in the distance graph.
    """
    idx = np.nonzero(usable)[0]
    if len(idx) < 2 or len(np.unique(comp[idx])) < 2:
        return []
    zu, cu = z[idx], comp[idx]
    p = neighbour_graph(zu, k_graph)
    src = int(np.argmin(energy[idx]))
    for n_extra in (0, 2, 8):
        if n_extra:
            p = np.unique(np.concatenate([p, _bridges(zu, cu, n_extra)]), axis=0)
        dist, pred = _contracted_dijkstra(zu, cu, p, idx, blocked, src)
        todo, unreached = _routes(cu, dist, pred, src)
        if not unreached:
            break
    return sorted((min(int(idx[a]), int(idx[b])), max(int(idx[a]), int(idx[b]))) for a, b in todo)


def _contracted_dijkstra(zu: np.ndarray, cu: np.ndarray, p: np.ndarray, idx: np.ndarray, blocked: set, src: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Dijkstra distances and predecessors from ``src`` over the usable minima: cross-component pairs of ``p`` at
    their squared length (blocked ones removed), members of one component chained at (almost) zero cost."""
    K = len(zu)
    cross = cu[p[:, 0]] != cu[p[:, 1]]
    glob = [(min(int(idx[a]), int(idx[b])), max(int(idx[a]), int(idx[b]))) for a, b in p[cross]]
    ok = np.array([g not in blocked for g in glob], dtype=bool)
    pc = p[cross][ok] if len(glob) else np.zeros((0, 2), dtype=np.int64)
    w = np.sum((zu[pc[:, 0]] - zu[pc[:, 1]]) ** 2, axis=1)
    order = np.argsort(cu, kind="stable")
    same = cu[order[1:]] == cu[order[:-1]]
    chain = np.column_stack([order[:-1][same], order[1:][same]])
    tiny = np.finfo(float).tiny
    allp = np.concatenate([pc, chain]).astype(np.int64)
    allw = np.concatenate([np.maximum(w, tiny), np.full(len(chain), tiny)])
    g = coo_matrix((allw, (allp[:, 0], allp[:, 1])), shape=(K, K)).tocsr()
    return dijkstra(g, directed=False, indices=src, return_predecessors=True)


def _routes(cu: np.ndarray, dist: np.ndarray, pred: np.ndarray, src: int) -> tuple[set, bool]:
    """The component-crossing pairs on the route to each other component's nearest member; and whether some
    component could not be reached."""
    todo: set[tuple[int, int]] = set()
    unreached = False
    for c in set(cu.tolist()) - {int(cu[src])}:
        nodes = np.nonzero(cu == c)[0]
        t = int(nodes[np.argmin(dist[nodes])])
        if not np.isfinite(dist[t]):
            unreached = True
            continue
        while t != src and pred[t] >= 0:
            q = int(pred[t])
            if cu[q] != cu[t]:
                todo.add((min(q, t), max(q, t)))
            t = q
    return todo, unreached


def line_maxima(land: Any, z: np.ndarray, pairs: np.ndarray, n_points: int = LINE_POINTS,
                refine: int = GOLDEN_STEPS) -> np.ndarray:
    """(P,) highest energy along each straight segment z[i] → z[j]: the best of ``n_points`` evenly spaced interior
    points, then ``refine`` golden-section steps between that point's neighbours (so a smooth maximum is found to
    round-off, and a segment through a saddle reads that saddle's energy, not a sampled value below it).

    Batched: all segments' points in chunks of at most :data:`PROBE_ROWS` energy rows. A non-finite energy anywhere
    on a segment makes its maximum inf (the segment is then no evidence of a lower path).
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    out = np.full(len(pairs), np.inf)
    if not len(pairs):
        return out
    h = 1.0 / (n_points + 1)
    t = np.arange(1, n_points + 1) * h
    per = max(1, PROBE_ROWS // n_points)
    for s in range(0, len(pairs), per):
        a, b = z[pairs[s:s + per, 0]], z[pairs[s:s + per, 1]]
        e = _segment_energy(land, a, b, np.broadcast_to(t, (len(a), n_points)))
        best = np.argmax(np.where(np.isfinite(e), e, np.inf), axis=1)
        emax = e[np.arange(len(a)), best]
        # golden-section search for the maximum between the best point's neighbours
        lo, hi = t[best] - h, t[best] + h
        g = (np.sqrt(5.0) - 1) / 2
        x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
        f1, f2 = (_segment_energy(land, a, b, x[:, None])[:, 0] for x in (x1, x2))
        for _ in range(int(refine)):
            left = f1 > f2                      # the maximum lies in [lo, x2]
            hi, lo = np.where(left, x2, hi), np.where(left, lo, x1)
            x2n, x1n = np.where(left, x1, lo + g * (hi - lo)), np.where(left, hi - g * (hi - lo), x2)
            fx = _segment_energy(land, a, b, np.where(left, x1n, x2n)[:, None])[:, 0]
            f1, f2 = np.where(left, fx, f2), np.where(left, f1, fx)
            x1, x2 = x1n, x2n
        emax = np.maximum(emax, np.maximum(f1, f2))
        bad = ~np.isfinite(e).all(axis=1) | ~np.isfinite(emax)
        out[s:s + per] = np.where(bad, np.inf, emax)
    return out


def _segment_energy(land: Any, a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Energies (P, n) at points a + t (b − a) for segments a, b (P, d) and fractions t (P, n)."""
    pts = a[:, None, :] + t[:, :, None] * (b - a)[:, None, :]
    return land.energy(pts.reshape(-1, a.shape[1])).detach().cpu().numpy().reshape(t.shape)


def lower_line_pairs(z: np.ndarray, energy: np.ndarray, edges: np.ndarray, probe: np.ndarray,
                     line_max: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Which probed pairs have a straight path below the network's minimax barrier (its merge tree is wrong there).

    Args:
        z: (K, d) minima; energy: (K,).
        edges: (E, 3) the network's transition states (i, j, energy).
        probe: (P, 2) probed pairs; line_max: (P,) their straight segments' highest energies (:func:`line_maxima`).
        tol: nats; a segment must be lower by more than this.
    Returns:
        (flagged pairs (F, 2), the network's minimax energy for each probed pair (P,), inf where not connected).
    """
    edges = np.asarray(edges, dtype=float).reshape(-1, 3)
    mm = minimax_levels(len(z), edges[:, 0].astype(np.int64), edges[:, 1].astype(np.int64), edges[:, 2],
                        probe[:, 0], probe[:, 1])
    # the segment's maximum is above both ends; the network's level is at least the higher end's energy
    top = np.maximum(mm, np.maximum(energy[probe[:, 0]], energy[probe[:, 1]]))
    flag = np.isfinite(line_max) & (line_max < top - tol)
    return probe[flag], mm
