"""Quick start: the whole energyscope pipeline on the Müller–Brown potential, in a few seconds.

Run from the repository root::

    python examples/quickstart.py            # writes quickstart_out/report.html, analysis.json, arrays.npz
    python examples/quickstart.py -o OUT --quiet

Müller–Brown (Müller & Brown 1979) is a 2-D surface with three minima and two saddles whose exact positions are
known (docs/algorithms.md), so everything the report shows can be checked by eye: the contour map, the disconnectivity
graph (MC joins MB at E(S2) ≈ −72.25; both join MA at E(S1) ≈ −40.66) and the minimum-energy paths.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import energyscope as es
from energyscope.surfaces import MullerBrown


def main(argv: list[str] | None = None) -> es.Analysis:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="quickstart_out", help="results folder")
    parser.add_argument("--restarts", type=int, default=256, help="multi-start restarts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    # Any differentiable energy over R^d works; here a torch module on (N, 2) -> (N,), with p(z) ∝ exp(-V(z)).
    land = es.Landscape(MullerBrown(), dim=2, convention="energy",
                        metadata={"name": "Müller–Brown potential"})
    result = es.analyze(land, seed=args.seed, n_restarts=args.restarts, progress=not args.quiet)

    out = Path(args.output)
    result.save(out)                                  # analysis.json + arrays.npz (reload with es.Analysis.load)
    report = result.write_report(out / "report.html")  # one self-contained HTML file
    print(result.summary())
    print(f"report: {report}")

    # The same numbers from Python: minima, saddles, barriers.
    for b in result.basins:
        print(f"minimum {b.index}: U = {b.energy:.6f}, lowest barrier out = {b.barrier:.4f} nats")
    for i, j, e in sorted(result.network.graph.edges(data="energy"), key=lambda t: t[2]):
        print(f"saddle between minima {i} and {j}: U = {e:.6f}")
    return result


if __name__ == "__main__":
    main()
