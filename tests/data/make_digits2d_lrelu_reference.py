"""Regenerate tests/data/digits2d_lrelu_minima.json: the minima of the shipped examples/digits/digits2d_lrelu.pt found
without energyscope's search (tests/nonsmooth_helpers.reference_minima: a 3601² grid over [-9, 9]², Nelder–Mead
restarted until it stops moving, then an exact solve over activation patterns). About a minute on 2 cores.

    python tests/data/make_digits2d_lrelu_reference.py
"""
import json
import sys
from pathlib import Path


HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import energyscope as es  # noqa: E402
from nonsmooth_helpers import reference_minima  # noqa: E402

land = es.load_checkpoint(HERE.parents[1] / "examples" / "digits" / "digits2d_lrelu.pt")
z, e = reference_minima(land.energy_module, lim=9.0, n=3601)
out = {"source": "examples/digits/digits2d_lrelu.pt", "method": "3601^2 grid on [-9, 9]^2, Nelder-Mead restarts, "
       "exact activation-pattern solve (tests/nonsmooth_helpers.py)", "z": z.tolist(), "energy": e.tolist()}
(HERE / "digits2d_lrelu_minima.json").write_text(json.dumps(out, indent=1))
print(f"{len(e)} minima written")
