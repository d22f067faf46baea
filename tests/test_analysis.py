"""The pipeline (`analyze`), saved results (JSON + npz, atomic, no pickle) and reloading without the model.

Known answers are the Müller–Brown minima and saddles (REFERENCE.md). The network stage is given the exact saddles
through a stand-in ``connect`` (so these tests check the pipeline's own work, not NEB, which has its own tests);
one test runs the real ``connect`` end to end.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import energyscope as es
import energyscope.analysis as analysis_mod
from energyscope.io import codec
import energyscope.search.network as network_mod
from energyscope.analysis import Analysis, AnalysisFormatError
from energyscope.search.network import Path
from energyscope.surfaces import MULLER_BROWN_MINIMA, MULLER_BROWN_MINIMA_ENERGY
from mb_helpers import E_MA, E_MB, E_MC, E_S1, E_S2, exact_connect, mb_analysis, mb_landscape, run_mb


# ------------------------------------------------------------------------------------------------------ the pipeline
def test_pipeline_finds_the_known_minima_barriers_and_tree():
    res = mb_analysis()
    assert res.diagnostics["stage_errors"] == {}
    assert set(res.timings) == {"minima", "network", "tree", "interpret", "kinetics", "total"}
    assert res.kinetics is not None and res.kinetics.n_minima == 3
    assert all(v >= 0 for v in res.timings.values())
    np.testing.assert_allclose(res.minima.energy, MULLER_BROWN_MINIMA_ENERGY, atol=1e-6)
    np.testing.assert_allclose(res.minima.z, MULLER_BROWN_MINIMA, atol=1e-5)
    # one record per minimum; barrier = lowest saddle out minus the minimum's energy
    assert [b.index for b in res.basins] == [0, 1, 2]
    np.testing.assert_allclose([b.barrier for b in res.basins], [E_S1 - E_MA, E_S2 - E_MB, E_S2 - E_MC], atol=1e-6)
    np.testing.assert_allclose([b["energy"] for b in res.basins], MULLER_BROWN_MINIMA_ENERGY, atol=1e-6)
    assert sum(b.hits for b in res.basins) == 48
    # the tree: MC joins MB at E(S2); {MB, MC} joins MA at E(S1)
    assert res.tree.basins_at(0.5 * (E_S1 + E_S2)) in ([{1, 2}, {0}], [{0}, {1, 2}])
    assert len(res.tree.basins_at(E_S1 + 1e-9)) == 1


def test_basins_carry_data_mass_labels_and_agreement():
    res = mb_analysis()
    # every reference latent sits next to its own minimum, so data mass and labels are exact
    np.testing.assert_allclose([b.data_mass for b in res.basins], [1 / 3] * 3, atol=1e-12)
    assert [b.dominant_label for b in res.basins] == ["A", "B", "C"]
    assert [b.label_counts for b in res.basins] == [{"A": 40}, {"B": 40}, {"C": 40}]
    assert [b.purity for b in res.basins] == [1.0, 1.0, 1.0]
    la = res.label_agreement
    assert la.purity == pytest.approx(1.0) and la["nmi"] == pytest.approx(1.0) and la.ari == pytest.approx(1.0)
    assert la.hdbscan is not None and "nmi" in la.hdbscan
    assert np.asarray(la["confusion"]).sum() == 120
    for b in res.basins:  # every mass is a fraction; the prior mass was computed too
        for key in ("prior_mass", "data_mass"):
            assert b[key] is not None and 0.0 <= b[key] <= 1.0
        # Müller–Brown has no base prior and no sampler settings: no made-up short-run sampler mass
        assert b["sampler_mass"] is None
    assert "masses" in res.interpretation and res.interpretation["masses"].equilibrium is not None


def test_path_gallery_and_contour_grid():
    res = mb_analysis()
    assert len(res.paths) == 2
    for rec in res.paths:
        assert {rec["i"], rec["j"]} in ({0, 2}, {1, 2})
        assert rec["saddle_energy"] in (pytest.approx(E_S1), pytest.approx(E_S2))
        assert rec["validated"] is True
        assert len(rec["mep_s"]) == len(rec["mep_energy"]) and len(rec["line_s"]) == len(rec["line_energy"])
        # the straight line starts and ends at the two minima
        e = res.minima.energy
        assert rec["line_energy"][0] == pytest.approx(e[rec["i"]], abs=1e-6)
        assert rec["line_energy"][-1] == pytest.approx(e[rec["j"]], abs=1e-6)
        assert "mep_frames" not in rec  # no decoder, no filmstrips
    v = res.views
    assert v["grid_U"].shape == (60, 60)
    # the grid is the landscape itself
    land = mb_landscape()
    k = (17, 23)
    assert v["grid_U"][k] == pytest.approx(float(land.energy(np.array([[v["grid_x"][k[1]], v["grid_y"][k[0]]]]))[0]))
    assert v["reference"].shape == (120, 2) and list(v["reference_labels"][:2]) == ["A", "A"]


def test_same_seed_same_result():
    a, b = mb_analysis().snapshot(), run_mb()
    da, aa = a.to_payload()
    db, ab = b.to_payload()
    def scrub(x):  # wall-clock times are the only thing allowed to differ
        if isinstance(x, dict):
            return {k: scrub(v) for k, v in x.items() if k not in ("timings", "created") and "time_s" not in k}
        return [scrub(v) for v in x] if isinstance(x, list) else x
    da, db = scrub(da), scrub(db)
    assert json.dumps(da, sort_keys=True) == json.dumps(db, sort_keys=True)
    assert aa.keys() == ab.keys()
    for k in aa:
        np.testing.assert_array_equal(aa[k], ab[k])


def test_summary_text():
    s = mb_analysis().summary()
    assert "minima: 3" in s
    assert "transition states: 2" in s
    assert "NMI 1" in s
    assert "minima" in s.splitlines()[-1] or "total" in s


# ------------------------------------------------------------------------------------------------------ failures
def test_failed_network_stage_is_recorded_and_later_stages_run():
    def broken(land, minima, **_):
        raise RuntimeError("band exploded")
    res = run_mb(connect=broken, with_reference=False, masses=False)
    assert "network" in res.diagnostics["stage_errors"]
    assert "RuntimeError: band exploded" in res.diagnostics["stage_errors"]["network"]
    assert "skipped" in res.diagnostics["stage_errors"]["tree"]
    assert res.network is None and res.tree is None
    assert len(res.minima) == 3                      # nothing computed is lost
    assert [b.barrier for b in res.basins] == [None, None, None]
    assert res.views["grid_U"].shape == (60, 60)     # the contour grid is still drawn
    assert "network failed" in res.summary()


def test_failed_minima_stage(monkeypatch):
    import energyscope.search.minima as minima_mod

    def broken(*a, **k):
        raise ValueError("no good")
    monkeypatch.setattr(minima_mod, "find_minima", broken)
    res = run_mb(with_reference=False)
    errs = res.diagnostics["stage_errors"]
    assert errs["minima"].startswith("ValueError: no good")
    assert "skipped" in errs["network"] and "skipped" in errs["tree"]
    assert res.minima is None and res.basins == []


def test_warnings_of_a_stage_are_kept_in_the_diagnostics(monkeypatch):
    import warnings

    import energyscope.search.minima as minima_mod
    original = minima_mod.find_minima

    def warning_search(*a, **k):
        warnings.warn("half the restarts wandered off", UserWarning)
        return original(*a, **k)
    monkeypatch.setattr(minima_mod, "find_minima", warning_search)
    with pytest.warns(UserWarning, match="wandered off"):  # still shown to the user
        res = run_mb(with_reference=False, masses=False)
    assert "minima: half the restarts wandered off" in res.diagnostics["warnings"]
    assert len(res.minima) == 3


def test_failed_connections_are_listed():
    def with_failures(land, minima, **kw):
        net = exact_connect(land, minima)
        net.attempts.append(network_mod.Attempt(0, 1, "failed", reason="band did not converge in 500 steps"))
        net.attempts.append(network_mod.Attempt(0, 2, "connected", saddle_energy=E_S1, edge_minima=(0, 2)))
        return net
    res = run_mb(connect=with_failures, with_reference=False, masses=False)
    assert res.diagnostics["failed_connections"] == [
        {"i": 0, "j": 1, "reason": "band did not converge in 500 steps"}]
    assert res.diagnostics["attempt_outcomes"] == {"failed": 1, "connected": 1}


# ------------------------------------------------------------------------------------------------------ save / load
def _assert_same(a: Analysis, b: Analysis) -> None:
    np.testing.assert_array_equal(a.minima.z, b.minima.z)
    np.testing.assert_array_equal(a.minima.energy, b.minima.energy)
    np.testing.assert_array_equal(a.minima.hits, b.minima.hits)
    np.testing.assert_array_equal(a.minima.hessian_eigenvalues, b.minima.hessian_eigenvalues)
    assert a.minima.coverage.to_dict() == b.minima.coverage.to_dict()
    assert a.minima.dedup_tol == b.minima.dedup_tol and a.minima.flat_tol == b.minima.flat_tol
    ea = sorted((u, v, d["energy"]) for u, v, d in a.network.graph.edges(data=True))
    eb = sorted((u, v, d["energy"]) for u, v, d in b.network.graph.edges(data=True))
    assert ea == eb
    for (_, _, da), (_, _, db) in zip(sorted(a.network.graph.edges(data=True), key=lambda t: t[2]["energy"]),
                                      sorted(b.network.graph.edges(data=True), key=lambda t: t[2]["energy"])):
        assert isinstance(db["path"], Path)
        np.testing.assert_array_equal(da["path"].z, db["path"].z)
        np.testing.assert_array_equal(da["z"], db["z"])
        assert da["negative_eigenvalue"] == db["negative_eigenvalue"]
    assert a.tree.same_tree(b.tree)
    assert json.dumps(a.basins, sort_keys=True, default=str) == json.dumps(b.basins, sort_keys=True, default=str)
    assert a.settings == b.settings and a.timings == b.timings and a.created == b.created
    assert a.model == b.model
    assert len(a.paths) == len(b.paths)
    for pa, pb in zip(a.paths, b.paths):
        assert pa.keys() == pb.keys()
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])
    for k in a.views:
        np.testing.assert_array_equal(a.views[k], b.views[k])


def test_save_load_round_trip(tmp_path):
    res = mb_analysis()
    res.save(tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == ["analysis.json", "arrays.npz"]
    back = Analysis.load(tmp_path / "out")
    assert back.landscape is None
    _assert_same(res, back)
    assert back.basins[0].dominant_label == "A"          # records keep attribute access
    assert back.label_agreement.nmi == pytest.approx(1.0)
    assert back.interpretation["masses"].equilibrium.ess == res.interpretation["masses"].equilibrium.ess
    # the files are plain JSON (no NaN/Infinity) and an npz without object arrays (loads with allow_pickle=False)
    doc = json.loads((tmp_path / "out" / "analysis.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert doc["format"] == "energyscope-analysis"
    with np.load(tmp_path / "out" / "arrays.npz", allow_pickle=False) as z:
        for k in z.files:
            assert z[k].dtype != object
    raw = (tmp_path / "out" / "arrays.npz").read_bytes()
    assert doc["arrays_sha256"] == hashlib.sha256(raw).hexdigest()
    umask = os.umask(0)
    os.umask(umask)
    for name in ("analysis.json", "arrays.npz"):   # ordinary permissions, like any file the user writes
        assert os.stat(tmp_path / "out" / name).st_mode & 0o777 == 0o666 & ~umask


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(AnalysisFormatError, match="no results directory"):
        Analysis.load(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "analysis.json").write_text("{}")
    with pytest.raises(AnalysisFormatError, match="arrays.npz' is missing"):
        Analysis.load(tmp_path / "half")
    # a JSON from one save with the arrays of another
    a, b = tmp_path / "a", tmp_path / "b"
    mb_analysis().save(a)
    other = mb_analysis().snapshot()
    other.settings = dict(other.settings, seed=99)
    other.views = dict(other.views, grid_U=other.views["grid_U"] + 1.0)
    other.save(b)
    (a / "arrays.npz").write_bytes((b / "arrays.npz").read_bytes())
    with pytest.raises(AnalysisFormatError, match="checksum mismatch"):
        Analysis.load(a)
    (b / "analysis.json").write_text("{not json")
    with pytest.raises(AnalysisFormatError, match="not valid JSON"):
        Analysis.load(b)


def test_interrupted_save_keeps_previous_results(tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = mb_analysis()
    first.save(out)
    before = {p: (out / p).read_bytes() for p in os.listdir(out)}
    second = first.snapshot()
    second.settings = dict(second.settings, seed=123)
    calls = {"n": 0}
    real_replace = os.replace

    def interrupted_replace(src, dst):  # Ctrl-C after the arrays are in place, before the JSON is
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real_replace(src, dst)
    monkeypatch.setattr(analysis_mod.os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        second.save(out)
    monkeypatch.setattr(analysis_mod.os, "replace", real_replace)
    assert {p: (out / p).read_bytes() for p in os.listdir(out)} == before   # no temp file, nothing half-written
    assert Analysis.load(out).settings["seed"] == first.settings["seed"]

    def failing_write(*a, **k):  # the disk fills up while the arrays are written
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(analysis_mod.np, "savez_compressed", failing_write)
    with pytest.raises(OSError):
        second.save(out)
    assert {p: (out / p).read_bytes() for p in os.listdir(out)} == before


def test_killed_save_leaves_old_results_and_the_next_save_cleans_up(tmp_path):
    out = tmp_path / "out"
    mb_analysis().save(out)
    before = {p: (out / p).read_bytes() for p in os.listdir(out)}
    # a process killed (no cleanup at all) while writing the JSON temp file, after the arrays temp file is complete
    script = textwrap.dedent(f"""
        import os, numpy as np
        import energyscope.analysis as A
        import energyscope.io.results as S                      # the file writing lives in energyscope.io.results
        res = A.Analysis.load({str(out)!r})
        res.settings["seed"] = 7
        real = S._write_temp
        def dying(directory, name, data):
            if name == S.JSON_NAME:
                fd = os.open(os.path.join(directory, "." + name + ".x.tmp"), os.O_WRONLY | os.O_CREAT)
                os.write(fd, data[: len(data) // 2])
                os._exit(9)
            return real(directory, name, data)
        S._write_temp = dying
        res.save({str(out)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 9, proc.stderr
    names = os.listdir(out)
    assert any(n.endswith(".tmp") for n in names)                   # debris from the killed process ...
    assert {p: (out / p).read_bytes() for p in before} == before     # ... but the results are the old ones
    assert Analysis.load(out).settings["seed"] == 0
    Analysis.load(out).save(out)
    assert sorted(os.listdir(out)) == ["analysis.json", "arrays.npz"]


def test_codec_round_trips_nested_values():
    enc = codec.Encoder()
    value = {"a": [1, 2.5, float("inf"), float("nan"), None, True], "b": (1, "x"), "c": {3: "int key", "k": {1, 2}},
             "__d": np.arange(6).reshape(2, 3), "e": np.array(["x", "y"]), "f": np.float32(1.5)}
    doc = json.loads(json.dumps(enc.encode(value), allow_nan=False))
    back = codec.Decoder(enc.arrays).decode(doc)
    assert back["a"][:3] == [1, 2.5, float("inf")] and np.isnan(back["a"][3]) and back["a"][4:] == [None, True]
    assert back["b"] == (1, "x") and back["c"] == {3: "int key", "k": {1, 2}}
    np.testing.assert_array_equal(back["__d"], np.arange(6).reshape(2, 3))
    assert list(back["e"]) == ["x", "y"] and back["f"] == 1.5
    # classes outside the package are never imported on load
    assert codec.saved_class("os:system") is None
    assert codec.saved_class("energyscope.minima:Minima") is es.Minima


# ------------------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_real_pipeline_on_muller_brown():
    if not hasattr(network_mod, "connect"):
        pytest.skip("energyscope.search.network.connect is not available yet")
    res = es.analyze(mb_landscape(with_reference=False), seed=0, n_restarts=64, progress=False, masses=False,
                     grid_size=40)
    assert res.diagnostics["stage_errors"] == {}
    np.testing.assert_allclose(res.minima.energy, MULLER_BROWN_MINIMA_ENERGY, atol=1e-6)
    saddles = sorted(e for _, _, e in res.network.graph.edges(data="energy"))
    np.testing.assert_allclose(saddles[:2], sorted([E_S1, E_S2]), atol=1e-6)
    np.testing.assert_allclose([b.barrier for b in res.basins], [E_S1 - E_MA, E_S2 - E_MB, E_S2 - E_MC], atol=1e-6)


@pytest.mark.slow
def test_quickstart_script(tmp_path):
    """examples/quickstart.py runs and prints the published Müller–Brown saddles."""
    script = os.path.join(os.path.dirname(__file__), "..", "examples", "quickstart.py")
    proc = subprocess.run([sys.executable, script, "-o", str(tmp_path / "qs"), "--restarts", "32", "--quiet"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"U = {E_S2:.6f}" in proc.stdout and f"U = {E_S1:.6f}" in proc.stdout
    assert sorted(os.listdir(tmp_path / "qs")) == ["analysis.json", "arrays.npz", "report.html"]
    assert Analysis.load(tmp_path / "qs").minima.energy[0] == pytest.approx(E_MA, abs=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_restarts": 0}, "n_restarts must be a positive integer"),
    ({"n_restarts": 2.5}, "n_restarts must be a positive integer"),
    ({"n_paths": -1}, "n_paths must be a non-negative integer"),
    ({"n_frames": 1}, "n_frames must be an integer >= 2"),
    ({"grid_size": 3}, "grid_size must be an integer >= 8"),
])
def test_bad_arguments_fail_at_once(kwargs, message):
    with pytest.raises(ValueError, match=message):
        es.analyze(mb_landscape(with_reference=False), progress=False, **kwargs)


def _load_in_fresh_python(out) -> subprocess.CompletedProcess:
    """Load the results in ``out`` in a new interpreter that checks energyscope.__main__ was not imported; prints the
    type the coverage loaded as."""
    code = textwrap.dedent(f"""
        import sys
        import energyscope as es
        a = es.Analysis.load({str(out)!r})
        assert "energyscope.__main__" not in sys.modules, "a module named in the file was imported"
        print(type(a.minima.coverage).__name__)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_saved_type_names_never_import_code(tmp_path):
    """Version 2 names types by stable names; a tampered name that is a module path is looked up in the registry
    too and never imported."""
    out = tmp_path / "out"
    mb_analysis().save(out)
    text = (out / "analysis.json").read_text()
    assert '"__type__": "Coverage"' in text
    (out / "analysis.json").write_text(text.replace('"__type__": "Coverage"', '"__type__": "energyscope.__main__:main"'))
    r = _load_in_fresh_python(out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "dict"


def test_saved_type_tags_never_import_code(tmp_path):
    """A tampered analysis.json whose type tag names a module (energyscope.__main__ runs the CLI when imported) loads
    as plain data: saved tags resolve only through a fixed registry, nothing named in a file is imported."""
    out = tmp_path / "out"  # results saved by energyscope 0.1.0, whose type tags named modules
    shutil.copytree(pathlib.Path(__file__).parent / "data" / "analysis_0_1_0", out)
    doc = json.loads((out / "analysis.json").read_text())
    text = json.dumps(doc)
    assert "energyscope.minima:Coverage" in text
    text = text.replace("energyscope.minima:Coverage", "energyscope.__main__:main")
    (out / "analysis.json").write_text(text)
    r = _load_in_fresh_python(out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "dict"        # the data is kept, as a plain dict, and nothing else happens


@pytest.mark.parametrize("kwargs, message", [
    ({"minima_kwargs": {"max_iters": 10}}, "minima_kwargs: unknown setting 'max_iters' for find_minima; did you mean "
                                           "'max_iter'?"),
    ({"connect_kwargs": {"k_neighbours": 2}}, "connect_kwargs: unknown setting 'k_neighbours' for connect"),
    ({"tree_kwargs": {"levels": 3}}, "tree_kwargs: unknown setting 'levels' for disconnectivity"),
    ({"interpret_kwargs": {"n_priors": 64}}, "interpret_kwargs: unknown setting 'n_priors' for interpret / "
                                             "basin_masses / assign_basins; did you mean 'n_prior'?"),
    ({"minima_kwargs": {"seed": 3}}, "minima_kwargs: 'seed' is set by analyze itself"),
    ({"interpret_kwargs": ["n_prior"]}, "interpret_kwargs must be a dict of settings, got list"),
])
def test_misspelt_stage_settings_are_one_clear_error(kwargs, message):
    """Stage settings used to be filtered by signature, so a misspelt key silently ran the default."""
    land = mb_landscape()
    with pytest.raises(ValueError) as err:
        es.analyze(land, n_restarts=4, progress=False, **kwargs)
    assert message in str(err.value)


def test_accepted_stage_settings_reach_their_stage():
    land = mb_landscape()
    res = es.analyze(land, n_restarts=8, progress=False, minima_kwargs={"max_iter": 3}, masses=False, n_paths=0,
                     grid_size=8, interpret_kwargs={"hdbscan": False})
    assert res.minima.stats["n_unconverged"] > 0  # max_iter = 3 reached find_minima
