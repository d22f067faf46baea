"""Benchmark: minima of LeakyReLU priors (non-smooth U) — energyscope against per-restart scipy loops, same starts.

The landscapes are random priors in the Pang et al. form with the ``lrelu`` activation,
U(z) = −s·MLP(z) + ½‖z‖² with two LeakyReLU(0.2) layers (``energyscope.surfaces.RandomMLPPrior(activation=
"leaky_relu")``), in d = 16 and d = 64. Their minima sit on kinks, where the gradient never vanishes.

From the same R starts (``energyscope.search.minima.make_starts``):

* **energyscope**: ``find_minima(land, starts=Z0)`` — batched non-smooth BFGS (weak-Wolfe line search), kink
  refinement and certification. The whole call is timed.
* **scipy Nelder–Mead** per start (derivative-free, the usual fallback for non-smooth functions), value from torch
  on one row; ``xatol = fatol = 1e-10``, at most ``--nm-maxfev`` evaluations per start.
* **scipy L-BFGS-B** per start (what a user would run on a smooth prior), value and gradient from torch autograd.

Only the loops are timed. The baselines' end points then go through energyscope's own certification
(``minima_from_points``: grouping, refinement onto the kink, the minimum test), so every column counts *distinct
certified minima*; "at a minimum" counts the starts whose end point lies within 1e-6 of a certified minimum
(energyscope's rows end exactly there).

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_nonsmooth.py [--restarts16 256] [--restarts64 64] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from scipy.optimize import minimize as sp_minimize
from scipy.spatial import cKDTree

import energyscope as es
from energyscope.search.minima import default_gtol, find_minima, make_starts, minima_from_points
from energyscope.surfaces import RandomMLPPrior


def one_row(land: es.Landscape, d: int, grad: bool):
    energy = land.energy_module

    def fun(x):
        z = torch.tensor(x, dtype=torch.float64).reshape(1, d).requires_grad_(grad)
        e = energy(z).sum()
        if not grad:
            return e.item()
        (g,) = torch.autograd.grad(e, z)
        return e.item(), g.numpy().ravel().astype(np.float64)
    return fun


def nelder_mead_loop(land, z0, maxfev):
    fun = one_row(land, z0.shape[1], grad=False)
    ends, nfev = [], 0
    for x0 in z0:
        r = sp_minimize(fun, x0, method="Nelder-Mead",
                        options={"xatol": 1e-10, "fatol": 1e-10, "maxfev": maxfev, "maxiter": maxfev})
        ends.append(r.x)
        nfev += r.nfev
    return np.array(ends), nfev


def lbfgsb_loop(land, z0, gtol, max_iter):
    d = z0.shape[1]
    fun = one_row(land, d, grad=True)
    ends, nfev = [], 0
    for x0 in z0:
        r = sp_minimize(fun, x0, jac=True, method="L-BFGS-B",
                        options={"gtol": gtol / np.sqrt(d), "ftol": 0.0, "maxiter": max_iter, "maxfun": 4 * max_iter})
        ends.append(r.x)
        nfev += r.nfev
    return np.array(ends), nfev


def certified(land, z_end):
    """(distinct certified minima among the end points, how many end points lie within 1e-6 of one of them)."""
    m = minima_from_points(land, z_end)
    if not len(m):
        return 0, 0
    dist, _ = cKDTree(m.z).query(z_end)
    return len(m), int((dist <= 1e-6).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--restarts16", type=int, default=256)
    ap.add_argument("--restarts64", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--scale", type=float, default=1.0, help="output scale s of both priors")
    ap.add_argument("--nm-maxfev", type=int, default=20000, help="Nelder–Mead evaluations per start at most")
    ap.add_argument("--skip-baselines", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads: torch.get_num_threads()={torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, cpus={os.cpu_count()}, "
          f"load average={os.getloadavg()[0]:.2f}")
    header = f"{'landscape':<10}{'d':>4}{'R':>6}  {'method':<14}{'minima':>7}{'at a min':>9}{'evals':>11}{'wall s':>9}" \
             f"{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for d, R in ((16, args.restarts16), (64, args.restarts64)):
        land = es.Landscape(RandomMLPPrior(d, hidden=args.hidden, scale=args.scale, seed=0, activation="leaky_relu"),
                            dim=d)
        land.scales()
        assert land.smoothness.kind == "piecewise"
        z0, _ = make_starts(land, R, np.random.default_rng(args.seed))
        find_minima(land, starts=z0[:4], progress=False)                   # warm-up
        t = time.perf_counter()
        m = find_minima(land, starts=z0, progress=False)
        t_es = time.perf_counter() - t
        name = f"lrelu{d}"
        print(f"{name:<10}{d:>4}{R:>6}  {'energyscope':<14}{len(m):>7}{R - m.coverage.n_unresolved:>9}"
              f"{m.stats['n_evals']:>11}{t_es:>9.2f}{'':>8}   ({m.coverage.n_unresolved} descents uncertified, "
              f"Chao1 {m.coverage.estimated_total:.0f})", flush=True)
        if args.skip_baselines:
            continue
        for label, run in (("Nelder-Mead", lambda: nelder_mead_loop(land, z0, args.nm_maxfev)),
                           ("L-BFGS-B", lambda: lbfgsb_loop(land, z0, default_gtol(land), 5000))):
            t = time.perf_counter()
            z_end, nfev = run()
            t_b = time.perf_counter() - t
            k, at = certified(land, z_end)
            print(f"{'':<10}{'':>4}{'':>6}  {label:<14}{k:>7}{at:>9}{nfev:>11}{t_b:>9.2f}{t_b / t_es:>7.1f}x",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
