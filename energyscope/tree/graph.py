"""The disconnectivity graph: the exact merge tree of basins over transition-state energies.

Minima are leaves. Transition states are taken in order of increasing energy; each one whose two minima lie in
different superbasins joins them (union-find), creating an internal node at exactly that energy. This is single
linkage on minimax barriers: the node where minima i and j first share a superbasin sits at the lowest possible value
of the highest saddle on any path between them (:meth:`DisconnectivityGraph.merge_energy`). Minima that no
transition state joins stay in separate components; they are kept and listed, never dropped.

Energies are in nats (kT = 1). Levels are only a display device (:mod:`energyscope.tree.plot`); the tree
stores the exact merge energies.
"""
from __future__ import annotations

import json
from pathlib import Path as _FilePath
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from energyscope._geometry import UnionFind
from energyscope.errors import BadArgumentError
from energyscope.settings import checked_keywords

if TYPE_CHECKING:  # pragma: no cover
    from energyscope.tree.plot import DisconnectivityPlot
    from energyscope.search.network import TransitionNetwork

FORMAT_NAME = "energyscope.tree.graph"
FORMAT_VERSION = 1


def _as_edges(edges: Any, n_minima: int) -> np.ndarray:
    """Validate transition states given as (T, 3) rows ``(i, j, energy)``; returns a float (T, 3) array."""
    if edges is None:
        return np.zeros((0, 3))
    arr = np.asarray(list(edges) if not isinstance(edges, np.ndarray) else edges, dtype=float)
    if arr.size == 0:
        return np.zeros((0, 3))
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise BadArgumentError(f"transition states must be rows (i, j, energy) forming a (T, 3) array; got shape "
                         f"{arr.shape}")
    ij = arr[:, :2]
    bad = ~np.isfinite(ij) | (ij != np.round(ij)) | (ij < 0) | (ij >= n_minima)
    if bad.any():
        k = int(np.nonzero(bad.any(axis=1))[0][0])
        raise BadArgumentError(f"transition state {k} joins minima ({arr[k, 0]!r}, {arr[k, 1]!r}); minima indices must "
                         f"be integers in [0, {n_minima})")
    if not np.isfinite(arr[:, 2]).all():
        k = int(np.nonzero(~np.isfinite(arr[:, 2]))[0][0])
        raise BadArgumentError(f"transition state {k} (minima {int(arr[k, 0])}, {int(arr[k, 1])}) has a non-finite "
                         f"energy {arr[k, 2]!r}")
    return arr


class DisconnectivityGraph:
    """The exact merge tree of a transition network.

    Build it with :func:`disconnectivity` (from a :class:`~energyscope.search.network.TransitionNetwork`) or directly from
    plain arrays: ``DisconnectivityGraph(energy, edges)``.

    Args:
        energy: (K,) energy of each minimum, nats.
        edges: transition states as rows ``(i, j, energy)`` with i, j positions in ``energy`` (0-based). Parallel
            edges are fine (the lowest joins first, the rest are redundant); self-loops (i == j) are ignored and
            counted in ``info``. A transition state must lie above both minima it joins.
        ids: (K,) the minima's own indices (default ``0..K-1``). Every public result (basins, components,
            plots) speaks in ids; :meth:`prune` keeps the original ids of the minima it keeps.

    Attributes:
        energy: (K,) minima energies, nats.
        ids: (K,) minima ids.
        merge_edges: (K - C, 3) the transition states that created the merges, ``(i, j, energy)`` in positions,
            ascending by energy (C = number of components). They alone determine the tree.
        children: (K - C, 2) the two tree nodes each merge joins; leaves are nodes ``0..K-1`` (positions), merge m is
            node ``K + m``.
        node_energy: (K + K - C,) leaves: the minimum's energy; internal nodes: the exact merge energy.
        parent: (K + K - C,) parent node of each node, -1 for roots.
        lowest: (K + K - C,) position of the lowest minimum under each node.
        size: (K + K - C,) number of minima under each node.
        persistence: (K,) for each minimum, how high above it its superbasin must be filled before it joins a
            superbasin whose lowest minimum is lower (its barrier to somewhere deeper, nats); inf for the lowest
            minimum of each component.
        absorbed_by: (K,) position of the lowest minimum of the superbasin each minimum joins at that point, -1 when
            ``persistence`` is inf.
        info: counts: transition states given, self-loops ignored, redundant (joined already-joined minima).
    """

    def __init__(self, energy: Any, edges: Any = None, ids: Any = None):
        energy = np.asarray(energy, dtype=float)
        if energy.ndim != 1 or len(energy) == 0:
            raise BadArgumentError(f"minima energies must be a non-empty 1-D array; got shape {energy.shape}")
        if not np.isfinite(energy).all():
            k = int(np.nonzero(~np.isfinite(energy))[0][0])
            raise BadArgumentError(f"minimum {k} has a non-finite energy {energy[k]!r}")
        K = len(energy)
        if ids is None:
            ids = np.arange(K)
        ids = np.asarray(ids)
        if ids.shape != (K,) or not np.issubdtype(ids.dtype, np.integer) and not (ids == np.round(ids)).all():
            raise BadArgumentError(f"ids must be K={K} integers; got shape {ids.shape}")
        ids = ids.astype(int)
        if len(np.unique(ids)) != K:
            raise BadArgumentError("ids must be distinct")
        arr = _as_edges(edges, K)
        i, j = arr[:, 0].astype(int), arr[:, 1].astype(int)
        e_ts = arr[:, 2]
        loops = i == j
        e_hi = np.maximum(energy[i], energy[j])
        below = (e_ts < e_hi - 1e-9 * np.maximum(1.0, np.abs(e_hi))) & ~loops
        if below.any():
            k = int(np.nonzero(below)[0][0])
            low = i[k] if energy[i[k]] > energy[j[k]] else j[k]
            raise BadArgumentError(f"transition state {k} joining minima {ids[i[k]]} and {ids[j[k]]} has energy "
                             f"{e_ts[k]!r}, below minimum {ids[low]}'s energy {energy[low]!r}; a transition state "
                             f"must lie above both minima it joins")
        keep = np.nonzero(~loops)[0]
        # Deterministic order: energy, then the pair.
        lo, hi = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
        order = keep[np.lexsort((hi, lo, e_ts[keep]))]

        self.energy = energy
        self.ids = ids
        self._build(i[order], j[order], e_ts[order])
        self.info = {"n_transition_states": int(len(arr)), "n_self_loops": int(loops.sum()),
                     "n_redundant": int(len(order) - len(self.merge_edges))}

    # ------------------------------------------------------------------ construction
    def _build(self, i: np.ndarray, j: np.ndarray, e: np.ndarray) -> None:
        K = len(self.energy)
        key = np.lexsort((np.arange(K), self.energy))        # rank by (energy, position)
        rank = np.empty(K, dtype=int)
        rank[key] = np.arange(K)
        uf = UnionFind(K)
        top = np.arange(K)               # the tree node currently at the top of each set (indexed by set root)
        node_energy = list(self.energy)
        lowest = list(range(K))
        size = [1] * K
        parent = [-1] * K
        children, merges = [], []
        persistence = np.full(K, np.inf)
        absorbed_by = np.full(K, -1)
        for a, b, en in zip(i, j, e):
            ra, rb = uf.find(int(a)), uf.find(int(b))
            if ra == rb:
                continue
            na, nb = int(top[ra]), int(top[rb])
            la, lb = lowest[na], lowest[nb]
            deep, shallow = (la, lb) if rank[la] < rank[lb] else (lb, la)
            persistence[shallow] = float(en) - self.energy[shallow]
            absorbed_by[shallow] = deep
            new = len(node_energy)
            node_energy.append(float(en))
            lowest.append(deep)
            size.append(size[na] + size[nb])
            parent.append(-1)
            parent[na] = parent[nb] = new
            # Children ordered: the one holding the lower minimum first.
            children.append((na, nb) if deep == la else (nb, na))
            merges.append((int(a), int(b), float(en)))
            root = uf.link(ra, rb)
            top[root] = new
        self.merge_edges = np.array(merges, dtype=float).reshape(-1, 3)
        self.children = np.array(children, dtype=int).reshape(-1, 2)
        self.node_energy = np.array(node_energy, dtype=float)
        self.parent = np.array(parent, dtype=int)
        self.lowest = np.array(lowest, dtype=int)
        self.size = np.array(size, dtype=int)
        self.persistence = persistence
        self.absorbed_by = absorbed_by
        roots = np.nonzero(self.parent == -1)[0]
        self._roots = sorted(roots.tolist(), key=lambda n: rank[self.lowest[n]])
        self._pos = {int(m): k for k, m in enumerate(self.ids)}

    @classmethod
    def from_network(cls, network: "TransitionNetwork") -> "DisconnectivityGraph":
        """The tree of a :class:`~energyscope.search.network.TransitionNetwork` (all its edges; nodes = minima indices)."""
        energy = np.asarray(network.minima.energy, dtype=float)
        rows = [(u, v, d["energy"]) for u, v, d in network.graph.edges(data=True)]
        return cls(energy, rows)

    @classmethod
    def from_arrays(cls, energy: Any, edges: Any = None, ids: Any = None) -> "DisconnectivityGraph":
        """Same as the constructor: (K,) minima energies and transition states as rows ``(i, j, energy)``."""
        return cls(energy, edges, ids)

    # ------------------------------------------------------------------ basic facts
    def __len__(self) -> int:
        return int(len(self.energy))

    def __repr__(self) -> str:
        return (f"DisconnectivityGraph({len(self)} minima, {len(self.merge_edges)} merges, "
                f"{self.n_components} component{'s' if self.n_components != 1 else ''})")

    @property
    def n_nodes(self) -> int:
        return int(len(self.node_energy))

    @property
    def roots(self) -> list[int]:
        """Root node of each component, the one holding the global minimum first, then by lowest minimum."""
        return list(self._roots)

    @property
    def n_components(self) -> int:
        return len(self._roots)

    @property
    def global_minimum(self) -> int:
        """Id of the lowest minimum."""
        return int(self.ids[self.lowest[self._roots[0]]])

    @property
    def components(self) -> list[set[int]]:
        """Minima ids of each connected component, the global minimum's first, then by lowest minimum."""
        return [self._ids_set(self.leaves(r)) for r in self._roots]

    @property
    def not_connected(self) -> list[set[int]]:
        """Components that no transition state joins to the global minimum's (empty when connected)."""
        return self.components[1:]

    def position(self, minimum_id: int) -> int:
        """Position (row in ``energy``) of the minimum with this id."""
        try:
            return self._pos[int(minimum_id)]
        except KeyError:
            raise KeyError(f"no minimum with id {minimum_id} in this graph") from None

    def _ids_set(self, positions: Iterable[int]) -> set[int]:
        return {int(self.ids[p]) for p in positions}

    def leaves(self, node: int) -> list[int]:
        """Positions of the minima under a tree node."""
        K = len(self)
        out, stack = [], [int(node)]
        while stack:
            n = stack.pop()
            if n < K:
                out.append(n)
            else:
                stack.extend(self.children[n - K].tolist())
        return sorted(out)

    def node_children(self, node: int) -> list[int]:
        """The two children of an internal node ([] for a leaf)."""
        K = len(self)
        return [] if node < K else self.children[node - K].tolist()

    def merge_energy(self, i: int, j: int) -> float:
        """Energy at which minima (ids) i and j first share a superbasin: the minimax saddle energy between them
        (the minimum's own energy when i == j; inf when not connected)."""
        a, b = self.position(i), self.position(j)
        if a == b:
            return float(self.energy[a])
        anc = set()
        n = a
        while n != -1:
            anc.add(n)
            n = self.parent[n]
        n = b
        while n != -1 and n not in anc:
            n = self.parent[n]
        return float("inf") if n == -1 else float(self.node_energy[n])

    def barrier(self, i: int, j: int) -> float:
        """Minimax barrier from minimum (id) i to j: ``merge_energy(i, j) - energy of i`` (inf if not connected)."""
        return self.merge_energy(i, j) - float(self.energy[self.position(i)])

    def first_merge_energy(self) -> np.ndarray:
        """(K,) energy of the first merge each minimum takes part in (inf when it has no transition state)."""
        K = len(self)
        out = np.full(K, np.inf)
        p = self.parent[:K]
        has = p >= 0
        out[has] = self.node_energy[p[has]]
        return out

    # ------------------------------------------------------------------ partitions
    def basins_at(self, energy: float) -> list[set[int]]:
        """Superbasins at an energy level: minima joined by transition states *strictly below* ``energy``.

        Every minimum is in exactly one set (a minimum with no transition state below the level is alone, also when
        the minimum itself lies above the level). Sets are ordered by their lowest minimum, lowest first.

        Args:
            energy: the level, nats (same scale as the minima energies, not relative to the global minimum).
        Returns:
            list of sets of minima ids.
        """
        level = float(energy)
        if np.isnan(level):
            raise BadArgumentError("basins_at: the energy level is NaN")
        n = len(self.merge_edges)
        count = int(np.searchsorted(self.merge_edges[:, 2], level, side="left")) if n else 0
        return self._partition(self.merge_edges[:count, :2].astype(int))

    def basins_by_barrier(self, delta_E: float) -> list[set[int]]:
        """Minima grouped so that no group is separated from a deeper one by a barrier below ``delta_E``.

        Precisely: a minimum m whose superbasin joins one with a lower minimum at energy E (its ``persistence``,
        E − energy of m, is the barrier from m up to the point where it can reach somewhere deeper) is merged into
        the group of that deeper superbasin's lowest minimum (``absorbed_by``) when ``E − energy(m) < delta_E``.
        Groups are the closure of these links; each group holds exactly one minimum with persistence ≥ ``delta_E``
        (its deepest). ``delta_E = 0`` gives every minimum its own group; ``delta_E = inf`` gives the components.
        This is persistence-based (ToMATo-style) merging of the merge tree.

        Args:
            delta_E: barrier threshold, nats (≥ 0).
        Returns:
            list of sets of minima ids, ordered by their lowest minimum, lowest first.
        """
        d = float(delta_E)
        if not d >= 0:
            raise BadArgumentError(f"basins_by_barrier: delta_E must be >= 0 (nats); got {delta_E!r}")
        link = np.nonzero(self.persistence < d)[0]
        pairs = np.stack([link, self.absorbed_by[link]], axis=1) if len(link) else np.zeros((0, 2), dtype=int)
        return self._partition(pairs)

    def _partition(self, pairs: np.ndarray) -> list[set[int]]:
        K = len(self)
        uf = UnionFind(K)
        for a, b in pairs:
            ra, rb = uf.find(int(a)), uf.find(int(b))
            if ra != rb:
                uf.link(ra, rb)
        groups: dict[int, list[int]] = {}
        for p in range(K):
            groups.setdefault(uf.find(p), []).append(p)
        key = lambda g: (min(self.energy[p] for p in g), min(g))  # noqa: E731
        return [self._ids_set(g) for g in sorted(groups.values(), key=key)]

    # ------------------------------------------------------------------ pruning
    def prune(self, n_lowest: int | None = None, min_barrier: float | None = None,
              keep: Iterable[int] | None = None) -> "DisconnectivityGraph":
        """A smaller tree over a subset of the minima, with the same merge energies among the minima it keeps.

        First minima with ``persistence < min_barrier`` are dropped (their superbasin joins a deeper one less than
        ``min_barrier`` above them); then, of those left, the ``n_lowest`` lowest in energy are kept; ``keep`` (ids)
        are kept whatever the other rules say. The lowest minimum of every component kept is always among those left
        by ``min_barrier``. Kept minima keep their ids. The original graph is unchanged (the analysis stays exact;
        pruning is for display).

        Every dropped minimum is grouped with the kept minimum whose superbasin it joins first: the pruned graph's
        ``info["represents"]`` maps each kept id to how many minima its leaf stands for (itself included), and
        ``info["n_pruned"]`` counts the dropped ones.
        """
        forced = np.zeros(len(self), dtype=bool)
        if keep is not None:
            forced[[self.position(int(m)) for m in keep]] = True
        keep = np.ones(len(self), dtype=bool)
        if min_barrier is not None:
            mb = float(min_barrier)
            if not mb >= 0:
                raise BadArgumentError(f"prune: min_barrier must be >= 0 (nats); got {min_barrier!r}")
            keep &= self.persistence >= mb
        if n_lowest is not None:
            if int(n_lowest) != n_lowest or n_lowest < 1:
                raise BadArgumentError(f"prune: n_lowest must be a positive integer; got {n_lowest!r}")
            cand = np.nonzero(keep)[0]
            cand = cand[np.lexsort((cand, self.energy[cand]))][: int(n_lowest)]
            keep[:] = False
            keep[cand] = True
        keep |= forced
        kept = np.nonzero(keep)[0]
        new_pos = -np.ones(len(self), dtype=int)
        new_pos[kept] = np.arange(len(kept))
        # Induced tree: walk the merges, tracking the lowest kept minimum of each superbasin, and how many dropped
        # minima of each set are not yet grouped with a kept one.
        uf = UnionFind(len(self))
        rep = np.where(keep, np.arange(len(self)), -1)    # indexed by set root
        loose = (~keep).astype(np.int64)                  # indexed by set root
        represents = keep.astype(np.int64)                # indexed by position
        rows = []
        for a, b, en in self.merge_edges:
            ra, rb = uf.find(int(a)), uf.find(int(b))
            ka, kb = rep[ra], rep[rb]
            if ka >= 0 and kb >= 0:
                rows.append((new_pos[ka], new_pos[kb], en))
            root = uf.link(ra, rb)
            if ka < 0 or (kb >= 0 and (self.energy[kb], kb) < (self.energy[ka], ka)):
                ka = kb
            n_loose = loose[ra] + loose[rb]
            if ka >= 0:
                represents[ka] += n_loose
                n_loose = 0
            rep[root], loose[root] = ka, n_loose
        out = DisconnectivityGraph(self.energy[kept], rows, ids=self.ids[kept])
        out.info["represents"] = {int(self.ids[k]): int(represents[k]) for k in kept}
        out.info["n_pruned"] = int(len(self) - len(kept))
        return out

    # ------------------------------------------------------------------ export
    def to_dict(self) -> dict:
        """JSON-ready dict: minima ids and energies and the merging transition states (which determine the tree)."""
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION,
                "ids": [int(x) for x in self.ids],
                "energy": [float(x) for x in self.energy],
                "edges": [[int(a), int(b), float(e)] for a, b, e in self.merge_edges],
                "info": dict(self.info)}

    @classmethod
    def from_dict(cls, data: dict) -> "DisconnectivityGraph":
        """Rebuild from :meth:`to_dict` output (the same tree, the same merge energies)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise BadArgumentError(f"not a disconnectivity graph: expected a dict with format {FORMAT_NAME!r}")
        if int(data.get("version", -1)) > FORMAT_VERSION:
            raise BadArgumentError(f"disconnectivity graph format version {data.get('version')} is newer than this "
                             f"energyscope understands ({FORMAT_VERSION})")
        for k in ("ids", "energy", "edges"):
            if k not in data:
                raise BadArgumentError(f"disconnectivity graph data is missing {k!r}")
        g = cls(data["energy"], data["edges"], ids=data["ids"])
        if "info" in data:
            g.info = dict(data["info"])
        return g

    def to_json(self, path: str | _FilePath) -> None:
        """Write :meth:`to_dict` as JSON (floats written exactly)."""
        _FilePath(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_json(cls, path: str | _FilePath) -> "DisconnectivityGraph":
        """Read a graph written by :meth:`to_json`."""
        try:
            data = json.loads(_FilePath(path).read_text())
        except json.JSONDecodeError as exc:
            raise BadArgumentError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data)

    def same_tree(self, other: "DisconnectivityGraph", rtol: float = 0.0) -> bool:
        """Whether two graphs have the same minima (ids, energies) and the same merge structure and energies."""
        if not np.array_equal(np.sort(self.ids), np.sort(other.ids)):
            return False
        oi = np.array([other.position(m) for m in self.ids])
        if not np.allclose(self.energy, other.energy[oi], rtol=rtol, atol=0):
            return False
        return _canonical(self, rtol) == _canonical(other, rtol)

    # ------------------------------------------------------------------ drawing
    def plot(self, ax: Any = None, n_levels: int | None = None, delta_E: float | None = None,
             n_lowest: int | None = None, min_barrier: float | None = None, **kwargs: Any) -> "DisconnectivityPlot":
        """Draw the tree (see :func:`energyscope.tree.plot.plot_disconnectivity` for all options).

        ``n_levels`` / ``delta_E`` bin merges into display levels; ``n_lowest`` / ``min_barrier`` prune first
        (:meth:`prune`). Returns a :class:`~energyscope.tree.plot.DisconnectivityPlot` (figure, axes,
        leaf x-positions, components).
        """
        from energyscope.tree.plot import plot_disconnectivity
        graph = self if n_lowest is None and min_barrier is None else self.prune(n_lowest, min_barrier)
        return plot_disconnectivity(graph, ax=ax, n_levels=n_levels, delta_E=delta_E, **kwargs)


def _canonical(g: DisconnectivityGraph, rtol: float) -> frozenset:
    """Canonical form of the tree: for each internal node, (its minima ids, its energy rounded for comparison).

    Equal-energy merges are fused so that tie-breaking between equal transition states does not matter."""
    K = len(g)
    out = []
    for m in range(len(g.children)):
        node = K + m
        par = g.parent[node]
        if par != -1 and g.node_energy[par] == g.node_energy[node]:
            continue   # fused into its parent
        e = g.node_energy[node]
        ekey = round(float(e), 9) if rtol else float(e)
        out.append((frozenset(int(g.ids[p]) for p in g.leaves(node)), ekey))
    return frozenset(out)


@checked_keywords()
def disconnectivity(network: "TransitionNetwork") -> DisconnectivityGraph:
    """The exact disconnectivity graph (merge tree) of a transition network.

    Args:
        network: a :class:`~energyscope.search.network.TransitionNetwork`; its nodes are minima indices and each edge a
            validated transition state with an ``energy`` (nats).
    Returns:
        a :class:`DisconnectivityGraph`; minima ids are the network's minima indices. To build one from saved
        arrays instead, use ``DisconnectivityGraph(energies, [(i, j, energy), ...])``.
    """
    from energyscope.search.network import TransitionNetwork
    if not isinstance(network, TransitionNetwork):
        raise TypeError(f"disconnectivity() takes a TransitionNetwork; got {type(network).__name__}. For plain "
                        f"arrays use DisconnectivityGraph(energies, edges).")
    return DisconnectivityGraph.from_network(network)


def basin_index(basins: list[set[int]], ids: Iterable[int]) -> np.ndarray:
    """Turn a partition (list of sets of minima ids) into one group number per minimum id in ``ids``."""
    lookup = {m: g for g, s in enumerate(basins) for m in s}
    try:
        return np.array([lookup[int(m)] for m in ids], dtype=int)
    except KeyError as exc:
        raise KeyError(f"minimum {exc.args[0]} is in no basin of this partition") from None


__all__ = ["DisconnectivityGraph", "disconnectivity", "basin_index"]

