"""Stationary points of piecewise-smooth U on kinks: exact refinement, certification and local structure.

Energy networks with ReLU-family activations (ReLU, LeakyReLU, hardtanh), max-pooling or |x| make U piecewise
smooth: R^d is cut into regions, on each of which U is one smooth *piece*, and minima and saddles usually sit where
pieces meet (on a *kink*), where the gradient jumps and never vanishes. Gradient norms and Hessians say nothing
there. This module works with the pieces instead.

**Pieces from sampled gradients** (gradient sampling, Burke, Lewis & Overton, SIAM J. Optim. 15, 751-779, 2005).
Around a point z, U, ∇U and the Hessian are evaluated at points sampled in a ball of radius ρ (antithetic pairs).
Two samples belong to one piece when their gradients agree with the trapezoidal integral of their Hessians along the
segment between them; each piece i then has an exact local quadratic model Q_i (exact for piecewise-*linear*
networks plus a Gaussian base, whose pieces are quadratics with the base's constant Hessian).

**Refinement: Newton on the non-smooth stationarity system.** The minimal-norm element of the convex hull of the
pieces' gradients at z (Wolfe's algorithm, Math. Program. 11, 128-149, 1976) measures Clarke stationarity and picks
a *corral* S of affinely independent pieces with weights λ. A stationary point on the kink where the pieces of S meet
solves

    Σ_{i∈S} λ_i ∇Q_i(z) = 0,   Q_i(z) = t  for all i ∈ S,   Σ λ_i = 1,

a square system in (z, λ, t) whose Newton step is one linear solve with the Lagrangian Hessian W = Σ λ_i ∇²Q_i. It is
the Newton step of the VU-decomposition methods (Lemaréchal, Oustry & Sagastizábal 2000; Mifflin & Sagastizábal,
Math. Program. 104, 583-608, 2005): smooth (U-space) directions get a Newton step, sharp (V-space) directions are
fixed by the equal-value conditions. With one piece it is plain Newton on ∇U = 0; with the right S and
piecewise-linear pieces it is exact in one step. Pieces are re-sampled after every step with a radius that follows
the step length, so S is identified afresh near the solution (an active-set iteration).

**Local structure.** At a refined point, V = span{∇Q_i − ∇Q_j : i, j ∈ S} holds the m sharp directions and its
orthogonal complement T the smooth ones. Along T the curvature is the reduced Hessian PᵀWP; along V the directional
derivative U'(z; w) is positively homogeneous and is probed on a fine set of directions of V. The *index* is the
number of negative reduced-Hessian eigenvalues plus the index of the V-structure (0 when U rises in every V
direction; 1 when the downhill V directions form two separate caps, as across a ridge). Sharp directions are reported
as eigenvalues +inf (U rises like |x| there) or -inf (the one sharp unstable direction of a ridge saddle).

**Certification of minima.** A refined point is a minimum when it is Clarke stationary, its index is 0 and U does not
decrease along any of many probe directions (random directions, the pieces' gradients and their differences) at
three radii tied to the latent length scale.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from energyscope.errors import BadArgumentError
from energyscope._deadline import expired
from energyscope._geometry import components
from energyscope._tensor import to_numpy

if TYPE_CHECKING:  # pragma: no cover
    from energyscope.landscape import Landscape


# ---------------------------------------------------------------------------------------------------------- min-norm
def min_norm_point(P: np.ndarray, tol: float = 1e-12, max_iter: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """The point of smallest Euclidean norm in the convex hull of the rows of P (n, d): Wolfe's algorithm (1976).

    Returns:
        (x (d,), weights λ (n,)): x = λ @ P, λ ≥ 0, Σλ = 1; the rows with λ > 0 form an affinely independent
        *corral*.
    """
    P = np.asarray(P, dtype=np.float64)
    n = len(P)
    if n == 0:
        raise BadArgumentError("min_norm_point needs at least one point")
    scale = max(float(np.max(np.sum(P * P, axis=1))), np.finfo(float).tiny)
    j = int(np.argmin(np.sum(P * P, axis=1)))
    S = [j]
    lam = np.array([1.0])
    x = P[j].copy()
    for _ in range(max_iter):
        w = P @ x
        j = int(np.argmin(w))
        if x @ x - w[j] <= tol * scale or j in S:
            break
        S.append(j)
        lam = np.append(lam, 0.0)
        for _minor in range(len(S) + 2):
            A = P[S]
            k = len(S)
            M = np.zeros((k + 1, k + 1))
            M[:k, :k] = A @ A.T
            M[:k, k] = 1.0
            M[k, :k] = 1.0
            rhs = np.zeros(k + 1)
            rhs[k] = 1.0
            alpha = np.linalg.lstsq(M, rhs, rcond=None)[0][:k]
            if np.all(alpha > tol):
                lam = alpha
                break
            neg = alpha <= tol
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios = np.where(neg, lam / (lam - alpha), np.inf)
            theta = float(np.min(ratios[np.isfinite(ratios)])) if np.isfinite(ratios).any() else 0.0
            theta = min(max(theta, 0.0), 1.0)
            lam = theta * alpha + (1 - theta) * lam
            keep = lam > tol
            if not keep.any():
                keep[np.argmax(lam)] = True
            S = [s for s, kp in zip(S, keep) if kp]
            lam = lam[keep]
            lam = lam / lam.sum()
        x = lam @ P[S]
    full = np.zeros(n)
    full[S] = lam
    return x, full


# ---------------------------------------------------------------------------------------------------------- pieces
@dataclass
class Pieces:
    """The smooth pieces of U seen around one point, as local quadratic models about the point z.

    Attributes:
        value: (k,) Q_i(z), nats.  grad: (k, d) ∇Q_i(z).  hess: (k, d, d) ∇²Q_i.
        rep: (k, d) the sample each model was taken at; size: (k,) samples that fell in each piece.
    """

    value: np.ndarray
    grad: np.ndarray
    hess: np.ndarray
    rep: np.ndarray
    size: np.ndarray

    def __len__(self) -> int:
        return len(self.value)


_components = components


def group_pieces(y: np.ndarray, u: np.ndarray, g: np.ndarray, H: np.ndarray, z: np.ndarray,
                 g_tol: float) -> Pieces:
    """Group samples (y (N, d), U (N,), ∇U (N, d), Hessians (N, d, d), or one (d, d) for all) into smooth pieces;
    models about z (d,).

    Samples a and b are one piece when ‖g_b − g_a − ½(H_a + H_b)(y_b − y_a)‖ ≤ g_tol + ½‖H_a − H_b‖‖y_b − y_a‖
    (the trapezoidal rule is exact to that bound on one smooth piece; across a kink the gradient jumps).
    """
    N, d = y.shape
    from scipy.spatial import cKDTree
    from scipy.spatial.distance import cdist
    if H.ndim == 2:       # one Hessian for every sample (a piecewise-linear energy plus a fixed quadratic)
        H = np.broadcast_to(H, (N, d, d))
    if H.strides[0] == 0 or np.all(H == H[:1]):
        # one Hessian for all: g - H y is constant on a piece, so pieces are clusters of those vectors (KD-tree)
        c = g - y @ H[0].T
        pairs = cKDTree(c).query_pairs(g_tol, output_type="ndarray")
        same = None
    else:
        dist = cdist(y, y)
        Hy = np.einsum("aij,bj->abi", H, y)                               # (N, N, d): H_a y_b
        Hyy = np.einsum("aai->ai", Hy)                                    # H_a y_a
        # g_b - g_a - ½(H_a + H_b)(y_b - y_a), with (H_a + H_b)(y_b - y_a) = H_a y_b - H_a y_a + H_b y_b - H_b y_a
        res = g[None, :, :] - g[:, None, :] - 0.5 * (Hy - Hyy[:, None, :] + Hyy[None, :, :]
                                                     - Hy.transpose(1, 0, 2))
        rn = np.linalg.norm(res, axis=-1)
        F = H.reshape(N, -1)
        sq = (F * F).sum(1)
        dH = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * F @ F.T, 0.0))
        same = rn <= g_tol + 0.5 * dH * dist
    if same is not None:
        ia, ib = np.nonzero(np.triu(same, 1))
    else:
        ia, ib = (pairs[:, 0], pairs[:, 1]) if len(pairs) else (np.zeros(0, int), np.zeros(0, int))
    lab = _components(N, ia, ib)
    k = int(lab.max()) + 1
    dist = np.linalg.norm(y - z[None, :], axis=1)
    value, grad, hess, rep, size = [], [], [], [], []
    for c in range(k):
        mem = np.flatnonzero(lab == c)
        r = mem[np.argmin(dist[mem])]
        dz = z - y[r]
        value.append(u[r] + g[r] @ dz + 0.5 * dz @ H[r] @ dz)
        grad.append(g[r] + H[r] @ dz)
        hess.append(H[r])
        rep.append(y[r])
        size.append(len(mem))
    hess = np.broadcast_to(H[0], (k, d, d)) if H.strides[0] == 0 else np.array(hess)
    return Pieces(np.array(value), np.array(grad), hess, np.array(rep), np.array(size))


def kkt_step(pieces: Pieces, lam: np.ndarray, reg: float) -> tuple[np.ndarray, np.ndarray, float]:
    """One Newton step on the stationarity system of the pieces with λ > 0 (see the module docstring).

    Args:
        pieces: models about the current point; lam: (k,) corral weights (zeros are left out).
        reg: Tikhonov shift added to W (nats per latent unit²) where W is singular on the solution's subspace.

    Returns:
        (step δ (d,), new weights λ (k,), model value t at z + δ).
    """
    S = np.flatnonzero(lam > 0)
    G = pieces.grad[S]                                  # (k, d)
    q = pieces.value[S]
    k, d = G.shape
    W = np.einsum("k,kij->ij", lam[S], pieces.hess[S])
    W = 0.5 * (W + W.T)
    M = np.zeros((d + k + 1, d + k + 1))
    M[:d, :d] = W
    M[:d, d:d + k] = G.T
    M[d:d + k, :d] = G
    M[d:d + k, d + k] = -1.0
    M[d + k, d:d + k] = 1.0
    rhs = np.zeros(d + k + 1)
    rhs[d:d + k] = -q
    rhs[d + k] = 1.0
    try:
        sol = np.linalg.solve(M, rhs)
        if not np.all(np.isfinite(sol)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        M[:d, :d] += reg * np.eye(d)
        sol = np.linalg.lstsq(M, rhs, rcond=None)[0]
    out = np.zeros(len(lam))
    out[S] = sol[d:d + k]
    return sol[:d], out, float(sol[d + k])


# ---------------------------------------------------------------------------------------------------------- result
@dataclass
class KinkPoints:
    """Refined stationary points of a piecewise-smooth U (numpy, C rows).

    Attributes:
        z: (C, d) points; energy: (C,) U there, nats.
        converged: (C,) the refinement met its step and stationarity tolerances.
        stationarity: (C,) norm of the minimal-norm element of the convex hull of the active pieces' gradients at
            z (0 at a Clarke-stationary point), nats per latent unit.
        n_pieces: (C,) smooth pieces met in the last sample around z (1: U is smooth there).
        lam: per point, the weights (k,) of the active pieces; pieces: per point, the :class:`Pieces` there.
        radius: (C,) the last sampling radius, latent units.
        n_iter: (C,) refinement iterations; n_evals, n_hessians: rows evaluated in all.
        reason: per point, "" or why it did not converge.
    """

    z: np.ndarray
    energy: np.ndarray
    converged: np.ndarray
    stationarity: np.ndarray
    n_pieces: np.ndarray
    lam: list
    pieces: list
    radius: np.ndarray
    n_iter: np.ndarray
    n_evals: int = 0
    n_hessians: int = 0
    reason: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.energy)


def _piecewise_linear_hessian(land: "Landscape") -> np.ndarray | None:
    """The one Hessian (d, d) of a piecewise-linear energy plus a fixed quadratic (e.g. the base prior), else None."""
    sm = land.smoothness
    return sm.hessian if sm.piecewise_linear and sm.hessian is not None else None


def touching(pieces: Pieces, energy: float, radius: float, sigma_E: float) -> np.ndarray:
    """(k,) pieces whose closure contains the point: their model value there equals U (within round-off plus a
    millionth of the value change across the sampling radius)."""
    g = float(np.max(np.linalg.norm(pieces.grad, axis=1))) if len(pieces) else 0.0
    return np.abs(pieces.value - energy) <= 1e-8 * (sigma_E + abs(energy)) + 1e-6 * radius * g


def smooth_basis(pieces: Pieces, lam: np.ndarray, tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal bases (V (d, m), T (d, d-m)) of the sharp and smooth directions of the pieces with λ > 0:
    V spans the differences of their gradients, T is its orthogonal complement. Pass λ = 1 on every piece that
    touches the point for the full sharp space (the corral may leave some sharp directions out)."""
    S = np.flatnonzero(lam > 0)
    d = pieces.grad.shape[1]
    if len(S) < 2:
        return np.zeros((d, 0)), np.eye(d)
    D = (pieces.grad[S[1:]] - pieces.grad[S[0]]).T                      # (d, k-1)
    ev, vec = np.linalg.eigh(D @ D.T)                                   # left singular vectors, ascending
    ev, vec = ev[::-1], vec[:, ::-1]
    # (the eigenvalues of D Dᵀ carry round-off of 1e-16 × the largest, i.e. 1e-8 in singular values: the rank is
    # decided at 1e-6 of the largest singular value)
    sv = np.sqrt(np.maximum(ev, 0.0))
    m = int((sv > max(tol, 1e-6) * max(float(sv.max()), np.finfo(float).tiny)).sum())
    return vec[:, :m], vec[:, m:]


def _directions(rng: np.random.Generator, C: int, half: int, d: int, focus: list | None) -> np.ndarray:
    """Unit directions (C, half, d): uniform on the sphere; for rows with a ``focus`` basis (d, k), half of them
    lie (up to a little noise) in its span, where pieces not yet seen must touch the point."""
    v = rng.standard_normal((C, half, d))
    if focus is not None:
        for i, B in enumerate(focus):
            if B is None or B.shape[1] == 0 or B.shape[1] == d:
                continue
            k = half // 2
            w = rng.standard_normal((k, B.shape[1])) @ B.T
            w /= np.linalg.norm(w, axis=1, keepdims=True)
            v[i, :k] = w + 0.05 * v[i, :k] / np.sqrt(d)
    return v / np.linalg.norm(v, axis=2, keepdims=True)


def sample_pieces(land: "Landscape", z: np.ndarray, radius: np.ndarray, n_samples: int,
                  rng: np.random.Generator, focus: list | None = None, carry: list | None = None,
                  keep: int = 0) -> tuple[list[Pieces], int, int] | tuple[list[Pieces], int, int, list]:
    """Pieces around each row of z (C, d): U, ∇U and Hessians at z and at ``n_samples`` antithetic points in a ball
    of per-row ``radius`` (C,), all rows in one batch; ``focus`` (per row a (d, k) basis or None) concentrates half
    of the directions on a subspace. Returns (pieces per row, rows evaluated, Hessians).

    With ``carry`` (per row None or the raw samples (Y, U, ∇U, H) an earlier call returned for a point that has not
    moved since), those samples are grouped together with the new ones, so that pieces met in thin wedges accumulate;
    then the raw samples (at most ``keep`` per row, newest first) are returned as a fourth element."""
    C, d = z.shape
    half = max(1, n_samples // 2)
    v = _directions(rng, C, half, d, focus)
    r = radius[:, None] * rng.random((C, half)) ** (1.0 / max(d, 1))
    r = np.maximum(r, 0.05 * radius[:, None])
    off = np.concatenate([v * r[:, :, None], -v * r[:, :, None]], axis=1)       # (C, 2h, d)
    Y = np.concatenate([z[:, None, :], z[:, None, :] + off], axis=1)            # (C, N, d)
    N = Y.shape[1]
    flat = Y.reshape(-1, d)
    e, g = land.energy_and_grad(flat)
    e, g = to_numpy(e).reshape(C, N), to_numpy(g).reshape(C, N, d)
    c = _piecewise_linear_hessian(land)
    n_hess = 0
    if c is not None:
        H = np.broadcast_to(c, (C, N, d, d))            # a view: one matrix, never copied per sample
    else:
        H = to_numpy(land.hessian(flat)).reshape(C, N, d, d)
        n_hess = C * N
    sc = land.scales()
    out, raws = [], []
    for i in range(C):
        ok = np.isfinite(e[i]) & np.isfinite(g[i]).all(1) & np.isfinite(H[i]).reshape(N, -1).all(1)
        if not ok[0] or ok.sum() < 2:
            out.append(None)
            raws.append(None)
            continue
        raw = (Y[i][ok], e[i][ok], g[i][ok], c if c is not None else np.asarray(H[i][ok]))
        if carry is not None and carry[i] is not None:
            raw = tuple(b if a.ndim == 2 and b.ndim == 2 and a is b or (c is not None and k == 3)
                        else np.concatenate([a, b])[:max(keep, len(a))]
                        for k, (a, b) in enumerate(zip(raw, carry[i])))
        gs = float(np.max(np.linalg.norm(raw[2], axis=1))) + sc.sigma_E / sc.length
        out.append(group_pieces(*raw, z[i], 1e-7 * gs))
        raws.append(raw)
    if carry is not None:
        return out, C * N, n_hess, raws
    return out, C * N, n_hess


@dataclass
class _RefineState:
    """Per-point state of :func:`refine` (C rows; latent units, nats) and its evaluation counters."""

    z: np.ndarray
    energy: np.ndarray
    e_floor: np.ndarray
    rho: np.ndarray
    ns: np.ndarray
    focus: list
    buf: list
    stat: np.ndarray
    npieces: np.ndarray
    lam: list
    pieces: list
    converged: np.ndarray
    n_iter: np.ndarray
    reason: list
    n_evals: int = 0
    n_hess: int = 0


def _refine_start(land: "Landscape", z0: Any, radius: float | np.ndarray | None, ns0: int,
                  sc: Any) -> tuple[_RefineState, np.ndarray]:
    """Starting state for z0 (C, d): U there (C,) nats, radii (C,) latent units; and the finite rows (n,)."""
    z = np.array(to_numpy(z0), dtype=np.float64).reshape(-1, land.dim)
    C = len(z)
    rho = np.broadcast_to(np.asarray(1e-4 * sc.length if radius is None else radius, dtype=np.float64), (C,)).copy()
    st = _RefineState(z=z, energy=np.full(C, np.nan), e_floor=np.zeros(C), rho=rho, ns=np.full(C, ns0),
                      focus=[None] * C, buf=[None] * C, stat=np.full(C, np.inf), npieces=np.zeros(C, dtype=int),
                      lam=[None] * C, pieces=[None] * C, converged=np.zeros(C, dtype=bool),
                      n_iter=np.zeros(C, dtype=int), reason=[""] * C)
    e0 = to_numpy(land.energy(z))
    st.n_evals += C
    st.energy[:] = e0
    active = np.flatnonzero(np.isfinite(e0))
    for c in np.flatnonzero(~np.isfinite(e0)):
        st.reason[c] = "non-finite energy at the starting point"
    st.e_floor = 1e-12 * (sc.sigma_E + np.abs(e0))
    return st, active


def _sample_active(land: "Landscape", st: _RefineState, active: np.ndarray, rng: np.random.Generator,
                   ns0: int) -> dict:
    """Pieces (row -> :class:`Pieces` or None) around every active point, one batch per sample count."""
    pcs: dict[int, Pieces | None] = {}
    for n in np.unique(st.ns[active]):
        rows = active[st.ns[active] == n]
        got, ne, nh, raws = sample_pieces(land, st.z[rows], st.rho[rows], int(n), rng, [st.focus[r] for r in rows],
                                          carry=[st.buf[r] for r in rows], keep=8 * ns0)
        st.n_evals += ne
        st.n_hess += nh
        pcs.update(zip(rows.tolist(), got))
        for r, raw in zip(rows, raws):
            st.buf[r] = raw
    return pcs


def _corral_newton(p: Pieces, lam: np.ndarray, curv: float) -> np.ndarray:
    """The Newton step δ (d,) (latent units) on the corral ``lam`` (k,), dropping pieces whose weight turns negative."""
    delta, lam_new, t = kkt_step(p, lam, 1e-10 * curv)
    # active set: a piece whose weight turned negative leaves the corral
    for _ in range(len(lam)):
        if np.all(lam_new >= -1e-12):
            break
        lam = np.where(lam_new < 0, 0.0, lam_new)
        if lam.sum() <= 0:
            break
        lam = lam / lam.sum()
        delta, lam_new, t = kkt_step(p, lam, 1e-10 * curv)
    return delta


def _newton_steps(st: _RefineState, active: np.ndarray, pcs: dict, it: int, mode: str, sc: Any,
                  max_step_rel: float) -> tuple[list, dict]:
    """Capped Newton steps (row -> (d,), latent units) of the active rows; records stationarity, pieces, corral."""
    L = sc.length
    steps, still = {}, []
    for c in active:
        st.n_iter[c] = it + 1
        p = pcs[int(c)]
        if p is None:
            st.reason[c] = "non-finite energy or gradient near the point"
            continue
        _, lam = min_norm_point(p.grad)
        x = lam @ p.grad
        st.stat[c], st.npieces[c], st.lam[c], st.pieces[c] = float(np.linalg.norm(x)), len(p), lam, p
        st.focus[c] = smooth_basis(p, lam)[1]
        hs = p.hess[:1] if p.hess.strides[0] == 0 else p.hess
        curv = max(float(np.max(np.abs(hs))) if hs.size else 0.0, sc.sigma_E / L**2)
        delta = _corral_newton(p, lam, curv)
        # a minimum may be approached from afar; a saddle must not be left for the minimum next to it
        cap = max(4.0 * st.rho[c], max_step_rel * L) if mode == "minimum" else 4.0 * st.rho[c]
        nd = float(np.linalg.norm(delta))
        if not np.isfinite(nd):
            st.reason[c] = "the Newton system of the pieces is singular"
            continue
        if nd > cap:
            delta = delta * (cap / nd)
        steps[int(c)] = delta
        still.append(int(c))
    return still, steps


def _trial_points(land: "Landscape", st: _RefineState, still: np.ndarray, steps: dict,
                  mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps (n, d), trial points (n, d), U there (n,) nats); for minima, steps raising U are halved."""
    D = np.stack([steps[c] for c in still])
    zt = st.z[still] + D
    et = to_numpy(land.energy(zt))
    st.n_evals += len(still)
    if mode == "minimum":
        # a step may not raise U: halve it (at most 30 times) where it does
        bad = ~(et <= st.energy[still] + st.e_floor[still])
        for _ in range(30):
            if not bad.any():
                break
            D[bad] *= 0.5
            zt[bad] = st.z[still][bad] + D[bad]
            et[bad] = to_numpy(land.energy(zt[bad]))
            st.n_evals += int(bad.sum())
            bad = ~(et <= st.energy[still] + st.e_floor[still])
        D[bad] = 0.0
        zt[bad] = st.z[still][bad]
        et[bad] = st.energy[still][bad]
    return D, zt, et


def _accept_steps(st: _RefineState, still: np.ndarray, D: np.ndarray, zt: np.ndarray, et: np.ndarray, mode: str,
                  gtol: float, xtol_rel: float, rho_min: float, max_step_rel: float, ns0: int, L: float) -> np.ndarray:
    """Move rows ``still`` to zt (n, d), mark converged ones, adapt radii and counts; returns rows (m,) left."""
    fin = np.isfinite(et)
    nxt = []
    for r, c in enumerate(still):
        if not fin[r]:
            st.reason[c] = "the refined point has a non-finite energy"
            continue
        step = float(np.linalg.norm(D[r]))
        gain = st.energy[c] - et[r]
        st.z[c], st.energy[c] = zt[r], et[r]
        if step > 1e-3 * st.rho[c]:       # the point moved: samples around the old one no longer apply
            st.buf[c] = None
        small = step <= xtol_rel * L * (1.0 + float(np.linalg.norm(st.z[c])) / L)
        # a minimum may also be done when the point is stationary and steps no longer lower U beyond round-off
        # (they wander along directions where U is flat to second order)
        flat = mode == "minimum" and gain <= st.e_floor[c]
        if st.stat[c] <= gtol and (small or flat):
            st.converged[c] = True
            continue
        if step == 0.0:
            # no acceptable step at this sampling: look wider, with more samples
            st.ns[c] = min(2 * st.ns[c], 16 * ns0)
            st.rho[c] = min(10 * st.rho[c], max_step_rel * L)
        else:
            st.rho[c] = float(np.clip(4.0 * step, rho_min, min(st.rho[c] * 4.0, max_step_rel * L)))
        nxt.append(c)
    return np.array(nxt, dtype=int)


def _final_pieces(land: "Landscape", st: _RefineState, rng: np.random.Generator, ns0: int, rho_min: float,
                  gtol: float) -> None:
    """Re-sample pieces at converged points (up to 4 tries, 2x samples); unmark those not within 10 gtol."""
    # final pieces at the converged points (the step moved them after the last sample)
    # (a piece touching the point in a thin wedge may have been missed: up to three more tries with 2x samples)
    todo = np.flatnonzero(st.converged)
    n = ns0
    for attempt in range(4):
        if not len(todo):
            break
        got, ne, nh = sample_pieces(land, st.z[todo], np.maximum(st.rho[todo], rho_min), n, rng,
                                    [st.focus[c] for c in todo])
        st.n_evals += ne
        st.n_hess += nh
        retry = []
        for c, p in zip(todo, got):
            if p is None:
                st.converged[c] = False
                st.reason[c] = "non-finite energy or gradient near the refined point"
                continue
            _, lam = min_norm_point(p.grad)
            s = float(np.linalg.norm(lam @ p.grad))
            if st.pieces[c] is None or s <= st.stat[c] or len(p) >= st.npieces[c]:
                st.stat[c], st.npieces[c], st.lam[c], st.pieces[c] = s, len(p), lam, p
            if st.stat[c] > 10 * gtol:
                retry.append(c)
                st.focus[c] = smooth_basis(p, lam)[1]
        todo = np.array(retry, dtype=int)
        n *= 2
    for c in todo:
        st.converged[c] = False
        st.reason[c] = f"not stationary after refinement (minimal-norm gradient {st.stat[c]:.3g})"


def refine(land: "Landscape", z0: Any, mode: str = "minimum", *, radius: float | np.ndarray | None = None,
           n_samples: int | None = None, max_iter: int = 40, xtol_rel: float = 1e-11, gtol: float | None = None,
           radius_min_rel: float = 1e-8, max_step_rel: float = 0.1, seed: int = 0) -> KinkPoints:
    """Refine points z0 (C, d) to stationary points of a piecewise-smooth U (see the module docstring).

    Args:
        land: the landscape.
        z0: (C, d) starting points (descent end points for minima, climbing images for saddles).
        mode: ``"minimum"`` (steps must not raise U; a step that does is halved) or ``"saddle"`` (any stationary
            point; the model's own consistency decides).
        radius: first sampling radius (latent units; scalar or (C,)); default 1e-4 × the latent length scale.
        n_samples: samples per point and iteration (default 4d + 8, at least 32; doubled when no progress); half
            of them go along the smooth directions T of the last corral, where unseen pieces must touch the point.
        max_iter: iterations at most.
        xtol_rel: converged when the step is below this × the length scale and the point is stationary.
        gtol: stationarity tolerance (nats per latent unit); default 1e-8 σ_E/σ_z.
        radius_min_rel: smallest sampling radius, × the length scale.
        max_step_rel: steps are capped at max(4 × radius, this × length) (a trust region).
        seed: seeds the samples.

    Returns:
        :class:`KinkPoints`.
    """
    if mode not in ("minimum", "saddle"):
        raise BadArgumentError(f"unknown mode {mode!r}; use 'minimum' or 'saddle'")
    d = land.dim
    sc = land.scales()
    L = sc.length
    gtol = 1e-8 * sc.sigma_E / L if gtol is None else float(gtol)
    rho_min = radius_min_rel * L
    ns0 = max(32, 4 * d + 8) if n_samples is None else int(n_samples)
    rng = np.random.default_rng(seed)
    st, active = _refine_start(land, z0, radius, ns0, sc)
    for it in range(max_iter):
        if not len(active) or expired():
            break
        # one batch of samples for every active point (rows with the same sample count together)
        pcs = _sample_active(land, st, active, rng, ns0)
        still, steps = _newton_steps(st, active, pcs, it, mode, sc, max_step_rel)
        if not still:
            active = np.zeros(0, dtype=int)
            break
        still = np.array(still)
        D, zt, et = _trial_points(land, st, still, steps, mode)
        active = _accept_steps(st, still, D, zt, et, mode, gtol, xtol_rel, rho_min, max_step_rel, ns0, L)
    for c in active:
        st.reason[c] = (f"not converged in {max_iter} iterations (stationarity {st.stat[c]:.3g}, "
                        f"{st.npieces[c]} pieces at radius {st.rho[c]:.3g})")
    _final_pieces(land, st, rng, ns0, rho_min, gtol)
    return KinkPoints(z=st.z, energy=st.energy, converged=st.converged, stationarity=st.stat, n_pieces=st.npieces,
                      lam=st.lam, pieces=st.pieces, radius=st.rho, n_iter=st.n_iter, n_evals=st.n_evals,
                      n_hessians=st.n_hess, reason=st.reason)


def replace_rows(dst: Any, rows: np.ndarray, src: Any) -> None:
    """Overwrite rows ``rows`` of a :class:`KinkPoints` or :class:`LocalStructure` ``dst`` with the rows of ``src``
    (same type, ``len(rows)`` rows), field by field; counters are added."""
    import dataclasses
    for f in dataclasses.fields(dst):
        a, b = getattr(dst, f.name), getattr(src, f.name)
        if isinstance(a, np.ndarray):
            a[rows] = b
        elif isinstance(a, list):
            for r, v in zip(rows, b):
                a[r] = v
        elif isinstance(a, int):
            setattr(dst, f.name, a + b)


# ---------------------------------------------------------------------------------------------------------- structure
@dataclass
class LocalStructure:
    """Local structure of refined stationary points (numpy, C rows; see the module docstring).

    Attributes:
        kind: per point ``"smooth"`` (one piece) or ``"kink"``.
        n_sharp: (C,) number of sharp directions m (dimension of V).
        index: (C,) number of independent downhill directions: 0 at a minimum, 1 at a transition state; -1 when
            undetermined (the point did not converge, or U falls in one V direction only: not stationary).
        eigenvalues: (C, d) ascending: the reduced Hessian's eigenvalues along the smooth directions T, +inf for
            each sharp direction along which U rises, -inf for the sharp unstable direction of a ridge saddle
            (nats per latent unit²). For a smooth point, the Hessian's eigenvalues.
        vectors: (C, d, d) unit eigenvectors (columns) in the order of ``eigenvalues``: reduced-Hessian eigenvectors
            in T for the finite ones, an orthonormal basis of V for the sharp ones.
        push: (C, 2, d) for index-1 points, the two directions that lead downhill to either side (unit vectors;
            opposite for a smooth saddle); zeros otherwise.
        descent: (C, d) for points that are not minima, a unit direction along which U falls (zeros otherwise).
        is_minimum: (C,) certified minima: converged, index 0, and no probe direction lowers U.
        probe_drop: (C,) the largest decrease of U seen over the probes, nats (0 or below round-off at a minimum).
        n_evals: rows evaluated.
    """

    kind: list
    n_sharp: np.ndarray
    index: np.ndarray
    eigenvalues: np.ndarray
    vectors: np.ndarray
    push: np.ndarray
    descent: np.ndarray
    is_minimum: np.ndarray
    probe_drop: np.ndarray
    n_evals: int = 0


def _sphere_directions(m: int, rng: np.random.Generator) -> np.ndarray:
    """Directions (n, m) covering the unit sphere of R^m: ±1 for m = 1, 72 angles for m = 2, a Fibonacci lattice of
    400 points for m = 3, 120 m random ones above."""
    if m == 1:
        return np.array([[1.0], [-1.0]])
    if m == 2:
        a = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        return np.stack([np.cos(a), np.sin(a)], axis=1)
    if m == 3:
        n = 400
        i = np.arange(n) + 0.5
        phi = np.arccos(1 - 2 * i / n)
        th = np.pi * (1 + 5**0.5) * i
        return np.stack([np.cos(th) * np.sin(phi), np.sin(th) * np.sin(phi), np.cos(phi)], axis=1)
    w = rng.standard_normal((120 * m, m))
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def _circle_with_kinks(w: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Directions on the unit circle (n, 2), sorted by angle: the given ones, every direction along which two of the
    pieces' gradients G (k, 2) agree (where U's directional derivative can change its formula: sector borders), a
    milliradian to either side of each, and the midpoint of every gap, so that a thin uphill or downhill sector
    between two borders cannot be stepped over."""
    ang = [np.arctan2(w[:, 1], w[:, 0])]
    for i in range(len(G)):
        for j in range(i + 1, len(G)):
            dg = G[i] - G[j]
            if np.linalg.norm(dg) == 0:
                continue
            b = np.arctan2(dg[1], dg[0]) + np.pi / 2              # the directions orthogonal to dg
            ang.append(np.array([b, b + np.pi, b - 1e-3, b + 1e-3, b + np.pi - 1e-3, b + np.pi + 1e-3]))
    a = np.sort(np.mod(np.concatenate(ang), 2 * np.pi))
    gaps = np.diff(np.concatenate([a, [a[0] + 2 * np.pi]]))
    a = np.sort(np.concatenate([a, a + 0.5 * gaps]))
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def _caps(w: np.ndarray, down: np.ndarray) -> list[np.ndarray]:
    """Connected groups of the downhill directions ``w[down]`` on the sphere: runs of consecutive directions on a
    circle (m = 2, directions sorted by angle), else neighbours closer than 2.5 × the typical spacing."""
    idx = np.flatnonzero(down)
    if len(idx) == 0:
        return []
    if w.shape[1] == 1:
        return [np.array([i]) for i in idx]
    if w.shape[1] == 2:
        n = len(w)
        if len(idx) == n:
            return [idx]
        start = int(np.flatnonzero(~down)[0])                        # walk the circle from an uphill direction
        runs, cur = [], []
        for k in range(1, n + 1):
            i = (start + k) % n
            if down[i]:
                cur.append(i)
            elif cur:
                runs.append(np.array(cur))
                cur = []
        if cur:
            runs.append(np.array(cur))
        return runs
    from scipy.spatial import cKDTree
    tree = cKDTree(w)
    dist, _ = tree.query(w, k=2)
    spacing = float(np.median(dist[:, 1]))
    pairs = cKDTree(w[idx]).query_pairs(2.5 * spacing, output_type="ndarray")
    lab = _components(len(idx), pairs[:, 0], pairs[:, 1]) if len(pairs) else np.arange(len(idx))
    return [idx[lab == c] for c in np.unique(lab)]


def _sharp_plan(kp: KinkPoints, c: int, sc: Any, rng: np.random.Generator, ls: LocalStructure) -> tuple:
    """(c, V (d, m), T (d, d-m), reduced-Hessian eigenpairs (d-m,), (d-m, d-m), V directions (n, m)) of point c."""
    p, lam = kp.pieces[c], kp.lam[c]
    touch = touching(p, kp.energy[c], kp.radius[c], sc.sigma_E) | (lam > 0)
    V, T = smooth_basis(p, touch.astype(float))
    W = np.einsum("k,kij->ij", lam, p.hess)
    WT = T.T @ (0.5 * (W + W.T)) @ T
    eT, vT = np.linalg.eigh(WT) if T.shape[1] else (np.zeros(0), np.zeros((0, 0)))
    m = V.shape[1]
    ls.n_sharp[c] = m
    if m:
        ls.kind[c] = "kink"
    wv = _sphere_directions(m, rng) if m else np.zeros((0, 0))
    if m == 2:
        wv = _circle_with_kinks(wv, p.grad[touch] @ V)
    return c, V, T, eT, vT, wv


def _sharp_derivatives(land: "Landscape", kp: KinkPoints, plan: list, eps: float, ls: LocalStructure) -> dict:
    """Forward-difference derivatives of U (point -> (n,), nats per latent unit) along V directions."""
    pts, owner = [], []
    for c, V, T, eT, vT, wv in plan:
        if len(wv):
            pts.append(kp.z[c][None, :] + eps * (wv @ V.T))
            owner.append(c)
    phis = {}
    if pts:
        allp = np.vstack(pts)
        e = to_numpy(land.energy(allp))
        ls.n_evals += len(allp)
        start = 0
        for c, blk in zip(owner, pts):
            phis[c] = (e[start:start + len(blk)] - kp.energy[c]) / eps
            start += len(blk)
    return phis


def _push_and_descent(ls: LocalStructure, c: int, V: np.ndarray, T: np.ndarray, vT: np.ndarray, wv: np.ndarray,
                      caps: list, v_index: int, n_negT: int, phi: np.ndarray | None) -> None:
    """The push-off directions (2, d) of an index-1 point c and a descent direction (d,) where c is no minimum."""
    m = V.shape[1]
    if ls.index[c] == 1:
        if v_index == 1:
            # the middle of each downhill cap (not its steepest direction, which may run exactly along a
            # kink, where the gradient is not that of either side)
            for side, cap in enumerate(caps[:2]):
                mid = wv[cap].mean(axis=0)
                mid = mid / np.linalg.norm(mid) if np.linalg.norm(mid) > 1e-12 else wv[cap[0]]
                ls.push[c, side] = V @ mid
        else:
            u = T @ vT[:, 0]
            ls.push[c, 0], ls.push[c, 1] = u, -u
    if ls.index[c] != 0:
        if m and v_index != 0 and len(caps):
            k = caps[0][np.argmin(phi[caps[0]])]
            ls.descent[c] = V @ wv[k]
        elif n_negT:
            ls.descent[c] = T @ vT[:, 0]


def _classify(ls: LocalStructure, kp: KinkPoints, entry: tuple, phis: dict, sc: Any, L: float,
              flat_tol: float) -> None:
    """Index, eigenvalues (d,) nats per latent unit², vectors (d, d), push-offs and descent of one plan entry."""
    c, V, T, eT, vT, wv = entry
    d = kp.z.shape[1]
    m = V.shape[1]
    n_negT = int((eT < -flat_tol).sum())
    v_index, caps = 0, []
    if m:
        phi = phis[c]
        gscale = float(np.max(np.linalg.norm(kp.pieces[c].grad, axis=1))) + sc.sigma_E / L
        down = phi < -1e-6 * gscale
        caps = _caps(wv, down)
        v_index = {0: 0, 2: 1}.get(len(caps), -1 if len(caps) == 1 else 2)
    ls.index[c] = -1 if v_index < 0 else n_negT + v_index
    sharp = np.full(m, np.inf)
    if v_index == 1:
        sharp[0] = -np.inf
    allv = np.concatenate([eT, sharp])
    order = np.argsort(allv, kind="stable")
    ls.eigenvalues[c] = allv[order]
    ls.vectors[c] = np.hstack([T @ vT if T.shape[1] else np.zeros((d, 0)), V])[:, order]
    _push_and_descent(ls, c, V, T, vT, wv, caps, v_index, n_negT, phis.get(c))


def _probe_directions(kp: KinkPoints, c: int, rng: np.random.Generator, npr: int, sc: Any) -> np.ndarray:
    """Unit probe directions (2n, d) around point c: random, the pieces' gradients, V and T, ± each."""
    d = kp.z.shape[1]
    p = kp.pieces[c]
    dirs = [rng.standard_normal((npr, d))]
    G = p.grad[:64]
    if len(G) > 1:
        dirs.append(G - G.mean(axis=0))                # across the kinks between the pieces
    dirs.append(G)
    touch = touching(p, kp.energy[c], kp.radius[c], sc.sigma_E) | (kp.lam[c] > 0)
    V, T = smooth_basis(p, touch.astype(float))
    dirs.append(np.hstack([V, T]).T)
    D = np.vstack(dirs)
    D = D[np.linalg.norm(D, axis=1) > 0]
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return np.vstack([D, -D])


def _certify_minima(land: "Landscape", kp: KinkPoints, ls: LocalStructure, cand: np.ndarray,
                    rng: np.random.Generator, sc: Any, probe_rel: float, flat_tol: float, n_probes: int | None) -> None:
    """Probe index-0 rows ``cand`` (n,) at 3 radii: minimum flags, largest U drop (nats), descent (d,)."""
    d = kp.z.shape[1]
    L = sc.length
    npr = max(64, 8 * d) if n_probes is None else int(n_probes)
    radii = probe_rel * L * np.array([1.0, 1e-2, 1e-4])
    blocks = [_probe_directions(kp, c, rng, npr, sc) for c in cand]
    pts = np.vstack([(kp.z[c][None, None, :] + radii[:, None, None] * D[None, :, :]).reshape(-1, d)
                     for c, D in zip(cand, blocks)])
    e = to_numpy(land.energy(pts))
    ls.n_evals += len(pts)
    start = 0
    for c, D in zip(cand, blocks):
        n = len(radii) * len(D)
        de = (e[start:start + n] - kp.energy[c]).reshape(len(radii), len(D))
        start += n
        tol = 1e-9 * (sc.sigma_E + abs(kp.energy[c])) + 0.5 * flat_tol * radii[:, None] ** 2
        bad = ~(de >= -tol)
        ls.probe_drop[c] = float(max(0.0, -np.nanmin(np.where(np.isfinite(de), de, -np.inf))))
        if bad.any():
            r, j = np.unravel_index(np.argmin(np.where(np.isfinite(de), de / radii[:, None], -np.inf)), de.shape)
            ls.descent[c] = D[j]
            ls.index[c] = -1
        else:
            ls.is_minimum[c] = True


def local_structure(land: "Landscape", kp: KinkPoints, flat_tol: float = 0.0, probe_rel: float = 1e-3,
                    n_probes: int | None = None, seed: int = 0) -> LocalStructure:
    """Index, curvature, push-off directions and the minimum certificate of refined points (module docstring).

    Args:
        land: the landscape; kp: output of :func:`refine`.
        flat_tol: eigenvalues within ± this are flat (nats per latent unit²).
        probe_rel: largest probe radius, × the latent length scale (probes at 1, 1e-2 and 1e-4 of it).
        n_probes: random probe directions per point (default max(64, 8d)), besides the structured ones.
        seed: seeds the probe directions.
    """
    C, d = kp.z.shape
    sc = land.scales()
    L = sc.length
    rng = np.random.default_rng([seed, 11])
    ls = LocalStructure(kind=["smooth"] * C, n_sharp=np.zeros(C, dtype=int), index=np.full(C, -1),
                        eigenvalues=np.full((C, d), np.nan), vectors=np.zeros((C, d, d)), push=np.zeros((C, 2, d)),
                        descent=np.zeros((C, d)), is_minimum=np.zeros(C, dtype=bool), probe_drop=np.zeros(C),
                        n_evals=0)
    eps = 1e-7 * L
    # 1. sharp (V) structure: directional derivatives along a fine set of V directions, all points in one batch
    plan = [_sharp_plan(kp, c, sc, rng, ls) for c in range(C) if kp.converged[c] and kp.pieces[c] is not None]
    phis = _sharp_derivatives(land, kp, plan, eps, ls)
    for entry in plan:
        _classify(ls, kp, entry, phis, sc, L, flat_tol)
    # 2. probes for the candidates of index 0
    cand = np.flatnonzero(ls.index == 0)
    if len(cand):
        _certify_minima(land, kp, ls, cand, rng, sc, probe_rel, flat_tol, n_probes)
    return ls


# ---------------------------------------------------------------------------------------------------------- ridges
def _line_values(land: "Landscape", z: torch.Tensor, tau: torch.Tensor, sign: torch.Tensor, r: torch.Tensor,
                 t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(U (n,) nats, uphill directional derivative sign·∇U·τ (n,)) at z + sign t τ for rows r (n,) of the lines."""
    e, g = land.energy_and_grad(z[r] + (sign[r] * t)[:, None] * tau[r])
    return e, (g * tau[r]).sum(1) * sign[r]


def _bracket_maxima(land: "Landscape", z: torch.Tensor, tau: torch.Tensor, span: torch.Tensor,
                    max_expand: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sign (B,), bracket ends lo, hi (B,) latent units, ok (B,)) from doubling steps of span/4 uphill."""
    B, d = z.shape
    e0, g0 = land.energy_and_grad(z)
    D0 = (g0 * tau).sum(1)
    sign = torch.where(D0 >= 0, 1.0, -1.0).to(z.dtype)
    lo = torch.zeros(B, dtype=z.dtype, device=z.device)
    hi = torch.full((B,), float("nan"), dtype=z.dtype, device=z.device)
    ok = torch.isfinite(e0) & torch.isfinite(g0).all(1)
    step = 0.25 * span
    pend = torch.nonzero(ok).flatten()
    s = step.clone()
    for _ in range(max_expand):
        if not len(pend):
            break
        sp = sign[pend] * s[pend]
        e, g = land.energy_and_grad(z[pend] + sp[:, None] * tau[pend])
        fin = torch.isfinite(e) & torch.isfinite(g).all(1)
        Dn = (g * tau[pend]).sum(1) * sign[pend]
        turned = fin & (Dn <= 0)
        hi[pend[turned]] = s[pend][turned]
        ok[pend[~fin]] = False
        moving = fin & ~turned
        lo[pend[moving]] = s[pend][moving]
        s[pend[moving]] = 2 * s[pend][moving]
        pend = pend[moving]
    ok[pend] = False                                           # no maximum within the span
    ok &= torch.isfinite(hi)
    return sign, lo, hi, ok


def _bracket_candidates(a: torch.Tensor, b: torch.Tensor, e_lo: torch.Tensor, d_lo: torch.Tensor,
                        e_hi: torch.Tensor, d_hi: torch.Tensor, xtol: float) -> torch.Tensor:
    """Trial positions (n, 6), latent units, in [a, b] (n,): tangent and secant estimates ± 1e-3 bracket."""
    den = d_lo - d_hi
    safe = torch.where(den > 0, den, torch.ones_like(den))
    w = torch.clamp(1e-3 * (b - a), min=0.25 * xtol)
    cands = []
    for t in ((e_hi - e_lo + d_lo * a - d_hi * b) / safe, a + d_lo * (b - a) / safe):
        t = torch.where((den > 0) & (t > a) & (t < b), t, 0.5 * (a + b))
        cands += [t, torch.maximum(t - w, a + 0.5 * w), torch.minimum(t + w, b - 0.5 * w)]
    return torch.stack(cands, dim=1)                                   # (n, 6)


def _first_turn(a: torch.Tensor, b: torch.Tensor, T: torch.Tensor, eT: torch.Tensor, dT: torch.Tensor,
                ends: tuple) -> tuple[torch.Tensor, ...]:
    """New brackets (lo, hi, U and D at both ends; each (n,)): the first sign turn of D among a, T (n, 6), b."""
    e_lo, d_lo, e_hi, d_hi = ends
    # the new bracket: the first place, going up from lo, where D turns from positive to non-positive (D need not
    # be monotone: a line may cross several ridges; the one nearest lo is kept)
    P = torch.cat([a[:, None], T, b[:, None]], dim=1)                # (n, 8)
    EP = torch.cat([e_lo[:, None], eT, e_hi[:, None]], dim=1)
    DP = torch.cat([d_lo[:, None], dT, d_hi[:, None]], dim=1)
    order = P.argsort(dim=1)
    P, EP, DP = P.gather(1, order), EP.gather(1, order), DP.gather(1, order)
    turn = (DP[:, :-1] > 0) & (DP[:, 1:] <= 0)
    k = turn.to(torch.int8).argmax(dim=1)[:, None]                  # first turn (one exists: D(a)>0>=D(b))
    return (P.gather(1, k)[:, 0], P.gather(1, k + 1)[:, 0], EP.gather(1, k)[:, 0], DP.gather(1, k)[:, 0],
            EP.gather(1, k + 1)[:, 0], DP.gather(1, k + 1)[:, 0])


def _shrink_brackets(land: "Landscape", z: torch.Tensor, tau: torch.Tensor, sign: torch.Tensor, lo: torch.Tensor,
                     hi: torch.Tensor, ok: torch.Tensor, xtol: float, max_bisect: int) -> None:
    """Shrink the brackets [lo, hi] (B,) (latent units, in place) of the rows ``ok`` around the maximum to ``xtol``."""
    # shrink [lo, hi] (D > 0 at lo, D <= 0 at hi). Each iteration evaluates, in one call, two estimates of the
    # maximum -- where the tangent lines of U at both ends meet (exact at a kink between linear pieces) and the
    # secant root of D (exact at a smooth quadratic maximum) -- and each ± a thousandth of the bracket, so that the
    # bracket collapses around whichever estimate is right (the midpoint replaces an estimate outside the bracket).
    rows = torch.nonzero(ok).flatten()
    if len(rows):
        n = len(rows)
        e2, d2 = _line_values(land, z, tau, sign, torch.cat([rows, rows]), torch.cat([lo[rows], hi[rows]]))
        e_lo, d_lo, e_hi, d_hi = e2[:n], d2[:n], e2[n:], d2[n:]
    for _ in range(max_bisect):
        if not len(rows):
            break
        a, b = lo[rows], hi[rows]
        n = len(rows)
        T = _bracket_candidates(a, b, e_lo, d_lo, e_hi, d_hi, xtol)
        eT, dT = _line_values(land, z, tau, sign, rows.repeat_interleave(6), T.reshape(-1))
        eT, dT = eT.reshape(n, 6), dT.reshape(n, 6)
        new_lo, new_hi, e_lo, d_lo, e_hi, d_hi = _first_turn(a, b, T, eT, dT, (e_lo, d_lo, e_hi, d_hi))
        lo[rows], hi[rows] = new_lo, new_hi
        keep = (hi[rows] - lo[rows]) > xtol
        rows, e_lo, d_lo, e_hi, d_hi = rows[keep], e_lo[keep], d_lo[keep], e_hi[keep], d_hi[keep]


def _ridge_gradient(land: "Landscape", z: torch.Tensor, tau: torch.Tensor, sign: torch.Tensor, zr: torch.Tensor,
                    s_star: torch.Tensor, g: torch.Tensor, ok: torch.Tensor, xtol: float) -> torch.Tensor:
    """Gradient (B, d) of R(y) = max_s U(y + s τ) at the ridge points zr (B, d), nats per latent unit."""
    # the gradient of the ridge function R(y) = max_s U(y + s τ): at a kink the combination of the gradients just
    # before and just after the maximum whose component along τ vanishes (implicit differentiation of the kink's
    # position); the same as ∇U at a smooth maximum
    r = torch.nonzero(ok).flatten()
    if len(r):
        eps = (1e3 * xtol + 1e-9 * (z[r].norm(dim=1) + s_star[r].abs()))[:, None] * tau[r]
        g2 = land.energy_and_grad(torch.cat([zr[r] - sign[r, None] * eps, zr[r] + sign[r, None] * eps]))[1]
        gl, gh = g2[:len(r)], g2[len(r):]
        dl, dh = (gl * tau[r]).sum(1), (gh * tau[r]).sum(1)
        den = dl - dh
        lam = torch.where(den.abs() > 0, -dh / torch.where(den.abs() > 0, den, torch.ones_like(den)),
                          torch.full_like(den, 0.5)).clamp(0, 1)
        g = g.clone()
        g[r] = lam[:, None] * gl + (1 - lam)[:, None] * gh
    return g


def ridge_points(land: "Landscape", z: torch.Tensor, tau: torch.Tensor, span: torch.Tensor, xtol: float,
                 max_expand: int = 6, max_bisect: int = 60) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                      torch.Tensor]:
    """The nearest maximum of U along each line z + s τ (rows of (B, d) tensors): expanding steps of span/4 from
    s = 0 uphill until the directional derivative ∇U·τ changes sign, then bisection on that sign to ``xtol``
    (exact on a kink, where the derivative jumps).

    Returns:
        (points (B, d), U there (B,), the gradient of the ridge function there (B, d) (∇U at a smooth maximum; at a
        kink, the combination of the two one-sided gradients whose component along τ vanishes), ok (B,): a maximum
        was bracketed within ``max_expand`` doublings and every value met was finite).
    """
    sign, lo, hi, ok = _bracket_maxima(land, z, tau, span, max_expand)
    _shrink_brackets(land, z, tau, sign, lo, hi, ok, xtol, max_bisect)
    t_fin = 0.5 * (lo + torch.nan_to_num(hi))
    s_star = torch.where(ok, sign * t_fin, torch.zeros_like(lo))
    zr = z + s_star[:, None] * tau
    e, g = land.energy_and_grad(zr)
    ok &= torch.isfinite(e) & torch.isfinite(g).all(1)
    g = _ridge_gradient(land, z, tau, sign, zr, s_star, g, ok, xtol)
    return zr, e, g, ok


def ridge_minimum(land: "Landscape", z0: np.ndarray, tau: np.ndarray, span: np.ndarray, *,
                  gtol: float | None = None, max_iter: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Saddles as the lowest points of ridges: minimise R(y) = max_s U(y + s τ) over the hyperplane through each
    z0 (C, d) orthogonal to its direction τ (C, d) (e.g. the band tangent at the climbing image), i.e. maximise
    along the band's direction and minimise in all others, both non-smoothly.

    R is minimised by non-smooth BFGS (:func:`energyscope.optim.minimize_nonsmooth`) with the Danskin gradient
    P⊥∇U at the ridge point; each evaluation of R is a line maximisation by :func:`ridge_points` within ``span``
    (C,) of the line's anchor.

    Returns:
        (ridge points (C, d) at the minimum of R, their U (C,), ok (C,)).
    """
    from energyscope.optim import minimize_nonsmooth
    sc = land.scales()
    L = sc.length
    gtol = 1e-9 * sc.sigma_E / L if gtol is None else gtol
    xtol = 1e-13 * L
    Z0 = land.as_tensor(z0)
    T = land.as_tensor(tau)
    T = T / T.norm(dim=1, keepdim=True).clamp_min(torch.finfo(T.dtype).tiny)
    S = torch.as_tensor(np.asarray(span, dtype=np.float64), device=Z0.device, dtype=Z0.dtype)

    def fun(y: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = T[rows]
        _, e, g, ok = ridge_points(land, y, t, S[rows], xtol)
        g = g - (g * t).sum(1, keepdim=True) * t
        nan = torch.full_like(e, float("nan"))
        return torch.where(ok, e, nan), torch.where(ok[:, None], g, torch.full_like(g, float("nan")))

    # the ridge point only has to come within the refinement's first sampling radius (1e-5 L) of the saddle
    res = minimize_nonsmooth(fun, Z0, gtol=gtol, xtol=1e-8 * L, max_iter=max_iter, max_step=0.05 * L,
                             indexed=True)
    zr, e, _, ok = ridge_points(land, res.z, T, S, xtol)
    ok &= res.finite
    lost = torch.nonzero(~ok).flatten()
    if len(lost):   # the minimisation lost the ridge: fall back to the ridge point on the starting line
        z1, e1, _, ok1 = ridge_points(land, Z0[lost], T[lost], S[lost], xtol)
        zr, e, ok = zr.clone(), e.clone(), ok.clone()
        zr[lost], e[lost], ok[lost] = z1, e1, ok1
    return to_numpy(zr), to_numpy(e), to_numpy(ok)


__all__ = ["min_norm_point", "Pieces", "group_pieces", "kkt_step", "KinkPoints", "sample_pieces", "smooth_basis", "touching",
           "refine", "replace_rows", "LocalStructure", "local_structure", "ridge_points", "ridge_minimum"]
