"""Minima: batched multi-start search, deduplication, Hessian validation and a coverage estimate.

:func:`find_minima` runs in rounds. Each round

1. draws starts (base-prior samples, reference latents, a box; or the user's ``starts``),
2. descends them all at once (:func:`quench`, the batched optimiser of :mod:`energyscope.optim`); rows that meet
   non-finite values are dropped and counted, rows that hit the iteration cap are counted as unconverged,
3. groups the converged rows (distance AND energy, union-find over a KD-tree) and computes exact Hessians at one
   representative per group; a representative with a clearly negative eigenvalue is pushed off both ways along
   that mode and descended again (a few times at most), the others are minima,
4. polishes each minimum with Newton steps on its stiff subspace (so coordinates reach round-off accuracy even when
   the descent stopped at a loose gradient tolerance) and records its Hessian eigenvalues,
5. merges the round's minima into those already found (distance AND energy again, plus a segment test for minima
   that differ only along flat directions) and updates the hit counts and the Chao1 coverage estimate.

On a landscape that is not known to be smooth (``land.smoothness``: ReLU-family energy networks, max-pooling, |x|)
steps 2-4 are replaced by their non-smooth counterparts: the descent is BFGS with a weak-Wolfe line search
(:func:`energyscope.optim.minimize_nonsmooth`), which approaches minima on kinks where the gradient never vanishes;
its end points are grouped and refined exactly on their kinks by :func:`energyscope.search.nonsmooth.refine`, and a
refined point is a minimum only when :func:`energyscope.search.nonsmooth.local_structure` certifies it (Clarke stationary,
index 0, no probe direction lowers U). Kink minima report ``+inf`` Hessian eigenvalues for their sharp directions.

Every tolerance is unit-free: it is a multiple of the landscape's scales (σ_z: latent length, σ_E: energy spread;
their ratio σ_E/σ_z² is the curvature unit) or of the gradient tolerance.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from energyscope.errors import BadArgumentError, warn as warn_user
from energyscope.settings import MinimaSettings, checked_keywords
from energyscope._geometry import components
from energyscope._tensor import jsonable, to_numpy
from energyscope.landscape import Landscape
from energyscope.optim import MinimizeResult, minimize, minimize_nonsmooth
from energyscope.search.starts import SOURCES, check_bounds as _check_bounds, check_starts as _check_starts, make_starts, scale_box, start_box



# ---------------------------------------------------------------------------------------------------------- defaults
def default_gtol(land: Landscape, rel: float = 1e-6) -> float:
    """Unit-free gradient tolerance: ``rel`` × σ_E / σ_z (nats per latent unit)."""
    sc = land.scales()
    return land.resolvable(rel) * sc.sigma_E / sc.length


def default_max_step(land: Landscape, rel: float = 0.25) -> float:
    """Largest optimiser step: ``rel`` × the latent length scale."""
    return rel * land.scales().length


def default_flat_tol(land: Landscape, rel: float = 1e-6) -> float:
    """Eigenvalue tolerance: ``rel`` × σ_E / σ_z² (nats per latent unit²). Eigenvalues within ± this are flat."""
    sc = land.scales()
    return land.resolvable(rel) * sc.sigma_E / sc.length**2


METHODS = ("auto", "lbfgs", "fire", "nonsmooth")


def descent_method(land: Landscape, method: str = "auto") -> str:
    """The descent a landscape gets: ``"auto"`` is L-BFGS where U is known to be smooth, non-smooth BFGS otherwise."""
    if method not in METHODS:
        raise BadArgumentError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if method == "auto":
        return "lbfgs" if land.is_smooth else "nonsmooth"
    return method


@checked_keywords()
def quench(land: Landscape, z0: Any, gtol: float | None = None, max_iter: int = 5000,
           max_step: float | None = None, method: str = "auto", progress: bool = False,
           desc: str = "quench", max_step_max: float | None = None, certify: bool = True,
           grow: float | None = None) -> MinimizeResult:
    """Descend every row of z0 (R, d) to a local minimum of U (batched; see :func:`energyscope.optim.minimize`).

    Tolerances default to the landscape's scales (:func:`default_gtol`, :func:`default_max_step`). With the default
    ``max_step_max=None`` every step stays within ``max_step``, so a row stays close to steepest descent and ends in
    its own basin (what basin assignment needs); a larger ``max_step_max`` lets steps grow (faster, for searches).

    On a landscape that is not known to be smooth (``method="auto"``) the descent is non-smooth BFGS
    (:func:`energyscope.optim.minimize_nonsmooth`); with ``certify`` (default) the rows where it stopped are grouped,
    refined onto their kink and certified (:func:`energyscope.search.nonsmooth.refine`, ``local_structure``): a row is then
    ``converged`` only when it ended at a certified minimum, and it is returned exactly there. ``grow`` (non-smooth
    only) starts steps at ``max_step`` and lets the cap grow by that factor per iteration up to ``max_step_max``.
    """
    z0 = land.as_tensor(z0)
    method = descent_method(land, method)
    gtol = default_gtol(land) if gtol is None else gtol
    max_step = default_max_step(land) if max_step is None else max_step
    if method == "nonsmooth":
        res = _in_chunks(lambda z: minimize_nonsmooth(
            land.energy_and_grad, z, gtol=gtol, xtol=1e-12 * land.scales().length, max_iter=min(max_iter, 2000),
            max_step=max_step, max_step_max=max_step if max_step_max is None else max_step_max, progress=progress,
            desc=desc, grow=grow), z0)
        return _certify_rows(land, res) if certify else res
    sc = land.scales()
    return _in_chunks(lambda z: minimize(land.energy_and_grad, z, method=method, gtol=gtol, max_iter=max_iter,
                                         max_step=max_step, progress=progress, desc=desc, max_step_max=max_step_max,
                                         blind_scale=sc.length**2 / sc.sigma_E if sc.sigma_E > 0 else None), z0)


#: memory for one chunk of descents (bytes): positions, gradients, optimiser state and L-BFGS pairs, ~32 d doubles
#: per row (18 000 rows at d = 128, 2 000 at d = 1024)
QUENCH_BYTES = 2**29


def quench_chunk_rows(dim: int) -> int:
    """Descents run together: :data:`QUENCH_BYTES` over ~32 d doubles per row (every row is independent: its own
    optimiser state and step control, so chunking changes no result)."""
    return int(max(1, QUENCH_BYTES // (32 * 8 * max(1, dim))))


def _in_chunks(run: Any, z0: Any) -> MinimizeResult:
    """``run`` (a batched descent of (R, d) starts) on chunks of :func:`quench_chunk_rows` rows, results joined."""
    rows = quench_chunk_rows(z0.shape[1])
    if len(z0) <= rows:
        return run(z0)
    parts = [run(z0[s:s + rows]) for s in range(0, len(z0), rows)]
    cat = {f: torch.cat([getattr(p, f) for p in parts]) for f in
           ("z", "energy", "grad", "grad_norm", "converged", "finite", "n_iter")}
    stalled = None if parts[0].stalled is None else torch.cat([p.stalled for p in parts])
    return MinimizeResult(**cat, n_evals=sum(p.n_evals for p in parts), n_calls=sum(p.n_calls for p in parts),
                          stalled=stalled)


def _certify_rows(land: Landscape, res: MinimizeResult) -> MinimizeResult:
    """Non-smooth quench results whose ``converged`` rows sit exactly at certified minima (see :func:`quench`)."""
    ended = to_numpy(res.finite) & (to_numpy(res.converged) | to_numpy(res.stalled))
    rows = np.flatnonzero(ended)
    conv = np.zeros(len(ended), dtype=bool)
    z, e, gn = to_numpy(res.z).copy(), to_numpy(res.energy).copy(), to_numpy(res.grad_norm).copy()
    if len(rows):
        tols = _make_tols(land, None, None, None, None)
        grp, kp, ls = _refine_ends(land, z[rows], e[rows], gn[rows], tols)
        ok = ls.is_minimum[grp] & (np.linalg.norm(z[rows] - kp.z[grp], axis=1) <= 2 * tols.kink_radius)
        r = rows[ok]
        z[r], e[r], gn[r], conv[r] = kp.z[grp[ok]], kp.energy[grp[ok]], kp.stationarity[grp[ok]], True
    t = res.z
    return MinimizeResult(z=torch_like(z, t), energy=torch_like(e, t), grad=res.grad,
                          grad_norm=torch_like(gn, t), converged=torch_like(conv, t, bool), finite=res.finite,
                          n_iter=res.n_iter, n_evals=res.n_evals, n_calls=res.n_calls, stalled=res.stalled)


def torch_like(a: np.ndarray, like: Any, dtype: Any = None) -> Any:
    """numpy ``a`` as a tensor on the device (and dtype, unless given) of tensor ``like``."""
    import torch
    return torch.as_tensor(a, device=like.device, dtype=torch.bool if dtype is bool else like.dtype)


# ---------------------------------------------------------------------------------------------------------- coverage
def chao1(hits: Any) -> float:
    """Chao1 estimate of the total number of minima from per-minimum hit counts (K,) (entries ≥ 1).

    With f1 minima hit once, f2 hit twice, S found and n hits in all:
    S + (n−1)/n · f1²/(2 f2) when f2 > 0, and the bias-corrected S + (n−1)/n · f1(f1−1)/2 when f2 = 0
    (Chao 1984; Chao 2005). Returns 0 for no hits.
    """
    h = np.asarray(hits, dtype=np.int64).ravel()
    h = h[h > 0]
    s, n = len(h), int(h.sum())
    if n == 0:
        return 0.0
    f1, f2 = int((h == 1).sum()), int((h == 2).sum())
    c = (n - 1) / n
    if f2 > 0:
        return s + c * f1 * f1 / (2.0 * f2)
    return s + c * f1 * (f1 - 1) / 2.0


@dataclass
class Coverage:
    """How complete the search looks: distinct minima found, seen once/twice, and Chao1's estimate of the total.

    Attributes:
        found: distinct minima found.
        singletons: minima hit by exactly one descent (f1).
        doubletons: minima hit by exactly two descents (f2).
        estimated_total: Chao1 estimate of all minima reachable by these start distributions (:func:`chao1`).
        n_restarts: restarts spent in all rounds.
        rounds: rounds of restarts run.
        n_unresolved: descents that did not end at a validated minimum (hit the iteration cap, stopped where no
            minimum could be certified, or met non-finite values): where they were headed is unknown, so they speak
            against completeness.
    """

    found: int
    singletons: int
    doubletons: int
    estimated_total: float
    n_restarts: int
    rounds: int = 1
    n_unresolved: int = 0

    @classmethod
    def from_hits(cls, hits: Any, n_restarts: int, rounds: int = 1, n_unresolved: int = 0) -> "Coverage":
        """Coverage from per-minimum hit counts (K,)."""
        h = np.asarray(hits, dtype=np.int64).ravel()
        return cls(found=int(len(h)), singletons=int((h == 1).sum()), doubletons=int((h == 2).sum()),
                   estimated_total=float(chao1(h)), n_restarts=int(n_restarts), rounds=int(rounds),
                   n_unresolved=int(n_unresolved))

    @property
    def complete(self) -> bool:
        """True when no minimum was seen only once (so Chao1 estimates nothing unseen) and every descent ended at a
        validated minimum; False before any is found.

        This is stricter than ``estimated_total < found + 0.5``: a few singletons among many doubletons make the
        Chao1 excess small although the rarest basins are clearly under-sampled; and a descent that never arrived
        may have been on its way to a minimum nobody saw.
        """
        return self.found > 0 and self.singletons == 0 and self.n_unresolved == 0

    @property
    def estimated_missing(self) -> float:
        return max(0.0, self.estimated_total - self.found)

    def to_dict(self) -> dict:
        return {"found": self.found, "singletons": self.singletons, "doubletons": self.doubletons,
                "estimated_total": float(self.estimated_total), "n_restarts": self.n_restarts,
                "rounds": self.rounds, "n_unresolved": self.n_unresolved, "complete": self.complete}

    @classmethod
    def from_dict(cls, d: dict) -> "Coverage":
        return cls(found=int(d["found"]), singletons=int(d["singletons"]), doubletons=int(d["doubletons"]),
                   estimated_total=float(d["estimated_total"]), n_restarts=int(d["n_restarts"]),
                   rounds=int(d.get("rounds", 1)), n_unresolved=int(d.get("n_unresolved", 0)))


# ---------------------------------------------------------------------------------------------------------- result
@dataclass
class Minima:
    """Validated, deduplicated local minima, sorted by energy ascending.

    Attributes:
        z: (K, d) positions, latent units.
        energy: (K,) U at each minimum, nats.
        hits: (K,) how many descents ended in each (a restart that stopped on a saddle is pushed off both ways and
            counts once for each side).
        hessian_eigenvalues: (K, d) ascending, nats per latent unit². At a minimum on a kink (piecewise-smooth U)
            the finite ones are the curvature along the kink (the reduced Hessian of the smooth pieces), and each
            sharp direction, along which U rises like |x|, is ``+inf`` (:attr:`n_sharp`, :attr:`kind`).
        coverage: a :class:`Coverage`.
        dedup_tol: assignment radius (latent units): a point within it of a minimum counts as that minimum
            (:meth:`assign`).
        flat_tol: eigenvalues within ± this are flat directions (nats per latent unit²).
        stats: counts from the search (restarts, converged, unconverged, dropped non-finite, saddles pushed off,
            rejected, evaluations, tolerances, wall time, ``smoothness``). On a non-smooth landscape also
            ``n_stalled`` (descents whose line search stopped, counted in ``n_converged``: normal on a kink),
            ``n_kink_refined`` (end points refined onto kinks), ``n_restalled`` (refinements that had to descend
            again) and ``n_uncertified`` (descents whose end point could not be certified as a minimum).
        grad_norm: (K,) gradient norm at each minimum after polishing (nats per latent unit), when known; at a kink
            minimum the Clarke stationarity measure (norm of the minimal-norm element of the convex hull of the
            gradients of the pieces that meet there), since the gradient itself does not vanish.
        flat_vectors: (K, f, d) orthonormal flat directions of each minimum (f = the most any minimum has; rows of
            zeros pad the others), or None when no minimum has a flat direction. :meth:`assign` uses them.
    """

    z: np.ndarray
    energy: np.ndarray
    hits: np.ndarray
    hessian_eigenvalues: np.ndarray
    coverage: Coverage | None = None
    dedup_tol: float = 1e-4
    flat_tol: float = 0.0
    stats: dict = field(default_factory=dict)
    grad_norm: np.ndarray | None = None
    flat_vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return int(len(self.energy))

    @property
    def dim(self) -> int:
        return int(self.z.shape[1])

    @property
    def n_sharp(self) -> np.ndarray:
        """(K,) number of sharp (kink) directions at each minimum: 0 at a smooth minimum."""
        return np.isposinf(self.hessian_eigenvalues).sum(axis=1) if len(self) else np.zeros(0, dtype=int)

    @property
    def kind(self) -> np.ndarray:
        """(K,) ``"smooth"`` or ``"kink"`` for each minimum."""
        return np.where(self.n_sharp > 0, "kink", "smooth")

    @property
    def n_flat(self) -> np.ndarray:
        """(K,) number of flat directions (|eigenvalue| ≤ flat_tol) at each minimum."""
        return (np.abs(self.hessian_eigenvalues) <= self.flat_tol).sum(axis=1)

    def assign(self, z: Any, tol: float | None = None) -> np.ndarray:
        """Index of the minimum each row of z (N, d) coincides with (within ``tol``, default ``dedup_tol``), else -1.

        For a minimum with flat directions (a valley of equal energy, e.g. along a latent dimension the energy
        ignores) the distance is measured across the valley only: a point anywhere along it counts as that minimum.
        """
        z = np.atleast_2d(to_numpy(z))
        if len(self) == 0 or len(z) == 0:
            return np.full(len(z), -1, dtype=int)
        from scipy.spatial import cKDTree
        dist, idx = cKDTree(self.z).query(z, k=1)
        tol = self.dedup_tol if tol is None else tol
        out = np.where(dist <= tol, idx, -1).astype(int)
        if self.flat_vectors is not None and (out < 0).any():
            rows = np.flatnonzero(out < 0)
            best = np.full(len(rows), np.inf)
            for k in np.flatnonzero(np.abs(self.flat_vectors).sum(axis=(1, 2)) > 0):
                diff = z[rows] - self.z[k]
                V = self.flat_vectors[k]                                   # (f, d), zero rows are harmless
                across = np.linalg.norm(diff - (diff @ V.T) @ V, axis=1)
                hit = (across <= tol) & (across < best)
                out[rows[hit]], best[hit] = k, across[hit]
        return out

    def to_dict(self) -> dict:
        """Plain data: numpy arrays and JSON-able scalars/dicts (no pickling needed); inverse of :meth:`from_dict`."""
        return {
            "z": np.asarray(self.z, dtype=np.float64),
            "energy": np.asarray(self.energy, dtype=np.float64),
            "hits": np.asarray(self.hits, dtype=np.int64),
            "hessian_eigenvalues": np.asarray(self.hessian_eigenvalues, dtype=np.float64),
            "grad_norm": None if self.grad_norm is None else np.asarray(self.grad_norm, dtype=np.float64),
            "flat_vectors": None if self.flat_vectors is None else np.asarray(self.flat_vectors, dtype=np.float64),
            "coverage": None if self.coverage is None else self.coverage.to_dict(),
            "dedup_tol": float(self.dedup_tol),
            "flat_tol": float(self.flat_tol),
            "stats": jsonable(self.stats),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Minima":
        """Rebuild from :meth:`to_dict` output (arrays may come back as lists)."""
        def rows(a: Any, dtype: type) -> np.ndarray:  # (k, d), also for k = 0 (reshape(0, -1) is ambiguous)
            a = np.asarray(a, dtype=dtype)
            return a.reshape(k, -1) if k else a.reshape(0, a.shape[-1] if a.ndim == 2 else 0)
        k = len(np.asarray(d["energy"]))
        z = rows(d["z"], np.float64)
        cov = d.get("coverage")
        gn = d.get("grad_norm")
        fv = d.get("flat_vectors")
        return cls(z=z, energy=np.asarray(d["energy"], dtype=np.float64),
                   hits=np.asarray(d["hits"], dtype=np.int64),
                   hessian_eigenvalues=rows(d["hessian_eigenvalues"], np.float64),
                   coverage=None if cov is None else Coverage.from_dict(cov),
                   dedup_tol=float(d.get("dedup_tol", 1e-4)), flat_tol=float(d.get("flat_tol", 0.0)),
                   stats=dict(d.get("stats") or {}),
                   grad_norm=None if gn is None else np.asarray(gn, dtype=np.float64),
                   flat_vectors=None if fv is None else np.asarray(fv, dtype=np.float64).reshape(k, -1, z.shape[1]))

    def __repr__(self) -> str:
        cov = "" if self.coverage is None else \
            f", estimated_total={self.coverage.estimated_total:.1f}, restarts={self.coverage.n_restarts}"
        e = f", E=[{self.energy.min():.4g} .. {self.energy.max():.4g}]" if len(self) else ""
        return f"Minima(K={len(self)}, d={self.z.shape[1] if self.z.ndim == 2 else '?'}{e}{cov})"


# ---------------------------------------------------------------------------------------------------------- grouping
_components = components  # union-find labels (n,) of the graph with edges (i, j)


def group_points(z: np.ndarray, energy: np.ndarray, radius: np.ndarray, e_tol: np.ndarray,
                 k: int = 32) -> np.ndarray:
    """Group points that are the same minimum: labels (N,), equal for rows joined by a chain of close pairs.

    Rows i and j are joined when ‖z_i − z_j‖ ≤ radius_i + radius_j AND |E_i − E_j| ≤ e_tol_i + e_tol_j.
    Candidate pairs come from a KD-tree (each row's ``k`` nearest neighbours within the largest possible distance),
    so the work is O(N k log N), never a pairwise loop.

    Args:
        z: (N, d) points; energy: (N,) energies; radius: (N,) per-row distance tolerance (latent units);
        e_tol: (N,) per-row energy tolerance (nats).
    """
    n = len(z)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    from scipy.spatial import cKDTree
    # exact duplicates first (they would crowd the k nearest neighbours)
    _, first, inv = np.unique(z, axis=0, return_index=True, return_inverse=True)
    inv = inv.ravel()
    zu = z[first]
    kk = min(k + 1, len(zu))
    if len(zu) > 1:
        dist, nb = cKDTree(zu).query(zu, k=kk, distance_upper_bound=2.0 * float(radius.max()) + 1e-300)
        rows = np.repeat(np.arange(len(zu)), kk)
        nb, dist = nb.ravel(), dist.ravel()
        ok = np.isfinite(dist) & (nb != rows)
        a, b = first[rows[ok]], first[nb[ok]]
        good = (dist[ok] <= radius[a] + radius[b]) & (np.abs(energy[a] - energy[b]) <= e_tol[a] + e_tol[b])
        ia, ib = a[good], b[good]
    else:
        ia = ib = np.zeros(0, dtype=np.int64)
    # rows equal to a unique point are joined to it
    dup = np.arange(n)
    ia = np.concatenate([ia, dup, first[inv]])
    ib = np.concatenate([ib, first[inv], dup])
    return _components(n, ia, ib)


def _representatives(labels: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each group: the member with the smallest ``key`` (ties: lowest index), the group sizes, and the group of
    each row renumbered 0..G-1 in order of the representatives."""
    order = np.lexsort((np.arange(len(labels)), key, labels))
    lab_sorted = labels[order]
    starts = np.flatnonzero(np.r_[True, lab_sorted[1:] != lab_sorted[:-1]])
    reps = order[starts]
    sizes = np.diff(np.r_[starts, len(order)])
    remap = np.empty(labels.max() + 1, dtype=np.int64)
    remap[lab_sorted[starts]] = np.arange(len(starts))
    return reps, sizes, remap[labels]


# ---------------------------------------------------------------------------------------------------------- search
@dataclass
class _Tols:
    gtol: float
    flat_tol: float
    length: float
    sigma_E: float
    max_step: float
    max_step_max: float
    e_rel: float = 1e-9   # raised where U is computed in a coarser type (Landscape.resolvable)
    z_rel: float = 1e-6

    def e_floor(self, e: np.ndarray) -> np.ndarray:
        """Energy round-off allowance (nats): 1e-9 (σ_E + |E|) in float64 (100 eps in coarser types)."""
        return self.e_rel * (self.sigma_E + np.abs(e))

    @property
    def z_floor(self) -> float:
        """Distance floor (latent units): 1e-6 σ_z in float64 (10 sqrt(eps) σ_z in coarser types)."""
        return self.z_rel * self.length

    @property
    def kink_radius(self) -> float:
        """Grouping radius for non-smooth descent end points (latent units): 1e-5 σ_z. Non-smooth BFGS ends within
        ~1e-7 σ_z of a kink minimum; minima closer together than this are not told apart."""
        return 1e-5 * self.length

    @property
    def pre_radius(self) -> float:
        """Grouping radius for raw descent end points: 1e-3 σ_z, or 10 gtol / (σ_E/σ_z²) if larger."""
        return max(1e-3 * self.length, 10.0 * self.gtol * self.length**2 / self.sigma_E)


@dataclass
class _Found:
    """Minima accumulated over rounds (numpy; unsorted)."""

    z: np.ndarray
    energy: np.ndarray
    grad_norm: np.ndarray
    eig: np.ndarray
    hits: np.ndarray

    @classmethod
    def empty(cls, d: int) -> "_Found":
        return cls(np.zeros((0, d)), np.zeros(0), np.zeros(0), np.zeros((0, d)), np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.energy)

    def concat(self, other: "_Found") -> "_Found":
        return _Found(*(np.concatenate([a, b]) for a, b in zip(
            (self.z, self.energy, self.grad_norm, self.eig, self.hits),
            (other.z, other.energy, other.grad_norm, other.eig, other.hits))))

    def take(self, idx: np.ndarray) -> "_Found":
        return _Found(self.z[idx], self.energy[idx], self.grad_norm[idx], self.eig[idx], self.hits[idx])


def _hessian_eigh(land: Landscape, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(z) == 0:
        return np.zeros((0, land.dim)), np.zeros((0, land.dim, land.dim))
    return land.hessian_eigh(z)


def _newton_polish(land: Landscape, z: np.ndarray, vals: np.ndarray, vecs: np.ndarray, tols: _Tols,
                   n_steps: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Newton steps on the stiff subspace with the Hessian held fixed (chord method), batched over minima.

    A row takes a step only while it lowers the gradient norm without raising the energy beyond round-off.
    Returns (z, energy, grad_norm, evaluations).
    """
    n_ev = 0
    e, g = land.energy_and_grad(z)
    n_ev += len(z)
    e, g = to_numpy(e), to_numpy(g)
    gn = np.linalg.norm(g, axis=1)
    inv = np.where(vals > tols.flat_tol, 1.0 / np.where(vals > tols.flat_tol, vals, 1.0), 0.0)  # (K, d)
    active = np.flatnonzero(np.isfinite(e))
    for _ in range(n_steps):
        if not len(active):
            break
        V = vecs[active]
        coef = np.einsum("kji,kj->ki", V, g[active]) * inv[active]
        zt = z[active] - np.einsum("kij,kj->ki", V, coef)
        et, gt = land.energy_and_grad(zt)
        n_ev += len(active)
        et, gt = to_numpy(et), to_numpy(gt)
        gtn = np.linalg.norm(gt, axis=1)
        better = np.isfinite(et) & np.isfinite(gtn) & (gtn < gn[active]) & \
            (et <= e[active] + tols.e_floor(e[active]))
        idx = active[better]
        z[idx], e[idx], g[idx], gn[idx] = zt[better], et[better], gt[better], gtn[better]
        active = idx[gtn[better] > 0]
    return z, e, gn, n_ev


def _hessian_chunk_rows(d: int, budget: int = 1 << 22) -> int:
    """Rows per Hessian chunk so that a chunk's (rows, d, d) arrays stay near ``budget`` numbers (32 MiB)."""
    return max(1, budget // (d * d))


def _validate(land: Landscape, zr: np.ndarray, w: np.ndarray, tols: _Tols,
              st: dict) -> tuple[np.ndarray, np.ndarray, _Found]:
    """Hessian test at candidate points zr (K, d) with weights w (K,), in chunks that bound memory.

    Returns is_min (K,) (no eigenvalue below −flat_tol); for every candidate the eigenvector of its lowest
    eigenvalue (K, d) (the push-off mode); and the minima, polished and re-checked, as a :class:`_Found`.
    """
    K, d = zr.shape
    is_min = np.zeros(K, dtype=bool)
    v_neg = np.zeros((K, d))
    step = _hessian_chunk_rows(d)
    found = _Found.empty(d)
    for a in range(0, K, step):
        sl = slice(a, min(K, a + step))
        vals, vecs = _hessian_eigh(land, zr[sl])
        st["n_hessians"] += len(vals)
        ok = vals[:, 0] >= -tols.flat_tol
        is_min[sl], v_neg[sl] = ok, vecs[:, :, 0]
        if ok.any():
            zm, em, gm, n_ev = _newton_polish(land, zr[sl][ok].copy(), vals[ok], vecs[ok], tols)
            st["n_evals_validation"] += n_ev
            vm, _ = _hessian_eigh(land, zm)
            st["n_hessians"] += len(zm)
            still = vm[:, 0] >= -tols.flat_tol
            wm = w[sl][ok]
            st["n_rejected"] += int(wm[~still].sum())
            found = found.concat(_Found(zm[still], em[still], gm[still], vm[still], wm[still]))
    return is_min, v_neg, found


def _settle(land: Landscape, res: MinimizeResult, weights: np.ndarray, tols: _Tols, st: dict, *,
            max_pushoffs: int, max_iter: int, method: str, push_rel: float) -> _Found:
    """Turn converged descent end points (with weights = how many descents each stands for) into validated,
    polished minima: group, Hessian-check, push saddles off and re-descend, polish."""
    found = _Found.empty(land.dim)
    for attempt in range(max_pushoffs + 1):
        conv = to_numpy(res.converged)
        z, e, gn = to_numpy(res.z)[conv], to_numpy(res.energy)[conv], to_numpy(res.grad_norm)[conv]
        weights = weights[conv]
        if not len(z):
            break
        labels = group_points(z, e, np.full(len(z), 0.5 * tols.pre_radius),
                              0.5 * (tols.gtol * tols.pre_radius + tols.e_floor(e)))
        reps, _, grp = _representatives(labels, gn)
        w = np.bincount(grp, weights=weights).astype(np.int64)
        zr = z[reps]
        is_min, v_neg, new = _validate(land, zr, w, tols, st)
        found = found.concat(new)
        sad = np.flatnonzero(~is_min)
        if not len(sad):
            break
        if attempt == max_pushoffs:
            st["n_rejected"] += int(w[sad].sum())
            break
        # push each saddle off both ways along its most negative mode, then descend again
        st["n_saddles_pushed"] += int(w[sad].sum())
        v = v_neg[sad]
        eps = push_rel * tols.length
        z_new = np.concatenate([zr[sad] + eps * v, zr[sad] - eps * v])
        w_new = np.concatenate([w[sad], w[sad]])
        res = quench(land, z_new, gtol=tols.gtol, max_iter=max_iter, max_step=tols.max_step, method=method,
                     max_step_max=tols.max_step_max)
        st["n_evals_descent"] += res.n_evals
        fin = to_numpy(res.finite)
        st["n_pushoff_dropped_nonfinite"] += int(w_new[~fin].sum())
        st["n_pushoff_unconverged"] += int(w_new[fin & ~to_numpy(res.converged)].sum())
        weights = w_new
    return found


def _refine_ends(land: Landscape, z: np.ndarray, e: np.ndarray, gn: np.ndarray, tols: _Tols, seed: int = 0):
    """Group non-smooth descent end points z (N, d) (energies e, gradient norms gn), refine the lowest point of each
    group onto its kink as a minimum and work out its local structure.

    Returns (group of each row (N,), :class:`~energyscope.search.nonsmooth.KinkPoints`, ``LocalStructure``), one refined
    row per group. End points are grouped within ``kink_radius`` and, in energy, within slope × radius.
    """
    from energyscope.search.nonsmooth import local_structure, refine
    r = tols.kink_radius
    labels = group_points(z, e, np.full(len(z), 0.5 * r), 0.5 * (gn * r + tols.e_floor(e)))
    reps, _, grp = _representatives(labels, e)
    kp = refine(land, z[reps], "minimum", radius=10 * r, gtol=1e-2 * tols.gtol, seed=seed)
    ls = local_structure(land, kp, flat_tol=tols.flat_tol, seed=seed)
    return grp, kp, ls


def _settle_nonsmooth(land: Landscape, res: MinimizeResult, weights: np.ndarray, tols: _Tols, st: dict, *,
                      max_pushoffs: int, max_iter: int, method: str, push_rel: float) -> _Found:
    """The non-smooth counterpart of :func:`_settle`: end points of descents that converged or stalled are grouped,
    refined onto their kinks and certified; a refined point that is not a minimum (index ≥ 1, or a probe direction
    lowers U) is pushed off along its downhill direction(s) and descended again. Refinements that do not converge
    are counted in ``st["n_uncertified"]``."""
    found = _Found.empty(land.dim)
    for attempt in range(max_pushoffs + 1):
        ended = to_numpy(res.finite) & (to_numpy(res.converged) | to_numpy(res.stalled))
        z, e, gn = to_numpy(res.z)[ended], to_numpy(res.energy)[ended], to_numpy(res.grad_norm)[ended]
        weights = weights[ended]
        if not len(z):
            break
        grp, kp, ls = _refine_ends(land, z, e, gn, tols, seed=attempt)
        w = np.bincount(grp, weights=weights, minlength=len(kp)).astype(np.int64)
        st["n_evals_validation"] += kp.n_evals + ls.n_evals
        st["n_hessians"] += kp.n_hessians
        st["n_kink_refined"] = st.get("n_kink_refined", 0) + len(kp)
        is_min = ls.is_minimum
        if is_min.any():
            found = found.concat(_Found(kp.z[is_min], kp.energy[is_min], kp.stationarity[is_min],
                                        ls.eigenvalues[is_min], w[is_min]))
        failed = np.flatnonzero(~kp.converged)
        sad = np.flatnonzero(kp.converged & ~is_min)
        if attempt == max_pushoffs or not (len(sad) or len(failed)):
            st["n_uncertified"] = st.get("n_uncertified", 0) + int(w[failed].sum())
            st["n_rejected"] += int(w[sad].sum())
            break
        # push off downhill: both sides of an index-1 point, else along the steepest descent direction found
        st["n_saddles_pushed"] += int(w[sad].sum())
        eps = push_rel * tols.length
        z_new, w_new = [], []
        for c in sad:
            dirs = [ls.push[c, 0], ls.push[c, 1]] if ls.index[c] == 1 else [ls.descent[c]]
            for v in dirs:
                if np.linalg.norm(v) > 0:
                    z_new.append(kp.z[c] + eps * v)
                    w_new.append(w[c])
            if not any(np.linalg.norm(v) > 0 for v in dirs):
                st["n_rejected"] += int(w[c])
        # a refinement that did not converge went downhill from where the descent stalled: descend again from there
        st["n_restalled"] = st.get("n_restalled", 0) + int(w[failed].sum())
        for c in failed:
            z_new.append(kp.z[c])
            w_new.append(w[c])
        if not z_new:
            break
        z_new, weights = np.array(z_new), np.array(w_new, dtype=np.int64)
        res = quench(land, z_new, gtol=tols.gtol, max_iter=max_iter, max_step=tols.max_step, method=method,
                     max_step_max=tols.max_step_max, certify=False)
        st["n_evals_descent"] += res.n_evals
        fin = to_numpy(res.finite)
        ended = fin & (to_numpy(res.converged) | to_numpy(res.stalled))
        st["n_pushoff_dropped_nonfinite"] += int(weights[~fin].sum())
        st["n_pushoff_unconverged"] += int(weights[fin & ~ended].sum())
    return found


def _merge(land: Landscape, found: _Found, tols: _Tols) -> _Found:
    """Deduplicate minima (from one or several rounds): distance AND energy within tolerances set by each minimum's
    remaining gradient and stiffest-soft curvature, then minima that differ only along shared flat directions."""
    if len(found) <= 1:
        return found
    stiff = np.where(found.eig > tols.flat_tol, found.eig, np.inf).min(axis=1)
    r = np.minimum(np.where(np.isfinite(stiff), found.grad_norm / np.where(np.isfinite(stiff), stiff, 1.0), 0.0),
                   1e-2 * tols.length) + tols.z_floor
    et = found.grad_norm * r + tols.e_floor(found.energy)
    labels = group_points(found.z, found.energy, r, et)
    labels = _merge_flat(land, found, labels, tols)
    reps, _, grp = _representatives(labels, found.grad_norm)
    out = found.take(reps)
    out.hits = np.bincount(grp, weights=found.hits).astype(np.int64)
    return out


def _merge_flat(land: Landscape, found: _Found, labels: np.ndarray, tols: _Tols) -> np.ndarray:
    """Join groups of minima that lie in one flat valley: equal energy, and the straight segment between them never
    rises above them. Only minima with flat directions are considered; candidates come from an energy-sorted sweep."""
    n_flat = (np.abs(found.eig) <= tols.flat_tol).sum(axis=1)
    cand = np.flatnonzero(n_flat > 0)
    if len(cand) < 2:
        return labels
    reps, _, grp = _representatives(labels[cand], found.grad_norm[cand])
    idx = cand[reps]                                   # one minimum per existing group
    if len(idx) < 2:
        return labels
    order = idx[np.argsort(found.energy[idx], kind="stable")]
    e = found.energy[order]
    tol = 2 * tols.e_floor(e)
    parent = np.arange(len(order))
    ii, jj = [], []
    for a in range(len(order)):                        # one pass; each step vectorised over its energy window
        if parent[a] != a:
            continue
        hi = np.searchsorted(e, e[a] + tol[a], side="right")
        b = np.arange(a + 1, hi)
        b = b[parent[b] == b]
        if not len(b):
            continue
        za, zb = found.z[order[a]], found.z[order[b]]
        ts = np.array([0.25, 0.5, 0.75])
        seg = za[None, None, :] + ts[None, :, None] * (zb - za)[:, None, :]
        es = to_numpy(land.energy(seg.reshape(-1, land.dim))).reshape(len(b), len(ts))
        ok = np.all(es <= np.maximum(e[a], e[b])[:, None] + 2 * tols.e_floor(e[b])[:, None], axis=1)
        parent[b[ok]] = a
        ii.extend([order[a]] * int(ok.sum()))
        jj.extend(order[b[ok]].tolist())
    if not ii:
        return labels
    n = len(labels)
    # join via group labels: connect each row to its group's label node, and merged representatives together
    gi = np.concatenate([np.arange(n), np.asarray(ii)])
    gj = np.concatenate([n + labels, np.asarray(jj)])
    return _components(n + labels.max() + 1, gi, gj)[:n]


def _assign_radius(found: _Found, tols: _Tols) -> float:
    """Radius for :meth:`Minima.assign`: where a descent stopped at gtol can still be (10 gtol / softest stiff
    eigenvalue), at least 1e-4 σ_z, at most half the distance between the two closest minima."""
    if not len(found):
        return 1e-4 * tols.length
    stiff = np.where(found.eig > tols.flat_tol, found.eig, np.inf).min(axis=1)
    stiff = stiff[np.isfinite(stiff)]
    r = max(1e-4 * tols.length, 10 * tols.gtol / stiff.min()) if len(stiff) else 1e-4 * tols.length
    if len(found) > 1:
        from scipy.spatial import cKDTree
        dist, _ = cKDTree(found.z).query(found.z, k=2)
        r = min(r, 0.5 * float(dist[:, 1].min()))
    return float(r)


def _make_tols(land: Landscape, gtol: float | None, flat_tol: float | None, max_step: float | None,
               max_step_max: float | None) -> _Tols:
    sc = land.scales()
    g_tol = default_gtol(land) if gtol is None else float(gtol)
    f_tol = default_flat_tol(land) if flat_tol is None else float(flat_tol)
    if not (g_tol > 0) or not (f_tol >= 0):
        raise BadArgumentError(f"gtol must be positive and flat_tol non-negative, got {g_tol}, {f_tol}")
    m_step = default_max_step(land) if max_step is None else float(max_step)
    if not (m_step > 0):
        raise BadArgumentError(f"max_step must be positive, got {m_step}")
    return _Tols(gtol=g_tol, flat_tol=f_tol, length=sc.length, sigma_E=sc.sigma_E, max_step=m_step,
                 max_step_max=8.0 * m_step if max_step_max is None else max(float(max_step_max), m_step),
                 e_rel=land.resolvable(1e-9, 1e2), z_rel=land.resolvable(1e-6, 10.0, root=True))


def _n_unresolved(st: dict) -> int:
    """Descents that did not end at a validated minimum (for :attr:`Coverage.n_unresolved`)."""
    return int(st["n_unconverged"] + st.get("n_uncertified", 0) + st["n_pushoff_unconverged"]
               + st["n_dropped_nonfinite"] + st["n_pushoff_dropped_nonfinite"])


def _count_runaways(land: Landscape, z0: np.ndarray, res: MinimizeResult, st: dict) -> None:
    """Count descents that ran away: unconverged, ten times farther from the origin than any start, and more than
    10 σ_E below the lowest start (a U unbounded below, e.g. an energy net without the base prior it was trained
    with). Adds ``n_runaway``, ``runaway_max_norm`` and ``runaway_min_energy`` to ``st``."""
    un = to_numpy(res.finite) & ~to_numpy(res.converged)
    if res.stalled is not None:
        un &= ~to_numpy(res.stalled)
    if not un.any():
        return
    sc = land.scales()
    z_end, e_end = to_numpy(res.z)[un], to_numpy(res.energy)[un]
    r0 = max(float(np.linalg.norm(z0, axis=1).max()), sc.length * np.sqrt(land.dim))
    e0 = to_numpy(land.energy(z0))
    e0 = float(np.min(e0[np.isfinite(e0)])) if np.isfinite(e0).any() else np.inf
    far = (np.linalg.norm(z_end, axis=1) > 10 * r0) & (e_end < e0 - 10 * sc.sigma_E)
    if far.any():
        st["n_runaway"] = st.get("n_runaway", 0) + int(far.sum())
        st["runaway_max_norm"] = max(st.get("runaway_max_norm", 0.0), float(np.linalg.norm(z_end[far], axis=1).max()))
        st["runaway_min_energy"] = min(st.get("runaway_min_energy", np.inf), float(e_end[far].min()))


def _new_stats() -> dict:
    return {"n_restarts": 0, "rounds": 0, "n_converged": 0, "n_unconverged": 0, "n_dropped_nonfinite": 0,
            "n_saddles_pushed": 0, "n_rejected": 0, "n_pushoff_dropped_nonfinite": 0, "n_pushoff_unconverged": 0,
            "n_hessians": 0, "n_evals_descent": 0, "n_evals_validation": 0, "starts_by_source": {}}


def _flat_vectors(land: Landscape, found: _Found, tols: _Tols) -> np.ndarray | None:
    """(K, f, d) flat eigenvectors of the minima that have any (zero-padded), or None."""
    n_flat = (np.abs(found.eig) <= tols.flat_tol).sum(axis=1)
    if not len(found) or n_flat.max() == 0:
        return None
    out = np.zeros((len(found), int(n_flat.max()), land.dim))
    kink = np.isposinf(found.eig).any(axis=1)
    which = np.flatnonzero((n_flat > 0) & ~kink)
    step = _hessian_chunk_rows(land.dim)
    for a in range(0, len(which), step):
        ks = which[a:a + step]
        vals, vecs = _hessian_eigh(land, found.z[ks])
        for i, k in enumerate(ks):
            flat = np.flatnonzero(np.abs(vals[i]) <= tols.flat_tol)
            out[k, :len(flat)] = vecs[i][:, flat].T
    ks = np.flatnonzero((n_flat > 0) & kink)
    if len(ks):
        # flat directions along a kink: the reduced Hessian's null directions, from the local structure
        from energyscope.search.nonsmooth import local_structure, refine
        kp = refine(land, found.z[ks], "minimum", radius=tols.kink_radius, gtol=1e-2 * tols.gtol)
        ls = local_structure(land, kp, flat_tol=tols.flat_tol)
        for i, k in enumerate(ks):
            flat = np.flatnonzero(np.abs(ls.eigenvalues[i]) <= tols.flat_tol)
            out[k, :len(flat)] = ls.vectors[i][:, flat].T
    return out


def _to_minima(land: Landscape, found: _Found, tols: _Tols, coverage: Coverage, st: dict) -> Minima:
    order = np.lexsort(tuple(found.z[:, ::-1].T) + (found.energy,)) if len(found) else np.zeros(0, dtype=int)
    found = found.take(order)
    st["n_evals"] = st["n_evals_descent"] + st["n_evals_validation"]
    st.update(gtol=tols.gtol, flat_tol=tols.flat_tol, max_step=tols.max_step, max_step_max=tols.max_step_max,
              n_flat_minima=int(((np.abs(found.eig) <= tols.flat_tol).sum(axis=1) > 0).sum()))
    return Minima(z=found.z, energy=found.energy, hits=found.hits, hessian_eigenvalues=found.eig,
                  coverage=coverage, dedup_tol=_assign_radius(found, tols), flat_tol=tols.flat_tol, stats=st,
                  grad_norm=found.grad_norm, flat_vectors=_flat_vectors(land, found, tols))


def minima_from_points(land: Landscape, z: Any, *, gtol: float | None = None, flat_tol: float | None = None,
                       push_off: bool = False, max_iter: int = 5000) -> Minima:
    """Validated, deduplicated minima among given end points z (N, d), e.g. from another optimiser.

    On a smooth landscape, points whose gradient norm exceeds ``gtol`` are skipped (counted in
    ``stats["n_unconverged"]``); on a non-smooth one every finite point is refined onto its kink and certified
    (:mod:`energyscope.search.nonsmooth`). Non-finite
    ones dropped and counted; the rest are grouped, Hessian-checked and polished exactly as in :func:`find_minima`.
    With ``push_off=False`` a point on a saddle is rejected (counted), with True it is pushed off and descended.
    Hits count the given points that ended in each minimum.
    """
    tols = _make_tols(land, gtol, flat_tol, None, None)
    zt = land.as_tensor(_check_starts(z, land.dim))
    e, g = land.energy_and_grad(zt)
    gn = g.norm(dim=1)
    fin = e.isfinite() & g.isfinite().all(dim=1)
    conv = fin & (gn <= tols.gtol)
    # on a non-smooth landscape the gradient need not vanish at a minimum: every finite point is refined
    res = MinimizeResult(zt, e, g, gn, conv, fin, conv.long() * 0, len(zt), 1,
                         stalled=None if land.is_smooth else fin & ~conv)
    st = _new_stats()
    st["n_restarts"] = len(zt)
    st["n_converged"], st["n_dropped_nonfinite"] = int(conv.sum()), int((~fin).sum())
    st["n_unconverged"] = 0 if not land.is_smooth else len(zt) - st["n_converged"] - st["n_dropped_nonfinite"]
    st["n_evals_validation"] += len(zt)
    settle = _settle if land.is_smooth else _settle_nonsmooth
    found = settle(land, res, np.ones(len(zt), dtype=np.int64), tols, st, max_pushoffs=3 if push_off else 0,
                   max_iter=max_iter, method=descent_method(land), push_rel=1e-2)
    found = _merge(land, found, tols)
    return _to_minima(land, found, tols, Coverage.from_hits(found.hits, len(zt), 1, _n_unresolved(st)), st)


@checked_keywords(MinimaSettings)
def find_minima(land: Landscape, n_restarts: int = 1024, seed: int = 0, starts: Any = None, bounds: Any = None, *,
                sources: Sequence[str] = SOURCES, gtol: float | None = None, max_iter: int = 5000,
                max_step: float | None = None, max_step_max: float | None = None, method: str = "auto",
                flat_tol: float | None = None, until_complete: bool | None = None, max_rounds: int = 16,
                max_restarts: int | None = None, max_time: float | None = None, max_pushoffs: int = 3,
                push_rel: float = 1e-2, progress: bool = True) -> Minima:
    """Find, validate and deduplicate the local minima of ``land`` from many restarts at once.

    Args:
        land: the :class:`~energyscope.Landscape`.
        n_restarts: restarts per round (ignored in the first round when ``starts`` is given).
        seed: seed for the start points; round k uses a fresh stream derived from (seed, k). Same seed, same result.
        starts: (R, d) start points, used as given (first round).
        bounds: (lo, hi), scalars or (d,) arrays: the box that ``"box"`` starts are drawn from (default: the
            reference mean, else the origin, ± 3 σ_z, grown face by face until U rises towards every face; see
            :func:`energyscope.search.starts.start_box`). The descent itself is unconstrained.
        sources: where generated starts come from, split evenly: ``"prior"`` (the base N(0, I); a box without a
            base), ``"reference"`` (reference latents, when present), ``"box"``, ``"sampler"`` (the model's own
            short-run sampler, when ``land.sampler`` records its settings).
        gtol: gradient-norm tolerance (nats per latent unit); default :func:`default_gtol` (1e-6 σ_E/σ_z).
        max_iter: iteration cap per descent; rows still moving then are counted as unconverged.
        max_step: largest step per iteration (latent units) at first; default :func:`default_max_step`.
        max_step_max: L-BFGS rows whose steps keep hitting the cap may grow it up to this (default 8 max_step).
        method: the descent: ``"auto"`` (L-BFGS where U is known to be smooth, else ``"nonsmooth"``: BFGS with a
            weak-Wolfe line search), ``"lbfgs"``, ``"fire"`` or ``"nonsmooth"``. Validation follows the landscape's
            smoothness, whatever the descent: exact Hessians where U is smooth, kink refinement and certification
            (:mod:`energyscope.search.nonsmooth`) where it is not.
        flat_tol: eigenvalues within ± this are flat directions (kept and reported), below −flat_tol the point is
            a saddle; default :func:`default_flat_tol` (1e-6 σ_E/σ_z²).
        until_complete: None (the default): True unless ``starts`` are given. True: keep adding rounds until the coverage says the search is complete (no minimum seen only
            once, every descent resolved; :attr:`Coverage.complete`) or the budget is spent. Rounds grow: round 1
            and 2 have ``n_restarts`` starts, each later one as many as all before it (so the rarest basins, which
            need many restarts, cost few rounds). ``stats["stopped"]`` says why the search ended. False: one round.
        max_rounds, max_restarts, max_time: the budget for ``until_complete``: rounds, restarts in all (default
            32 ``n_restarts``: six rounds) and seconds (no new round starts once spent; None: no limit).
        max_pushoffs: how many times a point that stopped on a saddle is pushed off and descended again.
        push_rel: push-off distance along the negative mode, as a fraction of σ_z.
        progress: show progress bars (tqdm); False for quiet.

    Returns:
        :class:`Minima` sorted by energy, with hits, Hessian eigenvalues, coverage and ``stats``.

    Raises:
        ValueError: wrong-shaped ``starts`` or ``bounds``, unknown ``sources`` or ``method``, bad counts.
        LandscapeError: the energy returns something unusable (wrong shape, not a tensor).
    """
    t0 = time.perf_counter()
    method, user_starts = _check_search(land, n_restarts, seed, starts, bounds, sources, method, max_rounds)
    settle = _settle if land.is_smooth else _settle_nonsmooth
    tols = _make_tols(land, gtol, flat_tol, max_step, max_step_max)
    until_complete = user_starts is None if until_complete is None else bool(until_complete)
    budget = max_restarts if max_restarts is not None else (32 * n_restarts if until_complete else None)

    st = _new_stats()
    if user_starts is None or until_complete:
        box, box_info = start_box(land, bounds, seed=int(seed))
        st.update(box_info)
        bounds = box
    found = _Found.empty(land.dim)
    coverage = Coverage.from_hits(np.zeros(0), 0, 0)
    for rnd in range(max_rounds if until_complete else 1):
        z0 = _round_starts(land, rnd, user_starts, n_restarts, budget, seed, sources, bounds, st)
        if z0 is None:
            break
        res = quench(land, z0, gtol=tols.gtol, max_iter=max_iter, max_step=tols.max_step, method=method,
                     progress=progress, desc=f"minima: round {rnd + 1}, {len(z0)} descents",
                     max_step_max=tols.max_step_max, certify=False)
        _count_descents(land, z0, res, rnd, st)
        new = settle(land, res, np.ones(len(z0), dtype=np.int64), tols, st,
                     max_pushoffs=max_pushoffs, max_iter=max_iter, method=method, push_rel=push_rel)
        n_before = len(found)
        found = _merge(land, found.concat(new), tols)
        coverage = Coverage.from_hits(found.hits, st["n_restarts"], st["rounds"], _n_unresolved(st))
        if progress:
            from tqdm.auto import tqdm
            tqdm.write(f"minima: round {rnd + 1}: {len(found)} found, Chao1 estimate "
                       f"{coverage.estimated_total:.1f}, {st['n_restarts']} restarts")
        st["stopped"] = _stop_reason(coverage, until_complete, rnd, max_rounds, st["n_restarts"], budget,
                                     time.perf_counter() - t0, max_time, len(found) - n_before)
        if st["stopped"] != "more rounds":
            break
    st.update(method=method, seed=int(seed), wall_time_s=time.perf_counter() - t0,
              smoothness=land.smoothness.kind)
    _diagnose(st, max_iter)
    return _to_minima(land, found, tols, coverage, st)


def _check_search(land: Landscape, n_restarts: Any, seed: Any, starts: Any, bounds: Any, sources: Sequence[str],
                  method: str, max_rounds: int) -> tuple[str, np.ndarray | None]:
    """Refuse bad arguments of :func:`find_minima` with one clear error; returns the descent method to use and the
    user's start points as an (R, d) array (None without)."""
    if not isinstance(land, Landscape):
        raise TypeError(f"find_minima needs a Landscape, got {type(land).__name__}")
    method = descent_method(land, method)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= int(seed) < 2**63:
        raise BadArgumentError(f"seed must be an integer in [0, 2^63), got {seed!r}")
    if starts is None and (not isinstance(n_restarts, (int, np.integer)) or n_restarts < 1):
        raise BadArgumentError(f"n_restarts must be a positive integer, got {n_restarts!r}")
    if max_rounds < 1:
        raise BadArgumentError(f"max_rounds must be at least 1, got {max_rounds}")
    user_starts = _check_starts(starts, land.dim) if starts is not None else None
    if bounds is not None:
        _check_bounds(bounds, land.dim)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise BadArgumentError(f"unknown start source(s) {unknown}; use any of {SOURCES}")
    return method, user_starts


def _stop_reason(coverage: "Coverage", until_complete: bool, rnd: int, max_rounds: int, n_done: int,
                 budget: int | None, elapsed: float, max_time: float | None, n_new: int) -> str:
    """Why the search ends after round ``rnd`` (0-based), or ``"more rounds"`` when it goes on.

    Besides the budgets, a search whose every minimum was seen at least twice stops when a round finds nothing new,
    even where some descents did not resolve (non-finite energies, runaways, the iteration cap): more restarts would
    meet the same regions again. Its coverage is then not :attr:`Coverage.complete`, and the reason says why."""
    if coverage.complete and coverage.found:
        return "complete: no minimum was seen only once and every descent ended at a validated minimum"
    if not until_complete:
        return "one round (until_complete=False)"
    if rnd > 0 and coverage.singletons == 0 and n_new == 0:
        return (f"no minimum seen only once and round {rnd + 1} found none new, but {coverage.n_unresolved} "
                f"descents did not end at a validated minimum; the coverage is not complete")
    if budget is not None and n_done >= budget:
        return f"restart budget spent: {n_done} restarts (max_restarts={budget}); the coverage is not complete"
    if rnd + 1 >= max_rounds:
        return f"round budget spent: {rnd + 1} rounds (max_rounds={max_rounds}); the coverage is not complete"
    if max_time is not None and elapsed >= float(max_time):
        return (f"time budget spent: {elapsed:.1f} s (max_time={float(max_time):g} s) after {rnd + 1} rounds; "
                f"the coverage is not complete")
    return "more rounds"


def _round_starts(land: Landscape, rnd: int, user_starts: np.ndarray | None, n_restarts: int, budget: int | None,
                  seed: int, sources: Sequence[str], bounds: Any, st: dict) -> np.ndarray | None:
    """The (R, d) start points of round ``rnd`` (the user's in the first round, else fresh ones from the round's own
    random stream), counted by source in ``st``; None when the restart budget is spent. Rounds 0 and 1 have
    ``n_restarts`` starts, each later round as many as all rounds before it."""
    if rnd == 0 and user_starts is not None:
        z0, by_src = user_starts, {"given": len(user_starts)}
    else:
        n = n_restarts if rnd <= 1 else max(n_restarts, int(st["n_restarts"]))
        n = n if budget is None else min(n, budget - st["n_restarts"])
        if n <= 0:
            return None
        rng = np.random.default_rng([int(seed), rnd])
        z0, by_src = make_starts(land, n, rng, sources, bounds)
    for k, v in by_src.items():
        st["starts_by_source"][k] = st["starts_by_source"].get(k, 0) + int(v)
    return z0


def _count_descents(land: Landscape, z0: np.ndarray, res: MinimizeResult, rnd: int, st: dict) -> None:
    """Add one round's descents to the search statistics ``st`` (converged, unconverged, ran away, dropped)."""
    st["rounds"] = rnd + 1
    st["n_restarts"] += len(z0)
    st["n_evals_descent"] += res.n_evals
    # a non-smooth descent that stalled (its line search could not go on: normal at a kink) has ended, like one
    # that converged; its end point is certified, or not, by the settle step (n_uncertified)
    n_stalled = 0 if res.stalled is None else int((res.stalled & res.finite).sum())
    st["n_stalled"] = st.get("n_stalled", 0) + n_stalled
    st["n_converged"] += int(res.converged.sum()) + n_stalled
    st["n_unconverged"] += res.n_unconverged - n_stalled
    _count_runaways(land, z0, res, st)
    st["n_dropped_nonfinite"] += res.n_dropped


def _diagnose(st: dict, max_iter: int) -> None:
    """Say what went wrong, if the statistics show it: descents that ran away (U unbounded below; recorded as
    ``st["diagnosis"]``) or many that did not converge; each is a warning."""
    if st.get("n_runaway"):
        st["diagnosis"] = (
            f"U appears unbounded below: {st['n_runaway']} of {st['n_restarts']} descents ran away (|z| up to "
            f"{st['runaway_max_norm']:.3g}, U down to {st['runaway_min_energy']:.4g} nats and still falling); add the "
            "base prior the model was trained with (base_prior='standard_normal', in a spec file for a checkpoint) "
            "or analyse an energy that is bounded below")
        warn_user(f"find_minima: {st['diagnosis']}")
    elif st["n_unconverged"] > 0.1 * st["n_restarts"]:
        warn_user(f"find_minima: {st['n_unconverged']} of {st['n_restarts']} descents did not converge within "
                  f"max_iter={max_iter} (is the energy bounded below? otherwise raise max_iter or gtol)")


__all__ = ["Minima", "Coverage", "find_minima", "minima_from_points", "quench", "descent_method", "chao1",
           "make_starts", "scale_box",
           "group_points", "default_gtol", "default_max_step", "default_flat_tol"]
