"""A sweep over one training run: train the digits example with a checkpoint every few epochs, analyse every
checkpoint on a local Dask cluster, and follow the basins through training.

    pip install -e ".[dask]"
    python examples/sweep_digits.py                          # d = 10, 400 epochs, a checkpoint every 40; 2 workers
    python examples/sweep_digits.py --epochs 120 --every 20 --workers 1 --out sweep_out

Writes ``OUT/series/ckpt_{epoch:06d}.pt`` (training is skipped when they exist: the same seed and thread count give
the same checkpoints bit for bit), then ``OUT/sweep/report.html`` (timeline of the basins over training, curves,
each checkpoint's own report linked), ``OUT/sweep/sweep.json`` and ``OUT/sweep/checkpoints/NAME/``. The same as
commands: ``python examples/digits/train.py --checkpoint-every 40 --checkpoint-dir OUT/series`` and
``energyscope sweep OUT/series/*.pt -o OUT/sweep --workers 2``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--latent-dim", type=int, default=10)
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--every", type=int, default=40, help="a checkpoint every this many epochs")
    p.add_argument("--workers", type=int, default=2, help="worker processes of the local Dask cluster")
    p.add_argument("--out", default="sweep_digits", help="output folder")
    a = p.parse_args(argv)
    out = Path(a.out)
    series = out / "series"
    expected = [series / f"ckpt_{e:06d}.pt" for e in range(a.every, a.epochs + 1, a.every)]
    if not all(path.is_file() for path in expected):
        sys.path.insert(0, str(HERE / "digits"))
        from train import TrainConfig, train
        t0 = time.perf_counter()
        train(TrainConfig(latent_dim=a.latent_dim, epochs=a.epochs, seed=0), checkpoint_every=a.every,
              checkpoint_dir=series)
        print(f"trained {a.epochs} epochs in {time.perf_counter() - t0:.0f} s; {len(expected)} checkpoints in {series}")

    import energyscope as es
    t0 = time.perf_counter()
    result = es.sweep(expected, workers=a.workers, output=out / "sweep")
    print(result.summary())
    print(f"sweep of {len(expected)} checkpoints on {a.workers} worker(s): {time.perf_counter() - t0:.1f} s")
    print(f"report: {out / 'sweep' / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
