"""Batched optimisers shared by the minima search and NEB: one place for L-BFGS and FIRE.

Every optimiser works on R independent rows at once (restarts, or whole bands), with per-row step control:

* :func:`minimize` drives a batch of rows to local minima of a function given as ``fun(z) -> (E (B,), G (B, d))``.
  Rows converge on the gradient norm (Euclidean, in units of E per unit z); converged rows leave the batch, rows that
  meet non-finite values they cannot back out of are dropped and flagged, rows that hit ``max_iter`` are reported
  unconverged.
* :class:`FIRE` is the Fast Inertial Relaxation Engine (Bitzek et al., PRL 97, 170201, 2006) as a per-row stepper on
  *forces*, so it also drives NEB bands, whose projected forces are not the gradient of any objective.
* :class:`LBFGSMemory` holds per-row L-BFGS curvature pairs and computes directions by the two-loop recursion.

The L-BFGS step follows the scheme used in pele/GMIN: no line search; the step is capped at ``max_step`` and halved
while the energy rises by more than a rounding allowance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

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

    @property
    def n_dropped(self) -> int:
        return int((~self.finite).sum())

    @property
    def n_unconverged(self) -> int:
        return int((self.finite & ~self.converged).sum())


class LBFGSMemory:
    """Per-row L-BFGS memory of the last ``m`` (s, y) pairs, for B rows of dimension n.

    Rows are addressed by index tensors, so a driver can keep one memory for all rows and touch only the active ones.
    """

    def __init__(self, n_rows: int, n: int, m: int = 10, device=None, dtype=torch.float64):
        self.m = m
        self.S = torch.zeros(n_rows, m, n, device=device, dtype=dtype)
        self.Y = torch.zeros(n_rows, m, n, device=device, dtype=dtype)
        self.rho = torch.zeros(n_rows, m, device=device, dtype=dtype)
        self.count = torch.zeros(n_rows, dtype=torch.long, device=device)  # pairs stored so far (not capped)

    def reset(self, rows: torch.Tensor) -> None:
        self.count[rows] = 0

    def update(self, rows: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> None:
        """Store (s, y) for ``rows`` where the curvature condition s·y > 0 holds (others keep their memory)."""
        sy = (s * y).sum(1)
        ok = sy > 1e-12 * (s.norm(dim=1) * y.norm(dim=1)).clamp_min(torch.finfo(s.dtype).tiny)
        if not bool(ok.any()):
            return
        r, s, y, sy = rows[ok], s[ok], y[ok], sy[ok]
        slot = self.count[r] % self.m
        self.S[r, slot] = s
        self.Y[r, slot] = y
        self.rho[r, slot] = 1.0 / sy
        self.count[r] += 1

    def direction(self, rows: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """The quasi-Newton step -H g for ``rows`` (B,) with gradients g (B, n); -g for rows with no memory."""
        count = self.count[rows]
        n_stored = count.clamp(max=self.m)
        q = g.clone()
        alphas = []
        for j in range(self.m):
            idx = (count - 1 - j) % self.m
            valid = (j < n_stored).to(g.dtype)
            s_j, y_j, rho_j = self.S[rows, idx], self.Y[rows, idx], self.rho[rows, idx]
            a = rho_j * (s_j * q).sum(1) * valid
            q = q - a[:, None] * y_j
            alphas.append((a, s_j, y_j, rho_j, valid))
        newest = (count - 1) % self.m
        s_n, y_n = self.S[rows, newest], self.Y[rows, newest]
        gamma = (s_n * y_n).sum(1) / (y_n * y_n).sum(1).clamp_min(torch.finfo(g.dtype).tiny)
        gamma = torch.where(n_stored > 0, gamma, torch.ones_like(gamma))
        r = gamma[:, None] * q
        for a, s_j, y_j, rho_j, valid in reversed(alphas):
            b = rho_j * (y_j * r).sum(1)
            r = r + s_j * ((a - b) * valid)[:, None]
        return -r


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


def minimize(fun: EnergyGradFn, z0: torch.Tensor, method: str = "lbfgs", gtol: float = 1e-6,
             max_iter: int = 2000, max_step: float = 0.5, memory: int = 10, max_backtracks: int = 10,
             fire_dt: float | None = None, progress: bool = False, desc: str = "minimize") -> MinimizeResult:
    """Minimise R rows at once from starts ``z0`` (R, d).

    Args:
        fun: ``z (B, d) -> (energy (B,), gradient (B, d))``; called only on the rows still active.
        z0: (R, d) starting points.
        method: ``"lbfgs"`` (default) or ``"fire"``.
        gtol: a row has converged when the Euclidean norm of its gradient is at most this.
        max_iter: iteration cap per row; rows still active then are returned with ``converged=False``.
        max_step: largest step a row may take in one iteration (Euclidean norm, units of z).
        memory: L-BFGS memory size.
        max_backtracks: L-BFGS step halvings on an energy rise or a non-finite value before the row is dropped.
        fire_dt: FIRE's initial time step (default: from the first gradient so the first step is max_step/10).
        progress: show a tqdm bar of converged rows.

    Returns:
        A :class:`MinimizeResult`.
    """
    if method not in ("lbfgs", "fire"):
        raise ValueError(f"unknown method {method!r}; use 'lbfgs' or 'fire'")
    z = z0.detach().clone()
    R, d = z.shape
    dev, dt_ = z.device, z.dtype
    energy = torch.full((R,), float("nan"), device=dev, dtype=dt_)
    grad = torch.zeros(R, d, device=dev, dtype=dt_)
    converged = torch.zeros(R, dtype=torch.bool, device=dev)
    finite = torch.ones(R, dtype=torch.bool, device=dev)
    n_iter = torch.zeros(R, dtype=torch.long, device=dev)
    n_evals = n_calls = 0
    if R == 0:
        return MinimizeResult(z, energy, grad, energy.clone(), converged, finite, n_iter, 0, 0)

    e0, g0 = fun(z)
    n_evals += R
    n_calls += 1
    energy[:], grad[:] = e0, g0
    finite &= _finite_rows(e0, g0)
    converged = finite & (g0.norm(dim=1) <= gtol)
    active = torch.nonzero(finite & ~converged).flatten()

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=R, desc=desc, unit="row", leave=False)
        bar.update(int(converged.sum()) + int((~finite).sum()))

    rise_tol = lambda e: 1e-10 * (1.0 + e.abs())  # noqa: E731 - rounding allowance for "no energy rise"
    mem = LBFGSMemory(R, d, memory, dev, dt_) if method == "lbfgs" else None
    fire = None
    if method == "fire":
        gmax = float(g0[finite].norm(dim=1).max()) if bool(finite.any()) else 1.0
        dt0 = fire_dt if fire_dt is not None else (0.1 * max_step / max(gmax, 1e-300)) ** 0.5
        fire = FIRE(R, d, dt=dt0, dt_max=10 * dt0, max_step=max_step, device=dev, dtype=dt_)

    it = 0
    while len(active) and it < max_iter:
        it += 1
        za, ea, ga = z[active], energy[active], grad[active]
        if method == "fire":
            zn = fire.step(za, -ga, active)
            en, gn = fun(zn)
            n_evals += len(active)
            n_calls += 1
            ok = _finite_rows(en, gn)
            z[active[ok]], energy[active[ok]], grad[active[ok]] = zn[ok], en[ok], gn[ok]
            finite[active[~ok]] = False
        else:
            dirn = mem.direction(active, ga)
            uphill = (dirn * ga).sum(1) >= 0
            if bool(uphill.any()):
                mem.reset(active[uphill])
                dirn[uphill] = -ga[uphill]
            norm = dirn.norm(dim=1).clamp_min(torch.finfo(dt_).tiny)
            step = dirn * torch.clamp(max_step / norm, max=1.0)[:, None]
            # try the step; halve it for rows whose energy rose or turned non-finite
            pending = torch.arange(len(active), device=dev)
            zn, en, gn = za.clone(), ea.clone(), ga.clone()
            accepted = torch.zeros(len(active), dtype=torch.bool, device=dev)
            last_finite = torch.ones(len(active), dtype=torch.bool, device=dev)
            for _ in range(max_backtracks + 1):
                zt = za[pending] + step[pending]
                et, gt = fun(zt)
                n_evals += len(pending)
                n_calls += 1
                fin = _finite_rows(et, gt)
                last_finite[pending] = fin
                good = fin & (et <= ea[pending] + rise_tol(ea[pending]))
                idx = pending[good]
                zn[idx], en[idx], gn[idx] = zt[good], et[good], gt[good]
                accepted[idx] = True
                pending = pending[~good]
                if not len(pending):
                    break
                step[pending] *= 0.5
                mem.reset(active[pending])
            if len(pending):
                # no acceptable step even after halving: a row whose last trial was still non-finite is dropped;
                # a row that only met energy rises stays where it is (memory reset) and tries again
                lost = pending[~last_finite[pending]]
                finite[active[lost]] = False
            acc = active[accepted]
            mem.update(acc, zn[accepted] - za[accepted], gn[accepted] - ga[accepted])
            z[acc], energy[acc], grad[acc] = zn[accepted], en[accepted], gn[accepted]
        n_iter[active] += 1
        newly = finite[active] & (grad[active].norm(dim=1) <= gtol)
        converged[active[newly]] = True
        done = newly | ~finite[active]
        if bar is not None and bool(done.any()):
            bar.update(int(done.sum()))
        active = active[~done]
    if bar is not None:
        bar.close()
    energy = torch.where(finite, energy, torch.full_like(energy, float("nan")))
    return MinimizeResult(z, energy, grad, grad.norm(dim=1), converged, finite, n_iter, n_evals, n_calls)
