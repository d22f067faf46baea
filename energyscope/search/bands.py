"""Band relaxation, batched: nudged elastic bands with the improved tangent and a climbing image, strings, and
the dense post-check of relaxed bands (the path finders' numerical core; no knowledge of minima sets or saddles).

* Tangent: Henkelman & Jónsson, J. Chem. Phys. 113, 9978 (2000) ("improved tangent"). Where it vanishes (a flat
  triple of equal energies, or coincident images) the bisector of the two unit segment vectors is used, and failing that
  the end-to-end direction, so no NaN can arise.
* Springs act along the tangent on true segment lengths: ``k (|R₊ - R| - |R - R₋|) τ``.
* Climbing image (Henkelman, Uberuaga & Jónsson, J. Chem. Phys. 113, 9901 (2000)): switched on per band once its
  largest perpendicular force is within ``climb_factor`` × its tolerance; the highest image then feels
  ``-∇U + 2 (∇U·τ) τ`` and no spring.
* Convergence per band on the largest perpendicular force (the climbing image's full force once climbing), with a
  unit-free tolerance ``ftol_rel`` × (energy span of the band) / (end-to-end distance). Converged bands leave the batch.

:func:`relax_bands` relaxes P bands at once: all interior images of all active bands are evaluated in ONE
``land.energy_and_grad`` call per step, and each band is one row of the shared :class:`~energyscope.optim.FIRE`
stepper. :func:`relax_strings` relaxes strings (for kink energies); :func:`dense_profiles` evaluates relaxed bands
densely. :mod:`energyscope.search.neb` builds the path finders on these.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from energyscope.errors import EnergyscopeError
from energyscope._deadline import expired
from energyscope._tensor import to_numpy
from energyscope.landscape import Landscape
from energyscope.optim import FIRE


class NEBError(EnergyscopeError, ValueError):
    """Bad input to :func:`neb` (wrong shapes, identical or non-finite endpoints); the message names the problem."""


def finite_curvature(land: Landscape, eigenvalues: np.ndarray) -> np.ndarray:
    """(K,) the stiffest finite |eigenvalue| of each row of ``eigenvalues`` (K, d), nats per latent unit²; rows with
    none (a minimum sharp in every direction, on a kink) get the landscape's curvature unit σ_E/σ_z²."""
    ev = np.asarray(eigenvalues, dtype=np.float64)
    sc = land.scales()
    unit = sc.sigma_E / sc.length**2
    if ev.size == 0:
        return np.full(len(ev), unit)
    a = np.where(np.isfinite(ev), np.abs(ev), 0.0).max(axis=1)
    return np.where(a > 0, a, unit)


# ---------------------------------------------------------------------------------------------------------- images
def image_count(land: Landscape, z_start: Any, z_end: Any, images_per_length: float = 3.0, n_min: int = 9,
                n_max: int = 33) -> int:
    """Number of images (endpoints included) for a band: ``images_per_length`` per latent length scale along the
    straight line, clipped to ``[n_min, n_max]``."""
    dist = float(np.linalg.norm(np.asarray(z_end, dtype=np.float64) - np.asarray(z_start, dtype=np.float64)))
    n = int(np.ceil(images_per_length * dist / land.scales().length)) + 1
    return int(np.clip(n, n_min, n_max))


@dataclass
class BandResult:
    """One relaxed band (numpy).

    Attributes:
        z: (M, d) images, endpoints included; energy: (M,) U, nats (NaN where never evaluated).
        converged: met its force tolerance; climbing: the climbing image was on at the end.
        fmax: final largest perpendicular force, nats per latent unit; ftol: the tolerance it was held to.
        n_iter: FIRE steps; n_evals: energy+gradient row evaluations for this band.
        reason: "" or why the band failed (e.g. non-finite energy).
    """

    z: np.ndarray
    energy: np.ndarray
    converged: bool
    climbing: bool
    fmax: float
    ftol: float
    n_iter: int
    n_evals: int
    reason: str = ""

    @property
    def ci(self) -> int:
        """Index of the highest interior image."""
        return int(np.nanargmax(self.energy[1:-1])) + 1 if len(self.energy) > 2 else 0


def _tangents(X: torch.Tensor, E: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Improved tangents (P, M-2, d) and the segment lengths after / before each interior image (P, M-2, 1)."""
    tiny = torch.finfo(X.dtype).tiny
    D = X[:, 1:] - X[:, :-1]
    L = torch.linalg.vector_norm(D, dim=-1, keepdim=True)
    tp, tm, lp, lm = D[:, 1:], D[:, :-1], L[:, 1:], L[:, :-1]
    Ei, Ep, Em = E[:, 1:-1], E[:, 2:], E[:, :-2]
    dEp, dEm = (Ep - Ei).abs(), (Em - Ei).abs()
    dmax, dmin = torch.maximum(dEp, dEm), torch.minimum(dEp, dEm)
    up = (Ep > Ei) & (Ei > Em)
    down = (Ep < Ei) & (Ei < Em)
    # weights of the forward / backward segment: (1, 0) uphill, (0, 1) downhill, else energy-weighted
    hi = Ep > Em
    wp = torch.where(up, 1.0, torch.where(down, 0.0, torch.where(hi, dmax, dmin)))
    wm = torch.where(up, 0.0, torch.where(down, 1.0, torch.where(hi, dmin, dmax)))
    tau = wp[..., None] * tp + wm[..., None] * tm
    n = torch.linalg.vector_norm(tau, dim=-1, keepdim=True)
    small = 1e-12
    ok = n > small * (lp + lm).clamp_min(tiny)
    if bool(ok.all()):
        return tau / n, lp, lm
    bis = tp / lp.clamp_min(tiny) + tm / lm.clamp_min(tiny)
    nb = torch.linalg.vector_norm(bis, dim=-1, keepdim=True)
    ends = (X[:, -1] - X[:, 0])[:, None, :].expand_as(tau)
    ne = torch.linalg.vector_norm(ends, dim=-1, keepdim=True)
    tau = torch.where(ok, tau / n.clamp_min(tiny),
                      torch.where(nb > small, bis / nb.clamp_min(tiny), ends / ne.clamp_min(tiny)))
    return tau, lp, lm


def tangents(X: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """Unit improved tangents at the interior images of bands X (P, M, d) with energies E (P, M) -> (P, M-2, d).

    A zero tangent (flat triple, coincident images) falls back to the bisector of the unit segment vectors, then to
    the band's end-to-end direction.
    """
    return _tangents(X, E)[0]


def neb_forces(X: torch.Tensor, E: torch.Tensor, G: torch.Tensor, k: torch.Tensor, climbing: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """NEB forces on the interior images.

    Args:
        X: (P, M, d) bands; E: (P, M) energies; G: (P, M-2, d) gradients at the interior images.
        k: (P,) spring constants, nats per latent unit².
        climbing: (P,) bool, the highest interior image climbs.

    Returns:
        (force (P, M-2, d), fmax (P,)): the force to move the images by, and the band's largest perpendicular force
        (the climbing image's full force where climbing).
    """
    tau, lp, lm = _tangents(X, E)
    gpar = (G * tau).sum(-1, keepdim=True)
    f_perp = gpar * tau - G
    f = f_perp + k[:, None, None] * (lp - lm) * tau
    if bool(climbing.any()):
        # the highest interior image of a climbing band: full force with the parallel part inverted, no spring
        ci = E[:, 1:-1].argmax(dim=1)
        at = (torch.arange(tau.shape[1], device=X.device)[None, :] == ci[:, None]) & climbing[:, None]
        f_ci = 2 * gpar * tau - G
        f = torch.where(at[..., None], f_ci, f)
        f_perp = torch.where(at[..., None], f_ci, f_perp)
    fnorm = torch.linalg.vector_norm(f_perp, dim=-1)
    return f, fnorm.max(dim=1).values


def relax_bands(land: Landscape, starts: Any, ends: Any, n_images: int, *, init: Any = None, climb: bool = True,
                ftol: float | None = None, ftol_rel: float = 1e-2, climb_factor: float = 10.0, max_iter: int = 1000,
                k: Any = None, curvature: Any = None, k_rel: float = 0.02, dt_rel: float = 2.0,
                dt_max_rel: float = 10.0, step_rel: float = 2.0, diverge_factor: float = 20.0, progress: bool = False,
                desc: str = "NEB", stop_at_dip: bool = False) -> list[BandResult]:
    """Relax P bands at once between ``starts`` (P, d) and ``ends`` (P, d), each with ``n_images`` images.

    Args:
        land: the landscape.
        starts, ends: (P, d) fixed endpoints.
        n_images: images per band, endpoints included (at least 3).
        init: optional (P, n_images, d) initial bands (default: straight lines); endpoints are taken from it.
        climb: switch a climbing image on once a band is roughly converged.
        ftol: absolute force tolerance, nats per latent unit; default: ``ftol_rel`` × energy span / end distance.
        climb_factor: climbing starts when the largest perpendicular force is within this many tolerances.
        max_iter: FIRE steps at most per band.
        k: spring constant(s), scalar or (P,), nats per latent unit². Default: ``k_rel`` × ``curvature``.
        curvature: (P,) typical stiffest curvature of each band (e.g. the largest Hessian eigenvalue at its
            endpoints), nats per latent unit²; sets FIRE's time step. Default: estimated from the endpoints' Hessians.
        k_rel, dt_rel, dt_max_rel, step_rel: FIRE set-up relative to the band: spring constant ``k_rel`` ×
            curvature; start / largest time step ``dt_rel`` / ``dt_max_rel`` × 1/sqrt(stiffness); step cap per band
            ``step_rel`` × segment length × sqrt(interior images).
        diverge_factor: a band whose energy span grows beyond this many times its initial span is stopped as
            diverged (only with the default, relative tolerance).
        progress: tqdm bar over bands finished.
        stop_at_dip: (with ``climb``) a band that is roughly converged (where it would start climbing) and has an
            interior image lower than both neighbours, by more than 1e-6 of its energy span, stops there unconverged
            with a reason starting ``"interior minimum"``: it runs through an intermediate minimum and will be split
            (:func:`find_paths` uses this), so climbing it to convergence would be wasted.

    The default tolerance is loose on purpose: the climbing image only has to come near the saddle, which
    :func:`energyscope.search.saddles.refine_saddles` then converges quadratically.

    Returns:
        One :class:`BandResult` per band, in order. Bands that meet non-finite energies are stopped with a reason.
    """
    A, B, X = _start_bands(land, starts, ends, n_images, init)
    M = X.shape[1]
    E, finite_ends, reasons = _endpoint_energies(land, A, B, M)
    kk, dist, dt_max, fire = _fire_for_bands(land, A, B, M, k, curvature, k_rel, dt_rel, dt_max_rel, step_rel)
    run = _BandRun(finite_ends, reasons, kk, dist, A.dtype, progress, desc)
    _fire_loop(land, X, E, run, fire, dt_max, climb=climb, ftol=ftol, ftol_rel=ftol_rel, climb_factor=climb_factor,
               max_iter=max_iter, diverge_factor=diverge_factor, stop_at_dip=stop_at_dip)
    return _band_results(X, E, run, finite_ends, max_iter)


def _start_bands(land: Landscape, starts: Any, ends: Any, n_images: int, init: Any
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checked endpoints A, B (P, d) and initial bands X (P, M, d), latent units: straight lines, or ``init``."""
    A, B = land.as_tensor(starts), land.as_tensor(ends)
    if A.shape != B.shape:
        raise NEBError(f"starts {tuple(A.shape)} and ends {tuple(B.shape)} must have the same shape")
    M = int(n_images)
    if M < 3:
        raise NEBError(f"a band needs at least 3 images, got n_images={M}")
    P, d = A.shape
    dev, dt_ = A.device, A.dtype
    if init is None:
        t = torch.linspace(0, 1, M, device=dev, dtype=dt_)
        X = A[:, None, :] + t[None, :, None] * (B - A)[:, None, :]
    else:
        X = torch.as_tensor(np.asarray(to_numpy(init)), device=dev, dtype=dt_).clone()
        if X.shape != (P, M, d):
            raise NEBError(f"init must have shape {(P, M, d)}, got {tuple(X.shape)}")
        X[:, 0], X[:, -1] = A, B
    return A, B, X


def _endpoint_energies(land: Landscape, A: torch.Tensor, B: torch.Tensor, M: int
                       ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Energies E (P, M), nats (endpoints evaluated, interior NaN), the (P,) mask of finite endpoints, and reasons."""
    P = A.shape[0]
    E = torch.full((P, M), float("nan"), device=A.device, dtype=A.dtype)
    E[:, 0], E[:, -1] = land.energy(A), land.energy(B)
    reasons = [""] * P
    finite = torch.isfinite(E[:, 0]) & torch.isfinite(E[:, -1])
    for p in torch.nonzero(~finite).flatten().tolist():
        reasons[p] = "non-finite energy at an endpoint"
    return E, finite, reasons


def _fire_for_bands(land: Landscape, A: torch.Tensor, B: torch.Tensor, M: int, k: Any, curvature: Any, k_rel: float,
                    dt_rel: float, dt_max_rel: float, step_rel: float
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, FIRE]:
    """Springs k (P,) nats/unit², end distances (P,) units, time-step caps dt_max (P,), and the FIRE stepper."""
    P, d = A.shape
    dev, dt_ = A.device, A.dtype
    if curvature is None:
        ev = torch.linalg.eigvalsh(land.hessian(torch.cat([A, B])))
        curvature = torch.maximum(ev[:P, -1], ev[P:, -1]).abs()
    curv = torch.as_tensor(np.asarray(to_numpy(curvature), dtype=np.float64), device=dev, dtype=dt_).expand(P).clone()
    dist = (B - A).norm(dim=1)
    curv = torch.where(torch.isfinite(curv) & (curv > 0), curv, torch.ones_like(curv))
    kk = k_rel * curv if k is None else torch.as_tensor(np.asarray(to_numpy(k), dtype=np.float64), device=dev,
                                                        dtype=dt_).expand(P).clone()
    stiff = torch.maximum(curv, 4 * kk)
    dt0 = dt_rel / stiff.sqrt()
    n_int = M - 2
    seg = dist / (M - 1)
    dt_max = dt_max_rel / stiff.sqrt()
    fire = FIRE(P, n_int * d, dt=1.0, dt_max=float(dt_max.max()),
                max_step=(step_rel * seg * np.sqrt(n_int)).clamp_min(1e-300), device=dev, dtype=dt_)
    fire.dt[:] = dt0  # per band; the per-band cap dt_max is applied after each step
    return kk, dist, dt_max, fire


class _BandRun:
    """Bookkeeping of one :func:`relax_bands` run: per-band records (P,) and the active bands' aligned settings."""

    __slots__ = ("climbing", "converged", "fmax", "tol", "span0", "n_iter", "reasons", "active", "kk", "dist", "clb",
                 "s0", "bar")

    def __init__(self, finite_ends: torch.Tensor, reasons: list[str], kk: torch.Tensor, dist: torch.Tensor,
                 dtype: torch.dtype, progress: bool, desc: str):
        """Records (P,) for bands with endpoint-finite mask ``finite_ends`` (P,), springs ``kk`` and distances (P,)."""
        P, dev = len(finite_ends), finite_ends.device
        # per-band bookkeeping lives with the bands (indexed by `active`, which is on the landscape's device)
        self.climbing = torch.zeros(P, dtype=torch.bool, device=dev)
        self.converged = torch.zeros(P, dtype=torch.bool, device=dev)
        self.fmax = torch.full((P,), float("inf"), dtype=dtype, device=dev)
        self.tol = torch.full((P,), float("nan"), dtype=dtype, device=dev)
        self.span0 = torch.full((P,), float("nan"), dtype=dtype, device=dev)
        self.n_iter = torch.zeros(P, dtype=torch.long, device=dev)
        self.reasons = reasons
        self.active = torch.nonzero(finite_ends).flatten()
        self.bar = None
        if progress:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=P, desc=desc, unit="band", leave=False)
            self.bar.update(P - len(self.active))
        # active-aligned copies of the per-band settings, filtered together with `active` (no gathers per step)
        self.kk, self.dist, self.clb = kk[self.active], dist[self.active].clamp_min(1e-300), self.climbing[self.active]
        self.s0 = None  # energy span of each active band at its first evaluation


def _drop(run: _BandRun, keep: torch.Tensor) -> None:
    """Keep only the active bands where ``keep`` (n_active,) bool is set, with their aligned settings."""
    run.active, run.kk, run.dist, run.clb = run.active[keep], run.kk[keep], run.dist[keep], run.clb[keep]
    if run.s0 is not None:
        run.s0 = run.s0[keep]


def _fire_loop(land: Landscape, X: torch.Tensor, E: torch.Tensor, run: _BandRun, fire: FIRE, dt_max: torch.Tensor, *,
               climb: bool, ftol: float | None, ftol_rel: float, climb_factor: float, max_iter: int,
               diverge_factor: float, stop_at_dip: bool) -> None:
    """FIRE steps on the active bands X (P, M, d) in place until each ends, filling E (P, M), nats, and ``run``."""
    M, d = X.shape[1:]
    n_int = M - 2
    it = 0  # FIRE steps taken by every band still active (all bands start together)
    while len(run.active):
        active = run.active
        Xa = X[active]
        e, g = land.energy_and_grad(Xa[:, 1:-1].reshape(-1, d))
        e, g = e.reshape(len(active), n_int), g.reshape(len(active), n_int, d)
        E[active, 1:-1] = e
        if not bool(torch.isfinite(e.sum() + g.sum())):  # one check; the sum is finite only if every entry is
            keep = _stop_nonfinite(run, e, g, M, it)
            Xa, e, g = Xa[keep], e[keep], g[keep]
            if not len(run.active):
                break
        Ea = E[run.active]
        f, fm = neb_forces(Xa, Ea, g, run.kk, run.clb)
        if ftol is not None:
            ta = torch.full_like(fm, float(ftol))
        else:
            ta, keep = _relative_tolerance(run, Ea, fm, ftol_rel, diverge_factor, it)
            if keep is not None:
                Xa, Ea, g, f, fm, ta = Xa[keep], Ea[keep], g[keep], f[keep], fm[keep], ta[keep]
                if not len(run.active):
                    break
        done = fm <= ta
        stopped_dip = None
        if climb:
            done, f, stopped_dip = _update_climbing(run, fire, Xa, Ea, g, f, fm, ta, done, climb_factor, stop_at_dip,
                                                    it)
        finished = done | (it >= max_iter) | expired()   # at the time limit, every band ends where it is
        if stopped_dip is not None:
            finished = finished | stopped_dip
        if bool(finished.any()):
            keep = _finish_bands(run, finished, done, fm, ta, it)
            Xa, f, fm, ta = Xa[keep], f[keep], fm[keep], ta[keep]
            if not len(run.active):
                break
        active = run.active
        xn = fire.step(Xa[:, 1:-1].reshape(len(active), -1), f.reshape(len(active), -1), active)
        fire.dt[active] = torch.minimum(fire.dt[active], dt_max[active])
        X[active, 1:-1] = xn.reshape(len(active), n_int, d)
        # the last forces of each band (they are reported for bands that later meet a non-finite value)
        run.fmax[active], run.tol[active] = fm, ta
        it += 1


def _stop_nonfinite(run: _BandRun, e: torch.Tensor, g: torch.Tensor, M: int, it: int) -> torch.Tensor:
    """Stop active bands with non-finite energy e (n, M-2) or gradient g (n, M-2, d); returns the (n,) keep mask."""
    bad = ~(torch.isfinite(e).all(1) & torch.isfinite(g).flatten(1).all(1))
    for r in torch.nonzero(bad).flatten().tolist():
        img = int((~(torch.isfinite(e[r]) & torch.isfinite(g[r]).all(1))).nonzero()[0])
        run.reasons[int(run.active[r])] = (f"non-finite energy or gradient at image {img + 1} of {M} "
                                           f"after {it} steps")
    keep = ~bad
    if run.bar is not None:
        run.bar.update(int(bad.sum()))
    run.n_iter[run.active[bad]] = it
    _drop(run, keep)
    return keep


def _relative_tolerance(run: _BandRun, Ea: torch.Tensor, fm: torch.Tensor, ftol_rel: float, diverge_factor: float,
                        it: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Force tolerances (n,) nats/unit from energies Ea (n, M); stops diverged bands: (tol, keep (n,) or None)."""
    span = (Ea.max(dim=1).values - torch.minimum(Ea[:, 0], Ea[:, -1])).clamp_min(0)
    span = torch.maximum(span, 1e-12 * Ea.abs().max(dim=1).values + torch.finfo(Ea.dtype).tiny)
    if run.s0 is None:
        run.s0 = span
        run.span0[run.active] = span
    # never looser than at the start: a band that strays uphill must not loosen its own tolerance
    ta = ftol_rel * torch.minimum(span, run.s0) / run.dist
    # a band running far uphill (e.g. a climbing image leaving along a bad tangent) has diverged: stop it
    diverged = span > diverge_factor * run.s0
    if not bool(diverged.any()):
        return ta, None
    for r in torch.nonzero(diverged).flatten().tolist():
        run.reasons[int(run.active[r])] = (f"band diverged: its energy span grew from {float(run.s0[r]):.3g}"
                                           f" to {float(span[r]):.3g} after {it} steps")
    if run.bar is not None:
        run.bar.update(int(diverged.sum()))
    rows = run.active[diverged]
    run.fmax[rows], run.tol[rows], run.n_iter[rows] = fm[diverged], ta[diverged], it
    keep = ~diverged
    _drop(run, keep)
    return ta, keep


def _update_climbing(run: _BandRun, fire: FIRE, Xa: torch.Tensor, Ea: torch.Tensor, g: torch.Tensor, f: torch.Tensor,
                     fm: torch.Tensor, ta: torch.Tensor, done: torch.Tensor, climb_factor: float, stop_at_dip: bool,
                     it: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Start climbing (or stop at a dip) where roughly converged: (done (n,), forces (n, M-2, d), dip mask or None)."""
    done = done & run.clb
    stopped_dip = None
    start = ~run.clb & (fm <= climb_factor * ta)
    if stop_at_dip and bool(start.any()):
        Ei = Ea[:, 1:-1]
        depth = 1e-6 * (Ea.max(dim=1).values - Ea.min(dim=1).values)
        dip = start & ((Ea[:, :-2] > Ei) & (Ea[:, 2:] > Ei)
                       & (torch.maximum(Ea[:, :-2], Ea[:, 2:]) - Ei > depth[:, None])).any(dim=1)
        if bool(dip.any()):
            for r in torch.nonzero(dip).flatten().tolist():
                run.reasons[int(run.active[r])] = f"interior minimum: stopped before climbing after {it} steps"
            stopped_dip = dip
            start = start & ~dip
    if bool(start.any()):
        rows = run.active[start]
        run.climbing[rows] = True
        run.clb = run.clb | start
        fire.reset(rows)
        done = done & ~start
        f, _ = neb_forces(Xa, Ea, g, run.kk, run.clb)  # the climbing image's force now
    return done, f, stopped_dip


def _finish_bands(run: _BandRun, finished: torch.Tensor, done: torch.Tensor, fm: torch.Tensor, ta: torch.Tensor,
                  it: int) -> torch.Tensor:
    """Record and drop the ``finished`` (n,) active bands (converged where ``done``); returns the (n,) keep mask."""
    rows = run.active[finished]
    run.converged[rows] = done[finished]
    run.fmax[rows], run.tol[rows], run.n_iter[rows] = fm[finished], ta[finished], it
    if run.bar is not None:
        run.bar.update(int(finished.sum()))
    keep = ~finished
    _drop(run, keep)
    return keep


def _band_results(X: torch.Tensor, E: torch.Tensor, run: _BandRun, finite_ends: torch.Tensor, max_iter: int
                  ) -> list[BandResult]:
    """One :class:`BandResult` per band from the bands X (P, M, d), energies E (P, M), nats, and the run's records."""
    if run.bar is not None:
        run.bar.close()
    P, M = E.shape
    n_int = M - 2
    n_evals = torch.full((P,), 2, dtype=torch.long, device=X.device)
    n_evals = torch.where(finite_ends, 2 + n_int * (run.n_iter + 1), n_evals)
    Xn, En = to_numpy(X), to_numpy(E)
    reasons = run.reasons
    # one transfer each, not one per band and field
    converged, climbing, fmax, tol, n_iter, n_evals = (to_numpy(t) for t in (run.converged, run.climbing, run.fmax,
                                                                             run.tol, run.n_iter, n_evals))
    return [BandResult(z=Xn[p], energy=En[p], converged=bool(converged[p]), climbing=bool(climbing[p]),
                       fmax=float(fmax[p]), ftol=float(tol[p]), n_iter=int(n_iter[p]), n_evals=int(n_evals[p]),
                       reason=reasons[p] or ("" if converged[p] else
                                             f"not converged in {max_iter} steps (largest force {float(fmax[p]):.3g}"
                                             f" > tolerance {float(tol[p]):.3g})"))
            for p in range(P)]


def _equal_arc(X: torch.Tensor) -> torch.Tensor:
    """Bands X (P, M, d) resampled at M points of equal arc length along their polylines (ends kept)."""
    P, M, d = X.shape
    seg = (X[:, 1:] - X[:, :-1]).norm(dim=-1)                             # (P, M-1)
    s = torch.cat([torch.zeros(P, 1, dtype=X.dtype, device=X.device), seg.cumsum(dim=1)], dim=1)
    total = s[:, -1:].clamp_min(torch.finfo(X.dtype).tiny)
    t = torch.linspace(0, 1, M, dtype=X.dtype, device=X.device)[None, :] * total
    k = (torch.searchsorted(s.contiguous(), t.contiguous(), right=True) - 1).clamp(0, M - 2)
    s0 = torch.gather(s, 1, k)
    L = torch.gather(seg, 1, k)
    u = torch.where(L > 0, (t - s0) / L.clamp_min(torch.finfo(X.dtype).tiny), torch.zeros_like(t))
    A = torch.gather(X, 1, k[..., None].expand(P, M, d))
    B = torch.gather(X, 1, (k + 1)[..., None].expand(P, M, d))
    out = A + u[..., None] * (B - A)
    out[:, 0], out[:, -1] = X[:, 0], X[:, -1]
    return out


def relax_strings(land: Landscape, starts: Any, ends: Any, n_images: int, *, init: Any = None,
                  max_iter: int = 300, step_rel: float = 0.2, step_min_rel: float = 1e-3, decay: float = 0.98,
                  progress: bool = False) -> list[BandResult]:
    """Relax P bands at once by the string method with normalised steps, for piecewise-smooth U.

    On a kinked landscape the NEB forces jump across every sharp valley the band follows, so a band never meets a
    force tolerance and images bunch up. Here each interior image moves against the part of ∇U perpendicular to the
    band (the central-difference tangent) by a step of ``step_rel`` × the band's segment length, normalised per
    image, shrinking by ``decay`` per iteration down to ``step_min_rel`` (so the chatter across sharp valleys dies
    out); after every step the images are redistributed at equal arc length (E, Ren & Vanden-Eijnden, J. Chem. Phys.
    126, 164103, 2007). All images of all bands are evaluated in one call per step. The highest point then goes to
    the ridge search of :func:`energyscope.search.saddles.find_kink_saddles`, which does not need a climbing image.

    Returns:
        One :class:`BandResult` per band (``converged`` when the last step was below ``step_min_rel`` × segment and
        no image moved by more than that).
    """
    A, B, X = _start_bands(land, starts, ends, n_images, init)
    P = X.shape[0]
    X = _equal_arc(X)
    E, alive, reasons = _endpoint_energies(land, A, B, X.shape[1])
    n_iter = torch.zeros(P, dtype=torch.long, device=A.device)
    moved = torch.full((P,), float("inf"), dtype=A.dtype, device=A.device)
    _string_loop(land, X, E, alive, reasons, n_iter, moved, max_iter=max_iter, step_rel=step_rel,
                 step_min_rel=step_min_rel, decay=decay, progress=progress)
    return _string_results(land, X, E, alive, reasons, n_iter, moved, step_min_rel)


def _string_loop(land: Landscape, X: torch.Tensor, E: torch.Tensor, alive: torch.Tensor, reasons: list[str],
                 n_iter: torch.Tensor, moved: torch.Tensor, *, max_iter: int, step_rel: float, step_min_rel: float,
                 decay: float, progress: bool) -> None:
    """String steps on the live bands X (P, M, d) in place, filling E (P, M), nats, n_iter (P,), moved (P,) segments."""
    M, d = X.shape[1:]
    tiny = torch.finfo(X.dtype).tiny
    alpha = float(step_rel)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=max_iter, desc="string", unit="step", leave=False)
    for it in range(1, max_iter + 1):
        act = torch.nonzero(alive).flatten()
        if not len(act) or expired():
            break
        Xa = X[act]
        e, g = land.energy_and_grad(Xa[:, 1:-1].reshape(-1, d))
        e, g = e.reshape(len(act), M - 2), g.reshape(len(act), M - 2, d)
        E[act, 1:-1] = e
        bad = ~(torch.isfinite(e).all(1) & torch.isfinite(g).flatten(1).all(1))
        if bool(bad.any()):
            for r in torch.nonzero(bad).flatten().tolist():
                reasons[int(act[r])] = f"non-finite energy or gradient on the band after {it - 1} steps"
            alive[act[bad]] = False
            n_iter[act[bad]] = it - 1
            keep = ~bad
            act, Xa, g = act[keep], Xa[keep], g[keep]
            if not len(act):
                break
        Xn, seg = _string_step(Xa, g, alpha, tiny)
        moved[act] = (Xn - Xa).norm(dim=-1).max(dim=1).values / seg.clamp_min(tiny)
        X[act] = Xn
        n_iter[act] = it
        if bar is not None:
            bar.update(1)
        if alpha <= step_min_rel and bool((moved[act] <= 2 * step_min_rel).all()):
            break
        alpha = max(alpha * decay, step_min_rel)
    if bar is not None:
        bar.close()


def _string_step(Xa: torch.Tensor, g: torch.Tensor, alpha: float, tiny: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Strings Xa (n, M, d) after a step of ``alpha`` segments against g⊥ (n, M-2, d), re-spaced; segments (n,)."""
    M = Xa.shape[1]
    tau = Xa[:, 2:] - Xa[:, :-2]
    tau = tau / tau.norm(dim=-1, keepdim=True).clamp_min(tiny)
    gp = g - (g * tau).sum(-1, keepdim=True) * tau
    seg = (Xa[:, -1] - Xa[:, 0]).norm(dim=-1) / (M - 1)                   # (B,)
    step = -gp / gp.norm(dim=-1, keepdim=True).clamp_min(tiny) * (alpha * seg)[:, None, None]
    Xn = Xa.clone()
    Xn[:, 1:-1] = Xa[:, 1:-1] + step
    return _equal_arc(Xn), seg


def _string_results(land: Landscape, X: torch.Tensor, E: torch.Tensor, alive: torch.Tensor, reasons: list[str],
                    n_iter: torch.Tensor, moved: torch.Tensor, step_min_rel: float) -> list[BandResult]:
    """One :class:`BandResult` per string X (P, M, d), interior energies E (P, M) re-evaluated (nats) where alive."""
    P, M, d = X.shape
    act = torch.nonzero(alive).flatten()
    if len(act):
        E[act, 1:-1] = land.energy(X[act, 1:-1].reshape(-1, d)).reshape(len(act), M - 2)
    Xn, En, n_iter, moved = to_numpy(X), to_numpy(E), to_numpy(n_iter), to_numpy(moved)
    out = []
    for p in range(P):
        conv = not reasons[p] and moved[p] <= 2 * step_min_rel
        out.append(BandResult(z=Xn[p], energy=En[p], converged=bool(conv), climbing=False, fmax=float("nan"),
                              ftol=float("nan"), n_iter=int(n_iter[p]), n_evals=int(2 + (M - 2) * (n_iter[p] + 1)),
                              reason=reasons[p] or ("" if conv else f"string still moving after {int(n_iter[p])} "
                                                    f"steps (largest image step {moved[p]:.3g} segments)")))
    return out


# ---------------------------------------------------------------------------------------------------------- post-check
def dense_profiles(land: Landscape, bands: list[np.ndarray], n_dense: int = 8
                   ) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Each band (M, d) evaluated at ``n_dense`` points per segment (linear in between images), in ONE energy call.

    Returns:
        (points per band ((M-1)·n_dense + 1, d), energies per band, rows evaluated). Image energies are re-evaluated
        too, so every profile is self-consistent.
    """
    n_dense = max(int(n_dense), 1)
    u = np.arange(n_dense, dtype=np.float64) / n_dense
    pts = []
    for z in bands:
        seg = z[:-1, None, :] + u[None, :, None] * (z[1:] - z[:-1])[:, None, :]
        pts.append(np.vstack([seg.reshape(-1, z.shape[1]), z[-1:]]))
    if not pts:
        return [], [], 0
    allp = np.vstack(pts)
    e = to_numpy(land.energy(allp))
    out, start = [], 0
    for p in pts:
        out.append(e[start:start + len(p)])
        start += len(p)
    return pts, out, len(allp)


def _resolve_end_maxima(land: Landscape, pts: list[np.ndarray], prof: list[np.ndarray], n: int = 48
                        ) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Where a dense profile is highest at an endpoint (a band climbing monotonically into a minimum whose basin is
    smaller than one dense step), add ``n`` points on its last step, at geometrically shrinking distances from that
    endpoint (down to 2^-n of the step), so the barrier just before the minimum is resolved. All such bands in one
    energy call. Returns the augmented (points, energies) and the rows evaluated."""
    todo = [b for b, e in enumerate(prof) if len(e) > 2 and np.isfinite(e).all()
            and int(np.argmax(e)) in (0, len(e) - 1)]
    if not todo:
        return pts, prof, 0
    frac = 0.5 ** np.arange(1, n + 1)
    new = []
    for b in todo:
        e = prof[b]
        end, nxt = (0, 1) if int(np.argmax(e)) == 0 else (len(e) - 1, len(e) - 2)
        new.append(pts[b][end][None, :] + frac[:, None] * (pts[b][nxt] - pts[b][end])[None, :])
    eng = to_numpy(land.energy(np.vstack(new)))
    pts, prof = list(pts), list(prof)
    for k, b in enumerate(todo):
        z_new, e_new = new[k], eng[k * n:(k + 1) * n]
        if int(np.argmax(prof[b])) == 0:       # keep the profile ordered from start to end
            pts[b] = np.vstack([pts[b][:1], z_new, pts[b][1:]])
            prof[b] = np.concatenate([prof[b][:1], e_new, prof[b][1:]])
        else:
            pts[b] = np.vstack([pts[b][:-1], z_new[::-1], pts[b][-1:]])
            prof[b] = np.concatenate([prof[b][:-1], e_new[::-1], prof[b][-1:]])
    return pts, prof, n * len(todo)


def profile_dips(energy: np.ndarray, depth: float, max_dips: int = 8) -> np.ndarray:
    """Interior local minima of a 1-D profile lying more than ``depth`` below the highest point on EACH side
    (candidate intermediate minima), deepest first, at most ``max_dips``."""
    e = np.asarray(energy, dtype=np.float64)
    n = len(e)
    if n < 3 or not np.isfinite(e).all():
        return np.zeros(0, dtype=int)
    i = np.arange(1, n - 1)
    local = (e[i] < e[i - 1]) & (e[i] <= e[i + 1])
    left = np.maximum.accumulate(e)[i - 1]
    right = np.maximum.accumulate(e[::-1])[::-1][i + 1]
    depth_here = np.minimum(left, right) - e[i]
    ok = local & (depth_here > depth)
    cand = i[ok]
    order = np.argsort(-depth_here[ok])
    return cand[order][:max_dips]


# ---------------------------------------------------------------------------------------------------------- paths
