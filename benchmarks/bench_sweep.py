"""Sweep wall time: the checkpoints analysed one after the other in this process (what a user does without a sweep:
`energyscope analyze` per checkpoint) against a local Dask cluster of 1 and 2 worker processes, and a re-run that
finds every checkpoint finished. All in one run, one torch thread per task.

    pip install -e ".[dask]"
    python benchmarks/bench_sweep.py --series sweep_digits/series        # checkpoints made by examples/sweep_digits.py
    python benchmarks/bench_sweep.py --train 120 --every 20              # train a series first (d = 10)

Prints a table (seconds, speed-up over serial) and checks that every run's results are identical to the serial
ones (clock times aside).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLOCK_KEYS = {"timings", "created", "wall_time_s"}


def _scrub(x):
    if isinstance(x, dict):
        return {k: _scrub(v) for k, v in x.items() if k not in CLOCK_KEYS}
    if isinstance(x, list):
        return [_scrub(v) for v in x]
    return x


def same_results(a: Path, b: Path, names: list[str]) -> bool:
    for name in names:
        fa, fb = a / "checkpoints" / name, b / "checkpoints" / name
        if _scrub(json.loads((fa / "analysis.json").read_text())["fields"]) != \
                _scrub(json.loads((fb / "analysis.json").read_text())["fields"]):
            return False
        with np.load(fa / "arrays.npz") as xa, np.load(fb / "arrays.npz") as xb:
            if xa.files != xb.files or any(not np.array_equal(xa[k], xb[k]) for k in xa.files):
                return False
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--series", help="folder of checkpoints (ckpt_*.pt)")
    p.add_argument("--train", type=int, default=0, help="train this many epochs first (with --every)")
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--workers", default="1,2", help="cluster sizes to time (comma-separated)")
    p.add_argument("--no-masses", action="store_true")
    p.add_argument("--out", help="keep the sweep folders here (default: a temporary folder)")
    a = p.parse_args(argv)
    import energyscope as es
    work = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    series = Path(a.series) if a.series else work / "series"
    if a.train:
        sys.path.insert(0, str(ROOT / "examples" / "digits"))
        from train import TrainConfig, train
        t0 = time.perf_counter()
        train(TrainConfig(latent_dim=10, epochs=a.train, seed=0), quiet=True, checkpoint_every=a.every,
              checkpoint_dir=series)
        print(f"trained {a.train} epochs in {time.perf_counter() - t0:.0f} s")
    paths = sorted(series.glob("ckpt_*.pt"))
    if not paths:
        raise SystemExit(f"no checkpoints ckpt_*.pt in {series}")
    settings = {"masses": not a.no_masses}
    print(f"{len(paths)} checkpoints from {series}; masses {'off' if a.no_masses else 'on'}; 1 torch thread per task; "
          f"{os.cpu_count()} CPUs")
    rows = []
    t0 = time.perf_counter()
    base = es.sweep(paths, client="serial", output=work / "serial", progress=False, **settings)
    t_serial = time.perf_counter() - t0
    rows.append(("serial (this process)", t_serial, True))
    for n in [int(x) for x in a.workers.split(",")]:
        t0 = time.perf_counter()
        es.sweep(paths, workers=n, output=work / f"workers{n}", progress=False, **settings)
        rows.append((f"LocalCluster, {n} worker{'s' if n > 1 else ''}", time.perf_counter() - t0,
                     same_results(work / "serial", work / f"workers{n}", base.names)))
    t0 = time.perf_counter()
    again = es.sweep(paths, workers=int(a.workers.split(",")[-1]), output=work / "serial", progress=False, **settings)
    rows.append(("re-run, all found finished", time.perf_counter() - t0, all(r["resumed"] for r in again.rows)))
    print("\n| run | wall s | speed-up over serial | results identical to serial |\n|---|---|---|---|")
    for name, t, ok in rows:
        print(f"| {name} | {t:.1f} | {t_serial / t:.2f} | {'yes' if ok else 'NO'} |")
    print(f"\n{base.history.summary() if base.history else 'no history'}")
    if not a.out:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
