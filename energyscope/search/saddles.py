"""Transition states: exact-Hessian eigenvector following to index-1 saddles, and their validation.

A candidate (usually the climbing image of a relaxed band) is refined by batched eigenvector following with the exact
Hessian: in the Hessian's eigenbasis the lowest mode is followed uphill and every other mode downhill, each with its
own rational-function shift (the per-mode form used in Wales' OPTIM), so the iteration is Newton's method near an
index-1 saddle and stays sensible away from one. A refined point is accepted as a transition state only if

1. the gradient converged;
2. its Hessian has exactly one eigenvalue below ``-eig_tol`` (eigenvalues within ``±eig_tol`` are flat directions);
3. pushing off ``±`` along the negative mode and descending reaches two *different* minima;
4. its energy lies above both of them.

The minima reached are matched to the known set (:class:`~energyscope.search.book.MinimaBook`) or, when new and
Hessian-validated, added to it (:func:`~energyscope.search.book.quench_to_minima`).
All tolerances are unit-free: relative to the candidate's own Hessian spectrum and the landscape's length scale.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from energyscope._deadline import expired
from energyscope._tensor import to_numpy
from energyscope.landscape import Landscape
from energyscope.search.book import MinimaBook, eig_tolerance, quench_to_minima


# ---------------------------------------------------------------------------------------------------------- refinement
@dataclass
class RefineResult:
    """Eigenvector-following results for C candidates (numpy).

    Attributes:
        z: (C, d) final points.
        energy: (C,) U there, nats.
        grad_norm: (C,) final gradient norm, nats per latent unit.
        eigenvalues: (C, d) Hessian eigenvalues there, ascending.
        mode: (C, d) unit eigenvector of the lowest eigenvalue.
        converged: (C,) bool.
        n_iter: (C,) iterations.
        n_evals: energy+gradient row evaluations; n_hessians: Hessian row evaluations.
    """

    z: np.ndarray
    energy: np.ndarray
    grad_norm: np.ndarray
    eigenvalues: np.ndarray
    mode: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    n_evals: int = 0
    n_hessians: int = 0


def refine_saddles(land: Landscape, z0: Any, *, gtol: float | np.ndarray | None = None, gtol_rel: float = 1e-10,
                   max_iter: int = 60, max_step: float | None = None) -> RefineResult:
    """Refine candidates z0 (C, d) to index-1 saddles by exact-Hessian eigenvector following, all rows at once.

    Per iteration and row: gradient g and Hessian H = V diag(b) Vᵀ; with F = Vᵀg the step along the lowest mode is
    ``+2F₀/(|b₀| ... )`` uphill, ``h₀ = 2F₀ / (-b₀ + sqrt(b₀² + 4F₀²))``, and along every other mode downhill,
    ``hᵢ = -2Fᵢ / (bᵢ + sqrt(bᵢ² + 4Fᵢ²))``; both reduce to the Newton step -Fᵢ/bᵢ near an index-1 saddle. The step
    is capped at ``max_step`` (Euclidean). Converged rows leave the batch.

    Args:
        land: the landscape.
        z0: (C, d) starting points.
        gtol: gradient-norm tolerance (scalar or (C,)), nats per latent unit. Default: ``gtol_rel`` × (largest
            |Hessian eigenvalue| at the start) × the latent length scale — unit-free.
        max_iter: iteration cap.
        max_step: step cap, latent units (default 0.1 × the latent length scale).

    Returns:
        A :class:`RefineResult`.

    Candidates are refined :func:`refine_chunk_rows` at a time, so that a round's thousands of Hessians (and their
    eigenvectors) stay within the landscape's Hessian memory budget.
    """
    z_all = land.as_tensor(z0)
    C = z_all.shape[0]
    rows = refine_chunk_rows(land.dim)
    if C <= rows:
        return _refine_chunk(land, z_all, gtol, gtol_rel, max_iter, max_step)
    g_all = None if gtol is None else np.broadcast_to(np.asarray(gtol, dtype=np.float64), (C,))
    parts = [_refine_chunk(land, z_all[s:s + rows], None if g_all is None else g_all[s:s + rows], gtol_rel, max_iter,
                           max_step) for s in range(0, C, rows)]
    cat = {f: np.concatenate([getattr(p, f) for p in parts]) for f in
           ("z", "energy", "grad_norm", "eigenvalues", "mode", "converged", "n_iter")}
    return RefineResult(**cat, n_evals=sum(p.n_evals for p in parts), n_hessians=sum(p.n_hessians for p in parts))


def refine_chunk_rows(dim: int) -> int:
    """Candidates refined together: the Hessian memory budget over ~6 d × d arrays per row (Hessian, eigenvectors,
    workspace): 680 rows at d = 128, 170 at d = 256."""
    from energyscope.landscape import HESSIAN_BYTES
    return int(max(1, HESSIAN_BYTES // (6 * 8 * max(1, dim) ** 2)))


def _refine_chunk(land: Landscape, z0: Any, gtol: Any, gtol_rel: float, max_iter: int, max_step: float | None
                  ) -> RefineResult:
    """:func:`refine_saddles` on one chunk of candidates."""
    z = land.as_tensor(z0).clone()
    C, d = z.shape
    length = land.scales().length
    max_step = 0.1 * length if max_step is None else float(max_step)
    energy = torch.full((C,), float("nan"), dtype=z.dtype, device=z.device)
    gnorm = torch.full((C,), float("inf"), dtype=z.dtype, device=z.device)
    evals = torch.full((C, d), float("nan"), dtype=z.dtype, device=z.device)
    modes = torch.zeros(C, d, dtype=z.dtype, device=z.device)
    converged = torch.zeros(C, dtype=torch.bool, device=z.device)
    n_iter = torch.zeros(C, dtype=torch.long, device=z.device)
    gt = None if gtol is None else torch.as_tensor(np.broadcast_to(np.asarray(gtol, dtype=np.float64), (C,)).copy(),
                                                     dtype=z.dtype, device=z.device)
    active = torch.arange(C, device=z.device)
    n_evals = n_hess = 0
    tiny = torch.finfo(z.dtype).tiny
    for it in range(max_iter + 1):
        if not len(active) or expired():
            break
        za = z[active]
        e, g = land.energy_and_grad(za)
        h = land.hessian(za)
        n_evals += len(active)
        n_hess += len(active)
        ok = torch.isfinite(e) & torch.isfinite(g).all(1) & torch.isfinite(h).flatten(1).all(1)
        b, v = torch.linalg.eigh(torch.where(ok[:, None, None], h, torch.eye(d, dtype=h.dtype, device=h.device)))
        energy[active], evals[active], modes[active] = e, b, v[:, :, 0]
        gn = g.norm(dim=1)
        gnorm[active] = gn
        if gt is None:
            gt = torch.zeros(C, dtype=z.dtype, device=z.device)
            gt[active] = land.resolvable(gtol_rel) * b.abs().max(dim=1).values * length
        done = ~ok | (gn <= gt[active])
        converged[active[done & ok]] = True
        if it == max_iter:
            break
        keep = ~done
        active, za, g, b, v = active[keep], za[keep], g[keep], b[keep], v[keep]
        if not len(active):
            break
        F = torch.einsum("nij,ni->nj", v, g)
        h_up = 2 * F[:, :1] / (-b[:, :1] + torch.sqrt(b[:, :1] ** 2 + 4 * F[:, :1] ** 2)).clamp_min(tiny)
        h_dn = -2 * F[:, 1:] / (b[:, 1:] + torch.sqrt(b[:, 1:] ** 2 + 4 * F[:, 1:] ** 2)).clamp_min(tiny)
        hstep = torch.cat([h_up, h_dn], dim=1)
        step = torch.einsum("nij,nj->ni", v, hstep)
        norm = step.norm(dim=1)
        step = step * torch.clamp(max_step / norm.clamp_min(tiny), max=1.0)[:, None]
        z[active] = za + step
        n_iter[active] += 1
    return RefineResult(z=to_numpy(z), energy=to_numpy(energy), grad_norm=to_numpy(gnorm), eigenvalues=to_numpy(evals),
                        mode=to_numpy(modes), converged=to_numpy(converged), n_iter=to_numpy(n_iter),
                        n_evals=n_evals, n_hessians=n_hess)


# ---------------------------------------------------------------------------------------------------------- validation
@dataclass
class SaddleRecord:
    """One refined and validated (or rejected) transition-state candidate.

    Attributes:
        z: (d,) position; energy: U there, nats.
        eigenvalues: (d,) Hessian eigenvalues, ascending; negative_eigenvalue: the lowest of them. For a saddle on a
            kink: the reduced Hessian's eigenvalues along the kink, -inf for the sharp unstable direction of a
            ridge, +inf for sharp stable directions (see :mod:`energyscope.search.nonsmooth`).
        mode: (d,) unit eigenvector of the negative mode.
        minima: (i, j) indices (into the :class:`MinimaBook`) reached by the + and - push-off descents (-1: none).
        valid: True when all four acceptance checks passed.
        reason: why not, when not valid ("" when valid).
        converged: the refinement reached its gradient tolerance; grad_norm: final gradient norm (for a saddle on a
            kink, the Clarke stationarity measure).
        n_evals, n_hessians: work spent on this candidate (refinement and push-off descents).
    """

    z: np.ndarray
    energy: float
    eigenvalues: np.ndarray
    negative_eigenvalue: float
    mode: np.ndarray
    minima: tuple[int, int]
    valid: bool
    reason: str
    converged: bool
    grad_norm: float
    n_evals: int = 0
    n_hessians: int = 0
    info: dict = field(default_factory=dict)


def _push_points(land: Landscape, z: np.ndarray, mode: np.ndarray, energy: np.ndarray, delta: float,
                 max_halvings: int = 12, mode_minus: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Points z + δ·mode and z − δ·mode (or z + δ·mode_minus when given) (2C, d), with δ halved per row until both
    sides lie below the saddle energy."""
    C = len(z)
    dl = np.full(C, float(delta))
    n_evals = 0
    plus = minus = z
    other = -mode if mode_minus is None else mode_minus
    for _ in range(max_halvings + 1):
        plus, minus = z + dl[:, None] * mode, z + dl[:, None] * other
        e = to_numpy(land.energy(np.vstack([plus, minus])))
        n_evals += 2 * C
        below = (e[:C] < energy) & (e[C:] < energy)
        if below.all():
            break
        dl = np.where(below, dl, 0.5 * dl)
    return np.vstack([plus, minus]), dl, n_evals


def validate_saddles(land: Landscape, refined: RefineResult, book: MinimaBook, *, eig_rel: float = 1e-6,
                     push_rel: float = 1e-2, quench_rel: float = 1e-9, quench_max_step: float | None = None,
                     quench_max_iter: int = 5000) -> list[SaddleRecord]:
    """Validate refined candidates (see the module docstring); reached minima are matched to / added to ``book``.

    Args:
        land: the landscape.
        refined: output of :func:`refine_saddles` for C candidates.
        book: the known minima; new minima reached by push-off descents are Hessian-validated and appended.
        eig_rel: flat-eigenvalue tolerance relative to the largest |eigenvalue| (see :func:`eig_tolerance`).
        push_rel: push-off distance along the negative mode, × the latent length scale (halved until downhill).
        quench_rel: descent gradient tolerance = ``quench_rel`` × largest |eigenvalue| × length scale.
        quench_max_step: descent step cap (default 0.05 × length scale, small so descents stay in their basin).
        quench_max_iter: descent iteration cap.

    Returns:
        One :class:`SaddleRecord` per candidate, in order.
    """
    C = len(refined.z)
    if C == 0:
        return []
    length = land.scales().length
    ev = refined.eigenvalues
    finite = np.isfinite(refined.energy) & np.isfinite(ev).all(axis=1)
    eig_rel = land.resolvable(eig_rel)
    tol = np.where(finite, eig_tolerance(np.where(np.isfinite(ev), ev, 0.0), book.base.flat_tol, eig_rel), 0.0)
    n_neg = np.where(finite, (ev < -tol[:, None]).sum(axis=1), -1)
    reasons = [""] * C
    for c in range(C):
        if not finite[c]:
            reasons[c] = "non-finite energy, gradient or Hessian at the saddle candidate"
        elif not refined.converged[c]:
            reasons[c] = (f"saddle refinement did not converge (|grad| = {refined.grad_norm[c]:.3g} after "
                          f"{int(refined.n_iter[c])} steps)")
        elif n_neg[c] != 1:
            reasons[c] = (f"refined point has {int(n_neg[c])} negative Hessian eigenvalues (lowest "
                          f"{ev[c, 0]:.6g}), not an index-1 saddle")
    todo = np.array([c for c in range(C) if not reasons[c]], dtype=int)
    reached = np.full((C, 2), -1, dtype=int)
    n_evals_push = np.zeros(C, dtype=np.int64)
    n_hess_push = np.zeros(C, dtype=np.int64)
    if len(todo):
        pts, _, ne = _push_points(land, refined.z[todo], refined.mode[todo], refined.energy[todo], push_rel * length)
        n_evals_push[todo] += ne // max(len(todo), 1)
        gtol = np.tile(land.resolvable(quench_rel) * np.abs(ev[todo]).max(axis=1) * length, 2)
        # rows that reached no known minimum are Hessian-validated and added as new minima
        q = quench_to_minima(land, pts, book, eig_rel=eig_rel, gtol=float(np.min(gtol)), max_iter=quench_max_iter,
                             max_step=0.05 * length if quench_max_step is None else quench_max_step)
        n_evals_push[todo] += q.n_evals // max(len(todo), 1)
        ok, idx = q.converged, q.minimum
        n_hess_push[todo[q.checked % len(todo)]] += 1
        n = len(todo)
        for k, c in enumerate(todo):
            a, b = int(idx[k]), int(idx[k + n])
            reached[c] = (a, b)
            if not (ok[k] and ok[k + n]):
                reasons[c] = "a push-off descent did not converge or met non-finite values"
            elif a < 0 or b < 0:
                reasons[c] = "a push-off descent ended at a stationary point that is not a minimum"
            elif a == b:
                reasons[c] = f"both push-off descents reached the same minimum {a}"
            elif not refined.energy[c] > max(book.energy[a], book.energy[b]):
                reasons[c] = (f"saddle energy {refined.energy[c]:.10g} is not above both minima reached "
                              f"({book.energy[a]:.10g}, {book.energy[b]:.10g})")
    out = []
    for c in range(C):
        out.append(SaddleRecord(
            z=refined.z[c].copy(), energy=float(refined.energy[c]), eigenvalues=ev[c].copy(),
            negative_eigenvalue=float(ev[c, 0]) if finite[c] else float("nan"), mode=refined.mode[c].copy(),
            minima=(int(reached[c, 0]), int(reached[c, 1])), valid=not reasons[c], reason=reasons[c],
            converged=bool(refined.converged[c]), grad_norm=float(refined.grad_norm[c]),
            n_evals=int(n_evals_push[c]), n_hessians=int(n_hess_push[c]) + int(refined.n_iter[c]) + 1))
    return out


def _ridge_starts(land: Landscape, z0: np.ndarray, tangents: Any, spans: Any,
                  length: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(starts (C, d), first radii (C,) latent units, ridges found): tangent rows moved to their ridge minimum."""
    from energyscope.search.nonsmooth import ridge_minimum
    C = len(z0)
    n_ridge = 0
    rad = np.full(C, 1e-3 * length)
    if tangents is not None:
        tau = np.asarray(to_numpy(tangents), dtype=np.float64).reshape(C, land.dim)
        span = np.full(C, 0.1 * length) if spans is None else np.asarray(spans, dtype=np.float64).reshape(C)
        good = np.linalg.norm(tau, axis=1) > 0
        if good.any():
            zr, _, okr = ridge_minimum(land, z0[good], tau[good], span[good])
            rows = np.flatnonzero(good)[okr]
            z0 = z0.copy()
            z0[rows] = zr[okr]
            rad[rows] = 1e-5 * length
            n_ridge = int(okr.sum())
    return z0, rad, n_ridge


def _second_chances(land: Landscape, kp: Any, ls: Any, z0: np.ndarray, z_given: np.ndarray, bands: list | None,
                    length: float, flat_tol: float, max_iter: int, seed: int) -> None:
    """Re-refine rows not yet index 1 from z0, z_given (C, d), then zoomed bands; replace rows that become so."""
    from energyscope.search.nonsmooth import local_structure, refine, replace_rows
    for start in (z0, z_given, "zoom"):
        again = np.flatnonzero(~(kp.converged & (ls.index == 1)))
        if not len(again):
            break
        rad2 = 1e-3 * length
        if isinstance(start, str):
            if bands is None:
                break
            again = np.array([c for c in again if bands[c] is not None], dtype=int)
            if not len(again):
                break
            start, rad2 = _zoomed_ridge_points(land, [bands[c] for c in again], z_given[again], length), 1e-5 * length
        else:
            start = start[again]
        kp2 = refine(land, start, "saddle", radius=rad2, max_iter=max_iter, seed=seed + 1)
        ls2 = local_structure(land, kp2, flat_tol=flat_tol, seed=seed + 1)
        better = kp2.converged & (ls2.index == 1)
        if better.any():
            replace_rows(kp, again[better], _rows(kp2, better))
            replace_rows(ls, again[better], _rows(ls2, better))


def _structure_reasons(kp: Any, ls: Any) -> list:
    """Per point (C), "" or why its refinement or local structure rules it out as a transition state."""
    reasons = [""] * len(kp)
    for c in range(len(kp)):
        if not kp.converged[c]:
            reasons[c] = f"saddle refinement on the kink did not converge ({kp.reason[c]})"
        elif ls.index[c] != 1:
            reasons[c] = ("refined point is not an index-1 saddle (" + (
                "U falls along one side only: not stationary" if ls.index[c] < 0 else
                f"{int(ls.index[c])} independent downhill directions") + f"; {ls.kind[c]}, "
                f"{int(ls.n_sharp[c])} sharp directions)")
    return reasons


def _push_off_descents(land: Landscape, kp: Any, ls: Any, book: MinimaBook, todo: np.ndarray, reached: np.ndarray,
                       reasons: list, n_evals: np.ndarray, push_rel: float, length: float, step_cap: float,
                       quench_max_iter: int) -> None:
    """Push ``todo`` off both ways by push_rel × length and descend; record minima (C, 2) and evals (C,)."""
    # push off to both sides and descend; where both descents end in the same minimum (or fail), once more from a
    # hundredth of the distance with steps that start as small and grow: the basin on one side may be tiny
    for attempt, (delta, grow) in enumerate(((push_rel * length, None), (1e-2 * push_rel * length, 2.0))):
        if not len(todo):
            break
        pts, _, ne = _push_points(land, kp.z[todo], ls.push[todo, 0], kp.energy[todo], delta,
                                  mode_minus=ls.push[todo, 1])
        q = quench_to_minima(land, pts, book, max_iter=quench_max_iter, max_step=step_cap if grow is None else delta,
                             max_step_max=step_cap, grow=grow)
        n_evals[todo] += (ne + q.n_evals) // len(todo)
        ok, idx = q.converged, q.minimum
        n = len(todo)
        same = np.array([not (ok[k] and ok[k + n]) or idx[k] < 0 or idx[k + n] < 0 or idx[k] == idx[k + n]
                         for k in range(n)])
        if attempt == 0 and same.any():
            keep = ~same
            idx = np.concatenate([idx[:n][keep], idx[n:][keep]])
            ok = np.concatenate([ok[:n][keep], ok[n:][keep]])
            retry, todo = todo[same], todo[keep]
        else:
            retry = np.zeros(0, dtype=int)
        _judge_pushoffs(todo, idx, ok, kp.energy, book, reached, reasons)
        todo = retry


def _kink_record(kp: Any, ls: Any, c: int, reached: np.ndarray, reasons: list, n_evals: np.ndarray,
                 ridge_search: bool) -> SaddleRecord:
    """The :class:`SaddleRecord` of refined kink point c (its energy in nats, eigenvalues ±inf on sharp directions)."""
    C = len(kp)
    ev = ls.eigenvalues[c]
    return SaddleRecord(
        z=kp.z[c].copy(), energy=float(kp.energy[c]), eigenvalues=ev.copy(),
        negative_eigenvalue=float(ev[0]) if np.isfinite(kp.energy[c]) and not np.isnan(ev[0]) else float("nan"),
        mode=ls.push[c, 0].copy(), minima=(int(reached[c, 0]), int(reached[c, 1])), valid=not reasons[c],
        reason=reasons[c], converged=bool(kp.converged[c]), grad_norm=float(kp.stationarity[c]),
        n_evals=int(n_evals[c]), n_hessians=int(kp.n_hessians // C),
        info={"kind": ls.kind[c], "n_sharp": int(ls.n_sharp[c]), "index": int(ls.index[c]),
              "n_pieces": int(kp.n_pieces[c]), "ridge_search": ridge_search})


def find_kink_saddles(land: Landscape, candidates: Any, book: MinimaBook, *, tangents: Any = None,
                      spans: Any = None, bands: list | None = None, radius: float | None = None, push_rel: float = 1e-2,
                      quench_max_step: float | None = None, quench_max_iter: int = 5000, max_iter: int = 40,
                      seed: int = 0) -> list[SaddleRecord]:
    """Transition states of a piecewise-smooth U, which usually sit on kinks (ridges where U falls like -|x|).

    With ``tangents`` (the band's direction at each candidate), each candidate is first moved to the lowest point of
    its ridge (:func:`energyscope.search.nonsmooth.ridge_minimum`: maximise along the band's direction, minimise in the
    others, both non-smoothly). It is then refined onto its stationary point by :func:`energyscope.search.nonsmooth.refine`
    (Newton on the non-smooth stationarity system of the pieces that meet there) and its local structure worked out
    (:func:`energyscope.search.nonsmooth.local_structure`). It is accepted, exactly as a smooth saddle, when

    1. the refinement converged (Clarke stationary, step below tolerance);
    2. its index is 1: one downhill direction (a negative reduced-Hessian eigenvalue) or one ridge (the downhill
       sharp directions form two separate caps);
    3. pushing off to both downhill sides and descending reaches two *different* minima;
    4. its energy lies above both of them.

    The record's ``eigenvalues`` carry ``-inf`` for the sharp unstable direction of a ridge and ``+inf`` for sharp
    stable ones; ``info["kind"]`` is ``"kink"`` or ``"smooth"``.

    Args:
        land, candidates, book: as for :func:`find_saddles`.
        tangents: (C, d) band directions at the candidates, or None (then the refinement starts at the candidates).
        spans: (C,) how far along its tangent each candidate's ridge may lie (e.g. the distance between the
            climbing image's neighbours); default 0.1 × the latent length scale.
        bands: per candidate, the relaxed band (M, d) it came from, or None. Where ridge search and refinement do
            not give an index-1 point, the band is zoomed in around its highest point (a string between the images
            either side of it, relaxed again, three times; cf. the adaptive NEB of Maragakis et al., J. Chem. Phys.
            116, 10, 2002) and the search repeated from the zoomed band's highest point.
        radius: first sampling radius of the refinement (default 1e-5 × the length scale after the ridge search,
            else 1e-3).
        push_rel: push-off distance, × the length scale (halved per row until both sides lie below the saddle).
        quench_max_step, quench_max_iter: the push-off descents (default step cap 0.05 × the length scale).
        max_iter: refinement iterations at most.
        seed: seeds the refinement's samples.
    """
    from energyscope.search.nonsmooth import local_structure, refine
    z0 = np.asarray(to_numpy(candidates), dtype=np.float64).reshape(-1, land.dim)
    C = len(z0)
    if C == 0:
        return []
    length = land.scales().length
    z0, rad, n_ridge = _ridge_starts(land, z0, tangents, spans, length)
    if radius is not None:
        rad[:] = radius
    kp = refine(land, z0, "saddle", radius=rad, max_iter=max_iter, seed=seed)
    ls = local_structure(land, kp, flat_tol=book.base.flat_tol, seed=seed)
    # second chances where that did not give an index-1 point: a wider first sample around the same start (the ridge
    # search may stall short of the ridge's lowest point), then around the candidate as given
    z_given = np.asarray(to_numpy(candidates), dtype=np.float64).reshape(-1, land.dim)
    _second_chances(land, kp, ls, z0, z_given, bands, length, book.base.flat_tol, max_iter, seed)
    reasons = _structure_reasons(kp, ls)
    todo = np.array([c for c in range(C) if not reasons[c]], dtype=int)
    reached = np.full((C, 2), -1, dtype=int)
    n_evals = np.full(C, kp.n_evals // C + ls.n_evals // C, dtype=np.int64)
    step_cap = 0.05 * length if quench_max_step is None else quench_max_step
    _push_off_descents(land, kp, ls, book, todo, reached, reasons, n_evals, push_rel, length, step_cap,
                       quench_max_iter)
    return [_kink_record(kp, ls, c, reached, reasons, n_evals, n_ridge > 0) for c in range(C)]


def _zoomed_ridge_points(land: Landscape, bands: list, tops: np.ndarray, length: float, levels: int = 3,
                         n_images: int = 9) -> np.ndarray:
    """Zoom each band (M, d) in around its point nearest ``tops`` (C, d): relax a string between the images on either
    side, ``levels`` times, then take the lowest point of the ridge the zoomed band crosses (C, d)."""
    from energyscope.search.bands import dense_profiles, relax_strings
    from energyscope.search.nonsmooth import ridge_minimum
    A, B = [], []
    for band, top in zip(bands, tops):
        z = np.asarray(band, dtype=np.float64)
        i = int(np.argmin(np.linalg.norm(z - top[None, :], axis=1)))
        A.append(z[max(i - 1, 0)])
        B.append(z[min(i + 1, len(z) - 1)])
    A, B = np.array(A), np.array(B)
    best = tops.copy()
    for _ in range(levels):
        same = np.linalg.norm(B - A, axis=1) <= 1e-12 * length
        B = np.where(same[:, None], A + 1e-6 * length, B)
        res = relax_strings(land, A, B, n_images, max_iter=150)
        pts, prof, _ = dense_profiles(land, [r.z for r in res], 4)
        for c, (pz, pe, r) in enumerate(zip(pts, prof, res)):
            if not np.isfinite(pe).all():
                continue
            k = int(np.argmax(pe))
            best[c] = pz[k]
            i = int(np.argmin(np.linalg.norm(r.z - pz[k][None, :], axis=1)))
            A[c], B[c] = r.z[max(i - 1, 0)], r.z[min(i + 1, len(r.z) - 1)]
    tan = B - A
    span = np.linalg.norm(tan, axis=1)
    ok = span > 0
    out = best.copy()
    if ok.any():
        zr, _, okr = ridge_minimum(land, best[ok], tan[ok], span[ok])
        rows = np.flatnonzero(ok)[okr]
        out[rows] = zr[okr]
    return out


def _rows(obj: Any, mask: np.ndarray) -> Any:
    """A copy of a KinkPoints / LocalStructure with only the rows ``mask`` (counters set to 0)."""
    import dataclasses
    kw = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        kw[f.name] = v[mask] if isinstance(v, np.ndarray) else [x for x, k in zip(v, mask) if k] \
            if isinstance(v, list) else 0 if isinstance(v, int) else v
    return type(obj)(**kw)


def _judge_pushoffs(todo: np.ndarray, idx: np.ndarray, ok: np.ndarray, energy: np.ndarray, book: MinimaBook,
                    reached: np.ndarray, reasons: list) -> None:
    """Record, for candidates ``todo``, the minima their two push-off descents reached (``idx``: first all + sides,
    then all - sides) and why they fail as transition states, if they do."""
    n = len(todo)
    for k, c in enumerate(todo):
        a, b = int(idx[k]), int(idx[k + n])
        reached[c] = (a, b)
        if not (ok[k] and ok[k + n]):
            reasons[c] = "a push-off descent did not end at a certified minimum"
        elif a < 0 or b < 0:
            reasons[c] = "a push-off descent ended at a point that is not a minimum"
        elif a == b:
            reasons[c] = f"both push-off descents reached the same minimum {a}"
        elif not energy[c] > max(book.energy[a], book.energy[b]):
            reasons[c] = (f"saddle energy {energy[c]:.10g} is not above both minima reached "
                          f"({book.energy[a]:.10g}, {book.energy[b]:.10g})")


def find_saddles(land: Landscape, candidates: Any, book: MinimaBook, **kwargs) -> list[SaddleRecord]:
    """Refine candidates (C, d) and validate them against ``book`` in one go.

    Where U is smooth: exact-Hessian eigenvector following; keyword arguments go to :func:`refine_saddles`
    (``gtol``, ``gtol_rel``, ``max_iter``, ``max_step``) and :func:`validate_saddles` (the rest). Where it is not
    known to be smooth: :func:`find_kink_saddles` (keywords ``tangents``, ``spans``, ``bands``, ``push_rel``,
    ``quench_max_step``, ``quench_max_iter`` are passed on; ``tangents``/``spans``/``bands`` are ignored where U is
    smooth).
    """
    if not land.is_smooth:
        keep = {"push_rel", "quench_max_step", "quench_max_iter", "radius", "seed", "tangents", "spans", "bands"}
        return find_kink_saddles(land, candidates, book, **{k: v for k, v in kwargs.items() if k in keep})
    kwargs = {k: v for k, v in kwargs.items() if k not in ("tangents", "spans", "bands")}
    rkeys = {"gtol", "gtol_rel", "max_iter", "max_step"}
    refined = refine_saddles(land, candidates, **{k: v for k, v in kwargs.items() if k in rkeys})
    recs = validate_saddles(land, refined, book, **{k: v for k, v in kwargs.items() if k not in rkeys})
    share = refined.n_evals // max(len(recs), 1)
    for r in recs:
        r.n_evals += share
    return recs


__all__ = ["RefineResult", "SaddleRecord", "refine_saddles", "validate_saddles", "find_saddles", "find_kink_saddles",
           "band_tangent"]


def band_tangent(path_z: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, float]:
    """The direction of a band (M, d) at the point ``at`` (d,) (between the neighbours of the nearest image) and
    the distance between those neighbours: the tangent and span for :func:`find_kink_saddles`."""
    z = np.asarray(path_z, dtype=np.float64)
    dist = np.linalg.norm(z - np.asarray(at)[None, :], axis=1)
    i = int(np.argmin(dist))
    a, b = z[max(i - 1, 0)], z[min(i + 1, len(z) - 1)]
    t = b - a
    span = float(np.linalg.norm(t))
    if i in (0, len(z) - 1):      # a maximum resolved just before an endpoint minimum: the ridge is that close
        span = min(span, max(4.0 * float(dist[i]), 1e-6 * span))
    return t, span
