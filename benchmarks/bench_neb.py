"""Benchmark: energyscope's batched NEB + saddle refinement against ASE's NEB, side by side on the same pairs.

For each landscape both methods get the same pairs of minima, the same number of images and the same spring constant:

* energyscope: ``find_paths`` (all bands of the set relaxed together, one energy call per step, dense post-check,
  splitting) then ``find_saddles`` (exact-Hessian eigenvector following, validation with push-off descents).
* ASE: ``NEB(images, k, climb=True, method="improvedtangent")`` driven by ``ase.optimize.FIRE`` one pair at a time,
  through an ASE ``Calculator`` that wraps the energy (one "atom" per 3 latent coordinates, zero-padded), as a user
  would write it. Its force tolerance ``fmax`` is the one energyscope's bands stop at: 1% of (saddle energy − lower
  endpoint energy) / endpoint distance.

Saddle energy error: against the published / exact values for Müller–Brown and Styblinski–Tang; for the MLP priors
against the exact stationary point obtained by eigenvector-following refinement of ASE's own climbing image (so
ASE is measured against the saddle it found; energyscope's saddle counts only if it is that same point).
Evaluations are energy+gradient rows (energyscope's also include energy-only rows of the dense check and the
push-off descents; its Hessians are listed separately).

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_neb.py [--threads 1] [--pairs 12] [--only mb,st,mlp16,mlp64]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import energyscope as es
from energyscope.search.minima import Minima, quench
from energyscope.search.neb import find_paths, image_count
from energyscope.search.book import MinimaBook, default_match_tol
from energyscope.search.saddles import find_saddles, refine_saddles
from energyscope.surfaces import (MULLER_BROWN_MINIMA, MULLER_BROWN_MINIMA_ENERGY, MULLER_BROWN_SADDLES_ENERGY,
                                  ST_G_MINUS, ST_G_PLUS, ST_G_ZERO, MullerBrown, RandomMLPPrior, StyblinskiTang,
                                  styblinski_tang_minima)


# ------------------------------------------------------------------------------------------------ ASE, as a user would
def ase_neb(land: es.Landscape, za: np.ndarray, zb: np.ndarray, n_images: int, k: float, fmax: float,
            steps: int) -> dict:
    from ase import Atoms
    from ase.calculators.calculator import Calculator, all_changes
    from ase.mep import NEB
    from ase.optimize import FIRE

    d = land.dim
    n_atoms = -(-d // 3)

    class LatentEnergy(Calculator):
        implemented_properties = ["energy", "forces"]

        def __init__(self):
            super().__init__()
            self.n_calls = 0

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            z = atoms.positions.reshape(-1)[:d]
            e, g = land.energy_and_grad(z[None, :])
            self.n_calls += 1
            f = np.zeros(3 * n_atoms)
            f[:d] = -g[0].numpy()
            self.results = {"energy": float(e[0]), "forces": f.reshape(n_atoms, 3)}

    def atoms(z):
        p = np.zeros(3 * n_atoms)
        p[:d] = z
        a = Atoms("H" * n_atoms, positions=p.reshape(n_atoms, 3))
        a.calc = LatentEnergy()
        return a

    images = [atoms(za)] + [atoms(za) for _ in range(n_images - 2)] + [atoms(zb)]
    band = NEB(images, k=k, climb=True, method="improvedtangent")
    band.interpolate()
    opt = FIRE(band, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    e = np.array([im.get_potential_energy() for im in images])
    ci = int(np.argmax(e[1:-1])) + 1
    return {"converged": converged, "saddle_energy": float(e[ci]),
            "saddle_z": images[ci].positions.reshape(-1)[:d].copy(),
            "n_evals": int(sum(im.calc.n_calls for im in images)), "steps": int(opt.nsteps)}


# ------------------------------------------------------------------------------------------------ pair sets
def minima_of(land: es.Landscape, n_starts: int, seed: int) -> Minima:
    """Distinct minima from quenches of spread-out starts (deduplicated by distance), sorted by energy."""
    rng = np.random.default_rng(seed)
    res = quench(land, 2.0 * rng.standard_normal((n_starts, land.dim)), gtol=1e-9)
    z = res.z.numpy()[res.converged.numpy()]
    e = res.energy.numpy()[res.converged.numpy()]
    keep: list[int] = []
    for i in np.argsort(e):
        if all(np.linalg.norm(z[i] - z[j]) > 1e-4 for j in keep):
            keep.append(int(i))
    z, e = z[keep], e[keep]
    ev = np.linalg.eigvalsh(land.hessian(z).numpy())
    ok = ev[:, 0] > 0
    return Minima(z=z[ok], energy=e[ok], hits=np.ones(int(ok.sum()), dtype=int), hessian_eigenvalues=ev[ok])


def nearest_pairs(z: np.ndarray, n_pairs: int) -> list[tuple[int, int]]:
    """Each minimum with its nearest neighbour, unique pairs, the n_pairs shortest."""
    from scipy.spatial import cKDTree
    dist, idx = cKDTree(z).query(z, k=2)
    pairs = {tuple(sorted((i, int(j)))): float(dd) for i, (j, dd) in enumerate(zip(idx[:, 1], dist[:, 1]))}
    return sorted(pairs, key=pairs.get)[:n_pairs]


def make_sets(only: set, n_pairs: int, mlp_hidden: int, mlp_scale: float) -> list[dict]:
    sets = []
    if "mb" in only:
        land = es.Landscape(MullerBrown(), dim=2)
        m = Minima(z=MULLER_BROWN_MINIMA, energy=MULLER_BROWN_MINIMA_ENERGY, hits=np.ones(3, dtype=int),
                   hessian_eigenvalues=np.linalg.eigvalsh(land.hessian(MULLER_BROWN_MINIMA).numpy()))
        s1, s2 = MULLER_BROWN_SADDLES_ENERGY
        sets.append({"name": "Müller–Brown (3 pairs)", "land": land, "minima": m, "pairs": [(0, 2), (2, 1), (0, 1)],
                     "exact": [s1, s2, s1]})  # MA–MB runs through MC; its highest saddle is S1
    if "st" in only:
        d = 4
        land = es.Landscape(StyblinskiTang(), dim=d)
        z, e = styblinski_tang_minima(d)
        m = Minima(z=z, energy=e, hits=np.ones(len(z), dtype=int),
                   hessian_eigenvalues=np.linalg.eigvalsh(land.hessian(z).numpy()))
        pairs = [(i, i ^ (1 << c)) for i in (0, 5, 10, 15) for c in range(d) if i < i ^ (1 << c)][:8]
        exact = []
        for i, j in pairs:
            c = int(np.nonzero(np.abs(z[i] - z[j]) > 1)[0][0])
            exact.append(ST_G_ZERO + sum(ST_G_MINUS if z[i][q] < 0 else ST_G_PLUS for q in range(d) if q != c))
        sets.append({"name": f"Styblinski–Tang d=4 ({len(pairs)} pairs)", "land": land, "minima": m,
                     "pairs": pairs, "exact": exact})
    for d in (16, 64):
        if f"mlp{d}" not in only:
            continue
        land = es.Landscape(RandomMLPPrior(d, hidden=mlp_hidden, scale=mlp_scale, seed=0), dim=d)
        m = minima_of(land, 256, seed=d)
        pairs = nearest_pairs(m.z, n_pairs)
        sets.append({"name": f"random MLP prior d={d} ({len(pairs)} pairs, {len(m)} minima)", "land": land,
                     "minima": m, "pairs": pairs, "exact": None})
    return sets


# ------------------------------------------------------------------------------------------------ runs
def run_energyscope(land: es.Landscape, minima: Minima, pairs: list[tuple[int, int]]) -> tuple[list[dict], float]:
    book = MinimaBook(minima, default_match_tol(land, minima))
    rows0 = land.n_energy_rows
    t = time.perf_counter()
    pps = find_paths(land, book, pairs)
    cand, owner = [], []
    for q, pp in enumerate(pps):
        for a, b, path in pp.pieces:
            if path is not None and not pp.failure:
                cand.append(path.saddle_z)
                owner.append(q)
    recs = find_saddles(land, np.array(cand), book) if cand else []
    wall = time.perf_counter() - t
    out = [{"converged": False, "valid": False, "saddle_energy": np.nan, "saddle_z": None, "n_hessians": 0}
           for _ in pairs]
    for q, rec in zip(owner, recs):
        o = out[q]
        o["n_hessians"] += rec.n_hessians
        if rec.valid and (o["saddle_z"] is None or rec.energy > o["saddle_energy"]):
            o.update(saddle_energy=rec.energy, saddle_z=rec.z)
    for q, pp in enumerate(pps):
        recs_q = [r for qq, r in zip(owner, recs) if qq == q]
        out[q]["converged"] = not pp.failure and all(p.converged for _, _, p in pp.pieces)
        out[q]["valid"] = bool(recs_q) and all(r.valid for r in recs_q)
    n_rows = land.n_energy_rows - rows0
    return out, wall, n_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--pairs", type=int, default=12, help="nearest-minima pairs per MLP prior (default 12)")
    ap.add_argument("--only", default="mb,st,mlp16,mlp64")
    ap.add_argument("--ase-steps", type=int, default=3000)
    ap.add_argument("--mlp-hidden", type=int, default=256)
    ap.add_argument("--mlp-scale", type=float, default=8.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, float64, CPU")
    sets = make_sets(set(args.only.split(",")), args.pairs, args.mlp_hidden, args.mlp_scale)
    # warm-up (first-call costs of torch.func etc.), untimed, for both
    warm = es.Landscape(MullerBrown(), dim=2)
    run_energyscope(warm, sets[0]["minima"] if sets[0]["land"].dim == 2 else
                    Minima(z=MULLER_BROWN_MINIMA, energy=MULLER_BROWN_MINIMA_ENERGY, hits=np.ones(3, dtype=int),
                           hessian_eigenvalues=np.ones((3, 2))), [(0, 2)])
    ase_neb(warm, MULLER_BROWN_MINIMA[0], MULLER_BROWN_MINIMA[2], 9, 1.0, 1.0, 50)

    total_es = total_ase = 0.0
    for s in sets:
        land, m, pairs = s["land"], s["minima"], s["pairs"]
        es_out, es_wall, es_rows = run_energyscope(land, m, pairs)
        ase_out, ase_wall = [], 0.0
        for q, (i, j) in enumerate(pairs):
            n_img = image_count(land, m.z[i], m.z[j])
            curv = max(np.abs(m.hessian_eigenvalues[i]).max(), np.abs(m.hessian_eigenvalues[j]).max())
            ref_e = s["exact"][q] if s["exact"] is not None else es_out[q]["saddle_energy"]
            if not np.isfinite(ref_e):
                ref_e = max(m.energy[i], m.energy[j]) + 1.0
            fmax = 0.01 * (ref_e - min(m.energy[i], m.energy[j])) / np.linalg.norm(m.z[i] - m.z[j])
            t = time.perf_counter()
            r = ase_neb(land, m.z[i], m.z[j], n_img, 0.02 * curv, fmax, args.ase_steps)
            ase_wall += time.perf_counter() - t
            ase_out.append(r)
        # reference saddle energies
        if s["exact"] is not None:
            ref = np.array(s["exact"], dtype=float)
            same = np.ones(len(pairs), dtype=bool)
        else:
            rr = refine_saddles(land, np.array([r["saddle_z"] for r in ase_out]))
            ref = np.where(rr.converged, rr.energy, np.nan)
            same = np.array([o["saddle_z"] is not None and np.linalg.norm(o["saddle_z"] - zr) < 1e-4
                             for o, zr in zip(es_out, rr.z)])
        es_err = np.array([abs(o["saddle_energy"] - r) for o, r in zip(es_out, ref)])
        ase_err = np.array([abs(o["saddle_energy"] - r) for o, r in zip(ase_out, ref)])
        ase_evals = sum(r["n_evals"] for r in ase_out)
        es_hess = sum(o["n_hessians"] for o in es_out)
        n_conv_es = sum(o["converged"] and o["valid"] for o in es_out)
        n_conv_ase = sum(r["converged"] for r in ase_out)
        total_es += es_wall
        total_ase += ase_wall
        print(f"\n== {s['name']}")
        print(f"  {'':13s} {'converged':>10s} {'max |dE| saddle':>16s} {'median |dE|':>12s} {'evals':>9s} "
              f"{'wall s':>8s}")
        es_max = np.nanmax(es_err[same]) if same.any() else np.nan
        es_med = np.nanmedian(es_err[same]) if same.any() else np.nan
        print(f"  {'energyscope':13s} {n_conv_es:>5d}/{len(pairs):<4d} {es_max:16.2e}"
              f" {es_med:12.2e} {es_rows:9d} {es_wall:8.3f}"
              f"   (+{es_hess} Hessians)")
        print(f"  {'ASE NEB+FIRE':13s} {n_conv_ase:>5d}/{len(pairs):<4d} {np.nanmax(ase_err):16.2e}"
              f" {np.nanmedian(ase_err):12.2e} {ase_evals:9d} {ase_wall:8.3f}")
        print(f"  wall-time ratio ASE / energyscope: {ase_wall / es_wall:.1f}x;  evaluations ratio: "
              f"{ase_evals / max(es_rows, 1):.1f}x" + ("" if same.all() else
                                                      f";  {int((~same).sum())} pair(s) where the two found "
                                                      "different saddles (excluded from energyscope's error)"))
    print(f"\nall sets: energyscope {total_es:.3f} s, ASE {total_ase:.3f} s, ratio {total_ase / total_es:.1f}x")


if __name__ == "__main__":
    main()
