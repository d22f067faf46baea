"""Benchmark: energyscope's batched find_minima against a per-restart scipy L-BFGS-B loop, from the same starts.

For each landscape both methods start from the same R points (drawn by ``energyscope.search.minima.make_starts``):

* energyscope: ``find_minima(land, starts=Z0)`` — one batched descent, grouping, Hessian validation, polishing.
* scipy: ``scipy.optimize.minimize(f, z0, jac=True, method="L-BFGS-B")`` for each start, with value and gradient
  from torch autograd on one row (float64), as a user would write it; then the *same* grouping and Hessian
  validation as energyscope (not timed), so both counts are "distinct validated minima".

Gradient tolerances are equivalent: energyscope stops a row at ‖g‖₂ ≤ gtol; scipy gets ``gtol = gtol/√d`` on
its max-norm criterion (which implies ‖g‖₂ ≤ gtol) and ``ftol = 0`` so that it also stops on the gradient, not
on a small change in the function.

Also reported: the fraction of energyscope's wall time spent inside ``land.energy_and_grad`` (the energy's forward
and backward passes) — the rest is optimiser bookkeeping, grouping and Hessians.

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_minima.py [--restarts 1024] [--threads 1] [--only mlp16,mlp64]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from scipy.optimize import minimize as sp_minimize

import energyscope as es
from energyscope.search.minima import default_gtol, find_minima, make_starts, minima_from_points
from energyscope.surfaces import MullerBrown, RandomMLPPrior, StyblinskiTang


def landscapes(mlp_hidden: int, mlp_scale16: float, mlp_scale64: float, mlp_seed: int = 0) -> dict:
    return {
        "muller_brown": es.Landscape(MullerBrown(), dim=2),
        "styblinski_tang6": es.Landscape(StyblinskiTang(), dim=6),
        "styblinski_tang10": es.Landscape(StyblinskiTang(), dim=10),
        "mlp16": es.Landscape(RandomMLPPrior(16, hidden=mlp_hidden, scale=mlp_scale16, seed=mlp_seed), dim=16),
        "mlp64": es.Landscape(RandomMLPPrior(64, hidden=mlp_hidden, scale=mlp_scale64, seed=mlp_seed), dim=64),
    }


def timed_energy_and_grad(land: es.Landscape) -> list:
    """Wrap land.energy_and_grad so that the time spent inside it is added up in the returned one-element list."""
    inner = land.energy_and_grad
    total = [0.0]

    def wrapper(z):
        t = time.perf_counter()
        out = inner(z)
        total[0] += time.perf_counter() - t
        return out

    land.energy_and_grad = wrapper
    return total


def scipy_loop(land: es.Landscape, z0: np.ndarray, gtol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The user's loop: scipy L-BFGS-B per start, value and gradient of one row from torch autograd."""
    energy = land.energy_module
    d = z0.shape[1]

    def fun(x):
        z = torch.tensor(x, dtype=torch.float64).reshape(1, d).requires_grad_(True)
        e = energy(z).sum()
        (g,) = torch.autograd.grad(e, z)
        return e.item(), g.numpy().ravel().astype(np.float64)

    ends, conv, nfev = [], [], 0
    for x0 in z0:
        r = sp_minimize(fun, x0, jac=True, method="L-BFGS-B",
                        options={"gtol": gtol / np.sqrt(d), "ftol": 0.0, "maxiter": max_iter, "maxfun": 4 * max_iter})
        ends.append(r.x)
        conv.append(bool(np.linalg.norm(r.jac) <= gtol))
        nfev += r.nfev
    return np.array(ends), np.array(conv), nfev


def validated_count(land: es.Landscape, z_end: np.ndarray) -> int:
    """Distinct validated minima among end points, with energyscope's own grouping and Hessian test."""
    return len(minima_from_points(land, z_end))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--restarts", type=int, default=1024, help="restarts R per landscape (default 1024)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-iter", type=int, default=5000)
    ap.add_argument("--mlp-hidden", type=int, default=128, help="hidden width of the random MLP priors")
    ap.add_argument("--mlp-scale16", type=float, default=12.0, help="output scale of the d=16 MLP prior")
    ap.add_argument("--mlp-scale64", type=float, default=10.0, help="output scale of the d=64 MLP prior")
    ap.add_argument("--mlp-seed", type=int, default=0, help="weight seed of the MLP priors")
    ap.add_argument("--heavy-hidden", default="256,512",
                    help="extra energyscope-only rows: d=64 MLP priors with these hidden widths (comma-separated; "
                         "'' for none), to show how the time fraction inside E+grad grows with the model's cost")
    ap.add_argument("--only", default="", help="comma-separated subset of landscape names")
    ap.add_argument("--skip-scipy", action="store_true", help="time energyscope only")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads: torch.get_num_threads()={torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, cpus={os.cpu_count()}, "
          f"load average={os.getloadavg()[0]:.2f}")
    print(f"R = {args.restarts} restarts, seed {args.seed}; MLP priors: hidden={args.mlp_hidden}, "
          f"scale d16={args.mlp_scale16}, d64={args.mlp_scale64}, weight seed {args.mlp_seed}")
    lands = landscapes(args.mlp_hidden, args.mlp_scale16, args.mlp_scale64, args.mlp_seed)
    for h in [int(x) for x in args.heavy_hidden.split(",") if x.strip()]:
        lands[f"mlp64-h{h}"] = es.Landscape(
            RandomMLPPrior(64, hidden=h, scale=args.mlp_scale64, seed=args.mlp_seed), dim=64)
    if args.only:
        keep = set(args.only.split(","))
        lands = {k: v for k, v in lands.items() if k in keep}
    header = (f"{'landscape':<18}{'d':>4}  {'method':<12}{'minima':>7}{'evals':>10}{'wall s':>9}"
              f"{'in E+grad':>10}{'ratio':>8}")
    print(header)
    print("-" * len(header))
    for name, land in lands.items():
        land.scales()
        z0, _ = make_starts(land, args.restarts, np.random.default_rng(args.seed))
        find_minima(land, starts=z0[:8], progress=False)             # warm-up (imports, torch.func set-up)
        spent = timed_energy_and_grad(land)
        t = time.perf_counter()
        m = find_minima(land, starts=z0, max_iter=args.max_iter, progress=False)
        t_es = time.perf_counter() - t
        frac = spent[0] / t_es
        del land.energy_and_grad
        print(f"{name:<18}{land.dim:>4}  {'energyscope':<12}{len(m):>7}{m.stats['n_evals']:>10}{t_es:>9.2f}"
              f"{frac:>10.2f}{'':>8}   (Chao1 estimate {m.coverage.estimated_total:.1f}, "
              f"{m.stats['n_unconverged']} unconverged)", flush=True)
        if args.skip_scipy or name.startswith("mlp64-h"):
            continue
        t = time.perf_counter()
        z_end, conv, nfev = scipy_loop(land, z0, default_gtol(land), args.max_iter)
        t_sp = time.perf_counter() - t
        k_sp = validated_count(land, z_end)
        print(f"{'':<18}{'':>4}  {'scipy loop':<12}{k_sp:>7}{nfev:>10}{t_sp:>9.2f}{'':>10}{t_sp / t_es:>7.1f}x"
              f"   ({int((~conv).sum())} of {len(conv)} scipy runs above gtol)", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
