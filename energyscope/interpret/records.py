"""What the report shows, as typed records built from the stages' results: one :class:`BasinRecord` per minimum, a
:class:`LabelSummary` of basins versus labels, the path gallery (:class:`GalleryPath`) and the landscape views.

These are the seam between the analysis and the report: :class:`~energyscope.analysis.Analysis` stores them, saves
them, and the report reads nothing else of the interpretation. Fields also read by key (``basin["prior_mass"]``),
as the dict records of energyscope 0.1.0 did (:class:`~energyscope._record.RecordAccess`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from energyscope._geometry import UnionFind, arc_length
from energyscope._record import RecordAccess
from energyscope._tensor import to_numpy
from energyscope.interpret.labels import ClusterScores, LabelAgreement
from energyscope.interpret.masses import BasinMasses
from energyscope.interpret.stage import OffData, path_strip
from energyscope.landscape import Landscape, LandscapeError
from energyscope.search.minima import Minima
from energyscope.search.network import TransitionNetwork


@dataclasses.dataclass
class BasinRecord(RecordAccess):
    """One minimum's row of the report.

    Attributes:
        index: the minimum (0-based, minima sorted by energy).
        energy: U at the minimum, nats.
        barrier: lowest barrier out (nats); None when the minimum has no transition state.
        hits: restarts that ended there.
        n_flat: flat Hessian directions; ``n_sharp``: kink directions (0 for a smooth minimum).
        prior_mass, sampler_mass, data_mass: fractions in [0, 1] (None when not computed); ``*_se`` their standard
            errors.
        data_count: reference latents that descend to this minimum (None without reference latents).
        label_counts: {label: count} of those latents, most common first; ``dominant_label`` and ``purity`` (its
            share) summarise it.
        nearest_data: distance to the nearest reference latent over the data's typical nearest-neighbour distance.
        flags: "prior hole", "no data", "sampler ≠ equilibrium", "off data".
    """

    index: int
    energy: float
    barrier: float | None = None
    hits: int = 0
    n_flat: int = 0
    n_sharp: int = 0
    prior_mass: float | None = None
    prior_mass_se: float | None = None
    sampler_mass: float | None = None
    sampler_mass_se: float | None = None
    data_mass: float | None = None
    data_mass_se: float | None = None
    data_count: int | None = None
    label_counts: dict = dataclasses.field(default_factory=dict)
    dominant_label: Any = None
    purity: float | None = None
    nearest_data: float | None = None
    flags: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class GalleryPath(RecordAccess):
    """One minimum-energy path of the gallery, oriented from minimum ``i`` to ``j``.

    Attributes:
        i, j: the minima it joins.
        saddle_energy: U at its transition state, nats; ``validated``: whether that is a validated saddle;
            ``negative_eigenvalue`` of the Hessian there.
        path_length, line_length: arc length of the path and length of the straight line (latent units).
        mep_s, mep_energy: (M,) fraction of the way and U along the path; ``line_s``, ``line_energy`` the same along
            the straight line; ``image_s``, ``image_energy``: (B,) the band's images; ``frame_s``: (F,) where the
            frames are.
        mep_frames, line_frames: (F, ...) decoded filmstrips (None without a decoder).
        mep_off_data, line_off_data: (F,) whether each frame lies off the data (None without reference latents).
    """

    i: int
    j: int
    saddle_energy: float
    validated: bool
    negative_eigenvalue: float
    path_length: float
    line_length: float
    mep_s: np.ndarray
    mep_energy: np.ndarray
    line_s: np.ndarray
    line_energy: np.ndarray
    image_s: np.ndarray
    image_energy: np.ndarray
    frame_s: np.ndarray
    mep_frames: np.ndarray | None = None
    line_frames: np.ndarray | None = None
    mep_off_data: np.ndarray | None = None
    line_off_data: np.ndarray | None = None


@dataclasses.dataclass
class LabelSummary(ClusterScores):
    """Basins versus labels: the scores of :class:`~energyscope.interpret.labels.ClusterScores` for the basin
    assignment (``purity``, ``nmi``, ``ari``, ...), the HDBSCAN baseline's (``hdbscan``) and HDBSCAN versus the
    basins (``hdbscan_vs_basins``), and the basin × label table (``confusion``, (R, C), with its row basins and
    column labels)."""

    hdbscan: ClusterScores | None = None
    hdbscan_vs_basins: ClusterScores | None = None
    hdbscan_noise: float | None = None
    hdbscan_params: dict | None = None
    n_unassigned: int = 0
    confusion: np.ndarray | None = None
    confusion_rows: list = dataclasses.field(default_factory=list)
    confusion_cols: list = dataclasses.field(default_factory=list)

    @classmethod
    def from_mapping(cls, d: Any) -> "LabelSummary":
        """From 0.1.0's saved dict (its HDBSCAN entries were dicts too)."""
        d = dict(d)
        for key in ("hdbscan", "hdbscan_vs_basins"):
            if isinstance(d.get(key), dict):
                d[key] = ClusterScores.from_mapping(d[key])
        return super().from_mapping(d)


def plain_label(x: Any) -> Any:
    """A label as a JSON scalar (numpy scalars unwrapped, anything else as text)."""
    if isinstance(x, np.generic):
        x = x.item()
    return x if isinstance(x, (int, str, float, bool)) else str(x)


def label_summary(la: LabelAgreement | None) -> LabelSummary | None:
    if la is None:
        return None
    return LabelSummary(**dataclasses.asdict(la.basins), hdbscan=la.hdbscan, hdbscan_vs_basins=la.hdbscan_vs_basins,
                        hdbscan_noise=la.hdbscan_noise, hdbscan_params=la.hdbscan_params,
                        n_unassigned=int(la.n_unassigned), confusion=np.asarray(la.confusion, dtype=np.int64),
                        confusion_rows=[int(r) for r in np.asarray(la.rows).tolist()],
                        confusion_cols=[plain_label(c) for c in np.asarray(la.cols).tolist()])


def lowest_saddle(minima: Minima, network: TransitionNetwork | None) -> np.ndarray:
    """(K,) the lowest transition-state energy out of each minimum (inf where none)."""
    lowest = np.full(len(minima), np.inf)
    if network is not None:
        for u, v, e in network.graph.edges(data="energy"):
            if u != v and e is not None:
                lowest[u] = min(lowest[u], float(e))
                lowest[v] = min(lowest[v], float(e))
    return lowest


def basin_records(minima: Minima, network: TransitionNetwork | None, masses: BasinMasses | None,
                  minima_off_data: OffData | None, labels: Any = None) -> list[BasinRecord]:
    """One :class:`BasinRecord` per minimum (``labels``: (N,) labels of the reference latents the data mass
    assigned, or None)."""
    k = len(minima)
    lowest = lowest_saddle(minima, network)
    n_flat = np.asarray(minima.n_flat)
    n_sharp = np.isposinf(np.asarray(minima.hessian_eigenvalues, dtype=float)).sum(axis=1) if k else \
        np.zeros(0, dtype=int)
    bm, od = masses, minima_off_data
    data_basin = bm.data.basin if bm is not None and bm.data is not None else None
    out = []
    for i in range(k):
        r = BasinRecord(index=i, energy=float(minima.energy[i]),
                        barrier=None if not np.isfinite(lowest[i]) else float(lowest[i] - minima.energy[i]),
                        hits=int(minima.hits[i]), n_flat=int(n_flat[i]), n_sharp=int(n_sharp[i]))
        if bm is not None:
            for key, est in (("prior", bm.equilibrium), ("sampler", bm.sampler), ("data", bm.data)):
                if est is not None:
                    setattr(r, f"{key}_mass", float(est.mass[i]))
                    setattr(r, f"{key}_mass_se", float(est.se[i]))
        if data_basin is not None:
            r.data_count = int((data_basin == i).sum())
            if labels is not None and len(labels) == len(data_basin):
                labs, cnt = np.unique(np.asarray(labels)[data_basin == i], return_counts=True)
                order = np.lexsort((labs.astype(str), -cnt))
                r.label_counts = {plain_label(labs[o]): int(cnt[o]) for o in order}
                if len(cnt):
                    r.dominant_label = plain_label(labs[order[0]])
                    r.purity = float(cnt[order[0]] / cnt.sum())
        if bm is not None:
            if bool(bm.flags.prior_hole[i]):
                r.flags.append("prior hole")
            if bm.data is not None and bool(bm.flags.unsupported[i]):
                r.flags.append("no data")
            if bool(bm.flags.disagree[i]):
                r.flags.append("sampler ≠ equilibrium")
        if od is not None:
            r.nearest_data = float(od.ratio_p95[i])
            if bool(od.off[i]):
                r.flags.append("off data")
        out.append(r)
    return out


def gallery_edges(network: TransitionNetwork, n_paths: int) -> list[tuple[int, int, dict]]:
    """The transition states that build the merge tree, most significant first: those joining the largest
    superbasins (by number of minima), ties broken by lower energy; at most ``n_paths``, returned by energy."""
    edges = sorted(((float(d.get("energy", np.inf)), int(u), int(v), d)
                    for u, v, d in network.graph.edges(data=True) if u != v and d.get("path") is not None),
                   key=lambda t: (t[0], min(t[1], t[2]), max(t[1], t[2])))
    sets = UnionFind(max(network.graph.nodes, default=-1) + 1)
    merges = []
    for e, u, v, d in edges:
        smaller = min(sets.size(u), sets.size(v))
        if sets.union(u, v):
            merges.append((smaller, e, u, v, d))
    chosen = sorted(merges, key=lambda t: (-t[0], t[1]))[:max(int(n_paths), 0)]
    return [(u, v, d) for _, _, u, v, d in sorted(chosen, key=lambda t: t[1])]


def gallery(land: Landscape, minima: Minima, network: TransitionNetwork, n_paths: int, n_frames: int,
            on_decoder_error: Callable[[Exception], None] | None = None) -> list[GalleryPath]:
    """The path gallery: the :func:`gallery_edges` as :class:`GalleryPath` records, with decoded filmstrips when
    the landscape has a decoder. A decoder that fails costs the filmstrips, not the energy profiles
    (``on_decoder_error`` is told, once)."""
    out = []
    decode = land.has_decoder
    for u, v, d in gallery_edges(network, n_paths):
        path = d["path"]
        pz = np.asarray(path.z, dtype=float)
        i, j = (v, u) if np.linalg.norm(pz[0] - minima.z[v]) < np.linalg.norm(pz[0] - minima.z[u]) else (u, v)
        try:
            strip = path_strip(land, path, n_frames=n_frames, i=i, j=j, decode=decode)
        except LandscapeError as exc:
            if not decode:
                raise
            if on_decoder_error is not None:
                on_decoder_error(exc)
            decode = False
            strip = path_strip(land, path, n_frames=n_frames, i=i, j=j, decode=False)
        arc = arc_length(pz)
        out.append(GalleryPath(
            i=int(i), j=int(j), saddle_energy=float(d.get("energy", path.saddle_energy)),
            validated=bool(path.saddle_validated), negative_eigenvalue=float(d.get("negative_eigenvalue", np.nan)),
            path_length=float(arc[-1]), line_length=float(np.linalg.norm(pz[-1] - pz[0])),
            mep_s=np.asarray(strip.profile_frac), mep_energy=np.asarray(strip.path_energy),
            line_s=np.asarray(strip.profile_frac), line_energy=np.asarray(strip.line_energy),
            image_s=arc / arc[-1] if arc[-1] > 0 else arc, image_energy=np.asarray(path.energy, float),
            frame_s=np.asarray(strip.frac),
            mep_frames=None if strip.path_decoded is None else np.asarray(strip.path_decoded),
            line_frames=None if strip.path_decoded is None else np.asarray(strip.line_decoded),
            mep_off_data=None if strip.path_off_data is None else np.asarray(strip.path_off_data),
            line_off_data=None if strip.path_off_data is None else np.asarray(strip.line_off_data)))
    return out


def landscape_views(land: Landscape, minima: Minima | None, network: TransitionNetwork | None,
                    masses: BasinMasses | None, grid_size: int) -> tuple[dict[str, np.ndarray], int]:
    """Data for the landscape picture, and the number of non-finite grid values.

    Returns ``views`` with ``reference`` (N, d), ``reference_labels`` (N,) and ``reference_basin`` (N,) when there
    are reference latents, and for d = 2 the contour grid ``grid_x`` (G,), ``grid_y`` (G,), ``grid_U`` (G, G)
    covering the minima and paths with a margin.
    """
    views: dict[str, np.ndarray] = {}
    n_bad = 0
    if land.reference is not None:
        views["reference"] = np.asarray(to_numpy(land.reference), dtype=float)
        if land.labels is not None:
            views["reference_labels"] = np.asarray([plain_label(x) for x in np.asarray(land.labels).tolist()])
        if masses is not None and masses.data is not None:
            views["reference_basin"] = np.asarray(masses.data.basin, dtype=np.int64)
    if land.dim == 2 and minima is not None and len(minima):
        pts = [np.asarray(minima.z, float)]
        if network is not None:
            pts += [np.asarray(d["path"].z, float) for _, _, d in network.graph.edges(data=True)
                    if d.get("path") is not None]
        pts = np.concatenate(pts)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        span = np.maximum(hi - lo, 0.5 * land.scales().length)
        lo, hi = lo - 0.35 * span, hi + 0.35 * span
        gx, gy = np.linspace(lo[0], hi[0], grid_size), np.linspace(lo[1], hi[1], grid_size)
        xx, yy = np.meshgrid(gx, gy)
        u = to_numpy(land.energy(np.column_stack([xx.ravel(), yy.ravel()]))).reshape(xx.shape)
        n_bad = int((~np.isfinite(u)).sum())
        views.update(grid_x=gx, grid_y=gy, grid_U=u)
    return views, n_bad


def mass_counts(masses: BasinMasses | None) -> dict[str, int]:
    """Non-finite and unsettled samples of the mass estimates, for the diagnostics' ``nan_counts``."""
    out: dict[str, int] = {}
    if masses is None:
        return out
    for name, est in (("prior", masses.equilibrium), ("sampler", masses.sampler), ("data", masses.data)):
        if est is None:
            continue
        info = est.info or {}
        if info.get("n_nonfinite"):
            out[f"{name} samples with a non-finite weight"] = int(info["n_nonfinite"])
        if info.get("n_unresolved"):
            out[f"{name} samples whose descent did not settle"] = int(info["n_unresolved"])
    return out
