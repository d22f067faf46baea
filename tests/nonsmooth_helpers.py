"""Reference answers for non-smooth landscapes, computed WITHOUT energyscope's own methods.

A two-hidden-layer LeakyReLU MLP E(z) plus the base ½‖z‖² is piecewise quadratic: for a fixed pattern of neuron
signs E is affine, E(z) = c·z + c0. Its local minima are found here by a fine grid plus Nelder–Mead restarted until it
stops moving (scipy; Nelder–Mead may stall near a kink), and each is then made exact by enumerating the activation
patterns of the neurons that are (nearly) zero there: for every choice of at most d of them held at zero and signs
for the rest, U restricted to that kink is a quadratic with linear constraints, solved in closed form; a solution is
kept when its sign pattern is consistent and U does not decrease on dense circles around it at radii 1e-4 … 1e-8.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.ndimage import minimum_filter
from scipy.optimize import minimize as sp_minimize
from torch import nn


def lrelu_mlp(seed: int, width: int = 32, scale: float = 2.5, out_scale: float = 0.3, dim: int = 2,
              slope: float = 0.2) -> nn.Sequential:
    """A random Linear-LeakyReLU-Linear-LeakyReLU-Linear energy net (N, dim) -> (N, 1) in float64."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(dim, width), nn.LeakyReLU(slope), nn.Linear(width, width), nn.LeakyReLU(slope),
                        nn.Linear(width, 1)).double()
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 1, generator=g)
                m.weight *= scale / np.sqrt(m.in_features)
                m.bias.normal_(0, 1, generator=g)
        net[4].weight *= out_scale
        net[4].bias.zero_()
    return net


def _parts(net: nn.Sequential):
    W1, b1 = net[0].weight.detach().numpy(), net[0].bias.detach().numpy()
    W2, b2 = net[2].weight.detach().numpy(), net[2].bias.detach().numpy()
    w3, b3 = net[4].weight.detach().numpy()[0], float(net[4].bias.detach().numpy()[0])
    return W1, b1, W2, b2, w3, b3, float(net[1].negative_slope)


def potential(net: nn.Sequential, z: np.ndarray) -> np.ndarray:
    """U(z) = E(z) + ½‖z‖² for z (N, d), plain numpy."""
    W1, b1, W2, b2, w3, b3, a = _parts(net)
    z = np.atleast_2d(z)
    h1 = z @ W1.T + b1
    h1 = np.where(h1 > 0, h1, a * h1)
    h2 = h1 @ W2.T + b2
    h2 = np.where(h2 > 0, h2, a * h2)
    return h2 @ w3 + b3 + 0.5 * (z * z).sum(1)


def _preacts(net, z):
    W1, b1, W2, b2, w3, b3, a = _parts(net)
    a1 = W1 @ z + b1
    a2 = W2 @ np.where(a1 > 0, a1, a * a1) + b2
    return a1, a2


def exact_minimum(net: nn.Sequential, x0: np.ndarray, near: float = 1e-3) -> tuple[np.ndarray, float] | None:
    """The exact local minimum of U within ``near`` of x0 (see the module docstring), or None."""
    W1, b1, W2, b2, w3, b3, al = _parts(net)
    n1, d = W1.shape
    a1, a2 = _preacts(net, x0)
    g1 = np.linalg.norm(W1, axis=1)
    s1_0 = np.where(a1 > 0, 1.0, al)
    g2 = np.linalg.norm(W2 @ (s1_0[:, None] * W1), axis=1)
    J = [("1", k) for k in np.flatnonzero(np.abs(a1) < 10 * near * g1)] + \
        [("2", k) for k in np.flatnonzero(np.abs(a2) < 10 * near * g2)]
    best = None
    for r in range(0, min(d, len(J)) + 1):
        for K in itertools.combinations(J, r):
            rest = [j for j in J if j not in K]
            for signs in itertools.product((1.0, al), repeat=len(rest)):
                s1, s2 = np.where(a1 > 0, 1.0, al), np.where(a2 > 0, 1.0, al)
                for (layer, k), sg in zip(rest, signs):
                    (s1 if layer == "1" else s2)[k] = sg
                A1 = s1[:, None] * W1                        # h1 = s1 * (W1 z + b1)
                M2, m2 = W2 @ A1, W2 @ (s1 * b1) + b2         # a2 = M2 z + m2
                c = (s2 * w3) @ M2                            # ∇E for this pattern
                rows, rhs = [], []
                for layer, k in K:
                    if layer == "1":
                        rows.append(W1[k]); rhs.append(-b1[k])
                    else:                                     # on a1_k = 0 for K's layer-1 neurons, any s1 works
                        rows.append(M2[k]); rhs.append(-m2[k])
                if rows:
                    A, rr = np.array(rows), np.array(rhs)
                    if np.linalg.matrix_rank(A) < len(A):
                        continue
                    mu = np.linalg.solve(A @ A.T, rr + A @ c)
                    z = -c + A.T @ mu
                else:
                    z = -c
                if np.linalg.norm(z - x0) > near:
                    continue
                b1z, b2z = _preacts(net, z)
                on = {(layer, k) for layer, k in K}
                ok = all(abs(b1z[k] if layer == "1" else b2z[k]) < 1e-9 for layer, k in on)
                for (layer, k), sg in zip(rest, signs):
                    v = b1z[k] if layer == "1" else b2z[k]
                    ok &= (v > 0) == (sg == 1.0) and abs(v) > 1e-12
                if not ok or not _is_local_min(net, z):
                    continue
                e = float(potential(net, z[None])[0])
                if best is None or e < best[1]:
                    best = (z, e)
    return best


def _is_local_min(net, z, n: int = 3600) -> bool:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    circle = np.stack([np.cos(a), np.sin(a)], 1)
    e0 = float(potential(net, z[None])[0])
    return all(float((potential(net, z + r * circle) - e0).min()) >= -1e-12 for r in (1e-4, 1e-6, 1e-8))


def reference_minima(net: nn.Sequential, lim: float = 4.0, n: int = 1201) -> tuple[np.ndarray, np.ndarray]:
    """All local minima of U in [-lim, lim]² found from a grid of n² points (positions (K, 2), energies (K,))."""
    xs = np.linspace(-lim, lim, n)
    X, Y = np.meshgrid(xs, xs, indexing="ij")
    P = np.stack([X.ravel(), Y.ravel()], 1)
    E = np.concatenate([potential(net, P[a:a + 200_000]) for a in range(0, len(P), 200_000)]).reshape(n, n)
    loc = E == minimum_filter(E, size=3, mode="nearest")
    loc[0, :] = loc[-1, :] = loc[:, 0] = loc[:, -1] = False
    out = []
    for p in np.stack([X[loc], Y[loc]], 1):
        x = p
        for k in range(40):
            h = 1e-2 * 0.5**k
            r = sp_minimize(lambda v: potential(net, v[None])[0], x, method="Nelder-Mead",
                            options=dict(xatol=1e-13, fatol=1e-15, maxiter=20000, maxfev=40000,
                                         initial_simplex=[x, x + [h, 0], x + [0, h]]))
            moved, x = np.linalg.norm(r.x - x), r.x
            if moved < 1e-13:
                break
        ex = exact_minimum(net, x)
        if ex is not None and all(np.linalg.norm(ex[0] - y) > 1e-7 for y, _ in out):
            out.append(ex)
    out.sort(key=lambda t: t[1])
    return np.array([z for z, _ in out]).reshape(-1, 2), np.array([e for _, e in out])
