"""Beyond harmonic: the one-dimensional Smoluchowski flux along each transition state's steepest-descent path.

Kramers–Langer rates assume barriers ≫ kT: the energy along the path is taken as a parabola at the saddle and the
basin as a Gaussian. At the barriers latent priors have (a few kT) that is off by 10–20 %. The correction here keeps
the basin weights Z_i (harmonic) and replaces each transition state's flux J = Z_i k_ij by the exact flux of the
overdamped dynamics reduced to the minimum-energy path:

    1/J_e = (1/D) ∫_i^j exp(F(s)/T) ds,     F(s) = U(s) + (T/2) Σ_⊥ log λ_⊥(s) − (T n_⊥/2) log 2πT,

where s is arc length along the steepest-descent path (the intrinsic reaction coordinate, integrated here from the
saddle down to both minima), λ_⊥(s) are the Hessian's eigenvalues across the path (the transverse harmonic free
energy), and D = T the diffusion coefficient (mobility 1). This is the flux-over-population (Smoluchowski) rate
k_ij = J_e / Z_i of the reduced dynamics. It is **exact for a one-dimensional U**, and it reduces to Kramers–Langer
when the barrier is high (Laplace's method on the integral gives |λ_e|^(1/2)·… exactly the Kramers–Langer prefactor),
so it corrects the along-path anharmonicity that dominates at low barriers; what it still approximates is the
transverse anharmonicity and the curvature of the path. J_e is symmetric in i and j, so detailed balance holds.

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


def _descend_both_ways(land: Landscape, z_s: np.ndarray, mode: np.ndarray, ends: np.ndarray, h: np.ndarray,
                       max_steps: np.ndarray) -> list[list[np.ndarray]]:
    """Steepest-descent paths (arc-length steps h, second-order Runge–Kutta) from each saddle ± h·mode.

    Args:
        z_s: (E, d) saddles; mode: (E, d) unit negative modes; ends: (E, 2, d) the two minima each should reach;
        h: (E,) step lengths; max_steps: (E,) caps.
    Returns:
        for each of the 2E rows (saddle e, side + then −), the list of points from the saddle down; a row that came
        within 2h of one of its two minima ends at that minimum exactly, else it ends where it stopped.
    """
    E, d = z_s.shape
    rows = np.repeat(np.arange(E), 2)
    sign = np.tile([1.0, -1.0], E)
    hr, cap = h[rows], max_steps[rows]
    z = z_s[rows] + sign[:, None] * hr[:, None] * mode[rows]
    paths = [[z_s[e].copy(), z[k].copy()] for k, e in enumerate(rows)]
    active = np.ones(2 * E, dtype=bool)
    for step in range(int(cap.max()) + 1):
        idx = np.nonzero(active)[0]
        if not len(idx):
            break
        ei = rows[idx]
        dist = np.linalg.norm(ends[ei] - z[idx][:, None, :], axis=2)  # (n, 2)
        near = dist.min(axis=1) < 2 * hr[idx]
        for k, which in zip(idx[near], dist[near].argmin(axis=1)):
            paths[k].append(ends[rows[k], which].copy())
        stop = near | (step >= cap[idx])
        active[idx[stop]] = False
        idx = idx[~stop]
        if not len(idx):
            continue
        _, g = land.energy_and_grad(z[idx])
        g = to_numpy(g)
        gn = np.linalg.norm(g, axis=1, keepdims=True)
        ok = (gn[:, 0] > 0) & np.isfinite(gn[:, 0])
        active[idx[~ok]] = False
        idx, g, gn = idx[ok], g[ok], gn[ok]
        zm = z[idx] - 0.5 * hr[idx, None] * g / gn
        _, gm = land.energy_and_grad(zm)
        gm = to_numpy(gm)
        gmn = np.linalg.norm(gm, axis=1, keepdims=True)
        ok = (gmn[:, 0] > 0) & np.isfinite(gmn[:, 0])
        active[idx[~ok]] = False
        z[idx[ok]] = z[idx[ok]] - hr[idx[ok], None] * gm[ok] / gmn[ok]
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
    h = np.minimum(reach / points_per_path, 0.1 * np.sqrt(T / np.abs(ev[:, 0])))
    max_steps = np.ceil(4 * reach / h).astype(np.int64) + 50
    descents = _descend_both_ways(land, z_saddle, mode, ends, h, max_steps)
    out = []
    for e in range(E):
        plus, minus = (np.array(p) for p in descents[2 * e:2 * e + 2])
        out.append(_one_flux(land, plus, minus, ends[e], mode[e], T, flat_tol))
    return out


def _one_flux(land: Landscape, plus: np.ndarray, minus: np.ndarray, ends: np.ndarray, mode: np.ndarray, T: float,
              flat_tol: float) -> PathFlux:
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
    z = np.concatenate([to_i[::-1], to_j[1:]])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(z, axis=0), axis=1))])
    u, g = land.energy_and_grad(np.ascontiguousarray(z))
    u, g = to_numpy(u), to_numpy(g)
    # The steepest-descent path runs along ∇U (its sign does not matter for the plane across it); at the saddle
    # along the negative mode; at the two minima, where ∇U = 0, along the last step.
    tangent = g.copy()
    tangent[len(to_i) - 1] = mode
    tangent[0], tangent[-1] = z[1] - z[0], z[-1] - z[-2]
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-300)
    H = to_numpy(land.hessian(np.ascontiguousarray(z)))
    lam = _transverse_eigenvalues(H, tangent)
    stiff = np.abs(lam) > flat_tol
    if (lam < -flat_tol).any():
        k = int(np.nonzero((lam < -flat_tol).any(axis=1))[0][0])
        return PathFlux(float("nan"), f"the path crosses a ridge: a transverse curvature is negative "
                        f"({lam[k].min():.3g}) at s = {s[k]:.3g}", s, u, np.full_like(u, np.nan))
    n_perp = stiff.sum(axis=1)
    F = u + (T / 2) * np.where(stiff, np.log(np.where(stiff, lam, 1.0)), 0.0).sum(axis=1) \
        - (T * n_perp / 2) * np.log(2 * np.pi * T)
    log_integral = _log_trapezoid(F / T, s)
    return PathFlux(float(np.log(T) - log_integral), "", s, u, F)


__all__ = ["PathFlux", "path_fluxes"]
