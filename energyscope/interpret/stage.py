"""What each basin means: prototypes, samples inside a basin, soft-mode traversals, decoded paths, off-data flags.

The numbers live here; the pictures in :mod:`energyscope.render`, the masses in :mod:`energyscope.interpret.masses` and the
label scores in :mod:`energyscope.interpret.labels`. :func:`interpret` runs the usual set for the analysis pipeline.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.spatial import cKDTree

from energyscope.errors import BadArgumentError, warn as warn_user
from energyscope._geometry import arc_length
from energyscope._tensor import to_numpy
from energyscope.landscape import Landscape, LandscapeError
from energyscope.interpret.masses import BasinMasses, MassEstimate, basin_masses
from energyscope.interpret.labels import LabelAgreement, label_agreement
from energyscope.search.minima import Minima
from energyscope.search.network import Path, TransitionNetwork


def prototypes(land: Landscape, minima: Minima) -> np.ndarray:
    """The decoder's mean at every minimum: (K, ...) in data units (raises without a decoder)."""
    return land.decode(minima.z)


# ---------------------------------------------------------------------------------------------- off-data
@dataclass
class OffData:
    """How far points sit from the data, relative to the data's own nearest-neighbour spacing.

    Attributes:
        distance: (N,) Euclidean distance (latent units) from each point to its nearest reference latent.
        nn_median, nn_p95: median and 95th percentile of the reference latents' nearest-neighbour distances.
        ratio_median, ratio_p95: (N,) ``distance`` divided by those.
        off: (N,) bool, ``ratio_p95 > threshold`` (farther from the data than 95 % of data points are from theirs).
        threshold: the ratio used for ``off``.
    """

    distance: np.ndarray
    nn_median: float
    nn_p95: float
    ratio_median: np.ndarray
    ratio_p95: np.ndarray
    off: np.ndarray
    threshold: float = 1.0

    def to_dict(self) -> dict:
        return {"distance": self.distance.tolist(), "nn_median": self.nn_median, "nn_p95": self.nn_p95,
                "ratio_median": self.ratio_median.tolist(), "ratio_p95": self.ratio_p95.tolist(),
                "off": self.off.tolist(), "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: dict) -> "OffData":
        a = lambda k, dt=float: np.asarray(d[k], dtype=dt)  # noqa: E731
        return cls(a("distance"), float(d["nn_median"]), float(d["nn_p95"]), a("ratio_median"), a("ratio_p95"),
                   a("off", bool), float(d.get("threshold", 1.0)))


def off_data(points: Any, reference: Any, threshold: float = 1.0) -> OffData:
    """Distance of points (N, d) to the nearest of the reference latents (M, d), in units of the data's own
    nearest-neighbour distances (each reference latent to its nearest other one)."""
    p = np.atleast_2d(np.asarray(to_numpy(points), dtype=np.float64))
    ref = np.asarray(to_numpy(reference), dtype=np.float64)
    if ref.ndim != 2 or len(ref) < 2:
        raise BadArgumentError(f"reference latents must be (M, d) with M >= 2, got shape {ref.shape}")
    if p.shape[1] != ref.shape[1]:
        raise BadArgumentError(f"points have {p.shape[1]} columns but reference latents have {ref.shape[1]}")
    tree = cKDTree(ref)
    dist = tree.query(p)[0]
    nn = tree.query(ref, k=2)[0][:, 1]
    med, p95 = float(np.median(nn)), float(np.percentile(nn, 95))
    med_, p95_ = max(med, np.finfo(float).tiny), max(p95, np.finfo(float).tiny)
    r95 = dist / p95_
    return OffData(dist, med, p95, dist / med_, r95, r95 > threshold, float(threshold))


# ---------------------------------------------------------------------------------------------- inside a basin
@dataclass
class BasinSamples:
    """Samples that quenched into each basin (resampled by importance weight where there is one).

    Attributes:
        basins: the basin indices shown.
        z: list of (n_b, d) latents per basin.
        decoded: list of (n_b, ...) decoder means per basin, or None without a decoder.
        source: which mass estimate they came from (``"importance"``, ``"mala"``, ``"sampler"``, ``"data"``).
    """

    basins: list[int]
    z: list[np.ndarray]
    decoded: list[np.ndarray] | None
    source: str


def basin_samples(land: Landscape, estimate: MassEstimate, per_basin: int = 8, basins: Sequence[int] | None = None,
                  seed: int = 0, decode: bool = True) -> BasinSamples:
    """Up to ``per_basin`` samples of each basin from a :class:`MassEstimate` that kept its samples (``keep_z``).

    Importance samples are drawn without replacement with probability proportional to their weight, so what is shown
    follows the equilibrium prior, not the base.
    """
    if estimate.z is None:
        raise BadArgumentError("this mass estimate did not keep its samples; compute it with keep_z=True")
    rng = np.random.default_rng(seed)
    k = len(estimate.mass)
    basins = list(range(k)) if basins is None else [int(b) for b in basins]
    zs = []
    for b in basins:
        idx = np.flatnonzero(estimate.basin == b)
        if estimate.log_weight is not None and len(idx):
            lw = estimate.log_weight[idx]
            w = np.where(np.isfinite(lw), np.exp(lw - np.max(lw[np.isfinite(lw)], initial=0.0)), 0.0)
            idx = idx[w > 0]
            w = w[w > 0]
            take = rng.choice(len(idx), size=min(per_basin, len(idx)), replace=False, p=w / w.sum()) if len(idx) \
                else np.zeros(0, dtype=int)
        else:
            take = rng.choice(len(idx), size=min(per_basin, len(idx)), replace=False)
        zs.append(estimate.z[idx[take]])
    dec = None
    if decode and land.has_decoder:
        dec = [land.decode(z) if len(z) else np.zeros((0,)) for z in zs]
    return BasinSamples(basins, zs, dec, estimate.method)


@dataclass
class Traversal:
    """Decoded walks z* + t · step · v along the softest Hessian eigenvectors v of one minimum.

    Attributes:
        index: the minimum.
        t: (T,) offsets in units of ``step``.
        eigenvalues: (n_modes,) Hessian eigenvalues of the modes (ascending; nats per latent unit²).
        directions: (n_modes, d) unit eigenvectors.
        step: (n_modes,) latent distance of one unit of t: 1/sqrt(eigenvalue) ("curvature": U rises by t²/2 in the
            quadratic approximation), or the data's spread along v ("scales", and for flat modes).
        z: (n_modes, T, d) latents.
        energy: (n_modes, T) U along each walk, nats.
        decoded: (n_modes, T, ...) decoder means, or None.
        unit: ``"curvature"`` or ``"scales"``.
    """

    index: int
    t: np.ndarray
    eigenvalues: np.ndarray
    directions: np.ndarray
    step: np.ndarray
    z: np.ndarray
    energy: np.ndarray
    decoded: np.ndarray | None
    unit: str


def traversal(land: Landscape, minima: Minima, index: int, n_modes: int = 3, t: Any = (-2, -1, 0, 1, 2),
              unit: str = "curvature", flat_tol: float | None = None, decode: bool = True) -> Traversal:
    """Walk along the ``n_modes`` softest Hessian eigenvectors of minimum ``index`` (what varies inside a basin).

    Args:
        t: offsets, in units of 1/sqrt(eigenvalue) (``unit="curvature"``) or of the data spread along the direction,
            √(Σ_i (v_i σ_z,i)²) from ``land.scales()`` (``unit="scales"``). Modes with eigenvalue ≤ ``flat_tol``
            (default ``minima.flat_tol``, at least 1e-12 × the largest) always use the scales.
    """
    if unit not in ("curvature", "scales"):
        raise BadArgumentError(f"unknown unit {unit!r}; use 'curvature' or 'scales'")
    if not 0 <= index < len(minima):
        raise IndexError(f"minimum {index} out of range (there are {len(minima)})")
    t = np.asarray(t, dtype=float).ravel()
    vals, vecs = land.hessian_eigh(minima.z[index][None, :])
    vals, vecs = vals[0], vecs[0]
    ftol = float(minima.flat_tol if flat_tol is None else flat_tol)
    ftol = max(ftol, 1e-12 * float(np.abs(vals).max()))
    n_modes = int(min(n_modes, land.dim))
    vals, dirs = vals[:n_modes], vecs[:, :n_modes].T
    sz = land.scales().sigma_z
    spread = np.sqrt(((dirs * sz[None, :]) ** 2).sum(1))
    step = np.where((unit == "curvature") & (vals > ftol), 1.0 / np.sqrt(np.maximum(vals, ftol)), spread)
    z = minima.z[index][None, None, :] + t[None, :, None] * (step[:, None, None] * dirs[:, None, :])
    flat = z.reshape(-1, land.dim)
    energy = to_numpy(land.energy(flat)).reshape(n_modes, len(t))
    dec = None
    if decode and land.has_decoder:
        out = land.decode(flat)
        dec = out.reshape((n_modes, len(t)) + out.shape[1:])
    return Traversal(int(index), t, vals, dirs, step, z, energy, dec, unit)


# ---------------------------------------------------------------------------------------------- paths
@dataclass
class PathStrip:
    """A minimum-energy path and the straight line between the same minima, sampled at the same fractions.

    Attributes:
        i, j: the minima the path joins (edge endpoints in the network; -1 when unknown).
        saddle_energy: the edge's transition-state energy (nats).
        frac: (F,) fractions of arc length of the filmstrip frames.
        path_z, line_z: (F, d) frame latents along the path / the line.
        path_decoded, line_decoded: (F, ...) decoder means, or None.
        profile_frac: (P,) fractions for the energy profiles.
        path_energy, line_energy: (P,) U along the path (interpolated between images) / the line, nats.
        path_off_data, line_off_data: (F,) frame distance to the data / the data's 95th-percentile NN distance
            (None without reference latents).
    """

    i: int
    j: int
    saddle_energy: float
    frac: np.ndarray
    path_z: np.ndarray
    line_z: np.ndarray
    path_decoded: np.ndarray | None
    line_decoded: np.ndarray | None
    profile_frac: np.ndarray
    path_energy: np.ndarray
    line_energy: np.ndarray
    path_off_data: np.ndarray | None = None
    line_off_data: np.ndarray | None = None

    @property
    def path_max(self) -> float:
        return float(np.max(self.path_energy))

    @property
    def line_max(self) -> float:
        return float(np.max(self.line_energy))


def _along(z: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Points at arc-length fractions ``frac`` along the polyline z (M, d) (linear between images)."""
    s = arc_length(z)
    if s[-1] <= 0:
        return np.repeat(z[:1], len(frac), axis=0)
    s /= s[-1]
    return np.stack([np.interp(frac, s, z[:, c]) for c in range(z.shape[1])], axis=1)


def path_strip(land: Landscape, path: Path, n_frames: int = 8, n_profile: int = 64, i: int = -1, j: int = -1,
               decode: bool = True) -> PathStrip:
    """Filmstrip and energy profile along ``path.z`` and along the straight line between its end points."""
    pz = np.asarray(path.z, dtype=float)
    if pz.ndim != 2 or len(pz) < 2 or pz.shape[1] != land.dim:
        raise BadArgumentError(f"path images must be (M >= 2, {land.dim}), got shape {pz.shape}")
    frac = np.linspace(0.0, 1.0, n_frames)
    pf = np.linspace(0.0, 1.0, n_profile)
    line = lambda f: pz[0][None, :] * (1 - f[:, None]) + pz[-1][None, :] * f[:, None]  # noqa: E731
    path_z, line_z = _along(pz, frac), line(frac)
    u = to_numpy(land.energy(np.concatenate([_along(pz, pf), line(pf)])))
    pd = ld = None
    if decode and land.has_decoder:
        dec = land.decode(np.concatenate([path_z, line_z]))
        pd, ld = dec[:n_frames], dec[n_frames:]
    po = lo = None
    if land.reference is not None and len(land.reference) >= 2:
        od = off_data(np.concatenate([path_z, line_z]), land.reference)
        po, lo = od.ratio_p95[:n_frames], od.ratio_p95[n_frames:]
    return PathStrip(int(i), int(j), float(path.saddle_energy), frac, path_z, line_z, pd, ld, pf,
                     u[:n_profile], u[n_profile:], po, lo)


def path_strips(land: Landscape, paths: TransitionNetwork | Iterable[Path], n_frames: int = 8, n_profile: int = 64,
                decode: bool = True) -> list[PathStrip]:
    """:func:`path_strip` for every transition state of a network that has a path (or for a list of paths)."""
    if isinstance(paths, TransitionNetwork):
        items = []
        for u, v, d in paths.graph.edges(data=True):
            p = d.get("path")
            if p is None:
                continue
            if len(paths.minima):   # orient (i, j) as the path runs: i at path.z[0], j at path.z[-1]
                d0 = np.linalg.norm(np.asarray(p.z[0]) - paths.minima.z[[u, v]], axis=1)
                if d0[1] < d0[0]:
                    u, v = v, u
            items.append((u, v, p))
    else:
        items = [(-1, -1, p) for p in paths]
    return [path_strip(land, p, n_frames, n_profile, i=u, j=v, decode=decode) for u, v, p in items]


# ---------------------------------------------------------------------------------------------- the usual set
@dataclass
class Interpretation:
    """Prototypes, masses, label agreement and off-data flags of one set of minima.

    Attributes:
        prototypes: (K, ...) decoder means at the minima, or None without a decoder.
        masses: leaf-level :class:`~energyscope.interpret.masses.BasinMasses` (aggregate with ``masses.aggregate``).
        labels: :class:`~energyscope.interpret.labels.LabelAgreement` of the data's basins with the labels, or None.
        minima_off_data: :class:`OffData` of the minima, or None without reference latents.
    """

    prototypes: np.ndarray | None
    masses: BasinMasses | None
    labels: LabelAgreement | None
    minima_off_data: OffData | None
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able, except arrays (``prototypes`` and per-sample records), which stay numpy arrays."""
        return {"prototypes": self.prototypes,
                "masses": None if self.masses is None else self.masses.to_dict(),
                "labels": None if self.labels is None else self.labels.to_dict(),
                "minima_off_data": None if self.minima_off_data is None else self.minima_off_data.to_dict(),
                "info": dict(self.info)}

    @classmethod
    def from_dict(cls, d: dict) -> "Interpretation":
        return cls(None if d.get("prototypes") is None else np.asarray(d["prototypes"], dtype=float),
                   None if d.get("masses") is None else BasinMasses.from_dict(d["masses"]),
                   None if d.get("labels") is None else LabelAgreement.from_dict(d["labels"]),
                   None if d.get("minima_off_data") is None else OffData.from_dict(d["minima_off_data"]),
                   dict(d.get("info") or {}))


def interpret(land: Landscape, minima: Minima, seed: int = 0, masses: bool = True, hdbscan: bool = True,
              reference: Any = None, labels: Any = None, progress: bool = True, **mass_kw) -> Interpretation:
    """Prototypes, the three basin masses, label agreement (with labels) and off-data flags for ``minima``.

    Args:
        reference, labels: reference latents (N, d) and their labels (N,); default ``land.reference`` and (only with
            that reference) ``land.labels``.
        masses: estimate the masses (the slow part); without them there is no data assignment, hence no label scores.
        hdbscan: also run the HDBSCAN baseline on the reference latents.
        mass_kw: passed to :func:`energyscope.interpret.masses.basin_masses` (``n_prior``, ``n_sampler``, ``method``,
            ``sampler``, ``mala``, flag thresholds, ``tol``, ``batch_size``).

    A decoder that fails (raises, returns NaN/inf or the wrong number of rows) leaves ``prototypes`` None, with a
    RuntimeWarning and ``info["decoder_error"]`` naming the fault; the rest is computed as usual.
    """
    if len(minima) == 0:
        raise LandscapeError("no minima to interpret")
    if reference is None:
        reference = land.reference
        labels = land.labels if labels is None else labels
    ref = None if reference is None else np.asarray(to_numpy(reference), dtype=np.float64)
    if labels is not None and (ref is None or len(np.asarray(labels)) != len(ref)):
        raise LandscapeError("labels need reference latents with one row per label")
    info: dict = {"seed": seed}
    protos = _prototypes_or_warn(land, minima, info) if land.has_decoder else None
    bm = basin_masses(land, minima, reference=ref, seed=seed, progress=progress, **mass_kw) if masses else None
    agree = None
    if bm is not None and bm.data is not None and labels is not None:
        agree = label_agreement(bm.data.basin, labels, ref, hdbscan=hdbscan)
    od = off_data(minima.z, ref) if ref is not None and len(ref) >= 2 else None
    return Interpretation(protos, bm, agree, od, info)


def _prototypes_or_warn(land: Landscape, minima: Minima, info: dict) -> np.ndarray | None:
    """The prototypes, or None when the decoder fails: a warning names the fault and ``info["decoder_error"]`` keeps
    it, so that a faulty decoder costs the pictures, not the masses and label scores computed from the energy."""
    try:
        return prototypes(land, minima)
    except LandscapeError as exc:
        info["decoder_error"] = str(exc)
        warn_user(f"prototypes not decoded: {exc}", RuntimeWarning)
        return None


def prototype_thumbnails(land: Landscape, minima: Minima, kind: str | None = None,
                         image_shape: Sequence[int] | None = None) -> np.ndarray:
    """One RGB thumbnail (K, h, w, 3) in [0, 1] per minimum, for the disconnectivity plot and the HTML report;
    ``thumbnails[i]`` is the picture for minimum i (see :func:`energyscope.render.thumbnails`)."""
    from energyscope.render import thumbnails
    return thumbnails(prototypes(land, minima), kind, image_shape)


__all__ = ["prototypes", "OffData", "off_data", "BasinSamples", "basin_samples", "Traversal", "traversal",
           "PathStrip", "path_strip", "path_strips", "Interpretation", "interpret", "prototype_thumbnails"]
