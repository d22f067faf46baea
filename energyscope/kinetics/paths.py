"""Beyond harmonic: the one-dimensional Smoluchowski flux along each transition state's steepest-descent path.

Kramers–Langer rates assume barriers ≫ kT: the energy along the path is taken as a parabola at the saddle and the
basin as a Gaussian. At the barriers latent priors have (a few kT) that is off by 10–20 %. The correction here keeps
the basin weights Z_i (harmonic) and replaces each transition state's flux J = Z_i k_ij by the exact flux of the
overdamped dynamics reduced to the minimum-energy path:

    1/J_e = (1/D) ∫_i^j exp(F(s)/T) ds,     F(s) = U(s) + (T/2) Σ_⊥ log λ_⊥(s) − (T n_⊥/2) log 2πT,

where s is arc length along the steepest-descent path (the intrinsic reaction coordinate, integrated here from the
saddle down to both minima), λ_⊥(s) are the Hessian's eigenvalues across the path (the transverse harmonic free
energy), and D = T the diffusion coefficient (mobility 1). This is the flux-over-population (Smoluchowski) rate
k_ij = J_e / Z_i of the reduced dynamics. The flux is **exact for a one-dimensional U** (checked against quadrature
to 1e-5) and reduces to Kramers–Langer's when the barrier is high (Laplace's method on the integral gives exactly the
Kramers–Langer prefactor), so it corrects the along-path anharmonicity of the barrier region, which dominates at low
barriers. The basin weights Z_i stay harmonic (consistent across all of a minimum's transition states), and the
transverse anharmonicity and the path's curvature are approximated. J_e is symmetric in i and j, so detailed balance
holds.

References: H. A. Kramers, Physica 7, 284 (1940); J. S. Langer, Ann. Phys. 54, 258 (1969); P. Hänggi, P. Talkner,
M. Borkovec, Rev. Mod. Phys. 62, 251 (1990), §IV (the flux-over-population method and the 1-D MFPT integral).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from energyscope._tensor import to_numpy
from energyscope.landscape import Landscape


@dataclass
class PathFlux:
    """One transition state's Smoluchowski flux, or why it could not be computed.

    Attributes:
        log_flux: log J_e (NaN when ``reason``).
        reason: "" when computed, else why not (the transition state keeps its harmonic flux).
        s: (M,) arc length along the path, from minimum i to minimum j (latent units).
        energy: (M,) U along it (nats); free_energy: (M,) F(s) (nats).
        n_points: M.
    """

    log_flux: float
    reason: str
    s: np.ndarray
    energy: np.ndarray
    free_energy: np.ndarray

    @property
    def n_points(self) -> int:
        return len(self.s)


def _clip(step: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Each row of ``step`` shortened to length at most h (rows)."""
    n = np.linalg.norm(step, axis=1, keepdims=True)
    return step * np.minimum(1.0, h[:, None] / np.maximum(n, 1e-300))


#: relative agreement of U − U_min with ½ δᵀHδ at which the descent hands over to the harmonic flow's exact path
HARMONIC_RTOL = 0.02
#: points along each path at which F(s) (a Hessian each) is evaluated, at most (the descent itself takes finer steps)
FLUX_POINTS = 150
#: descent steps between two Hessians of a row (its curvatures set the step; they change slowly along the path)
HESSIAN_EVERY = 10
#: points of the path more than this many kT below the saddle add < exp(−40) to the flux integral: no Hessian there
NEGLIGIBLE_KT = 40.0
#: the descent's time step lets the stiffest direction relax over about this many steps (accuracy of the path)
STIFF_STEPS = 100


@dataclass
class _Ends:
    """The two minima of each transition state: positions (E, 2, d), energies (E, 2), Hessian eigenvalues (E, 2, d)
    and eigenvectors (E, 2, d, d, columns)."""

    z: np.ndarray
    energy: np.ndarray
    lam: np.ndarray
    vec: np.ndarray


def _harmonic_tail(delta: np.ndarray, lam: np.ndarray, vec: np.ndarray, h: float, flat_tol: float) -> list:
    """The gradient flow's exact path in a harmonic well, δ(t) = V exp(−Λt) Vᵀ δ₀, sampled every ≤ h of arc length
    until its stiff part is below h/10 (flat directions, λ ≤ flat_tol, do not decay)."""
    c0 = vec.T @ delta
    stiff = lam > flat_tol
    out, t = [], 0.0
    for _ in range(100_000):
        c = np.where(stiff, c0 * np.exp(-np.where(stiff, lam, 0.0) * t), c0)
        if np.linalg.norm(c[stiff]) < h / 10:
            break
        out.append(vec @ c)
        speed = np.linalg.norm(lam[stiff] * c[stiff])
        t += h / max(speed, 1e-300)
    return out


def _descend_both_ways(land: Landscape, z_s: np.ndarray, mode: np.ndarray, ends: _Ends, h: np.ndarray,
                       alpha: np.ndarray, max_steps: np.ndarray, flat_tol: float, settled: float,
                       well: float) -> list[list[np.ndarray]]:
    """Steepest-descent paths from each saddle ± h·mode down to its minima, all rows at once.

    The gradient flow dz/dt = −∇U is integrated by semi-implicit Euler steps (I/α + H) Δz = −∇U (stable in stiff
    valleys, so they are followed, not zig-zagged across, and the slow approach along a soft valley takes few steps),
    each step shortened to at most h of arc length (so the path is resolved where it is steep). Once a row is in a minimum's harmonic region (U − U_min agrees with ½ δᵀHδ to
    ``HARMONIC_RTOL``), the rest of its path is the harmonic flow's exact solution.

    Args:
        z_s: (E, d) saddles; mode: (E, d) unit negative modes; ends: the two minima of each;
        h: (E,) longest step; alpha: (E,) 1/α, the least inverse time step (the minima's softest curvature);
        max_steps: (E,) caps.
    Returns:
        for each of the 2E rows (saddle e, side + then −), the points from the saddle down; a row that reached one
        of its two minima ends at that minimum exactly, else where it stopped.
    """
    E, d = z_s.shape
    rows = np.repeat(np.arange(E), 2)
    sign = np.tile([1.0, -1.0], E)
    hr, ar, cap = h[rows], alpha[rows], max_steps[rows]
    z = z_s[rows] + sign[:, None] * hr[:, None] * mode[rows]
    paths = [[z_s[e].copy(), z[k].copy()] for k, e in enumerate(rows)]
    start_gap = np.linalg.norm(ends.z - z_s[:, None, :], axis=2)  # (E, 2)
    active = np.ones(2 * E, dtype=bool)
    lam_c, vec_c = np.zeros((2 * E, d)), np.zeros((2 * E, d, d))  # each row's last Hessian, eigen-decomposed
    age = np.full(2 * E, HESSIAN_EVERY)
    for step in range(int(cap.max()) + 1):
        idx = np.nonzero(active)[0]
        if not len(idx):
            break
        active[idx[step >= cap[idx]]] = False
        idx = idx[step < cap[idx]]
        if not len(idx):
            continue
        u, g = land.energy_and_grad(z[idx])
        u, g = to_numpy(u), to_numpy(g)
        e_idx = rows[idx]
        delta = z[idx][:, None, :] - ends.z[e_idx]  # (n, 2, d)
        dist = np.linalg.norm(delta, axis=2)
        which = dist.argmin(axis=1)
        n = np.arange(len(idx))
        dl = delta[n, which]
        proj = np.einsum("ndk,nd->nk", ends.vec[e_idx, which], dl)  # δ in the minimum's eigenbasis
        quad = 0.5 * (ends.lam[e_idx, which] * proj * proj).sum(axis=1)  # ½ δᵀHδ
        rise = u - ends.energy[e_idx, which]
        done = (dist[n, which] < 2 * hr[idx]) | (
            (dist[n, which] < 0.5 * start_gap[e_idx, which])
            & ((np.abs(quad - rise) <= HARMONIC_RTOL * np.abs(rise) + 1e-14) | (rise <= settled)))
        for r in np.nonzero(done)[0]:
            k, e, w = idx[r], e_idx[r], which[r]
            tail = _harmonic_tail(dl[r], ends.lam[e, w], ends.vec[e, w], hr[k], flat_tol)
            paths[k].extend(ends.z[e, w] + t for t in tail)
            paths[k].append(ends.z[e, w].copy())
        active[idx[done]] = False
        idx, g = idx[~done], g[~done]
        if not len(idx):
            continue
        stale = idx[age[idx] >= HESSIAN_EVERY]
        if len(stale):  # the Hessian changes slowly along the path: refreshed every HESSIAN_EVERY steps
            lam_c[stale], vec_c[stale] = np.linalg.eigh(to_numpy(land.hessian(z[stale])))
            age[stale] = 0
        age[idx] += 1
        lam, vec = lam_c[idx], vec_c[idx]
        stiffest = np.maximum(np.abs(lam).max(axis=1), 1e-300)  # |λ| (in 1-D at a saddle all λ < 0)
        # above the well (U − U_min > ``well``): explicit Euler along −∇U with time step 1/(2 λ_max), which follows
        # the steepest-descent path itself; in the well, semi-implicit Euler (I/α + H) Δz = −∇U, 1/α at least the
        # minima's softest curvature, which reaches the minimum in few steps where the exact path matters least
        inv_alpha = np.maximum(np.maximum(ar[idx], 2.0 * np.maximum(0.0, -lam[:, 0])), stiffest / STIFF_STEPS)
        coeff = np.einsum("ndk,nd->nk", vec, g) / (inv_alpha[:, None] + lam)
        implicit = -np.einsum("ndk,nk->nd", vec, coeff)
        in_well = (rise <= well)[~done]
        step_z = _clip(np.where(in_well[:, None], implicit, -0.4 * g / stiffest[:, None]), hr[idx])
        ok = np.isfinite(step_z).all(axis=1) & (np.abs(step_z).sum(axis=1) > 0)
        active[idx[~ok]] = False
        z[idx[ok]] += step_z[ok]
        for k in idx[ok]:
            paths[k].append(z[k].copy())
    return paths


def _transverse_eigenvalues(H: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Eigenvalues (M, d−1) of each Hessian H (M, d, d) restricted to the plane orthogonal to the unit tangent t (M, d).

    A Householder reflection maps e₁ to t; its other d − 1 columns are an orthonormal basis of that plane."""
    M, d = t.shape
    v = t.copy()
    v[:, 0] += np.where(t[:, 0] >= 0, 1.0, -1.0)
    Q = np.eye(d)[None] - 2 * v[:, :, None] * v[:, None, :] / (v * v).sum(axis=1)[:, None, None]
    Hq = np.swapaxes(Q, 1, 2) @ H @ Q
    return np.linalg.eigvalsh(Hq[:, 1:, 1:])


def _log_trapezoid(log_f: np.ndarray, s: np.ndarray) -> float:
    """log ∫ exp(log_f) ds by the trapezoid rule, without overflow."""
    ds = np.diff(s)
    keep = ds > 0
    terms = np.log(ds[keep]) + np.logaddexp(log_f[:-1][keep], log_f[1:][keep]) - np.log(2.0)
    return float(logsumexp(terms)) if len(terms) else float("nan")


def path_fluxes(land: Landscape, z_saddle: np.ndarray, ends: np.ndarray, temperature: float, flat_tol: float,
                points_per_path: int = 400) -> list[PathFlux]:
    """The Smoluchowski flux J_e (see the module docstring) of each transition state, batched over all of them.

    Args:
        land: the landscape U.
        z_saddle: (E, d) validated index-1 saddles.
        ends: (E, 2, d) the minima (i, j) each one joins.
        temperature: T.
        flat_tol: eigenvalues within ± this are flat directions, left out of Σ log λ_⊥ (as in the basin weights).
        points_per_path: resolution: the step is (|z_s − z_i| + |z_s − z_j|) / this, and at most a tenth of the
            saddle's thermal width sqrt(T/|λ_e|).
    Returns:
        one :class:`PathFlux` per transition state, in order.
    """
    T = float(temperature)
    z_saddle = np.asarray(z_saddle, dtype=float).reshape(len(ends), -1)
    E, d = z_saddle.shape
    if E == 0:
        return []
    ev, vec = land.hessian_eigh(z_saddle)
    mode = vec[:, :, 0]
    reach = np.linalg.norm(ends - z_saddle[:, None, :], axis=2).sum(axis=1)
    width = np.sqrt(T / np.abs(ev[:, 0]))  # the saddle's thermal width along the path
    h = np.minimum(reach / points_per_path, 0.1 * width)
    # the integrand exp(F/T) is smooth: FLUX_POINTS per path (and 10 per thermal width) integrate it to < 1e-4
    h_flux = np.maximum(h, np.minimum(reach / FLUX_POINTS, 0.1 * width))
    flat = ends.reshape(-1, d)
    m_lam, m_vec = land.hessian_eigh(flat)
    minima = _Ends(ends, to_numpy(land.energy(flat)).reshape(E, 2), m_lam.reshape(E, 2, d),
                   m_vec.reshape(E, 2, d, d))
    soft = np.where(m_lam > flat_tol, m_lam, np.inf).reshape(E, -1).min(axis=1)
    soft = np.where(np.isfinite(soft), soft, np.abs(ev[:, 0]))
    # enough steps for the arc length at h per step, and for the approach to each minimum's harmonic region
    max_steps = np.ceil(4 * reach / h).astype(np.int64) + 20_000
    descents = _descend_both_ways(land, z_saddle, mode, minima, h, soft, max_steps, flat_tol, settled=0.01 * T,
                                  well=T)
    out = []
    for e in range(E):
        plus, minus = (np.array(p) for p in descents[2 * e:2 * e + 2])
        out.append(_one_flux(land, plus, minus, ends[e], mode[e], T, flat_tol, float(h_flux[e])))
    return out


#: a stretch of path where a transverse curvature is negative is tolerated when it carries at most this share of
#: ∫ exp(U/T) ds (it is far below the saddle); there its negative directions are left out of F
RIDGE_SHARE = 1e-3


def _resample(z: np.ndarray, k_saddle: int, h: float) -> tuple[np.ndarray, np.ndarray, int]:
    """The path at arc-length spacing ≤ h (linear interpolation between the integrator's points), keeping the
    saddle as a node. Returns (points, arc length, index of the saddle)."""
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(z, axis=0), axis=1))])
    grids = []
    for a, b in ((0.0, s[k_saddle]), (s[k_saddle], s[-1])):
        n = max(int(np.ceil((b - a) / h)), 1)
        grids.append(np.linspace(a, b, n + 1))
    grid = np.concatenate([grids[0], grids[1][1:]])
    pts = np.stack([np.interp(grid, s, z[:, c]) for c in range(z.shape[1])], axis=1)
    return pts, grid, len(grids[0]) - 1


def _one_flux(land: Landscape, plus: np.ndarray, minus: np.ndarray, ends: np.ndarray, mode: np.ndarray, T: float,
              flat_tol: float, h: float) -> PathFlux:
    empty = np.zeros(0)
    reached = []
    for side in (plus, minus):
        hit = [k for k in (0, 1) if np.array_equal(side[-1], ends[k])]
        reached.append(hit[0] if hit else -1)
    if sorted(reached) != [0, 1]:
        return PathFlux(float("nan"), "the steepest-descent path from the saddle did not reach both of its minima "
                        f"(reached {reached})", empty, empty, empty)
    # Orient from minimum i (ends[0]) to minimum j: the side that reached i, reversed, then the other side.
    to_i, to_j = (plus, minus) if reached[0] == 0 else (minus, plus)
    z, s, k_s = _resample(np.concatenate([to_i[::-1], to_j[1:]]), len(to_i) - 1, h)
    u, g = land.energy_and_grad(np.ascontiguousarray(z))
    u, g = to_numpy(u), to_numpy(g)
    # The steepest-descent path runs along ∇U (its sign does not matter for the plane across it); at the saddle
    # along the negative mode; at the two minima, where ∇U = 0, along the last step.
    tangent = g.copy()
    tangent[k_s] = mode
    tangent[0], tangent[-1] = z[1] - z[0], z[-1] - z[-2]
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-300)
    # exp(F/T) is negligible far below the saddle: Hessians only where U is within NEGLIGIBLE_KT·T of its top
    needed = u >= u[k_s] - NEGLIGIBLE_KT * T
    lam = np.full((len(z), z.shape[1] - 1), np.inf)
    lam[needed] = _transverse_eigenvalues(to_numpy(land.hessian(np.ascontiguousarray(z[needed]))), tangent[needed])
    ridge = (lam < -flat_tol).any(axis=1)
    reason = ""
    if ridge.any():
        share = np.exp(_log_trapezoid(np.where(ridge, u, -np.inf) / T, s) - _log_trapezoid(u / T, s))
        k = int(np.nonzero(ridge)[0][0])
        what = (f"a transverse curvature is negative ({lam[ridge].min():.3g}) on {ridge.mean():.1%} of the path "
                f"(first at s = {s[k]:.3g}), which carries {share:.2g} of ∫exp(U/T)ds")
        if not share <= RIDGE_SHARE:
            return PathFlux(float("nan"), f"the path crosses a ridge: {what}", s, u, np.full_like(u, np.nan))
    stiff = lam > flat_tol
    F = u + (T / 2) * np.where(stiff, np.log(np.where(stiff, lam, 1.0)), 0.0).sum(axis=1) \
        - (T * stiff.sum(axis=1) / 2) * np.log(2 * np.pi * T)
    F[~needed] = -np.inf  # (their share of the integral is below exp(−NEGLIGIBLE_KT))
    return PathFlux(float(np.log(T) - _log_trapezoid(F / T, s)), reason, s, u, F)


__all__ = ["PathFlux", "path_fluxes"]
