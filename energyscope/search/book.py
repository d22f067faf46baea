"""The minima known so far in a search, and the basin-quench recipe that matches descents to them.

:class:`MinimaBook` is the growing store of known minima that the path finders (:mod:`energyscope.search.neb`), the
saddle validation (:mod:`energyscope.search.saddles`) and :func:`energyscope.connect` share: the input minima first
(same indices), then the ones found on the way, appended and never re-sorted so that indices handed out stay valid.

:func:`quench_to_minima` is the one recipe for "descend a batch of points, then say which known minimum each end
point is": the descent is :func:`energyscope.search.minima.quench`; with a book, converged end points that match no
known minimum are validated (exact Hessian, or certified on their kink where U is not smooth) and added to it.
Basin assignment (:func:`energyscope.interpret.masses.assign_basins`) uses it too, against a fixed :class:`Minima`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from energyscope._tensor import to_numpy
from energyscope.landscape import Landscape
from energyscope.search.minima import Minima, quench


# ---------------------------------------------------------------------------------------------------------- tolerances
def default_match_tol(land: Landscape, minima: Minima | None = None, rel: float = 1e-3) -> float:
    """Distance under which two descents count as the same minimum: ``rel`` × the latent length scale, or the
    minima's own ``dedup_tol`` when that is larger."""
    tol = rel * land.scales().length
    if minima is not None:
        tol = max(tol, float(minima.dedup_tol))
    return tol


def eig_tolerance(eigenvalues: np.ndarray, flat_tol: float = 0.0, rel: float = 1e-6) -> np.ndarray:
    """Per-row flat-eigenvalue tolerance: ``rel`` × the largest |eigenvalue| of the row, at least ``flat_tol``."""
    ev = np.atleast_2d(eigenvalues)
    return np.maximum(rel * np.abs(ev).max(axis=1), flat_tol)


# ---------------------------------------------------------------------------------------------------------- minima book
class MinimaBook:
    """The minima known so far: the input :class:`Minima` first (same indices), then minima found on the way.

    New minima are appended, never re-sorted, so indices handed out stay valid.

    Args:
        minima: the starting set.
        match_tol: two points closer than this (Euclidean, latent units) are the same minimum.
    """

    def __init__(self, minima: Minima, match_tol: float):
        self.base = minima
        self.match_tol = float(match_tol)
        z = np.array(minima.z, dtype=np.float64)
        d = z.shape[-1] if z.ndim == 2 else 0
        self.z = z.reshape(len(minima), d) if len(minima) else np.zeros((0, d))
        self.energy = np.array(minima.energy, dtype=np.float64).reshape(-1)
        ev = np.array(minima.hessian_eigenvalues, dtype=np.float64)
        self.eigenvalues = ev.reshape(len(minima), -1) if len(minima) else np.zeros((0, d))
        self.hits = np.array(minima.hits).reshape(-1)
        self.n_input = len(minima)
        self._tree = None

    def __len__(self) -> int:
        return int(len(self.energy))

    @property
    def n_new(self) -> int:
        return len(self) - self.n_input

    def match(self, z: Any) -> tuple[np.ndarray, np.ndarray]:
        """Nearest known minimum of each row of z (N, d) -> (index or -1 beyond ``match_tol`` (N,), distance (N,))."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        if len(self) == 0 or len(z) == 0:
            return np.full(len(z), -1, dtype=int), np.full(len(z), np.inf)
        if self._tree is None:
            from scipy.spatial import cKDTree
            self._tree = cKDTree(self.z)
        dist, idx = self._tree.query(z, k=1)
        return np.where(dist <= self.match_tol, idx, -1).astype(int), np.asarray(dist, dtype=np.float64)

    def add(self, z: np.ndarray, energy: float, eigenvalues: np.ndarray) -> int:
        """Append a new minimum (or return the index of the one it coincides with)."""
        idx, _ = self.match(z[None, :])
        if idx[0] >= 0:
            return int(idx[0])
        self.z = np.vstack([self.z, z[None, :]])
        self.energy = np.append(self.energy, float(energy))
        self.eigenvalues = np.vstack([self.eigenvalues, np.asarray(eigenvalues, dtype=np.float64)[None, :]])
        self.hits = np.append(self.hits, 0).astype(self.hits.dtype if len(self.hits) else int)
        self._tree = None
        return len(self) - 1

    def match_or_add(self, land: Landscape, z: np.ndarray, energy: np.ndarray, ok: np.ndarray,
                     eig_rel: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
        """Index of the known minimum each quenched row of z (N, d) reached; rows that reached none are
        Hessian-validated and, when they are minima, added as new ones.

        Args:
            z, energy: (N, d) quenched points and (N,) their energies.
            ok: (N,) rows whose descent converged; other rows get -1.
            eig_rel: relative flat-eigenvalue tolerance (see :func:`eig_tolerance`).

        Returns:
            (index per row or -1 (N,), rows whose Hessian was evaluated (M,)).
        """
        idx, _ = self.match(z)
        idx = np.where(ok, idx, -1)
        new_rows = np.nonzero(ok & (idx < 0))[0]
        if len(new_rows) and not land.is_smooth:
            # a piecewise-smooth U: certify on the kink (the points come from certified quenches, so this is one
            # refinement step), and keep the kink's structure as its eigenvalues (+inf along sharp directions)
            from energyscope.search.nonsmooth import local_structure, refine
            kp = refine(land, z[new_rows], "minimum", radius=1e-5 * land.scales().length)
            ls = local_structure(land, kp, flat_tol=self.base.flat_tol)
            for r, c in zip(new_rows, range(len(kp))):
                if ls.is_minimum[c]:
                    idx[r] = self.add(kp.z[c], kp.energy[c], ls.eigenvalues[c])
        elif len(new_rows):
            vals = to_numpy(torch.linalg.eigvalsh(land.hessian(z[new_rows])))
            tol = eig_tolerance(vals, self.base.flat_tol, eig_rel)
            for r, v, t in zip(new_rows, vals, tol):
                if v[0] >= -t:
                    idx[r] = self.add(z[r], energy[r], v)
        return idx, new_rows

    def to_minima(self) -> Minima:
        """A NEW :class:`Minima`: the input minima first (same indices, same order), then the ones found on the way.

        The result is therefore sorted by energy only within the input block; ``stats["n_added"]`` counts the rest.
        """
        b = self.base
        stats = dict(b.stats)
        stats["n_input"] = self.n_input
        stats["n_added"] = self.n_new
        return Minima(z=self.z.copy(), energy=self.energy.copy(), hits=self.hits.copy(),
                      hessian_eigenvalues=self.eigenvalues.copy(), coverage=b.coverage, dedup_tol=b.dedup_tol,
                      flat_tol=b.flat_tol, stats=stats)


# ---------------------------------------------------------------------------------------------------------- descents
@dataclass
class Quenched:
    """Where a batch of descents ended, and which known minimum each reached.

    Attributes:
        z: (N, d) end points; energy: (N,) U there (whatever the descent returned: NaN/inf where it met those).
        finite: (N,) rows whose descent met only finite values.
        converged: (N,) rows whose descent converged (and met only finite values).
        minimum: (N,) index of the known minimum each end point is (for a book: its index in the book, new minima
            included), -1 for none.
        checked: rows that matched no known minimum and were checked as new ones (Hessian, or kink certification).
        n_evals: energy+gradient row evaluations of the descent.
    """

    z: np.ndarray
    energy: np.ndarray
    finite: np.ndarray
    converged: np.ndarray
    minimum: np.ndarray
    checked: np.ndarray
    n_evals: int


def quench_to_minima(land: Landscape, z: Any, known: MinimaBook | Minima, *, add_new: bool = True,
                     match_unconverged: bool = False, tol: float | None = None, eig_rel: float = 1e-6,
                     **quench_kw) -> Quenched:
    """Descend every row of z (N, d) (:func:`~energyscope.search.minima.quench`) and match the end points to ``known``.

    Args:
        land: the landscape.
        z: (N, d) starting points.
        known: a :class:`MinimaBook` (the search's growing set: end points match within its ``match_tol``) or a fixed
            :class:`Minima` (:meth:`Minima.assign`: within ``tol``, default its ``dedup_tol``, and across flat valleys).
        add_new: converged end points that match no known minimum are validated (:meth:`MinimaBook.match_or_add`)
            and, when minima, appended to the book (which must then be a :class:`MinimaBook`). False: ``known`` is
            left as it is and such end points get -1.
        match_unconverged: also match the finite end points of descents that did not converge (one stopped by its
            iteration cap on a known minimum counts there); they are never added.
        tol: the match distance for a :class:`Minima` (a book has its own).
        eig_rel: relative flat-eigenvalue tolerance for new minima (see :func:`eig_tolerance`).
        quench_kw: passed to :func:`~energyscope.search.minima.quench` (``gtol``, ``max_iter``, ``max_step``, ...).

    Returns:
        A :class:`Quenched`.
    """
    res = quench(land, z, **quench_kw)
    zq, eq = to_numpy(res.z), to_numpy(res.energy)
    finite = to_numpy(res.finite)
    converged = to_numpy(res.converged) & finite
    idx, checked = np.full(len(zq), -1, dtype=int), np.zeros(0, dtype=int)
    if add_new:
        if not isinstance(known, MinimaBook):
            raise TypeError(f"new minima are added to a MinimaBook, not to a {type(known).__name__}")
        idx, checked = known.match_or_add(land, zq, eq, converged, eig_rel)
    rows = np.zeros(len(zq), dtype=bool) if add_new else converged.copy()    # rows matched without adding
    if match_unconverged:
        rows |= finite & ~converged
    if rows.any():
        zf = np.where(finite[:, None], zq, 0.0)
        near = known.match(zf)[0] if isinstance(known, MinimaBook) else known.assign(zf, tol=tol)
        idx = np.where(rows, near, idx)
    return Quenched(z=zq, energy=eq, finite=finite, converged=converged, minimum=idx, checked=checked,
                    n_evals=res.n_evals)


__all__ = ["MinimaBook", "Quenched", "quench_to_minima", "default_match_tol", "eig_tolerance"]
