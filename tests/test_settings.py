"""Typed settings: every setting is checked once, where it enters, with one error naming it and what it accepts;
the settings objects mirror the stage functions exactly; analysis.json stores them and they read back."""
import dataclasses
import inspect
import pathlib

import numpy as np
import pytest

import energyscope as es
from energyscope import cli
from energyscope.errors import BadArgumentError, UnknownSettingError
from energyscope.interpret.masses import assign_basins, basin_masses
from energyscope.interpret.stage import interpret
from energyscope.search.minima import find_minima
from energyscope.search.network import connect
from energyscope.kinetics.api import kinetics
from energyscope.settings import (AnalysisSettings, ConnectSettings, InterpretSettings, KineticsSettings, MassSettings,
                                  MinimaSettings, TreeSettings)
from energyscope.tree.graph import disconnectivity
from mb_helpers import mb_landscape

FIXTURE_0_1_0 = pathlib.Path(__file__).parent / "data" / "analysis_0_1_0"
PIPELINE_OWNED = {"n_restarts", "seed", "bounds", "progress", "time_limit", "masses"}


def keyword_defaults(fn, skip: int) -> dict:
    ps = list(inspect.signature(fn).parameters.values())[skip:]
    return {p.name: p.default for p in ps if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


@pytest.mark.parametrize("cls, functions, not_settings", [
    (MinimaSettings, [(find_minima, 1)], set()),
    (ConnectSettings, [(connect, 2)], set()),
    (TreeSettings, [(disconnectivity, 1)], set()),
    (InterpretSettings, [(interpret, 2)], set()),
    # basin_masses takes the reference from interpret; assign_basins's first keywords are the points and a bar label
    (MassSettings, [(basin_masses, 2), (assign_basins, 3)], {"reference", "desc"}),
    # the landscape and the sampler's step and chain length come from the analysis itself
    (KineticsSettings, [(kinetics, 1)], {"landscape", "step_size", "chain_length", "noise"}),
])
def test_settings_mirror_the_stage_functions(cls, functions, not_settings):
    """Each settings class has exactly the stage's keywords (those the pipeline does not set), with its defaults: the
    pipeline passes them as written, so the two can never drift apart."""
    want: dict = {}
    for fn, skip in functions:
        for name, default in keyword_defaults(fn, skip).items():
            want.setdefault(name, default)
    want = {k: v for k, v in want.items() if k not in PIPELINE_OWNED | not_settings}
    have = {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)}
    assert set(have) == set(want)
    for name, default in want.items():
        assert have[name] == (tuple(default) if isinstance(default, list) else default), name


def test_analyze_defaults_are_the_settings_defaults():
    params = keyword_defaults(es.analyze, 1)
    default = AnalysisSettings()
    for name in AnalysisSettings.pipeline_names():
        assert params[name] == getattr(default, name), name


def test_misspelt_analyze_keyword_is_one_error_naming_it():
    with pytest.raises(UnknownSettingError) as err:
        es.analyze(mb_landscape(), n_restart=10)
    msg = str(err.value)
    assert "analyze: unknown setting 'n_restart'; did you mean 'n_restarts'?" in msg
    assert "accepted: " in msg and "grid_size" in msg and "minima_kwargs" in msg
    assert isinstance(err.value, TypeError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("kwargs, message", [
    ({"minima_kwargs": {"max_iter": "10"}}, "minima.max_iter must be an integer >= 1, got '10'"),
    ({"minima_kwargs": {"method": "bfgs"}}, "minima.method must be one of 'auto', 'lbfgs', 'fire', 'nonsmooth'"),
    ({"minima_kwargs": {"sources": ["prior", "grid"]}}, "minima.sources must be a list of names from"),
    ({"connect_kwargs": {"split": 1}}, "connect.split must be True or False, got 1"),
    ({"connect_kwargs": {"ftol_rel": float("nan")}}, "connect.ftol_rel must be a number >= 0, got nan"),
    ({"interpret_kwargs": {"hole_ratio": float("nan")}}, "mass.hole_ratio must be a number > 0 (inf allowed), got nan"),
    ({"interpret_kwargs": {"n_prior": 0}}, "mass.n_prior must be an integer >= 1, got 0"),
    ({"interpret_kwargs": {"which": ["prior"]}}, "mass.which must be a list of distinct names from 'equilibrium'"),
    ({"interpret_kwargs": {"hdbscan": "yes"}}, "interpret.hdbscan must be True or False, got 'yes'"),
    ({"interpret_kwargs": {"min_mass": 2.0}}, "mass.min_mass must be a number >= 0 and <= 1, got 2.0"),
    ({"time_limit": -1}, "time_limit must be a positive number of seconds (or None), got -1"),
    ({"bounds": (1, 2, 3)}, "bounds must be a (lo, hi) pair"),
    ({"masses": "no"}, "masses must be True or False, got 'no'"),
    ({"connect_kwargs": {"time_limit": 5}}, "connect_kwargs: 'time_limit' is set by analyze itself"),
])
def test_ill_typed_settings_fail_before_anything_runs(kwargs, message):
    with pytest.raises(BadArgumentError) as err:
        es.analyze(mb_landscape(), n_restarts=4, progress=False, **kwargs)
    assert message in str(err.value)


def test_stage_functions_called_directly_check_keys_and_values():
    land = mb_landscape()
    with pytest.raises(UnknownSettingError, match=r"find_minima: unknown setting 'max_iters'; did you mean 'max_iter'"):
        es.find_minima(land, n_restarts=4, max_iters=5)
    with pytest.raises(TypeError):  # what Python itself raises for an unexpected keyword: still true
        es.find_minima(land, n_restarts=4, max_iters=5)
    with pytest.raises(BadArgumentError, match=r"find_minima: max_iter must be an integer >= 1, got '5'"):
        es.find_minima(land, n_restarts=4, max_iter="5", progress=False)
    minima = es.find_minima(land, n_restarts=16, seed=0, progress=False)
    with pytest.raises(UnknownSettingError, match=r"connect: unknown setting 'k_neighbours' \(accepted: .*k_nearest"):
        es.connect(land, minima, k_neighbours=2)
    with pytest.raises(BadArgumentError, match=r"connect: k_nearest must be an integer >= 0, got -1"):
        es.connect(land, minima, k_nearest=-1)
    with pytest.raises(UnknownSettingError, match=r"neb: unknown setting 'n_image'; did you mean 'n_images'"):
        es.neb(land, minima.z[0], minima.z[1], n_image=9)


def test_settings_accept_what_the_stages_accept():
    """The constraints are no stricter than the stages: 0 nearest neighbours (the spanning tree alone), an infinite
    threshold that switches a flag off, an empty list of masses, repeated start sources."""
    ConnectSettings(k_nearest=0, max_rounds=0, ftol_rel=0.0, match_tol=0.0)
    MassSettings(hole_ratio=float("inf"), n_se=float("inf"), min_ess=float("inf"), which=[], tol=0.0)
    MinimaSettings(sources=["prior", "prior", "box"], max_step_max=float("inf"))


def test_settings_are_frozen_and_replace_checks_again():
    s = MinimaSettings(max_iter=20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.max_iter = 3
    assert dataclasses.replace(s, max_iter=30).max_iter == 30
    with pytest.raises(BadArgumentError, match="minima.max_iter must be an integer >= 1, got 0"):
        dataclasses.replace(s, max_iter=0)
    with pytest.raises(UnknownSettingError, match="minima: unknown setting 'max_iters'"):
        MinimaSettings.from_dict({"max_iters": 3})


def test_settings_object_and_keywords_give_the_same_analysis_settings():
    land = mb_landscape(with_reference=False)
    quick = dict(n_restarts=8, masses=False, n_paths=0, grid_size=8, progress=False)
    by_keywords = es.analyze(land, minima_kwargs={"max_iter": 400}, connect_kwargs={"k_nearest": 2}, **quick)
    settings = AnalysisSettings(n_restarts=8, masses=False, n_paths=0, grid_size=8,
                                minima=MinimaSettings(max_iter=400), connect=ConnectSettings(k_nearest=2))
    by_object = es.analyze(land, settings=settings, progress=False)
    assert by_object.settings == by_keywords.settings
    assert by_object.typed_settings == settings == by_keywords.typed_settings
    np.testing.assert_array_equal(by_object.minima.energy, by_keywords.minima.energy)
    with pytest.raises(BadArgumentError, match="either settings= or the separate settings, not both .'n_restarts'"):
        es.analyze(land, settings=settings, n_restarts=4)


def test_analysis_json_stores_every_setting_from_the_dataclass(tmp_path):
    land = mb_landscape(with_reference=False)
    res = es.analyze(land, n_restarts=8, masses=False, n_paths=0, grid_size=8, progress=False,
                     interpret_kwargs={"n_prior": 64, "hdbscan": False}, minima_kwargs={"max_iter": 500})
    expected = AnalysisSettings(n_restarts=8, masses=False, n_paths=0, grid_size=8,
                                minima=MinimaSettings(max_iter=500), interpret=InterpretSettings(hdbscan=False),
                                mass=MassSettings(n_prior=64))
    assert res.settings == {"energyscope_version": es.__version__, **expected.to_dict()}
    res.save(tmp_path / "out")
    back = es.Analysis.load(tmp_path / "out")
    assert back.settings == res.settings
    assert back.typed_settings == expected
    assert back.settings["minima"]["max_iter"] == 500 and back.settings["mass"]["n_sampler"] == 4096


def test_settings_saved_by_0_1_0_read_back_as_typed_settings():
    s = es.Analysis.load(FIXTURE_0_1_0).typed_settings
    assert s.n_restarts == 96 and s.n_paths == 2 and s.n_frames == 4 and s.grid_size == 24
    assert s.mass.n_prior == 512 and s.mass.n_sampler == 256 and s.minima == MinimaSettings()


def test_report_lists_the_settings_that_differ_from_the_defaults(tmp_path):
    land = mb_landscape(with_reference=False)
    res = es.analyze(land, n_restarts=8, masses=False, n_paths=0, grid_size=8, progress=False,
                     minima_kwargs={"max_iter": 500})
    html = res.render_report()
    assert "max_iter = 500" in html
    assert "images_per_length" not in html          # a default, not listed


def test_bad_command_line_values_are_one_clear_error(capsys, tmp_path):
    import torch
    ckpt = tmp_path / "small.pt"
    es.save_checkpoint(ckpt, torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)),
                       base_prior="standard_normal")
    base = ["analyze", str(ckpt), "-o", str(tmp_path / "out"), "--quiet"]
    for argv, fragment in ((["--restarts", "abc"], "argument --restarts: invalid int value: 'abc'"),
                           (["--time-limit", "soon"], "argument --time-limit: invalid float value: 'soon'")):
        with pytest.raises(SystemExit) as exc:        # argparse's own message and exit status 2
            cli.main(base + argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert fragment in err and "Traceback" not in err
    assert cli.main(base + ["--restarts", "0"]) == 2
    err = capsys.readouterr().err
    assert "--restarts must be at least 1, got 0" in err and "Traceback" not in err


def test_warnings_point_at_the_callers_line():
    """Checked entry points add a frame; warnings are attributed to the first frame outside energyscope."""
    import warnings
    land = mb_landscape(with_reference=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        es.find_minima(land, n_restarts=8, max_iter=3, progress=False)
    assert caught and {pathlib.Path(w.filename).name for w in caught} == {"test_settings.py"}
