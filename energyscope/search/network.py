"""TransitionNetwork: minima joined by validated transition states, and :func:`connect`, which builds it.

``connect`` (DESIGN §4.5) tries candidate pairs — each minimum's k nearest neighbours plus the edges of a Euclidean
minimum spanning tree — with batched NEB (:mod:`energyscope.search.neb`), refines and validates every climbing image
(:mod:`energyscope.search.saddles`), and then connects the remaining components in the spirit of Wales' "missing connection"
strategy: Dijkstra over squared distances with zero cost inside a component picks, for every component not joined to
the global minimum's, the chain of cross-component pairs to try next; attempts per pair are capped.

Two barrier notions are kept per edge, labelled: ``energy`` — the validated index-1 saddle (exact), and
``path_max_energy`` — the highest energy seen along the densely evaluated path (an upper bound up to the band's
discretisation).
"""
from __future__ import annotations

import time

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from energyscope.errors import BadArgumentError
from energyscope.settings import ConnectSettings, checked_keywords
from energyscope.search.book import MinimaBook, default_match_tol
from energyscope.search.minima import Minima
from energyscope.search.pairs import candidate_pairs, line_maxima, lower_line_pairs, missing_connections, neighbour_pairs
from energyscope.search.paths import Path  # noqa: F401 (Path is public here too)


@dataclass
class Attempt:
    """One pair tried by ``connect``: which minima, the outcome and, on failure, why.

    Attributes:
        i, j: the pair asked for (indices into the network's minima).
        outcome: ``"connected"`` (a validated saddle joins i and j), ``"connected_other"`` (validated saddle(s), but
            joining other minima than asked), ``"split"`` (the band ran through intermediate minima; one edge per
            piece), ``"failed"``.
        reason: why it failed, or what went wrong on part of the way ("" when all went well).
        saddle_energy: the highest validated saddle on the path found (nats), NaN if none.
        edge_minima: the minima joined by that saddle.
        n_evals: energy(+gradient) row evaluations spent on this attempt (approximate where work was shared).
        edges: every (a, b) joined by a validated saddle in this attempt.
        new_minima: indices of minima found on the way.
        try_number: 1 for the first attempt at this pair, 2 for the retry, ...
        path_max_energy: highest energy along the dense path (an upper bound), NaN if none.
    """

    i: int
    j: int
    outcome: str          # "connected", "connected_other" (saddle joins other minima), "split", "failed"
    reason: str = ""
    saddle_energy: float = float("nan")
    edge_minima: tuple[int, int] | None = None
    n_evals: int = 0
    edges: list = field(default_factory=list)
    new_minima: list = field(default_factory=list)
    try_number: int = 1
    path_max_energy: float = float("nan")

    def to_dict(self) -> dict:
        def num(x):
            return None if not np.isfinite(x) else float(x)
        return {"i": int(self.i), "j": int(self.j), "outcome": self.outcome, "reason": self.reason,
                "saddle_energy": num(self.saddle_energy),
                "edge_minima": None if self.edge_minima is None else [int(v) for v in self.edge_minima],
                "n_evals": int(self.n_evals), "edges": [[int(a), int(b)] for a, b in self.edges],
                "new_minima": [int(v) for v in self.new_minima], "try_number": int(self.try_number),
                "path_max_energy": num(self.path_max_energy)}

    @classmethod
    def from_dict(cls, d: dict) -> "Attempt":
        def num(x):
            return float("nan") if x is None else float(x)
        em = d.get("edge_minima")
        return cls(i=int(d["i"]), j=int(d["j"]), outcome=str(d["outcome"]), reason=str(d.get("reason", "")),
                   saddle_energy=num(d.get("saddle_energy")), edge_minima=None if em is None else tuple(em),
                   n_evals=int(d.get("n_evals", 0)), edges=[tuple(e) for e in d.get("edges", [])],
                   new_minima=list(d.get("new_minima", [])), try_number=int(d.get("try_number", 1)),
                   path_max_energy=num(d.get("path_max_energy")))


class TransitionNetwork:
    """Minima (nodes, by index into ``.minima``) joined by validated transition states (edges of a MultiGraph).

    Each edge carries ``energy`` (the validated saddle's U, nats), ``z`` (d,), ``negative_eigenvalue`` and ``path`` (a
    :class:`Path` or None); edges made by :func:`connect` also carry ``path_max_energy`` (upper bound from the dense
    path), ``eigenvalues`` (d,) and ``pair`` (the pair that was asked for). ``attempts`` logs every pair tried;
    ``info`` holds the settings and counts of the run.

    ``minima`` is the set the edges index into: the input minima first, in their input order and with the same
    indices, then minima found on the way (so it is sorted by energy only within the input block).
    """

    def __init__(self, minima: Minima, graph: nx.MultiGraph | None = None, attempts: list[Attempt] | None = None,
                 info: dict | None = None):
        self.minima = minima
        self.graph = graph if graph is not None else nx.MultiGraph()
        for k in range(len(minima)):
            if k not in self.graph:
                self.graph.add_node(k)
            self.graph.nodes[k]["energy"] = float(minima.energy[k])
        self.attempts: list[Attempt] = list(attempts or [])
        self.info: dict = dict(info or {})

    def add_transition_state(self, i: int, j: int, energy: float, z: Any, negative_eigenvalue: float,
                             path: Path | None = None, **attrs) -> None:
        self.graph.add_edge(int(i), int(j), energy=float(energy), z=np.asarray(z, dtype=float),
                            negative_eigenvalue=float(negative_eigenvalue), path=path, **attrs)

    @property
    def n_transition_states(self) -> int:
        return self.graph.number_of_edges()

    def is_connected(self) -> bool:
        return len(self.minima) <= 1 or nx.is_connected(self.graph)

    def components(self) -> list[set[int]]:
        """Connected components (sets of minima indices), largest first."""
        return sorted((set(c) for c in nx.connected_components(self.graph)), key=len, reverse=True)

    def _lowest_edges(self, kind: str = "saddle") -> nx.Graph:
        """A simple graph keeping, for each pair of minima, the lowest transition state energy (``kind="saddle"``) or
        the lowest path maximum (``kind="path_max"``, falling back to the saddle energy where unknown)."""
        if kind not in ("saddle", "path_max"):
            raise BadArgumentError(f"unknown barrier kind {kind!r}; use 'saddle' or 'path_max'")
        g = nx.Graph()
        g.add_nodes_from(self.graph.nodes)
        for u, v, data in self.graph.edges(data=True):
            if u == v:
                continue
            e = data["energy"]
            if kind == "path_max":
                pm = data.get("path_max_energy", float("nan"))
                e = pm if pm is not None and np.isfinite(pm) else e
            if not g.has_edge(u, v) or g[u][v]["energy"] > e:
                g.add_edge(u, v, energy=e)
        return g

    def minimax_energy(self, i: int, j: int, kind: str = "saddle") -> float:
        """Lowest possible highest-saddle energy over paths from minimum i to j (inf if not connected).

        ``kind="saddle"`` (default) uses the validated saddle energies; ``kind="path_max"`` the path maxima (upper
        bounds).
        """
        if i == j:
            return float(self.minima.energy[i])
        g = self._lowest_edges(kind)
        mst = nx.minimum_spanning_tree(g, weight="energy")
        if not nx.has_path(mst, i, j):
            return float("inf")
        nodes = nx.shortest_path(mst, i, j)
        return float(max(mst[a][b]["energy"] for a, b in zip(nodes[:-1], nodes[1:])))

    def barrier(self, i: int, j: int, kind: str = "saddle") -> float:
        """Minimax barrier from minimum i to j: ``minimax_energy(i, j) - energy[i]`` (inf if not connected)."""
        return self.minimax_energy(i, j, kind) - float(self.minima.energy[i])

    def edges(self) -> list[dict]:
        """All transition states as dicts (i, j, energy, z, negative_eigenvalue, path)."""
        return [dict(i=u, j=v, **d) for u, v, d in self.graph.edges(data=True)]

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """The network as data (inverse: :meth:`from_dict`): its minima, attempts and info, and one dict per edge
        (``i``, ``j`` and the edge's attributes as they are: arrays, :class:`Path`, tuples). The results codec
        saves this faithfully, the package's classes included; no pickling."""
        edges = [{"i": int(u), "j": int(v), **data} for u, v, data in self.graph.edges(data=True)]
        return {"minima": self.minima, "edges": edges, "attempts": list(self.attempts), "info": dict(self.info)}

    @classmethod
    def from_dict(cls, d: dict) -> "TransitionNetwork":
        """A network from :meth:`to_dict`'s data (its minima, attempts and paths as objects, or in their own plain
        ``to_dict`` forms)."""
        minima = d["minima"] if isinstance(d["minima"], Minima) else Minima.from_dict(d["minima"])
        attempts = [a if isinstance(a, Attempt) else Attempt.from_dict(a) for a in d.get("attempts", [])]
        net = cls(minima, attempts=attempts, info=d.get("info"))
        for e in d.get("edges", []):
            attrs = {k: v for k, v in e.items() if k not in ("i", "j")}
            if isinstance(attrs.get("path"), dict):
                attrs["path"] = Path.from_dict(attrs["path"])
            if "z" in attrs:
                attrs["z"] = np.asarray(attrs["z"], dtype=np.float64)
            if isinstance(attrs.get("pair"), list):
                attrs["pair"] = tuple(attrs["pair"])
            net.graph.add_edge(int(e["i"]), int(e["j"]), **attrs)
        return net

    def __repr__(self) -> str:
        return (f"TransitionNetwork({len(self.minima)} minima, {self.n_transition_states} transition states, "
                f"{len(self.components())} component(s), {len(self.attempts)} attempts)")


# ---------------------------------------------------------------------------------------------------------- connect
@checked_keywords(ConnectSettings)
def connect(land: Any, minima: Minima, *, k_nearest: int = 4, max_attempts_per_pair: int = 2, max_rounds: int = 10,
            k_probe: int = 16, max_check_rounds: int = 12, seed: int = 0, n_images: int | None = None,
            images_per_length: float = 3.0, ftol_rel: float = 1e-2,
            max_iter: int = 1000, dense: int = 8, split: bool = True, retry_bump: float = 0.15,
            match_tol: float | None = None, time_limit: float | None = None, progress: bool = True) -> TransitionNetwork:
    """Join minima by validated transition states (DESIGN §4.5).

    1. Every input minimum is checked (finite energy; a descent from it stays within ``match_tol``; no Hessian
       eigenvalue clearly negative). Pairs involving a failing one, or two coincident minima, are logged as failed.
    2. Candidate pairs — each minimum's ``k_nearest`` neighbours plus a Euclidean minimum spanning tree — are relaxed
       by NEB all together (:func:`energyscope.search.neb.find_paths`: batched bands, dense post-check, splitting at
       intermediate minima), every climbing image is refined by exact-Hessian eigenvector following and validated
       (:func:`energyscope.search.saddles.find_saddles`), all in batches.
    3. While the network is not connected: Dijkstra over a sparse distance graph between components picks the next
       pairs (:func:`energyscope.search.pairs.missing_connections`); retries start from a band bulged sideways by
       ``retry_bump`` of its length in a seeded random direction and with more images. At most
       ``max_attempts_per_pair`` tries per pair and ``max_rounds`` rounds.
    4. The tree check: the straight segment from each minimum to each of its ``k_probe`` nearest neighbours is a
       path, so its highest energy bounds their minimax barrier from above. Pairs whose segment is lower than the
       barrier the network implies (so the merge tree is wrong there; :func:`energyscope.search.pairs.lower_line_pairs`)
       are tried next, in rounds, until no segment undercuts the network or ``max_check_rounds`` is spent.
       ``info["tree_check"]`` records the pairs probed, flagged and tried per round, and the flags left unexplained.

    Edges are stored for the minima the push-off descents actually reach (which may differ from the pair asked);
    identical saddles found twice are stored once. New minima found on the way are appended to the minima set.

    Args:
        land: the :class:`~energyscope.landscape.Landscape`.
        minima: the minima to connect (e.g. from :func:`energyscope.find_minima`).
        k_nearest: nearest neighbours per minimum for the first round of pairs.
        k_probe: nearest neighbours per minimum whose straight segments the tree check probes (0: no check).
        max_check_rounds: rounds of the tree check at most.
        max_attempts_per_pair: tries per pair at most.
        max_rounds: rounds of the component-connecting loop at most (the first round included).
        seed: seeds the sideways bulge of retried bands.
        n_images: fixed images per band (default from distance: ``images_per_length`` per length scale, 9 to 33).
        ftol_rel, max_iter, dense, split: NEB settings (see :func:`energyscope.search.neb.relax_bands`, ``find_paths``).
        retry_bump: sideways bulge of retried bands, as a fraction of their length.
        match_tol: distance under which two points are the same minimum (default
            :func:`energyscope.search.book.default_match_tol`).
        time_limit: seconds; no new batch of bands starts once it is spent (the batch running is finished), and
            ``info["stopped"]`` says so. None: no limit.
        progress: progress bars.

    Returns:
        A :class:`TransitionNetwork` whose ``minima`` is a NEW :class:`Minima`: the input minima first, with the same
        indices and order, then any minima found on the way (not re-sorted, so that indices stay valid).
    """
    from energyscope.landscape import as_landscape

    land = as_landscape(land)
    _check_arguments(land, minima, k_nearest, max_attempts_per_pair)
    if int(k_probe) < 0 or int(max_check_rounds) < 0:
        raise BadArgumentError(f"k_probe and max_check_rounds must be >= 0, got {k_probe} and {max_check_rounds}")
    match_tol = default_match_tol(land, minima) if match_tol is None else float(match_tol)
    book = MinimaBook(minima, match_tol)
    net = TransitionNetwork(minima, info=_run_info(k_nearest, max_attempts_per_pair, seed, match_tol, ftol_rel, dense))
    if len(minima) == 0:
        net.minima = book.to_minima()
        return net
    run = _Run(land=land, book=book, net=net, match_tol=match_tol, max_attempts_per_pair=max_attempts_per_pair,
               seed=seed, time_limit=time_limit, n_images=n_images, images_per_length=images_per_length,
               ftol_rel=ftol_rel, max_iter=max_iter, dense=dense, split=split, retry_bump=retry_bump, progress=progress)

    # 1. check the input minima
    run.bad = _check_minima(land, book, minima.flat_tol, match_tol, net.info)
    net.info["bad_minima"] = {int(k): v for k, v in run.bad.items()}
    # 2. candidate pairs: nearest neighbours and a Euclidean minimum spanning tree
    pairs = candidate_pairs(book.z, k_nearest)
    run.t_start = time.perf_counter()
    for rnd in range(int(max_rounds)):
        if rnd and run.out_of_time():
            break
        net.info["rounds"] = rnd + 1
        # 3. a round of bands and saddles: first tries, then retries of pairs tried before (bulged bands, more images)
        _run_round(run, pairs, rnd)
        # 4. missing connections: the pairs that would join the remaining components (none: connected, or used up)
        pairs = _next_pairs(run)
        if not pairs:
            break
    # 5. the tree check: segments lower than the network's barriers say a lower saddle was missed
    _check_tree(run, int(k_probe), int(max_check_rounds))
    # 6. finish: the minima found on the way join the network's minima
    _finish(run)
    return net


def _check_arguments(land: Any, minima: Any, k_nearest: int, max_attempts_per_pair: int) -> None:
    """Refuse minima that are not a :class:`Minima` of the landscape's dimension, and bad counts."""
    if not isinstance(minima, Minima):
        raise TypeError(f"minima must be a Minima (from find_minima), got {type(minima).__name__}")
    if int(k_nearest) < 0:
        raise BadArgumentError(f"k_nearest must be >= 0, got {k_nearest}")
    if int(max_attempts_per_pair) < 1:
        raise BadArgumentError(f"max_attempts_per_pair must be >= 1, got {max_attempts_per_pair}")
    if len(minima) and minima.z.shape[1] != land.dim:
        raise BadArgumentError(f"minima have dimension {minima.z.shape[1]} but the landscape has dim {land.dim}")


def _run_info(k_nearest: int, max_attempts_per_pair: int, seed: int, match_tol: float, ftol_rel: float,
              dense: int) -> dict:
    """The network's ``info`` at the start of a run: its settings, and counters at zero."""
    return {"k_nearest": int(k_nearest), "max_attempts_per_pair": int(max_attempts_per_pair), "seed": int(seed),
            "match_tol": match_tol, "ftol_rel": ftol_rel, "dense": int(dense), "rounds": 0, "n_evals": 0,
            "barrier_kinds": {"energy": "validated index-1 saddle (exact)",
                              "path_max_energy": "highest energy along the dense path (upper bound)"}}


@dataclass
class _Run:
    """What the steps of one :func:`connect` run share: the landscape, the growing minima, the network, the settings
    (as given to ``connect``) and the bookkeeping (input minima that failed their check, tries per pair)."""

    land: Any
    book: MinimaBook
    net: TransitionNetwork
    match_tol: float
    max_attempts_per_pair: int
    seed: int
    time_limit: float | None
    n_images: int | None
    images_per_length: float
    ftol_rel: float
    max_iter: int
    dense: int
    split: bool
    retry_bump: float
    progress: bool
    bad: dict = field(default_factory=dict)
    tries: dict = field(default_factory=dict)
    t_start: float = 0.0

    def out_of_time(self) -> bool:
        """True once the time limit is spent (``info["stopped"]`` then says so)."""
        if self.time_limit is None or time.perf_counter() - self.t_start < float(self.time_limit):
            return False
        self.net.info["stopped"] = (f"time limit of {float(self.time_limit):g} s reached after "
                                    f"{self.net.info['rounds']} round(s); pairs not yet tried were left out")
        return True


def _run_round(run: _Run, pairs: list[tuple[int, int]], rnd: int) -> None:
    """One round: the pairs that can be tried, grouped by try number, each group as one batch of bands and saddles."""
    for t, plist in sorted(_runnable_pairs(run, pairs).items()):
        if "stopped" in run.net.info or (t > 1 and run.out_of_time()):
            break
        _try_pairs(run, plist, t, rnd)


def _runnable_pairs(run: _Run, pairs: list[tuple[int, int]]) -> dict[int, list[tuple[int, int]]]:
    """The pairs to try this round by try number; pairs with a failing minimum or coincident ends are logged as failed
    (and never retried), pairs whose tries are used up are left out."""
    bad, runnable = run.bad, []
    for i, j in pairs:
        t = run.tries.get((i, j), 0) + 1
        if t > run.max_attempts_per_pair:
            continue
        run.tries[(i, j)] = t
        why = ""
        if i in bad or j in bad:
            why = bad.get(i) or bad.get(j)
        else:
            dist = float(np.linalg.norm(run.book.z[i] - run.book.z[j]))
            if dist <= run.match_tol:
                why = f"identical endpoints: minima {i} and {j} are {dist:.3g} apart (<= {run.match_tol:.3g})"
        if why:
            run.tries[(i, j)] = run.max_attempts_per_pair  # never retried
            run.net.attempts.append(Attempt(i, j, "failed", why, try_number=t))
        else:
            runnable.append((i, j, t))
    by_try: dict[int, list[tuple[int, int]]] = {}
    for i, j, t in runnable:
        by_try.setdefault(t, []).append((i, j))
    return by_try


def _try_pairs(run: _Run, plist: list[tuple[int, int]], t: int, rnd: int) -> None:
    """Relax the bands of ``plist`` (try ``t``), refine and validate their saddles, and log one attempt per pair."""
    from energyscope.search.neb import find_paths
    n_before = len(run.book)
    retry = t > 1
    pps = find_paths(run.land, run.book, plist, n_images=None if run.n_images is None else
                     int(run.n_images * (1.5 if retry else 1)), images_per_length=run.images_per_length *
                     (1.5 if retry else 1.0), ftol_rel=run.ftol_rel, max_iter=run.max_iter, dense=run.dense,
                     split=run.split, bump=run.retry_bump if retry else 0.0, seed=int(run.seed) + rnd,
                     progress=run.progress)
    per_pair = _pair_saddles(run, pps)
    for q, pp in enumerate(pps):
        run.net.attempts.append(_record_attempt(run, pp, per_pair.get(q, []), t, n_before))


def _pair_saddles(run: _Run, pps: list) -> dict[int, list]:
    """Refine and validate the highest point of every piece of every band found, in one batch: {pair: [(piece,
    SaddleRecord)]}."""
    from energyscope.search.saddles import band_tangent, find_saddles
    cand, owner, tans, spans = [], [], [], []
    for q, pp in enumerate(pps):
        if pp.failure:
            continue
        for pi, (a, b, path) in enumerate(pp.pieces):
            cand.append(path.saddle_z)
            owner.append((q, pi))
            tan, span = band_tangent(path.z, path.saddle_z)
            tans.append(tan)
            spans.append(span)
    bands = [pps[q].pieces[pi][2].z for q, pi in owner]
    recs = find_saddles(run.land, np.array(cand), run.book, tangents=np.array(tans), spans=np.array(spans),
                        bands=bands) if cand else []
    per_pair: dict[int, list] = {}
    for (q, pi), rec in zip(owner, recs):
        per_pair.setdefault(q, []).append((pi, rec))
    return per_pair


def _record_attempt(run: _Run, pp: Any, recs: list, t: int, n_before: int) -> Attempt:
    """One pair's attempt: its validated saddles become edges (and new minima nodes), with the outcome and why."""
    net, book = run.net, run.book
    att = Attempt(pp.i, pp.j, "failed", try_number=t, n_evals=pp.n_evals, new_minima=list(pp.new_minima))
    pmax = [path.path_max_energy for _, _, path in pp.pieces if path is not None]
    att.path_max_energy = float(np.nanmax(pmax)) if pmax and np.isfinite(pmax).any() else float("nan")
    if pp.failure:
        att.reason = pp.failure
        return att
    reasons, best = [], None
    for pi, rec in recs:
        a, b, path = pp.pieces[pi]
        att.n_evals += rec.n_evals
        path.info["saddle"] = {"valid": rec.valid, "reason": rec.reason, "minima": rec.minima,
                               "negative_eigenvalue": rec.negative_eigenvalue, "grad_norm": rec.grad_norm}
        if not rec.valid:
            reasons.append(f"piece {a}-{b}: {rec.reason}" if pp.split else rec.reason)
            continue
        path.saddle_z, path.saddle_energy, path.saddle_validated = rec.z, rec.energy, True
        path.path_max_energy = max(path.path_max_energy, rec.energy)
        u, v = sorted(rec.minima)
        att.edges.append((u, v))
        if best is None or rec.energy > best.energy:
            best = rec
        _add_edge(net, u, v, rec, path, (pp.i, pp.j), run.match_tol)
    for m in range(n_before, len(book)):
        net.graph.add_node(m, energy=float(book.energy[m]))
    if best is None:
        att.reason = "; ".join(reasons) or "no saddle candidate"
    else:
        att.saddle_energy, att.edge_minima = best.energy, tuple(sorted(best.minima))
        asked = {pp.i, pp.j}
        if pp.split:
            att.outcome = "split"
        elif set(best.minima) == asked:
            att.outcome = "connected"
        else:
            att.outcome = "connected_other"
        att.reason = "; ".join(reasons)
    pmax = [path.path_max_energy for _, _, path in pp.pieces]
    att.path_max_energy = float(np.nanmax(pmax)) if np.isfinite(pmax).any() else float("nan")
    net.info["n_evals"] += att.n_evals
    return att


def _next_pairs(run: _Run) -> list[tuple[int, int]]:
    """After a round (every minimum now a node): the pairs to try next, or none once the usable minima are connected."""
    net, book = run.net, run.book
    for m in range(len(book)):
        if m not in net.graph:
            net.graph.add_node(m, energy=float(book.energy[m]))
    usable = np.array([k not in run.bad for k in range(len(book))])
    sub = net.graph.subgraph([k for k in range(len(book)) if usable[k]])
    if sub.number_of_nodes() <= 1 or nx.is_connected(sub):
        return []
    blocked = {p for p, c in run.tries.items() if c >= run.max_attempts_per_pair}
    comp = np.full(len(book), -1)
    for c, nodes in enumerate(nx.connected_components(net.graph)):
        comp[[n for n in nodes if n < len(book)]] = c
    return missing_connections(book.z, book.energy, comp, usable, blocked)


def _edge_array(net: TransitionNetwork) -> np.ndarray:
    """(E, 3) the network's transition states as (i, j, energy)."""
    rows = [(u, v, d["energy"]) for u, v, d in net.graph.edges(data=True)]
    return np.array(rows, dtype=float).reshape(-1, 3)


def _check_tree(run: _Run, k_probe: int, max_check_rounds: int) -> None:
    """Rounds of the tree check (step 4 of :func:`connect`): probe the straight segments between near neighbours,
    try the pairs whose segment undercuts the network's minimax barrier, until none does (or the rounds, tries or
    time run out). Segment maxima are computed once per pair and kept."""
    net, book = run.net, run.book
    log: dict = {"k_probe": k_probe, "rounds": [], "n_probed": 0, "n_flagged_left": 0, "complete": False}
    net.info["tree_check"] = log
    if k_probe == 0 or max_check_rounds == 0 or len(book) < 2:
        log["complete"] = k_probe > 0 and len(book) < 2
        return
    tol = 1e-6 * max(float(run.land.scales().sigma_E), 1e-300)
    seen: dict[tuple[int, int], float] = {}
    for rnd in range(max_check_rounds):
        usable = np.array([k not in run.bad for k in range(len(book))])
        probe = np.array([p for p in neighbour_pairs(book.z, k_probe).tolist() if usable[p[0]] and usable[p[1]]],
                         dtype=np.int64).reshape(-1, 2)
        new = np.array([tuple(p) not in seen for p in probe.tolist()], dtype=bool)
        if new.any():
            for p, e in zip(probe[new].tolist(), line_maxima(run.land, book.z, probe[new])):
                seen[tuple(p)] = float(e)
        line = np.array([seen[tuple(p)] for p in probe.tolist()])
        flagged, _ = lower_line_pairs(book.z, book.energy, _edge_array(net), probe, line, tol)
        flagged = [tuple(p) for p in flagged.tolist()]
        todo = [p for p in flagged if run.tries.get(p, 0) < run.max_attempts_per_pair]
        log["n_probed"] = len(seen)
        log["n_flagged_left"] = len(flagged)
        log["rounds"].append({"probed": int(len(probe)), "flagged": len(flagged), "tried": len(todo)})
        if not flagged:
            log["complete"] = True
            return
        if not todo or run.out_of_time():
            return
        _run_round(run, todo, int(net.info.get("rounds", 0)) + rnd)
        missing = _next_pairs(run)          # every minimum found on the way becomes a node, and is connected
        if missing:
            _run_round(run, missing, int(net.info.get("rounds", 0)) + rnd)
            _next_pairs(run)


def _finish(run: _Run) -> None:
    """The network's minima become the book's (input minima first, then those found on the way), with the counts."""
    net, book = run.net, run.book
    net.minima = book.to_minima()
    for k in range(len(book)):
        net.graph.nodes[k]["energy"] = float(book.energy[k])
    net.info["n_new_minima"] = book.n_new
    net.info["connected"] = net.is_connected()


def _check_minima(land: Any, book: Any, flat_tol: float, match_tol: float, info: dict) -> dict[int, str]:
    """Why each input minimum that is not one fails ({index: reason}); fills in unknown (NaN) eigenvalues.

    Where U is smooth: finite energy, no clearly negative Hessian eigenvalue, and a descent from it stays within
    ``match_tol``. Where it is not known to be smooth: the point is refined on its kink and certified
    (:mod:`energyscope.search.nonsmooth`), and must not move by more than ``match_tol``.
    """
    from energyscope._tensor import to_numpy
    from energyscope.search.book import eig_tolerance
    from energyscope.search.minima import quench
    z = book.z
    K0 = len(z)
    bad: dict[int, str] = {}
    e, g = land.energy_and_grad(z)
    e, g = to_numpy(e), to_numpy(g)
    finite = np.isfinite(e) & np.isfinite(g).all(axis=1)
    for k in np.flatnonzero(~finite):
        bad[int(k)] = f"minimum {k} has a non-finite energy or gradient"
    fin_idx = np.nonzero(finite)[0]
    if not len(fin_idx):
        return bad
    if not land.is_smooth:
        from energyscope.search.nonsmooth import local_structure, refine
        kp = refine(land, z[fin_idx], "minimum", radius=1e-5 * land.scales().length)
        ls = local_structure(land, kp, flat_tol=flat_tol)
        info["n_evals"] += int(kp.n_evals + ls.n_evals)
        for r, k in enumerate(fin_idx):
            moved = float(np.linalg.norm(kp.z[r] - z[k]))
            if not ls.is_minimum[r]:
                why = kp.reason[r] or ("U decreases nearby" if ls.index[r] == -1 else
                                       f"{int(ls.index[r])} independent downhill directions")
                bad[int(k)] = f"minimum {k} is not a local minimum of the piecewise-smooth U: {why}"
            elif moved > match_tol:
                bad[int(k)] = f"minimum {k} is not a local minimum: the nearest one is {moved:.3g} away"
            elif np.isnan(book.eigenvalues[k]).any():
                book.eigenvalues[k] = ls.eigenvalues[r]
        return bad
    ev = np.full((K0, land.dim), np.nan)
    ev[finite] = np.linalg.eigvalsh(to_numpy(land.hessian(z[finite])))
    moved = np.zeros(K0)
    curv = np.abs(ev[fin_idx]).max(axis=1)
    res = quench(land, z[fin_idx], gtol=land.resolvable(1e-9) * float(np.min(curv)) * land.scales().length,
                 max_step=0.05 * land.scales().length)
    moved[fin_idx] = np.linalg.norm(to_numpy(res.z) - z[fin_idx], axis=1)
    info["n_evals"] += int(res.n_evals)
    for k in fin_idx:
        tol = float(eig_tolerance(ev[k][None, :], flat_tol)[0])
        if ev[k, 0] < -tol:
            bad[int(k)] = f"minimum {k} is not a local minimum: its Hessian has eigenvalue {ev[k, 0]:.6g} < 0"
        elif moved[k] > match_tol:
            bad[int(k)] = (f"minimum {k} is not a local minimum: a descent from it moves {moved[k]:.3g} "
                           f"(> {match_tol:.3g}) with |grad| = {np.linalg.norm(g[k]):.3g}")
    unknown = np.isnan(book.eigenvalues).any(axis=1) & finite
    book.eigenvalues[unknown] = ev[unknown]
    return bad


def _add_edge(net: TransitionNetwork, u: int, v: int, rec: Any, path: Path, pair: tuple[int, int],
              match_tol: float) -> bool:
    """Add a validated saddle as an edge unless the same saddle (within ``match_tol``) already joins u and v."""
    if net.graph.has_edge(u, v):
        for data in net.graph.get_edge_data(u, v).values():
            if np.linalg.norm(np.asarray(data["z"]) - rec.z) <= match_tol:
                return False
    net.add_transition_state(u, v, rec.energy, rec.z, rec.negative_eigenvalue, path=path,
                             path_max_energy=float(path.path_max_energy), eigenvalues=np.asarray(rec.eigenvalues),
                             pair=(int(pair[0]), int(pair[1])))
    return True


__all__ = ["Path", "Attempt", "TransitionNetwork", "connect", "candidate_pairs"]
