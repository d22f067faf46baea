"""Basin tracking across a series of landscapes (checkpoints of one training run): which basins continue, which are
born, die, merge or split.

Input: one :class:`Snapshot` per checkpoint, in training order (what each analysis found: minimum positions,
energies, barriers, masses and, where there is a decoder, decoded prototypes). Output: a :class:`History` whose
``tracks`` are basins followed through the checkpoints and whose ``events`` say what happened between consecutive
checkpoints. Nothing here calls a model: tracking reads saved results only.

**The match.** Between checkpoints t and t+1, basin a (at t) and basin b (at t+1) are compared by

    D(a, b)² = (‖z_a − z_b‖ / r_z)² + (rms(x_a − x_b) / r_x)²

where z are the minima's latent positions, x the decoded prototypes (the second term only where both checkpoints
have them), and the radii are ``radius`` (default ½) times the *local spacing* of the pair: the larger of a's
distance to the nearest other minimum of its own checkpoint and b's to the nearest other minimum of its own (the
same with prototypes for r_x). So a basin may move by up to half its distance to its nearest neighbour between
checkpoints: farther, it would be nearer to where that neighbour was, and a match would be a guess. A pair with
D > 1 is never matched: "no match" is a possible answer. A checkpoint's only minimum has no neighbour and may match
anything.

1. **Continuations**: a one-to-one assignment minimising Σ D over the matched pairs, where leaving a basin
   unmatched costs ½ (so a pair is matched exactly when that lowers the total: Hungarian algorithm on the padded
   cost matrix, ``scipy.optimize.linear_sum_assignment``). The basin's track continues.
2. An unmatched basin a at t whose nearest basin b at t+1 has D ≤ 1 **merged** into b; with none, it **died**.
3. An unmatched basin b at t+1 whose nearest basin a at t has D ≤ 1 **split** off a; with none, it was **born**.

The links of steps 1–3 form a bipartite graph; each connected component with more than one basin, or with a basin
on one side only, is one :class:`Event`: ``birth`` (0 → 1), ``death`` (1 → 0), ``merge`` (k → 1), ``split``
(1 → m), ``regroup`` (k → m, both at once). At a merge the track of the assignment's pair continues and the others
end "merged into" it; at a split the assigned child continues the parent's track and the others start new tracks
"split from" it. A checkpoint whose analysis failed is left out of the series (the tracks link the checkpoints on
either side of it).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from energyscope.errors import BadArgumentError

EVENT_KINDS = ("birth", "death", "merge", "split", "regroup")
DEFAULT_RADIUS = 0.5     # match radius in typical spacings: beyond half the spacing a moved basin is nearer to where
                         # its neighbour was, so a match would be a guess
UNMATCHED_COST = 0.5     # the assignment's price of leaving one basin unmatched (a pair with D < 1 is cheaper)


@dataclasses.dataclass
class Snapshot:
    """One checkpoint's basins, as tracking reads them (minima sorted by energy, as an analysis keeps them).

    Attributes:
        name: the checkpoint's name (shown in the timeline).
        z: (K, d) minimum positions in the latent space.
        energy: (K,) U at each minimum (nats).
        barrier: (K,) lowest barrier out of each basin (nats, NaN where none), or None.
        prior_mass: (K,) prior mass of each basin (fractions), or None.
        data_mass: (K,) fraction of the reference data in each basin, or None.
        prototypes: (K, ...) decoded minima, or None without a decoder.
        labels: (K,) the most common data label in each basin (as text, "" where none), or None.
        epoch: the training epoch (or step) the checkpoint was saved at, where known.
    """

    name: str
    z: np.ndarray
    energy: np.ndarray
    barrier: np.ndarray | None = None
    prior_mass: np.ndarray | None = None
    data_mass: np.ndarray | None = None
    prototypes: np.ndarray | None = None
    labels: list | None = None
    epoch: float | None = None

    def __post_init__(self) -> None:
        self.z = np.asarray(self.z, dtype=np.float64)
        if self.z.ndim != 2:
            raise BadArgumentError(f"Snapshot {self.name!r}: z must be (K, d), got shape {self.z.shape}")
        k = len(self.z)
        self.energy = _per_basin(self.energy, k, "energy", self.name)
        for field in ("barrier", "prior_mass", "data_mass"):
            value = getattr(self, field)
            setattr(self, field, None if value is None else _per_basin(value, k, field, self.name))
        if self.prototypes is not None:
            self.prototypes = np.asarray(self.prototypes, dtype=np.float64)
            if len(self.prototypes) != k:
                raise BadArgumentError(f"Snapshot {self.name!r}: {len(self.prototypes)} prototypes for {k} minima")
        if self.labels is not None:
            self.labels = [str(x) for x in self.labels]
            if len(self.labels) != k:
                raise BadArgumentError(f"Snapshot {self.name!r}: {len(self.labels)} labels for {k} minima")

    def __len__(self) -> int:
        return len(self.z)


def _per_basin(x: Any, k: int, what: str, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(a) != k:
        raise BadArgumentError(f"Snapshot {name!r}: {what} has {len(a)} entries for {k} minima")
    return a


@dataclasses.dataclass
class Event:
    """What happened to some basins between checkpoints ``step - 1`` and ``step`` (indices into ``History.names``).

    Attributes:
        kind: ``birth``, ``death``, ``merge``, ``split`` or ``regroup`` (basins merged and split at once).
        step: the later checkpoint of the two.
        before: basin indices at checkpoint ``step - 1`` (empty for a birth).
        after: basin indices at checkpoint ``step`` (empty for a death).
        tracks_before, tracks_after: the tracks those basins belong to.
        nearest: for a birth or a death, D to the nearest basin on the other side (> 1: how far from being a
            match it was; None when the other side has no basin); for the other kinds the largest D of its links.
    """

    kind: str
    step: int
    before: list
    after: list
    tracks_before: list
    tracks_after: list
    nearest: float | None = None

    def describe(self, names: Sequence[str], track_names: Sequence[str] | None = None) -> str:
        """One line for people, e.g. ``merge at ckpt_30: tracks 2, 5 → track 2``."""
        def tracks(ids: list) -> str:
            return ", ".join((track_names[t] if track_names else f"track {t}") for t in ids) or "—"
        where = f"{names[self.step - 1]} → {names[self.step]}" if self.step > 0 else names[self.step]
        return f"{self.kind} ({where}): {tracks(self.tracks_before)} → {tracks(self.tracks_after)}"


@dataclasses.dataclass
class Track:
    """One basin followed through the checkpoints.

    Attributes:
        id: the track's number (tracks are numbered by the checkpoint they start at, then by energy).
        basin: (n_checkpoints,) the basin index at each checkpoint, −1 where the track does not exist.
        start, end: the first and last checkpoint where it exists.
        origin: ``"first"`` (present at the first checkpoint), ``"birth"`` or ``"split"`` (then ``parent`` is the
            track it split from).
        fate: ``"last"`` (present at the last checkpoint), ``"death"`` or ``"merge"`` (then ``merged_into`` is the
            track it merged into).
    """

    id: int
    basin: np.ndarray
    start: int
    end: int
    origin: str
    fate: str = "last"
    parent: int | None = None
    merged_into: int | None = None

    @property
    def steps(self) -> np.ndarray:
        """The checkpoints where the track exists."""
        return np.flatnonzero(self.basin >= 0)


@dataclasses.dataclass
class History:
    """Tracks and events of a series of checkpoints (the result of :func:`track`).

    Attributes:
        names: the checkpoints' names, in order.
        epochs: (n,) their epochs (NaN where unknown).
        tracks: the :class:`Track` list.
        events: the :class:`Event` list, in checkpoint order.
        distance: per interval (n − 1 entries), the (K_t, K_{t+1}) matrix D used.
        settings: the ``radius`` used.
    Per-track series, (n_tracks, n) with NaN where the track does not exist: :meth:`series` (``energy``,
    ``barrier``, ``prior_mass``, ``data_mass``).
    """

    names: list
    epochs: np.ndarray
    tracks: list
    events: list
    snapshots: list
    distance: list
    settings: dict

    @property
    def n_checkpoints(self) -> int:
        return len(self.names)

    def series(self, what: str) -> np.ndarray:
        """(n_tracks, n_checkpoints) values of ``what`` (a Snapshot field: ``energy``, ``barrier``, ``prior_mass``,
        ``data_mass``) along each track; NaN where the track does not exist or the value is unknown."""
        out = np.full((len(self.tracks), self.n_checkpoints), np.nan)
        for tr in self.tracks:
            for t in tr.steps:
                values = getattr(self.snapshots[t], what)
                if values is not None:
                    out[tr.id, t] = values[tr.basin[t]]
        return out

    def count(self, kind: str) -> int:
        return sum(e.kind == kind for e in self.events)

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(k)} {k}{'s' if self.count(k) != 1 else ''}" for k in EVENT_KINDS)
        return f"{len(self.tracks)} tracks over {self.n_checkpoints} checkpoints: {counts}"

    def signature(self) -> list:
        """The history as plain tuples ``(kind, step, sorted basins before, sorted basins after)``: what a test
        compares with a constructed series."""
        return [(e.kind, e.step, tuple(sorted(e.before)), tuple(sorted(e.after))) for e in self.events]

    def to_dict(self) -> dict:
        return {"names": list(self.names), "epochs": self.epochs,
                "tracks": [dataclasses.asdict(t) for t in self.tracks],
                "events": [dataclasses.asdict(e) for e in self.events],
                "snapshots": [dataclasses.asdict(s) for s in self.snapshots],
                "distance": list(self.distance), "settings": dict(self.settings)}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        tracks = [Track(**{**t, "basin": np.asarray(t["basin"], dtype=np.int64)}) for t in d["tracks"]]
        return cls(names=list(d["names"]), epochs=np.asarray(d["epochs"], dtype=float), tracks=tracks,
                   events=[Event(**e) for e in d["events"]], snapshots=[Snapshot(**s) for s in d["snapshots"]],
                   distance=[np.asarray(m, dtype=float) for m in d["distance"]], settings=dict(d["settings"]))


# ---------------------------------------------------------------------------------------------------------------------
# Matching two checkpoints
# ---------------------------------------------------------------------------------------------------------------------
LONE_SPACING = 1e12      # the spacing of a checkpoint's only minimum (no neighbour): any move is possible, and the
                         # distances, divided by this, still order the candidates


def nearest_spacing(points: np.ndarray) -> np.ndarray:
    """(K,) distance from each row of ``points`` (K, ...) to the nearest other row (:data:`LONE_SPACING` for K = 1)."""
    from scipy.spatial import cKDTree
    p = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    if len(p) < 2:
        return np.full(len(p), LONE_SPACING)
    dist, _ = cKDTree(p).query(p, k=2)
    return np.where(dist[:, 1] > 0, dist[:, 1], LONE_SPACING)


def _scaled(a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """(K_a, K_b) distances between the rows of a and b, each over ``radius`` times the larger of the two rows'
    nearest-neighbour spacings in their own sets."""
    from scipy.spatial.distance import cdist
    a2, b2 = a.reshape(len(a), -1), b.reshape(len(b), -1)
    scale = radius * np.maximum(nearest_spacing(a2)[:, None], nearest_spacing(b2)[None, :])
    return cdist(a2, b2) / scale


def match_distance(s0: Snapshot, s1: Snapshot, radius: float = DEFAULT_RADIUS) -> np.ndarray:
    """The (K_0, K_1) matrix D between the basins of two checkpoints (module docstring)."""
    d2 = _scaled(s0.z, s1.z, radius) ** 2
    if s0.prototypes is not None and s1.prototypes is not None and \
            s0.prototypes.shape[1:] == s1.prototypes.shape[1:] and len(s0) and len(s1):
        size = max(int(np.prod(s0.prototypes.shape[1:])), 1)
        x0, x1 = (p.reshape(len(p), -1) / np.sqrt(size) for p in (s0.prototypes, s1.prototypes))  # rms
        d2 = d2 + _scaled(x0, x1, radius) ** 2
    return np.sqrt(d2)


def assign(D: np.ndarray) -> list[tuple[int, int]]:
    """The one-to-one pairs (a, b) with D[a, b] ≤ 1 minimising Σ D over the pairs + ½ per unmatched basin."""
    from scipy.optimize import linear_sum_assignment
    k0, k1 = D.shape
    if k0 == 0 or k1 == 0:
        return []
    big = 1e6
    cost = np.full((k0 + k1, k1 + k0), big)
    cost[:k0, :k1] = np.where(D <= 1.0, D, big)
    cost[:k0, k1:] = np.where(np.eye(k0, dtype=bool), UNMATCHED_COST, big)   # a left unmatched
    cost[k0:, :k1] = np.where(np.eye(k1, dtype=bool), UNMATCHED_COST, big)   # b left unmatched
    cost[k0:, k1:] = 0.0
    rows, cols = linear_sum_assignment(cost)
    return [(int(a), int(b)) for a, b in zip(rows, cols) if a < k0 and b < k1 and D[a, b] <= 1.0]


def _links(D: np.ndarray) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]]:
    """(continuations, merges a → b, splits a → b) between two checkpoints."""
    pairs = assign(D)
    matched0 = {a for a, _ in pairs}
    matched1 = {b for _, b in pairs}
    merges, splits = [], []
    k0, k1 = D.shape
    for a in range(k0):
        if a not in matched0 and k1:
            b = int(np.argmin(D[a]))
            if D[a, b] <= 1.0:
                merges.append((a, b))
    for b in range(k1):
        if b not in matched1 and k0:
            a = int(np.argmin(D[:, b]))
            if D[a, b] <= 1.0:
                splits.append((a, b))
    return pairs, merges, splits


def _components(k0: int, k1: int, edges: Sequence[tuple[int, int]]) -> list[tuple[list[int], list[int]]]:
    """Connected components of the bipartite link graph: (basins at t, basins at t+1), each sorted."""
    import networkx as nx
    g = nx.Graph()
    g.add_nodes_from((0, a) for a in range(k0))
    g.add_nodes_from((1, b) for b in range(k1))
    g.add_edges_from(((0, a), (1, b)) for a, b in edges)
    out = []
    for comp in nx.connected_components(g):
        before = sorted(i for side, i in comp if side == 0)
        after = sorted(i for side, i in comp if side == 1)
        out.append((before, after))
    return sorted(out, key=lambda c: (min(c[0]) if c[0] else np.inf, min(c[1]) if c[1] else np.inf))


def _kind(n_before: int, n_after: int) -> str | None:
    if n_before == 1 and n_after == 1:
        return None
    if n_before == 0:
        return "birth"
    if n_after == 0:
        return "death"
    if n_after == 1:
        return "merge"
    if n_before == 1:
        return "split"
    return "regroup"


# ---------------------------------------------------------------------------------------------------------------------
# The history
# ---------------------------------------------------------------------------------------------------------------------
def track(snapshots: Sequence[Snapshot], radius: float = DEFAULT_RADIUS) -> History:
    """Follow the basins of ``snapshots`` (one per checkpoint, in training order) and name the events.

    Parameters:
        snapshots: the checkpoints' :class:`Snapshot` s, in order.
        radius: the match radius, in units of the typical spacing between minima (and between prototypes); two
            basins farther apart than that (D > 1) are never the same basin. Default ½: a basin may move by up to
            half the typical spacing between checkpoints (farther, it would be nearer to where its neighbour was); a
            new basin within half a spacing of an old one split off it, a farther one was born.

    Returns:
        a :class:`History` (tracks, events, the distance matrices and radii used).
    """
    if not (isinstance(radius, (int, float)) and np.isfinite(radius) and radius > 0):
        raise BadArgumentError(f"radius must be a positive number, got {radius!r}")
    snapshots = list(snapshots)
    if not snapshots:
        raise BadArgumentError("track needs at least one snapshot")
    n = len(snapshots)
    tracks: list[Track] = []
    current: dict[int, int] = {}   # basin index at the current checkpoint -> track id

    def new_track(t: int, basin: int, origin: str, parent: int | None = None) -> int:
        tid = len(tracks)
        b = np.full(n, -1, dtype=np.int64)
        b[t] = basin
        tracks.append(Track(tid, b, t, t, origin, parent=parent))
        return tid

    for b in range(len(snapshots[0])):
        current[b] = new_track(0, b, "first")
    events: list[Event] = []
    distances: list[np.ndarray] = []
    for t in range(1, n):
        s0, s1 = snapshots[t - 1], snapshots[t]
        D = match_distance(s0, s1, radius)
        distances.append(D)
        pairs, merges, splits = _links(D)
        nxt: dict[int, int] = {}
        for a, b in pairs:                            # continuations
            tid = current[a]
            tracks[tid].basin[t] = b
            tracks[tid].end = t
            nxt[b] = tid
        for a, b in sorted(splits, key=lambda ab: (ab[1], ab[0])):   # new tracks, split off a
            nxt[b] = new_track(t, b, "split", parent=current[a])
        for b in range(len(s1)):                      # the rest were born
            if b not in nxt:
                nxt[b] = new_track(t, b, "birth")
        for a, b in merges:
            tid = current[a]
            tracks[tid].fate = "merge"
            tracks[tid].merged_into = nxt[b]
        for a in range(len(s0)):
            tid = current[a]
            if tracks[tid].end == t - 1 and tracks[tid].fate == "last":
                tracks[tid].fate = "death"
        links = pairs + merges + splits
        for before, after in _components(len(s0), len(s1), links):
            kind = _kind(len(before), len(after))
            if kind is None:
                continue
            if kind == "death":
                near = float(D[before[0]].min()) if D.shape[1] else None
            elif kind == "birth":
                near = float(D[:, after[0]].min()) if D.shape[0] else None
            else:
                near = max(float(D[a, b]) for a, b in links if a in before)
            events.append(Event(kind, t, before, after, sorted({current[a] for a in before}),
                                sorted({nxt[b] for b in after}), nearest=near))
        current = nxt
    epochs = np.array([np.nan if s.epoch is None else float(s.epoch) for s in snapshots])
    return History(names=[s.name for s in snapshots], epochs=epochs, tracks=tracks, events=events,
                   snapshots=snapshots, distance=distances, settings={"radius": float(radius)})


__all__ = ["EVENT_KINDS", "Event", "History", "Snapshot", "Track", "assign", "match_distance", "track"]
