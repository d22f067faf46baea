"""Results saved by energyscope 0.1.0 still load, to the values 0.1.0 itself read back (tests/data/analysis_0_1_0)."""
import json
import pathlib

import numpy as np

import energyscope as es

FIXTURE = pathlib.Path(__file__).parent / "data" / "analysis_0_1_0"


def summary(a) -> dict:
    """What the compatibility check compares (the same function produced expected.json under 0.1.0)."""
    return dict(
        n_minima=len(a.minima), minima_energy=[float(x) for x in a.minima.energy],
        minima_z=np.asarray(a.minima.z).tolist(),
        n_transition_states=int(a.network.n_transition_states),
        ts_energy=None,
        prior_mass=[b["prior_mass"] for b in a.basins], dominant_label=[b["dominant_label"] for b in a.basins],
        n_paths=len(a.paths), path_ij=[[p["i"], p["j"]] for p in a.paths],
        saddle_energy=[p["saddle_energy"] for p in a.paths],
        prototypes_shape=list(np.shape(a.prototypes)), grid_U_shape=list(np.shape(a.views["grid_U"])),
        tree_n_nodes=int(a.tree.n_nodes), first_merge=[float(x) for x in a.tree.first_merge_energy()],
        settings=a.settings, created=a.created,
    )


def test_results_saved_by_0_1_0_load_to_the_same_values():
    expected = json.loads((FIXTURE / "expected.json").read_text())
    loaded = json.loads(json.dumps(summary(es.Analysis.load(FIXTURE)), default=str))
    assert loaded == expected


def test_report_rebuilds_from_0_1_0_results(tmp_path):
    a = es.Analysis.load(FIXTURE)
    html = a.write_report(tmp_path / "report.html").read_text()
    assert "latent dimension 2 · 10 minima" in html
    assert html.count("<svg") + html.count("data:image/png") >= 3  # figures drawn from the old arrays
    assert a.network.n_transition_states == 11


def test_0_1_0_results_resave_and_load_unchanged(tmp_path):
    a = es.Analysis.load(FIXTURE)
    a.save(tmp_path / "again")
    b = es.Analysis.load(tmp_path / "again")
    assert summary(b) == summary(a)
