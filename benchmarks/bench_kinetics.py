"""Benchmark: energyscope's kinetics against the exact answer and against PyGT, side by side in one run.

Part 1, accuracy (the 2-D triple well of Metzner, Schütte & Vanden-Eijnden 2006): the Langevin mean first-passage
time between the two deep minima (to a ball of radius 0.1, from local equilibrium in the other ball) and the slowest
relaxation time, at several temperatures, from

* the exact grid solve of the Fokker–Planck generator (square-root approximation on a 400² grid; tests check it is
  converged against 200² to 0.2 %),
* energyscope's network with the path correction (``es.kinetics``, default) and plain Kramers–Langer
  (``approximation="harmonic"``),
* batched Langevin simulation on the true U (``first_passage_times``; optional, ``--simulate``).

Part 2, speed (random PATHSAMPLE networks of K minima, harmonic TST): the MFPT and k^F between two sets of minima,
energyscope (graph transformation with back-substitution, all sources at once) against PyGT's ``compute_rates``
(its partial GT then a linear solve, or full GT per source when ill-conditioned), same files, same answer checked to
1e-8.

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_kinetics.py [--threads 1] [--temperatures 0.4,0.5,0.6,1.0]
                                                              [--sizes 100,300,1000] [--spreads 12,650]
                                                              [--simulate]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import energyscope as es
from energyscope.io.pathsample import read_pathsample
from energyscope.kinetics import first_passage_times
from energyscope.surfaces import TripleWell

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from kinetics_helpers import grid_kinetics, triple_well_np, write_random_pathsample  # noqa: E402

DEEP_A, DEEP_B = (-1.04805499, -0.0420936663), (1.04805499, -0.0420936663)


def accuracy(temperatures: list[float], simulate: bool) -> None:
    land = es.Landscape(TripleWell(), dim=2)
    minima = es.find_minima(land, n_restarts=256, seed=0, bounds=(-2, 2.5), progress=False)
    net = es.connect(land, minima, progress=False)
    deep = [int(k) for k in np.argsort(minima.energy)[:2]]
    print("\nTriple well: Langevin MFPT between the deep minima, and the slowest relaxation time (time units)")
    print(f"{'T':>5} {'barrier/T':>9} | {'MFPT grid':>10} {'path':>9} {'err':>7} {'harmonic':>9} {'err':>7}"
          + (f" {'simulated':>15}" if simulate else "")
          + f" | {'t1 grid':>9} {'path':>9} {'err':>7} {'harmonic':>9} {'err':>7} | {'es s':>6}")
    for T in temperatures:
        exact_mfpt, exact_relax = grid_kinetics(triple_well_np, T, 400, DEEP_A, DEEP_B, 0.1)
        t0 = time.perf_counter()
        kin = es.kinetics(net, temperature=T, landscape=land)
        m_path, r_path = kin.mfpt([deep[0]], [deep[1]]), kin.relaxation_times[0]
        wall = time.perf_counter() - t0
        h = kin.harmonic()
        m_h, r_h = h.mfpt([deep[0]], [deep[1]]), h.relaxation_times[0]
        sim = ""
        if simulate:
            fp = first_passage_times(land, DEEP_A, np.array([DEEP_B]), 0.1, temperature=T, dt=5e-3, n_chains=400,
                                     max_time=12 * exact_mfpt, seed=0)
            sim = f" {fp.mean:>8.3g} ± {fp.stderr:<5.2g}"
        barrier = (net.minimax_energy(deep[0], deep[1]) - minima.energy[deep[0]]) / T
        print(f"{T:>5.2f} {barrier:>9.2f} | {exact_mfpt:>10.4g} {m_path:>9.4g} {m_path / exact_mfpt - 1:>+7.1%} "
              f"{m_h:>9.4g} {m_h / exact_mfpt - 1:>+7.1%}{sim} | {exact_relax:>9.4g} {r_path:>9.4g} "
              f"{r_path / exact_relax - 1:>+7.1%} {r_h:>9.4g} {r_h / exact_relax - 1:>+7.1%} | {wall:>6.2f}")


def speed(sizes: list[int], spreads: list[float]) -> None:
    try:
        import PyGT
    except ImportError:
        print("\nPyGT is not installed (pip install pygt): speed comparison skipped")
        return
    print("\nRandom PATHSAMPLE networks (harmonic TST, T = 1): MFPT and k^F from A (5 lowest-index minima) to B "
          "(the last 20%)")
    print(f"{'K':>6} {'TS':>6} {'rate range':>12} | {'es s':>8} {'PyGT s':>8} {'PyGT/es':>8} | {'max rel diff':>12}")
    for K, spread in [(K, sp) for sp in spreads for K in sizes]:
        with tempfile.TemporaryDirectory() as d:
            write_random_pathsample(d, n_minima=K, n_extra=K, spread=spread, seed=K)
            t0 = time.perf_counter()
            kin = es.kinetics(read_pathsample(d), dynamics="harmonic")
            A, B = list(range(5)), list(range(K - K // 5, K))
            ours = (kin.mfpt(A, B), kin.mfpt(B, A), kin.rate(A, B), kin.rate(B, A))
            t_es = time.perf_counter() - t0
            t0 = time.perf_counter()
            Bm, Km, tau, N, u, s, Emin, kept = PyGT.io.load_ktn(d, beta=1.0)
            log_pi = -u + s
            pi = np.exp(log_pi - log_pi.max())
            a, b = np.isin(np.arange(K), A), np.isin(np.arange(K), B)
            # dense B: with its sparse matrix PyGT 0.3 fails on some networks (np.linalg.cond of a sparse block)
            ref = PyGT.stats.compute_rates(a, b, Bm.toarray(), tau, pi / pi.sum(), MFPTonly=False)
            theirs = (ref["MFPTBA"], ref["MFPTAB"], ref["kFBA"], ref["kFAB"])
            t_gt = time.perf_counter() - t0
            rates = kin.rate_matrix()
            pos = rates[rates > 0]
            diff = max(abs(x / y - 1) for x, y in zip(ours, theirs))
            print(f"{K:>6} {len(kin.network.pairs):>6} {f'1e{np.log10(pos.min()):.0f}..1e{np.log10(pos.max()):.0f}':>12}"
                  f" | {t_es:>8.3f} {t_gt:>8.3f} {t_gt / t_es:>8.2f} | {diff:>12.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--temperatures", default="0.4,0.5,0.6,1.0")
    ap.add_argument("--sizes", default="100,300,1000")
    ap.add_argument("--spreads", default="12,650", help="energy spreads of the random networks (nats): 12 gives rates "
                    "over ~10 decades, 650 over ~300")
    ap.add_argument("--simulate", action="store_true", help="also batched Langevin simulation (slow at low T)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads: {args.threads}; load average before: {os.getloadavg()[0]:.2f}")
    accuracy([float(t) for t in args.temperatures.split(",")], args.simulate)
    speed([int(k) for k in args.sizes.split(",")], [float(x) for x in args.spreads.split(",")])
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
