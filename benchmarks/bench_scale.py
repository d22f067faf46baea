"""Benchmark: how the whole analysis scales with the number of minima and the dimension, against exact answers.

The landscape is ``energyscope.surfaces.RotatedProduct(d, m)``: m bimodal (Styblinski–Tang) directions and d − m
quadratic ones under a random rotation, so that its 2^m minima, m 2^(m−1) index-1 saddles and merge tree are known
exactly in any dimension. Each case runs ``es.analyze(land, seed=0, masses=False)`` with default settings (the
adaptive minima search, the connection rounds with the tree check, the kinetics stage), in its own process (so its
peak memory is its own), and is scored against the exact answers:

* minima: found to 1e-5 in position and 1e-6 in energy, of 2^m;
* transition states: validated ones that are exact saddles (to 1e-6 in energy), of m 2^(m−1);
* merges: sorted merge energies of the tree equal to the exact ones to 1e-6, of 2^m − 1;
* evaluations: energy+gradient rows in the minima search and in the network stage, and the network's evaluations
  per validated transition state (the figure path-finding papers compare);
* peak memory: the process's maximum resident set size (Python and torch included, ~0.3 GB of it).

Usage:  OMP_NUM_THREADS=1 python benchmarks/bench_scale.py [--cases 128x6,128x8,128x10,32x10,256x10]
        [--threads 1] [--device cpu|cuda|auto] [--report DIR]   (one case at a time: --case 128x10 --json F)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

DEFAULT_CASES = "128x6,128x8,128x10,32x10,256x10"


def run_case(d: int, m: int, device: str, report_dir: str | None) -> dict:
    """One case, in this process: analyse, score against the exact answers, optionally write the report."""
    import numpy as np
    import torch
    from scipy.spatial import cKDTree

    import energyscope as es
    from energyscope.surfaces import RotatedProduct, rotated_product_minima, rotated_product_saddles

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    surface = RotatedProduct(d, m)
    land = es.Landscape(surface, dim=d, device=device)
    zm, em = rotated_product_minima(surface)
    _, e_ts, pairs = rotated_product_saddles(surface)
    exact = es.DisconnectivityGraph(em, np.column_stack([pairs, e_ts]))

    t0 = time.perf_counter()
    res = es.analyze(land, seed=0, masses=False, progress=False)
    wall = time.perf_counter() - t0

    mins, net = res.minima, res.network
    dist, idx = cKDTree(mins.z).query(zm)
    found = int(((dist < 1e-5) & (np.abs(mins.energy[idx] - em) < 1e-6)).sum())
    ts = np.array([e["energy"] for e in net.edges()]) if net.n_transition_states else np.zeros(0)
    ts_exact = int(np.isin(np.round(ts, 6), np.round(e_ts, 6)).sum())
    a, b = np.sort(exact.merge_edges[:, 2]), np.sort(res.tree.merge_edges[:, 2])
    merges = int((np.abs(a - b) < 1e-6).sum()) if len(a) == len(b) else 0
    out = {
        "d": d, "m": m, "device": device, "minima": len(zm), "found": found, "extra_minima": len(mins) - found,
        "ts_total": len(e_ts), "ts": int(net.n_transition_states), "ts_exact": ts_exact,
        "merges": len(a), "merges_exact": merges, "connected": bool(net.is_connected()),
        "restarts": int(mins.coverage.n_restarts), "rounds": int(mins.coverage.rounds),
        "search_stopped": str(mins.stats.get("stopped", "")),
        "tree_check": {k: v for k, v in (net.info.get("tree_check") or {}).items() if k != "rounds"},
        "evals_minima": int(mins.stats.get("n_evals_descent", 0)), "evals_network": int(net.info.get("n_evals", 0)),
        "evals_per_ts": float(net.info.get("n_evals", 0)) / max(1, net.n_transition_states),
        "kinetics": None if res.kinetics is None else res.kinetics.approximation,
        "wall_s": wall, "stages_s": {k: v for k, v in res.timings.items() if k != "total"},
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }
    if report_dir:
        os.makedirs(report_dir, exist_ok=True)
        path = os.path.join(report_dir, f"report_d{d}_m{m}.html")
        res.save(os.path.join(report_dir, f"analysis_d{d}_m{m}"))
        t0 = time.perf_counter()
        res.write_report(path)
        out["report_s"] = time.perf_counter() - t0
        out["report_mb"] = os.path.getsize(path) / 1e6
        out["report"] = path
    return out


def table(rows: list[dict]) -> str:
    head = ("| d | minima found | TS validated (exact) / all | merges exact | connected | restarts (rounds) | evals minima | "
            "evals network | evals / TS | minima s | network s | kinetics s | total s | peak GB |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        st = r["stages_s"]
        lines.append(
            f"| {r['d']} | {r['found']} / {r['minima']} | {r['ts']} ({r['ts_exact']}) / {r['ts_total']} | "
            f"{r['merges_exact']} / {r['merges']} | {'yes' if r['connected'] else 'no'} | "
            f"{r['restarts']} ({r['rounds']}) | {r['evals_minima']:,} | {r['evals_network']:,} | "
            f"{r['evals_per_ts']:.0f} | {st.get('minima', 0):.1f} | {st.get('network', 0):.1f} | "
            f"{st.get('kinetics', 0):.1f} | {r['wall_s']:.1f} | {r['peak_rss_gb']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated DxM cases (dimension x bimodal directions)")
    ap.add_argument("--case", help="run one DxM case in this process (used by the driver)")
    ap.add_argument("--json", help="with --case: write the result here")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, or auto (cuda where it exists)")
    ap.add_argument("--report", help="also write each case's HTML report into this folder (size and time noted)")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.case:
        import torch
        torch.set_num_threads(args.threads)
        d, m = (int(x) for x in args.case.lower().split("x"))
        out = run_case(d, m, args.device, args.report)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(out, fh, indent=1)
        else:
            print(json.dumps(out, indent=1))
        return
    print(f"threads: {args.threads}; device: {args.device}; load average before: {os.getloadavg()}", flush=True)
    rows = []
    for case in args.cases.split(","):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
            target = fh.name
        cmd = [sys.executable, __file__, "--case", case, "--json", target, "--threads", str(args.threads),
               "--device", args.device] + (["--report", args.report] if args.report else [])
        subprocess.run(cmd, check=True)
        with open(target) as fh:
            r = json.load(fh)
        os.unlink(target)
        rows.append(r)
        extra = f", report {r['report_mb']:.2f} MB in {r['report_s']:.1f} s" if "report_mb" in r else ""
        print(f"{case}: {r['wall_s']:.1f} s; search: {r['search_stopped']}; tree check: {r['tree_check']}; "
              f"kinetics: {r['kinetics']}{extra}", flush=True)
    print(f"load average after: {os.getloadavg()}")
    print(table(rows))


if __name__ == "__main__":
    main()
