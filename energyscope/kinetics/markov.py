"""First-passage quantities of a continuous-time Markov chain on minima, by graph transformation.

The chain is given as the transition network's *branching probabilities* P (P[i, j]: probability that the next jump
from i goes to j; rows sum to 1) and *waiting times* τ (τ[i] = 1 / Σ_j k_ij, mean time spent in i per visit). Both
come from log rates by a row-wise softmax, so rates anywhere in 10⁻³⁰⁰ … 1 give exact probabilities.

Graph transformation (Trygubenko & Wales, J. Chem. Phys. 124, 234110 (2006); Wales, J. Chem. Phys. 130, 204111
(2009)) removes one node x at a time and renormalises its neighbours,

    P'[y, z] = P[y, z] + P[y, x] P[x, z] / (1 − P[x, x]),     τ'[y] = τ[y] + P[y, x] τ[x] / (1 − P[x, x]),

with 1 − P[x, x] computed as Σ_{z≠x} P[x, z] (the Grassmann–Taksar–Heyman trick), so that only sums and products of
non-negative numbers occur: no cancellation, whatever the spread of the rates. This is Gaussian elimination on the
first-passage equations; keeping each removed node's row and back-substituting gives the mean first-passage times
(or committors) from *every* node in one O(N³) pass. Dense arrays: networks up to a few thousand minima.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components
from scipy.special import logsumexp

from energyscope.errors import BadArgumentError


def branching(log_rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Branching probabilities and waiting times from a matrix of log rates.

    Args:
        log_rate: (N, N) log k_ij (rate of jumps i → j, per time unit); ``-inf`` where there is no edge; the
            diagonal is ignored.
    Returns:
        (P, tau): (N, N) branching probabilities (rows sum to 1; a node without exits has a zero row) and (N,)
        waiting times (``inf`` for a node without exits).
    """
    lr = np.array(log_rate, dtype=float, copy=True)
    np.fill_diagonal(lr, -np.inf)
    lsum = logsumexp(lr, axis=1, keepdims=True)  # log total exit rate
    with np.errstate(invalid="ignore"):
        P = np.where(np.isfinite(lsum), np.exp(lr - lsum), 0.0)
    tau = np.exp(-lsum[:, 0])
    return P, tau


def _eliminate(P: np.ndarray, tau: np.ndarray | None, remove: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
    """Remove the nodes of ``remove`` (in that order) by graph transformation; keep each one's row for back-substitution.

    Returns (steps, P, tau) with steps = [(x, row of x at its removal, 1 − P[x, x], tau[x] then)], and the
    transformed P and tau on the nodes left.
    """
    P = P.copy()
    tau = None if tau is None else tau.copy()
    steps = []
    for x in remove:
        row = P[x].copy()
        row[x] = 0.0
        d = row.sum()  # = 1 - P[x, x], without cancellation
        steps.append((x, row, d, None if tau is None else tau[x]))
        ys = np.nonzero(P[:, x])[0]
        ys = ys[ys != x]
        if d > 0 and len(ys):
            c = P[ys, x] / d
            P[ys] += c[:, None] * row[None, :]
            if tau is not None:
                tau[ys] += c * tau[x]
        P[:, x] = 0.0
        P[x] = 0.0
    return steps, P, tau


def reduce(P: np.ndarray, tau: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The chain seen on the nodes of ``keep`` only: every other node removed by graph transformation.

    Mean first-passage times between kept nodes (from a kept node to a set of kept nodes) are the same on the reduced
    chain as on the whole one: removing a node adds its waiting time to those who pass through it. So many
    first-passage computations among a few nodes of a large network cost one elimination of the rest, then small ones.

    Args:
        P, tau: from :func:`branching`.
        keep: (N,) bool mask.
    Returns:
        (P', tau'): (n, n) branching probabilities (with the self-loops the removal leaves on the diagonal) and (n,)
        waiting times on the kept nodes, in their order.
    """
    keep = np.asarray(keep, dtype=bool)
    idx = np.nonzero(keep)[0]
    with np.errstate(over="ignore"):
        _, Pr, tr = _eliminate(P, tau, _elimination_order(P, np.nonzero(~keep)[0]))
    return Pr[np.ix_(idx, idx)], tr[idx]


def mfpt_to(P: np.ndarray, tau: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean first-passage time from every node to the set ``target``.

    Args:
        P, tau: from :func:`branching`.
        target: (N,) bool mask of the absorbing set (non-empty).
    Returns:
        (N,) times in the rates' time unit; 0 on ``target``; ``inf`` from nodes that cannot reach it.
    """
    target = np.asarray(target, dtype=bool)
    if not target.any():
        raise BadArgumentError("mfpt: the target set is empty")
    free = np.nonzero(~target)[0]
    order = _elimination_order(P, free)
    with np.errstate(over="ignore"):  # a time beyond the float range is inf; Kinetics says so
        steps, _, _ = _eliminate(P, tau, order)
    T = np.zeros(len(tau))
    # Back-substitution, last removed first: T_x = (tau_x + sum_z row_x[z] T_z) / (1 - P_xx); rows only point at
    # nodes removed later or at the target (T = 0). A node whose row had lost all its mass cannot reach the target.
    for x, row, d, tx in reversed(steps):
        if d <= 0 or not np.isfinite(tx):
            T[x] = np.inf
            continue
        nz = np.nonzero(row)[0]
        with np.errstate(invalid="ignore", over="ignore"):
            s = tx + float(np.dot(row[nz], T[nz])) if len(nz) else tx
            T[x] = s / d if np.isfinite(s) else np.inf
    return T


def committor(P: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Probability, from every node, of reaching ``target`` before ``source``.

    Args:
        P: (N, N) branching probabilities.
        source, target: (N,) disjoint bool masks (A and B).
    Returns:
        (N,) committor q: 0 on A, 1 on B; NaN on nodes that reach neither.
    """
    source, target = np.asarray(source, dtype=bool), np.asarray(target, dtype=bool)
    if (source & target).any():
        raise BadArgumentError("committor: the two sets overlap")
    free = np.nonzero(~(source | target))[0]
    steps, _, _ = _eliminate(P, None, _elimination_order(P, free))
    q = target.astype(float)
    for x, row, d, _ in reversed(steps):
        q[x] = float(np.dot(row, q)) / d if d > 0 else np.nan
    return q


def _elimination_order(P: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Fewest neighbours first (limits fill-in; any order gives the same answer in exact arithmetic)."""
    if len(nodes) == 0:
        return nodes
    degree = ((P[nodes] > 0) | (P[:, nodes].T > 0)).sum(axis=1)
    return nodes[np.argsort(degree, kind="stable")]


def relaxation_rates(log_rate: np.ndarray) -> tuple[np.ndarray, float]:
    """Eigenvalues of the generator, as positive relaxation rates, slowest first (the zero mode left out).

    The generator of a chain in detailed balance is similar to the symmetric matrix
    S_ij = sqrt(k_ij k_ji) (i ≠ j), S_ii = −Σ_j k_ij, whose eigenvalues ``numpy.linalg.eigvalsh`` finds.

    Args:
        log_rate: (N, N) log k_ij of a chain in detailed balance.
    Returns:
        (rates, resolution): (N − c,) rates (c: the number of connected components, whose zero modes are left out),
        and the absolute accuracy of the eigenvalues (≈ 1e-13 × the largest exit rate). Rates below ``resolution``
        are not resolved by a dense eigen-solver; :class:`~energyscope.kinetics.model.Kinetics` reports them as
        lower bounds on the time.
    """
    lr = np.array(log_rate, dtype=float, copy=True)
    np.fill_diagonal(lr, -np.inf)
    N = len(lr)
    sym = 0.5 * (lr + lr.T)
    with np.errstate(over="ignore"):
        S = np.exp(sym)
    exit_rate = np.exp(logsumexp(lr, axis=1))
    np.fill_diagonal(S, -exit_rate)
    scale = float(exit_rate.max()) if N else 0.0
    if not np.isfinite(scale) or scale == 0.0:
        return np.zeros(0), 0.0
    ev = np.linalg.eigvalsh(S / scale) * scale
    rates = np.sort(-ev)
    n_comp, _ = connected_components(np.isfinite(lr) | np.isfinite(lr.T), directed=False)
    return rates[n_comp:], 1e-13 * scale


__all__ = ["branching", "mfpt_to", "committor", "relaxation_rates"]
