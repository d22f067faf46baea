"""How basins line up with labels: purity, NMI, ARI, V-measure, Hungarian accuracy, and an HDBSCAN baseline.

All scores compare two labelings of the same N points. Basin assignments may contain negative codes (``OTHER``,
``UNRESOLVED`` from :mod:`energyscope.interpret.masses`, or HDBSCAN noise); each negative code is kept as a cluster of its own
and counted, never dropped.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics

from energyscope.errors import BadArgumentError
from energyscope._record import RecordAccess
from energyscope._tensor import to_numpy


def contingency(pred: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts table of clusters × labels.

    Returns:
        (row values (R,), column values (C,), counts (R, C) int): ``counts[r, c]`` points with cluster ``rows[r]``
        and label ``cols[c]``.
    """
    pred, labels = _check(pred, labels)
    rows, ri = np.unique(pred, return_inverse=True)
    cols, ci = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(rows), len(cols)), dtype=int)
    np.add.at(counts, (ri, ci), 1)
    return rows, cols, counts


def _check(pred: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    pred, labels = np.asarray(to_numpy(pred)).ravel(), np.asarray(to_numpy(labels)).ravel()
    if len(pred) != len(labels):
        raise BadArgumentError(f"cluster assignment has {len(pred)} entries but labels have {len(labels)}")
    if len(pred) == 0:
        raise BadArgumentError("no points to compare (empty assignment)")
    return pred, labels


@dataclass
class ClusterScores(RecordAccess):
    """Agreement of a clustering with labels (all in [0, 1] except ARI, which is ≤ 1 and ≈ 0 for chance).

    Attributes:
        purity: Σ_clusters max_label count / N.
        nmi: normalised mutual information (arithmetic normalisation, natural log).
        ari: adjusted Rand index.
        v_measure, homogeneity, completeness: Rosenberg & Hirschberg 2007 (V = NMI with arithmetic mean).
        hungarian_accuracy: best one-to-one matching accuracy, only when the numbers of clusters and labels match
            (None otherwise).
        n_clusters, n_classes, n: sizes.
    """

    purity: float
    nmi: float
    ari: float
    v_measure: float
    homogeneity: float
    completeness: float
    hungarian_accuracy: float | None
    n_clusters: int
    n_classes: int
    n: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ClusterScores":
        return cls(**d)


def cluster_scores(pred: Any, labels: Any) -> ClusterScores:
    """Purity, NMI, ARI, V-measure and (where the counts match) Hungarian accuracy of ``pred`` (N,) vs ``labels``."""
    pred, labels = _check(pred, labels)
    _, _, counts = contingency(pred, labels)
    n = int(counts.sum())
    purity = float(counts.max(axis=1).sum() / n)
    h, c, v = metrics.homogeneity_completeness_v_measure(labels, pred)
    hung = None
    if counts.shape[0] == counts.shape[1]:
        r, col = linear_sum_assignment(-counts)
        hung = float(counts[r, col].sum() / n)
    return ClusterScores(purity=purity, nmi=float(metrics.normalized_mutual_info_score(labels, pred)),
                         ari=float(metrics.adjusted_rand_score(labels, pred)), v_measure=float(v),
                         homogeneity=float(h), completeness=float(c), hungarian_accuracy=hung,
                         n_clusters=int(counts.shape[0]), n_classes=int(counts.shape[1]), n=n)


def hdbscan_clusters(latents: Any, min_cluster_size: int | None = None, min_samples: int | None = None) -> np.ndarray:
    """HDBSCAN cluster labels (N,) of latents (N, d); -1 marks noise. Deterministic (no seed needed).

    ``min_cluster_size`` defaults to max(5, N // 100).
    """
    import hdbscan

    z = np.asarray(to_numpy(latents), dtype=np.float64)
    if z.ndim != 2:
        raise BadArgumentError(f"latents must be (N, d), got shape {z.shape}")
    if len(z) < 2:
        raise BadArgumentError("HDBSCAN needs at least 2 latents")
    mcs = max(5, len(z) // 100) if min_cluster_size is None else int(min_cluster_size)
    mcs = min(max(mcs, 2), len(z))
    return hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=min_samples).fit_predict(z).astype(int)


@dataclass
class LabelAgreement:
    """Basins versus labels, HDBSCAN versus labels, and HDBSCAN versus basins, plus the basin × label table.

    Attributes:
        basins: :class:`ClusterScores` of the basin assignment against the labels.
        hdbscan: scores of HDBSCAN on the reference latents against the labels (None when not run).
        hdbscan_vs_basins: scores of the basin assignment against the HDBSCAN clusters (None when not run).
        rows: (R,) basin indices of the confusion table rows (negative: other/unresolved).
        cols: (C,) label values of its columns.
        confusion: (R, C) counts.
        n_unassigned: points whose basin is negative (kept as their own cluster in the scores).
        hdbscan_labels: (N,) HDBSCAN clusters (-1 noise) or None.
        hdbscan_noise: fraction of points HDBSCAN called noise.
        hdbscan_params: settings used.
    """

    basins: ClusterScores
    hdbscan: ClusterScores | None
    hdbscan_vs_basins: ClusterScores | None
    rows: np.ndarray
    cols: np.ndarray
    confusion: np.ndarray
    n_unassigned: int
    hdbscan_labels: np.ndarray | None = None
    hdbscan_noise: float | None = None
    hdbscan_params: dict | None = None

    def to_dict(self) -> dict:
        """JSON-able except ``hdbscan_labels``, which stays a numpy array."""
        return {"basins": self.basins.to_dict(),
                "hdbscan": None if self.hdbscan is None else self.hdbscan.to_dict(),
                "hdbscan_vs_basins": None if self.hdbscan_vs_basins is None else self.hdbscan_vs_basins.to_dict(),
                "rows": self.rows.tolist(), "cols": self.cols.tolist(), "confusion": self.confusion.tolist(),
                "n_unassigned": self.n_unassigned, "hdbscan_labels": self.hdbscan_labels,
                "hdbscan_noise": self.hdbscan_noise, "hdbscan_params": self.hdbscan_params}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelAgreement":
        sc = lambda v: None if v is None else ClusterScores.from_dict(v)  # noqa: E731
        return cls(ClusterScores.from_dict(d["basins"]), sc(d.get("hdbscan")), sc(d.get("hdbscan_vs_basins")),
                   np.asarray(d["rows"]), np.asarray(d["cols"]), np.asarray(d["confusion"], dtype=int),
                   int(d["n_unassigned"]),
                   None if d.get("hdbscan_labels") is None else np.asarray(d["hdbscan_labels"], dtype=int),
                   d.get("hdbscan_noise"), d.get("hdbscan_params"))


def label_agreement(basin: Any, labels: Any, latents: Any = None, hdbscan: bool = True,
                    min_cluster_size: int | None = None, min_samples: int | None = None) -> LabelAgreement:
    """Scores of the basin assignment (N,) against labels (N,), with an HDBSCAN baseline on ``latents`` (N, d).

    Typically ``basin = masses.data.basin`` (the basin each reference latent quenched to) and ``latents`` the
    reference latents themselves.
    """
    basin, labels = _check(basin, labels)
    rows, cols, conf = contingency(basin, labels)
    hd = hd_vs = hl = noise = params = None
    if hdbscan and latents is not None:
        z = np.asarray(to_numpy(latents))
        if len(z) != len(labels):
            raise BadArgumentError(f"latents have {len(z)} rows but labels have {len(labels)}")
        hl = hdbscan_clusters(z, min_cluster_size, min_samples)
        params = {"min_cluster_size": max(5, len(z) // 100) if min_cluster_size is None else min_cluster_size,
                  "min_samples": min_samples}
        hd = cluster_scores(hl, labels)
        hd_vs = cluster_scores(basin, hl)
        noise = float((hl < 0).mean())
    return LabelAgreement(cluster_scores(basin, labels), hd, hd_vs, rows, cols, conf, int((basin < 0).sum()),
                          hl, noise, params)


__all__ = ["ClusterScores", "cluster_scores", "contingency", "hdbscan_clusters", "LabelAgreement",
           "label_agreement"]
