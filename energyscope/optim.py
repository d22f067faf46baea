"""Batched optimisers shared by the minima search and NEB: one place for L-BFGS and FIRE.

Every optimiser works on R independent rows at once (restarts, or whole bands), with per-row step control:

* :func:`minimize` drives a batch of rows to local minima of a function given as ``fun(z) -> (E (B,), G (B, d))``.
  Rows converge on the gradient norm (Euclidean, in units of E per unit z); converged rows leave the batch, rows that
  meet non-finite values they cannot back out of are dropped and flagged, rows that hit ``max_iter`` are reported
  unconverged.
* :class:`FIRE` is the Fast Inertial Relaxation Engine (Bitzek et al., PRL 97, 170201, 2006) as a per-row stepper on
  *forces*, so it also drives NEB bands, whose projected forces are not the gradient of any objective.
* :class:`LBFGSMemory` holds per-row L-BFGS curvature pairs and computes directions by the two-loop recursion.
* :func:`minimize_nonsmooth` is BFGS with an inexact weak-Wolfe line search (bisection and doubling), the method
  Lewis & Overton showed to work on non-smooth functions (Math. Program. 141, 135-163, 2013): on piecewise-smooth U
  (ReLU-family energy networks) it approaches minima that sit on kinks, where the gradient never vanishes, and it stops
  when the line search can no longer make progress. Its end points are then certified (or not) by
  :mod:`energyscope.search.nonsmooth`.

The L-BFGS step needs no line search (as in GMIN/pele): the quasi-Newton step is capped at a per-row trust radius
and accepted unless the energy rises by more than a rounding allowance; then it is shortened (quadratic
interpolation along the step, at most halved each time) until it is accepted. The radius starts at ``max_step``,
doubles after capped steps that were accepted at once (up to ``max_step_max``) and shrinks after a backtrack, so rows
far from a minimum travel quickly while rows near one take plain quasi-Newton steps. The active rows' state (points,
gradients, L-BFGS pairs) is kept contiguous and compacted when rows leave, so each iteration is one batched
``fun`` call plus a fixed number of vectorised operations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from energyscope.errors import BadArgumentError
from energyscope._deadline import expired

EnergyGradFn = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]


@dataclass
class MinimizeResult:
    """What :func:`minimize` returns, all tensors with R rows in the order of ``z0``.

    Attributes:
        z: (R, d) final points.
        energy: (R,) final values (NaN for dropped rows).
        grad: (R, d) final gradients.
        grad_norm: (R,) Euclidean norm of the final gradient.
        converged: (R,) bool, gradient norm reached ``gtol``.
        finite: (R,) bool, False for rows dropped because they met non-finite values.
        n_iter: (R,) iterations each row took.
        n_evals: energy+gradient row evaluations in total.
        n_calls: batched calls of ``fun``.
        stalled: (R,) bool or None, :func:`minimize_nonsmooth` only: the row stopped because its step length fell
            below ``xtol`` or its line search found no acceptable step (normal at a minimum on a kink; such rows are
            ``converged=False`` until something certifies them).
    """

    z: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor
    grad_norm: torch.Tensor
    converged: torch.Tensor
    finite: torch.Tensor
    n_iter: torch.Tensor
    n_evals: int
    n_calls: int
    stalled: torch.Tensor | None = None

    @property
    def n_dropped(self) -> int:
        return int((~self.finite).sum())

    @property
    def n_unconverged(self) -> int:
        return int((self.finite & ~self.converged).sum())


class LBFGSMemory:
    """Per-row L-BFGS memory of the last ``m`` (s, y) pairs, for B rows of dimension n.

    The pairs live in one ring buffer with a slot pointer shared by all rows: each :meth:`update` call fills the
    next slot for every row, with an empty pair (ρ = 0, contributing nothing) for rows that did not update or failed
    the curvature test. Because the slot order is the same for all rows, the two-loop recursion runs on plain views,
    with no per-row gathers. Rows are addressed by index tensors or boolean masks (None: all rows), so a driver can
    keep one memory for all rows, or compact it (:meth:`compact`) as rows finish.
    """

    def __init__(self, n_rows: int, n: int, m: int = 10, device=None, dtype=torch.float64):
        self.m = m
        self.S = torch.zeros(m, n_rows, n, device=device, dtype=dtype)   # slot-major: each slot is contiguous
        self.Y = torch.zeros(m, n_rows, n, device=device, dtype=dtype)
        self.rho = torch.zeros(m, n_rows, device=device, dtype=dtype)
        self.gamma = torch.ones(n_rows, device=device, dtype=dtype)     # initial inverse-Hessian scale s·y / y·y
        self.count = torch.zeros(n_rows, dtype=torch.long, device=device)  # valid pairs stored since the last reset
        self.head = 0                                                      # update calls so far (shared slot pointer)

    def reset(self, rows: torch.Tensor | None = None) -> None:
        """Forget the stored pairs of ``rows`` (all rows when None)."""
        if rows is None:
            rows = slice(None)
        self.rho[:, rows] = 0
        self.gamma[rows] = 1
        self.count[rows] = 0

    def compact(self, keep: torch.Tensor) -> None:
        """Keep only the rows ``keep`` (index or bool mask), in that order: row i becomes ``keep[i]``'s memory."""
        self.S, self.Y, self.rho = self.S[:, keep], self.Y[:, keep], self.rho[:, keep]
        self.gamma, self.count = self.gamma[keep], self.count[keep]

    def update(self, rows: torch.Tensor | None, s: torch.Tensor, y: torch.Tensor) -> None:
        """Store (s, y) (B_rows, n) for ``rows`` (all rows when None) where the curvature condition s·y > 0 holds;
        every other row gets an empty pair in this slot."""
        slot = self.head % self.m
        self.head += 1
        sy = torch.linalg.vecdot(s, y)
        yy = torch.linalg.vecdot(y, y)
        tiny = torch.finfo(s.dtype).tiny
        ok = sy > 1e-12 * (s.norm(dim=1) * yy.sqrt()).clamp_min(tiny)
        rho = torch.where(ok, 1.0 / torch.where(ok, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        if rows is None:
            self.S[slot], self.Y[slot], self.rho[slot] = s, y, rho
            self.gamma = torch.where(ok, sy / yy.clamp_min(tiny), self.gamma)
            self.count += ok.long()
        else:
            self.rho[slot] = 0
            self.S[slot, rows], self.Y[slot, rows], self.rho[slot, rows] = s, y, rho
            self.gamma[rows] = torch.where(ok, sy / yy.clamp_min(tiny), self.gamma[rows])
            self.count[rows] += ok.long()

    def direction(self, rows: torch.Tensor | None, g: torch.Tensor) -> torch.Tensor:
        """The quasi-Newton step -H g for ``rows`` (B,) (all rows when None) with gradients g (B, n); -g for rows
        with no memory. Two-loop recursion (Nocedal 1980), vectorised over rows."""
        S, Y, rho, gamma = (self.S, self.Y, self.rho, self.gamma) if rows is None else \
            (self.S[:, rows], self.Y[:, rows], self.rho[:, rows], self.gamma[rows])
        k = min(self.head, self.m)
        slots = [(self.head - 1 - i) % self.m for i in range(k)]          # newest first
        q = g.clone()
        alphas = []
        for j in slots:
            a = rho[j] * torch.linalg.vecdot(S[j], q)
            q.addcmul_(a[:, None], Y[j], value=-1.0)
            alphas.append(a)
        r = q.mul_(gamma[:, None])
        for j, a in zip(reversed(slots), reversed(alphas)):
            b = rho[j] * torch.linalg.vecdot(Y[j], r)
            r.addcmul_((a - b)[:, None], S[j])
        return r.neg_()


class FIRE:
    """FIRE as a per-row stepper on forces, for S independent systems of n coordinates each.

    ``step(x, force)`` returns the new positions; the state (velocity, time step, mixing, count of downhill steps) is
    kept per row. ``rows`` selects which rows of the state the given ``x``/``force`` belong to, so that a driver can
    drop converged rows from the batch without losing the others' state.

    Parameters follow Bitzek et al. (2006) and ASE's ``FIRE``: ``dt`` start step, ``dt_max``, ``n_min`` downhill
    steps before speeding up, ``f_inc``/``f_dec`` step growth/shrink, ``alpha0``/``f_alpha`` velocity mixing.
    ``max_step`` caps each row's displacement per step (Euclidean norm over the row), in the units of x.
    """

    def __init__(self, n_rows: int, n: int, dt: float = 0.1, dt_max: float = 1.0, max_step: float | torch.Tensor = 0.2,
                 n_min: int = 5, f_inc: float = 1.1, f_dec: float = 0.5, alpha0: float = 0.1, f_alpha: float = 0.99,
                 device=None, dtype=torch.float64):
        self.v = torch.zeros(n_rows, n, device=device, dtype=dtype)
        self.dt = torch.full((n_rows,), float(dt), device=device, dtype=dtype)
        self.alpha = torch.full((n_rows,), float(alpha0), device=device, dtype=dtype)
        self.n_pos = torch.zeros(n_rows, dtype=torch.long, device=device)
        self.dt_max, self.n_min, self.f_inc, self.f_dec = float(dt_max), n_min, f_inc, f_dec
        self.alpha0, self.f_alpha = float(alpha0), f_alpha
        ms = torch.as_tensor(max_step, device=device, dtype=dtype)
        self.max_step = ms.expand(n_rows).clone() if ms.ndim == 0 else ms.clone()

    def reset(self, rows: torch.Tensor) -> None:
        """Zero the velocity of ``rows`` (e.g. after the force field changed, as when climbing starts)."""
        self.v[rows] = 0
        self.alpha[rows] = self.alpha0
        self.n_pos[rows] = 0

    def step(self, x: torch.Tensor, force: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        if rows is None:
            rows = torch.arange(x.shape[0], device=x.device)
        v, dt, alpha, n_pos = self.v[rows], self.dt[rows], self.alpha[rows], self.n_pos[rows]
        vf = (v * force).sum(1)
        up = vf > 0
        f_norm = force.norm(dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        v_norm = v.norm(dim=1, keepdim=True)
        mixed = (1 - alpha)[:, None] * v + alpha[:, None] * force / f_norm * v_norm
        v = torch.where(up[:, None], mixed, torch.zeros_like(v))
        speed_up = up & (n_pos > self.n_min)
        dt = torch.where(speed_up, (dt * self.f_inc).clamp(max=self.dt_max), dt)
        alpha = torch.where(speed_up, alpha * self.f_alpha, alpha)
        dt = torch.where(up, dt, dt * self.f_dec)
        alpha = torch.where(up, alpha, torch.full_like(alpha, self.alpha0))
        n_pos = torch.where(up, n_pos + 1, torch.zeros_like(n_pos))
        v = v + dt[:, None] * force
        dx = dt[:, None] * v
        norm = dx.norm(dim=1)
        cap = self.max_step[rows]
        scale = torch.where(norm > cap, cap / norm.clamp_min(torch.finfo(x.dtype).tiny), torch.ones_like(norm))
        dx = dx * scale[:, None]
        self.v[rows], self.dt[rows], self.alpha[rows], self.n_pos[rows] = v, dt, alpha, n_pos
        return x + dx


def _finite_rows(e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(e) & torch.isfinite(g).all(dim=1)



def _first_evaluation(eg: tuple[torch.Tensor, torch.Tensor], energy: torch.Tensor, grad: torch.Tensor,
                      finite: torch.Tensor, gtol: float, progress: bool, desc: str
                      ) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Store U (R,) and ∇U (R, d) at the start points, mark non-finite rows (in ``finite``, in place) and rows
    already converged; returns ``converged`` (R,), the indices of the rows still to descend, and the progress bar
    (None without progress) with the finished rows counted."""
    e0, g0 = eg
    energy[:], grad[:] = e0, g0
    finite &= _finite_rows(e0, g0)
    converged = finite & (g0.norm(dim=1) <= gtol)
    active = torch.nonzero(finite & ~converged).flatten()
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(energy), desc=desc, unit="row", leave=False)
        bar.update(len(energy) - len(active))
    return converged, active, bar


def minimize(fun: EnergyGradFn, z0: torch.Tensor, method: str = "lbfgs", gtol: float = 1e-6,
             max_iter: int = 2000, max_step: float = 0.5, memory: int = 10, max_backtracks: int = 10,
             fire_dt: float | None = None, progress: bool = False, desc: str = "minimize",
             max_step_max: float | None = None, max_stalls: int = 3, blind_scale: float | None = None,
             max_rows: int | None = None) -> MinimizeResult:
    """Minimise R rows at once from starts ``z0`` (R, d).

    Args:
        fun: ``z (B, d) -> (energy (B,), gradient (B, d))``; called only on the rows still active.
        z0: (R, d) starting points.
        method: ``"lbfgs"`` (default) or ``"fire"``.
        gtol: a row has converged when the Euclidean norm of its gradient is at most this.
        max_iter: iteration cap per row; rows still active then are returned with ``converged=False``.
        max_step: largest step a row may take in one iteration (Euclidean norm, units of z).
        memory: L-BFGS memory size.
        max_backtracks: L-BFGS step halvings on an energy rise or a non-finite value before the row gives up this
            iteration (a row whose last trial was non-finite is then dropped; one that only met rises stays put).
        fire_dt: FIRE's initial time step (default: from the first gradient so the first step is max_step/10).
        progress: show a tqdm bar of finished rows.
        desc: the bar's label.
        max_step_max: L-BFGS only: per-row trust radius. A row's step cap starts at ``max_step``, doubles after
            each step that was capped and accepted at once, halves (not below ``max_step``) after a backtrack, and
            never exceeds ``max_step_max``. None (default) keeps the cap fixed at ``max_step``.
        blind_scale: L-BFGS only: inverse curvature (latent units² per energy unit) for steps taken without
            curvature pairs (the first step, after a memory reset, where U is concave): the step is
            −blind_scale · g, capped at the trust radius. None: a step of the trust radius along −g. Either way the
            step does not depend on the energy's units when blind_scale is given in them (e.g. σ_z²/σ_E); the old
            −g (blind_scale = 1) made an energy × 1e-8 crawl.
        max_stalls: L-BFGS only: a row that finds no acceptable step in this many consecutive iterations (energy
            rounding at a too-tight ``gtol``) stops and is reported unconverged.
        max_rows: L-BFGS only: the most rows descended together; larger batches run in consecutive chunks so that
            the memory (2 × memory × rows × d numbers) stays bounded. Default: 2^25 / (memory × d), at least 1024.

    Returns:
        A :class:`MinimizeResult`.
    """
    if method not in ("lbfgs", "fire"):
        raise BadArgumentError(f"unknown method {method!r}; use 'lbfgs' or 'fire'")
    z = z0.detach().clone()
    R, d = z.shape
    dev, dt_ = z.device, z.dtype
    energy = torch.full((R,), float("nan"), device=dev, dtype=dt_)
    grad = torch.zeros(R, d, device=dev, dtype=dt_)
    converged = torch.zeros(R, dtype=torch.bool, device=dev)
    finite = torch.ones(R, dtype=torch.bool, device=dev)
    n_iter = torch.zeros(R, dtype=torch.long, device=dev)
    if R == 0:
        return MinimizeResult(z, energy, grad, energy.clone(), converged, finite, n_iter, 0, 0)

    converged, active, bar = _first_evaluation(fun(z), energy, grad, finite, gtol, progress, desc)
    state = (z, energy, grad, converged, finite, n_iter)
    if method == "fire":
        n_evals, n_calls = _fire_loop(fun, state, active, gtol, max_iter, max_step, fire_dt, bar)
    else:
        rows = max_rows if max_rows is not None else max(1024, (1 << 25) // (max(memory, 1) * d))
        if rows < 1:
            raise BadArgumentError(f"max_rows must be positive, got {max_rows}")
        n_evals = n_calls = 0
        for a in range(0, len(active), rows):
            ne, nc = _lbfgs_loop(fun, state, active[a:a + rows], gtol, max_iter, max_step, memory, max_backtracks,
                                 max_step_max, max_stalls, bar, blind_scale)
            n_evals, n_calls = n_evals + ne, n_calls + nc
    if bar is not None:
        bar.close()
    energy = torch.where(finite, energy, torch.full_like(energy, float("nan")))
    return MinimizeResult(z, energy, grad, grad.norm(dim=1), converged, finite, n_iter, n_evals + R, n_calls + 1)


def _rise_tol(e: torch.Tensor) -> torch.Tensor:
    """Rounding allowance for "no energy rise": relative to |U| only, so that it means the same for an energy and
    for the same energy times 1e-8 (an absolute floor let descents of small energies wander uphill)."""
    fi = torch.finfo(e.dtype)
    return max(1e-10, 16 * fi.eps) * e.abs() + fi.tiny


def _lbfgs_loop(fun, state, idx, gtol, max_iter, max_step, memory, max_backtracks, max_step_max, max_stalls, bar,
                blind_scale=None):
    """L-BFGS on the active rows ``idx``; their state is kept contiguous and compacted as rows leave."""
    z, energy, grad, converged, finite, n_iter = state
    d = z.shape[1]
    dev, dt_ = z.device, z.dtype
    B = len(idx)
    za, ea, ga = z[idx], energy[idx], grad[idx]
    ga_norm = ga.norm(dim=1)
    mem = LBFGSMemory(B, d, memory, dev, dt_)
    radius = torch.full((B,), float(max_step), device=dev, dtype=dt_)
    r_max = float(max_step) if max_step_max is None else max(float(max_step_max), float(max_step))
    stalls = torch.zeros(B, dtype=torch.long, device=dev)
    tiny = torch.finfo(dt_).tiny
    n_evals = n_calls = it = 0
    while B and it < max_iter and not expired():
        it += 1
        dirn = mem.direction(None, ga)
        dg = torch.linalg.vecdot(dirn, ga)
        uphill = dg >= 0
        if bool(uphill.any()):
            mem.reset(uphill)
        # a row without curvature pairs (first step, after a reset, or where U is concave) steps along −g by the
        # trust radius: −g itself has units of energy per length, so its length would depend on the energy's
        # scale (an energy × 1e-8 crawled at |g| per step and never converged)
        blind = (mem.count == 0) | uphill
        if bool(blind.any()):
            if blind_scale is None:
                blind_step = -radius[:, None] * (ga / ga_norm.clamp_min(tiny)[:, None])
            else:
                blind_step = -float(blind_scale) * ga
            dirn = torch.where(blind[:, None], blind_step, dirn)
            dg = torch.where(blind, torch.linalg.vecdot(blind_step, ga), dg)
        norm = dirn.norm(dim=1).clamp_min(tiny)
        capped = norm > radius
        scale = torch.clamp(radius / norm, max=1.0)
        step = dirn.mul_(scale[:, None])
        zt = za + step
        et, gt = fun(zt)
        n_evals += B
        n_calls += 1
        gt_norm = gt.norm(dim=1)
        fin = et.isfinite() & gt_norm.isfinite()
        accepted = fin & (et <= ea + _rise_tol(ea))
        first_try = accepted.clone()
        lost = torch.zeros(B, dtype=torch.bool, device=dev)
        if not bool(accepted.all()):
            # shorten the step for rows whose energy rose (quadratic interpolation along the step, kept within
            # [0.1, 0.5] of the last trial) or turned non-finite (halved)
            pending = torch.nonzero(~accepted).flatten()
            slope = (dg * scale)[pending]                                   # dE/dα at α = 0 (< 0)
            alpha = torch.ones(len(pending), device=dev, dtype=dt_)
            e_try, fp = et[pending], fin[pending]
            for _ in range(max_backtracks):
                curv = e_try - ea[pending] - slope * alpha
                a_new = -slope * alpha * alpha / (2 * curv.clamp_min(tiny))
                a_new = torch.where(fp & (curv > 0), a_new.clamp(0.1 * alpha, 0.5 * alpha), 0.5 * alpha)
                alpha = a_new
                zp = za[pending] + alpha[:, None] * step[pending]
                ep, gp = fun(zp)
                n_evals += len(pending)
                n_calls += 1
                gpn = gp.norm(dim=1)
                fp = ep.isfinite() & gpn.isfinite()
                ok = fp & (ep <= ea[pending] + _rise_tol(ea[pending]))
                sel = pending[ok]
                zt[sel], et[sel], gt[sel], gt_norm[sel] = zp[ok], ep[ok], gp[ok], gpn[ok]
                accepted[sel] = True
                keep_p = ~ok
                pending, alpha, slope, e_try, fp = pending[keep_p], alpha[keep_p], slope[keep_p], ep[keep_p], \
                    fp[keep_p]
                if not len(pending):
                    break
            if len(pending):
                # no acceptable step: a row whose last trial was still non-finite is dropped; one that only met
                # energy rises stays where it is (memory reset) and tries again
                lost[pending[~fp]] = True
                zt[pending], et[pending], gt[pending] = za[pending], ea[pending], ga[pending]
                gt_norm[pending] = ga_norm[pending]
                mem.reset(pending)
        if not bool(first_try.all()):
            radius = torch.where(first_try, radius, (0.5 * radius).clamp(min=float(max_step)))
        if r_max > max_step:
            radius = torch.where(first_try & capped, (2.0 * radius).clamp(max=r_max), radius)
        mem.update(None, zt - za, gt - ga)   # rows that stayed put have s = 0 and are skipped
        za, ea, ga, ga_norm = zt, et, gt, gt_norm
        stalls = torch.where(accepted, torch.zeros_like(stalls), stalls + 1)
        done = ~lost & (ga_norm <= gtol)
        leave = done | lost | (stalls >= max_stalls)
        if bool(leave.any()):
            ids = idx[leave]
            z[ids], energy[ids], grad[ids] = za[leave], ea[leave], ga[leave]
            converged[ids] = done[leave]
            finite[ids] = ~lost[leave]
            n_iter[ids] = it
            keep = ~leave
            idx, za, ea, ga, ga_norm = idx[keep], za[keep], ea[keep], ga[keep], ga_norm[keep]
            radius, stalls = radius[keep], stalls[keep]
            mem.compact(keep)
            B = len(idx)
            if bar is not None:
                bar.update(int(leave.sum()))
    if B:
        z[idx], energy[idx], grad[idx], n_iter[idx] = za, ea, ga, it
    return n_evals, n_calls


def _fire_loop(fun, state, active, gtol, max_iter, max_step, fire_dt, bar):
    """FIRE on the active rows; the stepper keeps per-row state addressed by row index."""
    z, energy, grad, converged, finite, n_iter = state
    R, d = z.shape
    g0 = grad[finite]
    gmax = float(g0.norm(dim=1).max()) if len(g0) else 1.0
    dt0 = fire_dt if fire_dt is not None else (0.1 * max_step / max(gmax, 1e-300)) ** 0.5
    fire = FIRE(R, d, dt=dt0, dt_max=10 * dt0, max_step=max_step, device=z.device, dtype=z.dtype)
    n_evals = n_calls = it = 0
    while len(active) and it < max_iter and not expired():
        it += 1
        za, ga = z[active], grad[active]
        zn = fire.step(za, -ga, active)
        en, gn = fun(zn)
        n_evals += len(active)
        n_calls += 1
        ok = _finite_rows(en, gn)
        z[active[ok]], energy[active[ok]], grad[active[ok]] = zn[ok], en[ok], gn[ok]
        finite[active[~ok]] = False
        n_iter[active] += 1
        newly = finite[active] & (grad[active].norm(dim=1) <= gtol)
        converged[active[newly]] = True
        done = newly | ~finite[active]
        if bar is not None and bool(done.any()):
            bar.update(int(done.sum()))
        active = active[~done]
    return n_evals, n_calls


# ---------------------------------------------------------------------------------------------------------- non-smooth
def minimize_nonsmooth(fun: EnergyGradFn, z0: torch.Tensor, gtol: float = 1e-6, xtol: float = 1e-12,
                       max_iter: int = 1000, max_step: float = 0.5, max_step_max: float | None = None,
                       max_ls: int = 40, c1: float = 1e-4, c2: float = 0.9, max_rows: int | None = None,
                       progress: bool = False, desc: str = "minimize", indexed: bool = False,
                       grow: float | None = None) -> MinimizeResult:
    """BFGS with a weak-Wolfe line search for R rows at once, for non-smooth (piecewise-smooth) functions.

    Per row and iteration: direction p = -H g with the row's own inverse-Hessian approximation H (d, d); a line
    search on t (start ``min(1, max_step/|p|)``) that halves the bracket after an Armijo failure
    (``f(x+tp) > f(x) + c1 t g·p``) and doubles t, or bisects, after a curvature failure (``∇f(x+tp)·p < c2 g·p``),
    exactly as in Lewis & Overton (2013) §4.2; the BFGS update of H with s = tp, y = Δg (s·y > 0 by the weak Wolfe
    condition). On a non-smooth function H becomes ill-conditioned along the directions in which f is sharp, which is
    what lets BFGS approach minima on kinks quickly (typically R-linearly).

    A row stops as

    * ``converged``: its gradient norm is at most ``gtol`` (a smooth minimum);
    * ``stalled``: its accepted step was shorter than ``xtol``, or no step length met the Armijo condition within
      ``max_ls`` trials (the function cannot be decreased along p at this resolution: typical at a kink minimum);
    * unconverged: it reached ``max_iter``;
    * dropped (``finite=False``): its starting value or gradient was not finite.

    A trial point with a non-finite value counts as an Armijo failure (the step is shortened), so rows back away from
    regions where the model returns NaN or inf.

    Args:
        fun: ``z (B, d) -> (energy (B,), gradient (B, d))``.
        z0: (R, d) starts.
        gtol: gradient-norm tolerance for ``converged``.
        xtol: step-length tolerance (units of z) for ``stalled``.
        max_iter: iterations per row at most.
        max_step: longest first trial step (units of z); ``max_step_max``: longest step a doubling may reach
            (default 8 × ``max_step``), so rows cannot run off in one iteration.
        max_ls: line-search trials per iteration at most.
        c1, c2: Armijo and weak-Wolfe constants (0 < c1 < c2 < 1).
        max_rows: rows relaxed together (the H matrices take rows × d² numbers); default 2^25 / d², at least 64.
        progress: tqdm bar of finished rows.
        indexed: call ``fun(z, rows)`` with the indices (into ``z0``) of the rows given, for functions that carry
            per-row data.
        grow: if given, steps are capped at ``max_step`` × grow^k in iteration k (up to ``max_step_max``): a descent
            that must not jump out of a tiny basin it starts in (push-offs from a saddle next to one).

    Returns:
        A :class:`MinimizeResult` with ``stalled`` set.
    """
    z = z0.detach().clone()
    R, d = z.shape
    dev, dt_ = z.device, z.dtype
    energy = torch.full((R,), float("nan"), device=dev, dtype=dt_)
    grad = torch.zeros(R, d, device=dev, dtype=dt_)
    converged = torch.zeros(R, dtype=torch.bool, device=dev)
    stalled = torch.zeros(R, dtype=torch.bool, device=dev)
    finite = torch.ones(R, dtype=torch.bool, device=dev)
    n_iter = torch.zeros(R, dtype=torch.long, device=dev)
    if R == 0:
        return MinimizeResult(z, energy, grad, energy.clone(), converged, finite, n_iter, 0, 0, stalled)
    if not (0 < c1 < c2 < 1):
        raise BadArgumentError(f"need 0 < c1 < c2 < 1, got c1={c1}, c2={c2}")
    call = fun if indexed else (lambda x, rows: fun(x))
    converged, active, bar = _first_evaluation(call(z, torch.arange(R, device=dev)), energy, grad, finite, gtol,
                                               progress, desc)
    rows = max_rows if max_rows is not None else max(64, (1 << 25) // max(d * d, 1))
    r_max = 8.0 * max_step if max_step_max is None else max(float(max_step_max), float(max_step))
    n_evals = n_calls = 0
    state = (z, energy, grad, converged, stalled, n_iter)
    for a in range(0, len(active), rows):
        ne, nc = _bfgs_wolfe_loop(call, state, active[a:a + rows], gtol, xtol, max_iter, float(max_step), r_max,
                                  max_ls, c1, c2, bar, grow)
        n_evals, n_calls = n_evals + ne, n_calls + nc
    if bar is not None:
        bar.close()
    energy = torch.where(finite, energy, torch.full_like(energy, float("nan")))
    return MinimizeResult(z, energy, grad, grad.norm(dim=1), converged, finite, n_iter, n_evals + R, n_calls + 1,
                          stalled)


def _bfgs_wolfe_loop(fun, state, idx, gtol, xtol, max_iter, max_step, r_max, max_ls, c1, c2, bar, grow=None):
    """BFGS-Wolfe on rows ``idx``; their state is kept contiguous and compacted as rows leave."""
    z, energy, grad, converged, stalled, n_iter = state
    d = z.shape[1]
    dev, dt_ = z.device, z.dtype
    tiny = torch.finfo(dt_).tiny
    x, f, g = z[idx], energy[idx], grad[idx]
    B = len(idx)
    H = torch.eye(d, device=dev, dtype=dt_).expand(B, d, d).clone()
    fresh = torch.ones(B, dtype=torch.bool, device=dev)       # H not yet scaled by the first curvature pair
    nudged = torch.zeros(B, dtype=torch.bool, device=dev)      # moved (or nudged) at least once
    n_evals = n_calls = it = 0
    while B and it < max_iter and not expired():
        it += 1
        p = -(H @ g[:, :, None])[:, :, 0]
        gp = torch.linalg.vecdot(g, p)
        bad = ~(gp < 0) | ~torch.isfinite(gp)
        if bool(bad.any()):                                    # lost positive definiteness: restart from -g
            H[bad] = torch.eye(d, device=dev, dtype=dt_)
            fresh = fresh | bad
            p = torch.where(bad[:, None], -g, p)
            gp = torch.where(bad, -(g * g).sum(1), gp)
        pn = p.norm(dim=1).clamp_min(tiny)
        if grow is None:
            t = torch.clamp(max_step / pn, max=1.0)
            t_cap = r_max / pn
        else:
            cap = r_max if (it - 1) * np.log(grow) >= np.log(r_max / max_step) else max_step * grow ** (it - 1)
            t = torch.clamp(cap / pn, max=1.0)
            t_cap = cap / pn
        lo = torch.zeros(B, device=dev, dtype=dt_)
        hi = torch.full((B,), float("inf"), device=dev, dtype=dt_)
        done = torch.zeros(B, dtype=torch.bool, device=dev)    # Wolfe point found (or Armijo at the step cap)
        x_new, f_new, g_new = x.clone(), f.clone(), g.clone()
        have = torch.zeros(B, dtype=torch.bool, device=dev)    # an Armijo point is stored in x_new
        pend = torch.arange(B, device=dev)
        for _ in range(max_ls):
            if not len(pend):
                break
            tp = t[pend]
            xt = x[pend] + tp[:, None] * p[pend]
            ft, gt = fun(xt, idx[pend])
            n_evals += len(pend)
            n_calls += 1
            fin = torch.isfinite(ft) & torch.isfinite(gt).all(1)
            armijo = fin & (ft <= f[pend] + c1 * tp * gp[pend])
            wolfe = armijo & (torch.linalg.vecdot(gt, p[pend]) >= c2 * gp[pend])
            at_cap = armijo & ~wolfe & (tp >= t_cap[pend])
            keep_pt = armijo                                   # the latest Armijo point is the fallback step
            sel = pend[keep_pt]
            x_new[sel], f_new[sel], g_new[sel] = xt[keep_pt], ft[keep_pt], gt[keep_pt]
            have[sel] = True
            ok = wolfe | at_cap
            done[pend[ok]] = True
            # bracket updates for the rest
            fail_a = ~armijo
            hi[pend[fail_a]] = tp[fail_a]
            fail_w = armijo & ~ok
            lo[pend[fail_w]] = tp[fail_w]
            rest = ~ok
            pend = pend[rest]
            if not len(pend):
                break
            h_, l_ = hi[pend], lo[pend]
            t_next = torch.where(torch.isfinite(h_), 0.5 * (l_ + h_), torch.minimum(2.0 * l_, t_cap[pend]))
            # the bracket shrank below the step tolerance: no further progress possible along p
            tiny_br = torch.isfinite(h_) & ((h_ - l_) * pn[pend] < xtol)
            t[pend] = t_next
            pend = pend[~tiny_br]
        step = x_new - x
        s_norm = step.norm(dim=1)
        moved = have & (s_norm > 0)
        # BFGS update where the step was accepted with positive curvature
        y = g_new - g
        sy = torch.linalg.vecdot(step, y)
        upd = moved & (sy > 1e-12 * s_norm * y.norm(dim=1))
        if bool(upd.any()):
            ui = torch.nonzero(upd).flatten()
            s_u, y_u, sy_u = step[ui], y[ui], sy[ui]
            scale = sy_u / (y_u * y_u).sum(1).clamp_min(tiny)
            fr = fresh[ui]
            Hu = torch.where(fr[:, None, None], scale[:, None, None] * torch.eye(d, device=dev, dtype=dt_), H[ui])
            rho = 1.0 / sy_u
            Hy = (Hu @ y_u[:, :, None])[:, :, 0]
            yHy = (y_u * Hy).sum(1)
            # H+ = H - ρ(s Hyᵀ + Hy sᵀ) + (ρ² yHy + ρ) s sᵀ
            Hu = Hu - rho[:, None, None] * (s_u[:, :, None] * Hy[:, None, :] + Hy[:, :, None] * s_u[:, None, :]) \
                + (rho * rho * yHy + rho)[:, None, None] * (s_u[:, :, None] * s_u[:, None, :])
            H[ui] = Hu
            fresh[ui] = False
        x = torch.where(moved[:, None], x_new, x)
        f = torch.where(moved, f_new, f)
        g = torch.where(moved[:, None], g_new, g)
        gn = g.norm(dim=1)
        conv = gn <= gtol
        stall = ~conv & (~moved | (s_norm < xtol))
        # a row that cannot move at its very first step may sit exactly on a kink, where autograd's gradient is not
        # that of any side (e.g. |x|' = 0 at 0): nudge it off by a tiny deterministic step and let it try again
        first = stall & ~moved & ~nudged
        if bool(first.any()):
            fi = torch.nonzero(first).flatten()
            v = torch.sin(torch.arange(1, d + 1, device=dev, dtype=dt_)[None, :] * (1.0 + idx[fi, None].to(dt_)))
            v = v / v.norm(dim=1, keepdim=True).clamp_min(tiny)
            xn = x[fi] + 1e-7 * max_step * v
            fn, gn_ = fun(xn, idx[fi])
            n_evals += len(fi)
            n_calls += 1
            okn = torch.isfinite(fn) & torch.isfinite(gn_).all(1)
            fi, xn, fn, gn_ = fi[okn], xn[okn], fn[okn], gn_[okn]
            x[fi], f[fi], g[fi] = xn, fn, gn_
            H[fi] = torch.eye(d, device=dev, dtype=dt_)
            fresh[fi] = True
            nudged[fi] = True
            stall[fi] = False
            gn = g.norm(dim=1)
        nudged = nudged | moved
        leave = conv | stall
        if bool(leave.any()):
            ids = idx[leave]
            z[ids], energy[ids], grad[ids] = x[leave], f[leave], g[leave]
            converged[ids], stalled[ids], n_iter[ids] = conv[leave], stall[leave], it
            keep = ~leave
            idx, x, f, g, H, fresh, nudged = idx[keep], x[keep], f[keep], g[keep], H[keep], fresh[keep], \
                nudged[keep]
            B = len(idx)
            if bar is not None:
                bar.update(int(leave.sum()))
    if B:
        z[idx], energy[idx], grad[idx], n_iter[idx] = x, f, g, it
    return n_evals, n_calls
