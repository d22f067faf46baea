"""Reference solvers and networks for the kinetics tests: random PATHSAMPLE networks, and an exact grid solve of the
Fokker–Planck generator in 2-D (square-root approximation)."""
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl


def write_random_pathsample(directory, n_minima=30, n_extra=25, spread=8.0, seed=0):
    """A connected random network (a random spanning tree plus extra transition states, some parallel) written as
    min.data / ts.data with random log_vib and point-group orders. ``spread``: energy range (nats), which sets how
    many decades the rates span."""
    rng = np.random.default_rng(seed)
    E = rng.uniform(0, spread, n_minima)
    S = rng.uniform(-3, 3, n_minima)
    order = rng.choice([1, 2, 4], n_minima)
    pairs = [(k, int(rng.integers(0, k))) for k in range(1, n_minima)]
    pairs += [tuple(int(a) for a in rng.choice(n_minima, 2, replace=False)) for _ in range(n_extra)]
    pairs += pairs[:3]  # parallel transition states
    rows = []
    for i, j in pairs:
        e = max(E[i], E[j]) + rng.uniform(0.2, spread / 2)
        rows.append((e, rng.uniform(-3, 3), int(rng.choice([1, 2])), i + 1, j + 1))
    with open(f"{directory}/min.data", "w") as f:
        for e, s, o in zip(E, S, order):
            f.write(f"{e:.16e} {s:.16e} {o} 1.0 1.0 1.0\n")
    with open(f"{directory}/ts.data", "w") as f:
        for e, s, o, i, j in rows:
            f.write(f"{e:.16e} {s:.16e} {o} {i} {j} 1.0 1.0 1.0\n")
    return directory


def triple_well_np(x, y):
    return (3 * np.exp(-x**2 - (y - 1 / 3)**2) - 3 * np.exp(-x**2 - (y - 5 / 3)**2) - 5 * np.exp(-(x - 1)**2 - y**2)
            - 5 * np.exp(-(x + 1)**2 - y**2) + 0.2 * x**4 + 0.2 * (y - 1 / 3)**4)


def sqra_generator(U_fn, T, n, lo=(-2.2, -1.7), hi=(2.2, 2.7)):
    """The square-root approximation of the generator of dz = −∇U dt + √(2T) dW on an n × n grid (Lie, Fackeldey &
    Weber 2013; Donati, Heida, Keller & Weber 2018): Q_ij = (T/h²) exp(−(U_j − U_i)/(2T)) between grid neighbours,
    reflecting at the box; converges to the Fokker–Planck generator as h → 0. Returns (x, y, U, Q)."""
    xs, ys = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    h = xs[1] - xs[0]
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    U = U_fn(X, Y).ravel()
    idx = np.arange(n * n).reshape(n, n)
    r, c = [], []
    for a, b in [(idx[:-1, :], idx[1:, :]), (idx[:, :-1], idx[:, 1:])]:
        r += [a.ravel(), b.ravel()]
        c += [b.ravel(), a.ravel()]
    r, c = np.concatenate(r), np.concatenate(c)
    Q = sp.csr_matrix((T / h**2 * np.exp(-(U[c] - U[r]) / (2 * T)), (r, c)), shape=(n * n, n * n))
    Q = Q - sp.diags(np.asarray(Q.sum(axis=1)).ravel())
    return X.ravel(), Y.ravel(), U, Q.tocsr()


def grid_kinetics(U_fn, T, n, source, target, radius):
    """Exact (grid) MFPT from a ball around ``source`` (local equilibrium start) to the ball around ``target``, and
    the slowest relaxation time of the generator."""
    x, y, U, Q = sqra_generator(U_fn, T, n)
    in_b = (x - target[0])**2 + (y - target[1])**2 <= radius**2
    keep = ~in_b
    t = np.zeros(len(x))
    t[keep] = spl.spsolve(Q[keep][:, keep].tocsc(), -np.ones(int(keep.sum())))
    in_a = (x - source[0])**2 + (y - source[1])**2 <= radius**2
    w = np.exp(-(U[in_a] - U[in_a].min()) / T)
    root = np.exp(-(U - U.min()) / (2 * T))
    S = sp.diags(root) @ Q @ sp.diags(1 / root)
    S = 0.5 * (S + S.T)
    vals = np.sort(spl.eigsh(-S.tocsc(), k=2, sigma=-1e-9, which="LM", return_eigenvectors=False))
    return float((t[in_a] * w).sum() / w.sum()), float(1 / vals[1])
