"""The command line: help/version, inspect output, analyze/report wiring, --data, exit codes and one-line errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import energyscope as es
from energyscope import cli
from energyscope.io.checkpoint import describe_checkpoint

D = 2


def nets(seed: int = 0):
    torch.manual_seed(seed)
    E = nn.Sequential(nn.Linear(D, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    G = nn.Sequential(nn.Linear(D, 16), nn.Tanh(), nn.Linear(16, 6))
    I = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2 * D))
    return E, G, I


@pytest.fixture()
def ckpt(tmp_path):
    E, G, I = nets()
    ref = np.random.default_rng(0).standard_normal((40, D)) * 0.5
    path = tmp_path / "small.pt"
    es.save_checkpoint(path, E, G, I, base_prior="standard_normal", reference=ref, labels=np.arange(40) % 3,
                       sampler={"steps": 60, "step_size": 0.4, "noise": True}, metadata={"name": "toy"})
    return path


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("energyscope: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


# ---------------------------------------------------------------------------------------------- help, version
def test_console_script_help_and_version():
    exe = shutil.which("energyscope")
    cmd = [exe] if exe else [sys.executable, "-m", "energyscope.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd + ["--help"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "inspect" in r.stdout and "analyze" in r.stdout and "report" in r.stdout
    r = subprocess.run(cmd + ["inspect", "no_such_file.pt"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert_one_line_error(r.stderr, "checkpoint file not found: no_such_file.pt")


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"energyscope {es.__version__}"


def test_no_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "usage: energyscope" in out


# ---------------------------------------------------------------------------------------------- inspect
def test_inspect_describes_the_checkpoint(ckpt, capsys):
    code, out, err = run(capsys, "inspect", ckpt, "--threads", "1")
    assert code == 0, err
    info = describe_checkpoint(ckpt)
    lines = dict(line.split(None, 1) if not line.startswith(("latent", "data", "U on", "sign"))
                 else (line[:16].strip(), line[16:].strip()) for line in out.splitlines())
    assert lines["layout"] == "energyscope v1"
    assert lines["latent dim"] == "2"
    assert lines["convention"].startswith("energy, temperature 1, base prior standard_normal")
    n_e = sum(p.numel() for p in nets()[0].parameters())
    assert lines["energy"].startswith(f"{n_e} parameters: Linear(2→16) · LeakyReLU(0.2) · Linear(16→1)")
    assert lines["data shape"] == "(6)"
    assert lines["sampler"] == "steps=60, step_size=0.4, noise=True"
    assert lines["reference"] == "40 latents; labels: 3 classes (0: 14, 1: 13, 2: 13)"
    assert f"mean {info['energy']['base']['mean']:.4g} ± " in lines["U on base"]
    assert f"mean {info['energy']['reference']['mean']:.4g} ± " in lines["U on reference"]
    assert lines["sign check"].startswith("passed" if info["sign_check"]["ok"] else "FAILED")
    # the toy energy net uses LeakyReLU: inspect says so, and why
    assert lines["smoothness"].startswith("piecewise-smooth") and "leaky_relu" in lines["smoothness"]
    assert info["landscape"]["smoothness"]["kind"] == "piecewise"


def test_inspect_json(ckpt, capsys):
    code, out, _ = run(capsys, "inspect", ckpt, "--json", "--samples", "300", "--seed", "4")
    assert code == 0
    info = json.loads(out)
    assert info["energy"]["base"]["n"] == 300
    assert info["landscape"]["n_reference"] == 40 and info["labels"] == {"0": 14, "1": 13, "2": 13}


def test_inspect_foreign_layout_with_spec_and_warning(tmp_path, capsys):
    E, G, _ = nets()
    torch.save({"netE": E.state_dict(), "netG": G.state_dict(), "optE": {"state": {}, "param_groups": []}},
               tmp_path / "foreign.pt")
    code, out, err = run(capsys, "inspect", tmp_path / "foreign.pt")
    assert code == 0 and err == ""
    notes = [line for line in out.splitlines() if line.startswith("note")]
    assert any("decoder: architecture inferred" in n and "LeakyReLU(0.2)" in n and "assumed" in n for n in notes)
    assert "dict of state_dicts" in out and "optE" in out
    (tmp_path / "spec.json").write_text(json.dumps({"energy": {"activation": "leaky_relu"},
                                                    "decoder": {"activation": "tanh"},
                                                    "convention": "log_density"}))
    code, out, err = run(capsys, "inspect", tmp_path / "foreign.pt", "--spec", tmp_path / "spec.json")
    assert code == 0 and err == "" and "assumed" not in out
    assert "log_density" in out and "Linear(2→16) · Tanh · Linear(16→6)" in out


def test_inspect_pickle_needs_trust_flag(tmp_path, capsys):
    E, _, _ = nets()
    torch.save(E, tmp_path / "whole.pt")
    code, _, err = run(capsys, "inspect", tmp_path / "whole.pt")
    assert code == 2
    assert_one_line_error(err, "pickled Python objects", "--trust-pickle", "only for files you trust")
    code, out, err = run(capsys, "inspect", tmp_path / "whole.pt", "--trust-pickle")
    assert code == 0 and "(unpickled: trusted)" in out


@pytest.mark.parametrize("setup, argv, fragments", [
    (lambda p: p.write_text("not a checkpoint"), [], ["is not a torch checkpoint file"]),
    (lambda p: torch.save({"foo": {"w": torch.zeros(2)}, "epoch": 3}, p), [],
     ["unknown checkpoint layout", "foo (state_dict, 1 tensors)", "epoch (int)"]),
    (lambda p: torch.save({"netE": {"0.weight": torch.full((4, D), float("nan")), "0.bias": torch.zeros(4)}}, p), [],
     ["energy's tensor '0.weight' has 8 non-finite value(s)"]),
    (lambda p: torch.save({"netE": nets()[0].state_dict()}, p), ["--model", "nowhere_pkg_xyz:fn"],
     ["cannot import 'nowhere_pkg_xyz'"]),
    (lambda p: torch.save({"netE": nets()[0].state_dict()}, p), ["--threads", "0"], ["--threads must be at least 1"]),
    (lambda p: torch.save({"netE": nets()[0].state_dict()}, p), ["--spec", "missing.json"],
     ["spec file not found: missing.json"]),
])
def test_bad_input_exit_2_with_one_line(tmp_path, capsys, setup, argv, fragments):
    path = tmp_path / "bad.pt"
    setup(path)
    code, out, err = run(capsys, "inspect", path, *argv)
    assert code == 2 and out == ""
    assert_one_line_error(err, *fragments)


def test_unexpected_errors_exit_1_and_debug_shows_traceback(ckpt, capsys, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("something\nbroke")
    monkeypatch.setattr("energyscope.io.checkpoint.describe_checkpoint", boom)
    code, _, err = run(capsys, "inspect", ckpt)
    assert code == 1
    assert_one_line_error(err, "unexpected RuntimeError: something broke", "ENERGYSCOPE_DEBUG=1")
    monkeypatch.setenv("ENERGYSCOPE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="broke"):
        cli.main(["inspect", str(ckpt)])


def test_internal_value_errors_are_not_reported_as_bad_input(ckpt, capsys, monkeypatch):
    """Every ValueError used to read as bad input (exit 2), so an internal bug looked like the user's fault."""
    def bug(*a, **k):
        raise ValueError("cannot reshape array of size 0 into shape (0,newaxis)")
    monkeypatch.setattr("energyscope.io.checkpoint.describe_checkpoint", bug)
    code, _, err = run(capsys, "inspect", ckpt)
    assert code == 1
    assert_one_line_error(err, "unexpected ValueError: cannot reshape", "an internal error: please report it")


def test_every_input_error_is_an_energyscope_error():
    from energyscope.io.checkpoint import CheckpointError
    from energyscope.errors import BadArgumentError, EnergyscopeError
    from energyscope.landscape import LandscapeError
    from energyscope.search.neb import NEBError
    from energyscope.io.spec import SpecError
    from energyscope.io.results import AnalysisFormatError, OutputLockedError
    for cls in (CheckpointError, cli.CLIError, LandscapeError, NEBError, SpecError, AnalysisFormatError,
                OutputLockedError, BadArgumentError):
        assert issubclass(cls, EnergyscopeError), cls
    with pytest.raises(BadArgumentError, match="seed must be an integer"):
        es.find_minima(es.Landscape(lambda z: (z * z).sum(1), dim=2), n_restarts=4, seed=-1, progress=False)
    with pytest.raises(ValueError):  # still a ValueError for code that catches those
        es.Landscape(lambda z: (z * z).sum(1), dim=2, device="banana")


# ---------------------------------------------------------------------------------------------- analyze, report
@pytest.mark.slow
def test_analyze_writes_results_and_report_rebuilds(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "analyze", ckpt, "-o", out, "--restarts", "16", "--seed", "0", "--quiet",
                            "--threads", "1")
    assert code == 0, err
    assert stdout == ""  # quiet
    for name in ("analysis.json", "arrays.npz", "report.html"):
        assert (out / name).is_file(), name
    assert "<html" in (out / "report.html").read_text().lower()
    (out / "report.html").unlink()
    code, stdout, err = run(capsys, "report", out)
    assert code == 0, err
    assert (out / "report.html").is_file() and "report.html" in stdout


def test_report_errors(tmp_path, capsys, monkeypatch):
    code, _, err = run(capsys, "report", tmp_path / "nothing")
    assert code == 2
    assert_one_line_error(err, "results folder not found")
    (tmp_path / "out").mkdir()
    code, _, err = run(capsys, "report", tmp_path / "out")
    assert code == 2
    assert_one_line_error(err, "analysis.json", "energyscope analyze")
    monkeypatch.setitem(sys.modules, "energyscope.pipeline", None)  # as if pipeline.py did not exist
    monkeypatch.delattr(es, "pipeline", raising=False)
    code, _, err = run(capsys, "report", tmp_path / "out")
    assert code == 2
    assert_one_line_error(err, "the analysis pipeline is not available")


def test_data_file_becomes_reference_and_labels(ckpt, tmp_path):
    _, G, I = nets()
    land = es.load_checkpoint(ckpt)
    x = np.random.default_rng(1).standard_normal((25, 6))
    y = np.arange(25) % 5
    np.savez(tmp_path / "data.npz", x=x, y=y)
    old_scales = land.scales()
    cli.attach_data(land, tmp_path / "data.npz")
    with torch.no_grad():
        expected = I.double()(torch.as_tensor(x)).numpy()[:, :D]
    np.testing.assert_allclose(land.reference, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(land.labels, y)
    assert land.scales().source == "reference"
    np.testing.assert_allclose(land.scales().sigma_z, expected.std(axis=0), rtol=1e-6)
    assert not np.allclose(old_scales.sigma_z, land.scales().sigma_z)
    # images (N, 1, 2, 3) are flattened for an MLP encoder
    np.savez(tmp_path / "img.npz", x=x.reshape(25, 1, 2, 3))
    cli.attach_data(land, tmp_path / "img.npz")
    np.testing.assert_allclose(land.reference, expected, rtol=1e-6, atol=1e-6)
    assert land.labels is None


@pytest.mark.parametrize("arrays, fragments", [
    (None, ["--data file not found"]),
    ({"images": np.zeros((3, 6))}, ["has no array 'x' (arrays: images)"]),
    ({"x": np.zeros((3, 5))}, ["--data x of shape (3, 5) does not fit the encoder"]),
    ({"x": np.zeros((3, 6)), "y": np.zeros(4)}, ["--data y has 4 entries but x has 3 rows"]),
])
def test_analyze_bad_data(ckpt, tmp_path, capsys, arrays, fragments):
    data = tmp_path / "data.npz"
    if arrays is not None:
        np.savez(data, **arrays)
    code, _, err = run(capsys, "analyze", ckpt, "-o", tmp_path / "out", "--data", data, "--quiet")
    assert code == 2
    assert_one_line_error(err, *fragments)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("arrays, fragments", [
    ({"x": np.array([["a", "b"], ["c", "d"]])}, ["--data x must hold numbers, got dtype <U1"]),
    ({"x": np.array([[0.0, 1.0], [np.nan, 0.0], [0.0, np.inf]])}, ["NaN or inf in 2 of 3 rows (first: row 1)"]),
])
def test_analyze_data_with_strings_or_bad_numbers(ckpt, tmp_path, capsys, arrays, fragments):
    """Strings used to reach torch (`can't convert np.ndarray of type numpy.str_`)."""
    data = tmp_path / "data.npz"
    np.savez(data, **arrays)
    code, _, err = run(capsys, "analyze", ckpt, "-o", tmp_path / "out", "--data", data, "--quiet")
    assert code == 2
    assert_one_line_error(err, *fragments)


def test_huge_data_values_give_a_result_or_one_clear_error(ckpt, tmp_path):
    land = es.load_checkpoint(ckpt)
    np.savez(tmp_path / "huge.npz", x=np.full((3, 6), 1e300))  # the tanh encoder saturates: finite latents
    cli.attach_data(land, tmp_path / "huge.npz")
    assert np.isfinite(land.reference).all() and land.reference.shape == (3, D)
    f32 = es.Landscape(nets()[0], dim=D, dtype=torch.float32)
    np.savez(tmp_path / "big.npz", x=np.full((3, D), 1e39))
    with pytest.raises(cli.CLIError, match="values up to 1e\\+39, beyond the model's float32 range"):
        cli.attach_data(f32, tmp_path / "big.npz")


def test_data_in_the_energys_own_space(tmp_path):
    """Input-space models (JEM, flows): --data x are points of the energy's own space, used as they are, even
    when the checkpoint carries an encoder."""
    E, G, I = nets()
    es.save_checkpoint(tmp_path / "e.pt", E)
    land = es.load_checkpoint(tmp_path / "e.pt")
    x = np.random.default_rng(3).standard_normal((30, D))
    np.savez(tmp_path / "data.npz", x=x, y=np.arange(30) % 2)
    cli.attach_data(land, tmp_path / "data.npz")  # auto: no encoder, (N, d) → latents
    np.testing.assert_array_equal(land.reference, x)
    es.save_checkpoint(tmp_path / "vae.pt", E, G, I)
    vae = es.load_checkpoint(tmp_path / "vae.pt")
    cli.attach_data(vae, tmp_path / "data.npz", "latent")
    np.testing.assert_array_equal(vae.reference, x)
    assert vae.scales().source == "reference"
    with pytest.raises(cli.CLIError, match="not points of the energy's 2-dimensional input space"):
        np.savez(tmp_path / "wide.npz", x=np.zeros((4, 6)))
        cli.attach_data(vae, tmp_path / "wide.npz", "latent")


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p.write_text("x"), "it is a file"),
    (lambda p: (p.parent / "file").write_text("x"), "lies under"),
])
def test_output_path_problems_are_found_before_the_analysis(ckpt, tmp_path, capsys, monkeypatch, make, fragment):
    out = tmp_path / "out"
    make(out)
    target = out if fragment == "it is a file" else tmp_path / "file" / "sub"
    ran = []
    monkeypatch.setattr("energyscope.pipeline.analyze", lambda *a, **k: ran.append(1))
    code, _, err = run(capsys, "analyze", ckpt, "-o", target, "--quiet")
    assert code == 2 and not ran
    assert_one_line_error(err, f"cannot write results to {target}", fragment)


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root can write anywhere")
def test_read_only_output_is_found_before_the_analysis(ckpt, tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    ran = []
    monkeypatch.setattr("energyscope.pipeline.analyze", lambda *a, **k: ran.append(1))
    code, _, err = run(capsys, "analyze", ckpt, "-o", ro / "out", "--quiet")
    assert code == 2 and not ran
    assert_one_line_error(err, "is not writable")


def test_read_only_check_uses_access(ckpt, tmp_path, capsys, monkeypatch):
    """The writability check itself (runs as root too): a folder os.access calls read-only is refused up front."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(cli.os, "access", lambda p, mode: False if str(p) == str(ro) else real(p, mode))
    ran = []
    monkeypatch.setattr("energyscope.pipeline.analyze", lambda *a, **k: ran.append(1))
    code, _, err = run(capsys, "analyze", ckpt, "-o", ro / "out", "--quiet")
    assert code == 2 and not ran
    assert_one_line_error(err, f"cannot write results to {ro / 'out'}: {ro} is not writable")


def test_bounds_option_reaches_the_minima_search(ckpt, tmp_path, capsys, monkeypatch):
    seen = {}
    real = es.pipeline.analyze

    def spy(land, **kw):
        seen.update(kw)
        return real(land, **{**kw, "n_restarts": 8, "masses": False, "n_paths": 1, "grid_size": 16})
    monkeypatch.setattr("energyscope.pipeline.analyze", spy)
    code, _, err = run(capsys, "analyze", ckpt, "-o", tmp_path / "out", "--bounds", "-2", "2.5", "--time-limit",
                       "30", "--quiet")
    assert seen["bounds"] == (-2.0, 2.5) and seen["time_limit"] == 30.0
    assert es.Analysis.load(tmp_path / "out").settings["bounds"] == [-2.0, 2.5]
    code, _, err = run(capsys, "analyze", ckpt, "-o", tmp_path / "out2", "--bounds", "3", "1", "--quiet")
    assert code == 2
    assert_one_line_error(err, "--bounds needs LO < HI, got 3 1")
    code, _, err = run(capsys, "analyze", ckpt, "-o", tmp_path / "out2", "--time-limit", "0", "--quiet")
    assert code == 2
    assert_one_line_error(err, "--time-limit must be a positive number of seconds, got 0")


def test_analyze_data_without_encoder(tmp_path, capsys):
    E, _, _ = nets()
    es.save_checkpoint(tmp_path / "e.pt", E)
    np.savez(tmp_path / "data.npz", x=np.zeros((3, 6)))
    code, _, err = run(capsys, "analyze", tmp_path / "e.pt", "--data", tmp_path / "data.npz", "--quiet")
    assert code == 2
    assert_one_line_error(err, "--data x of shape (3, 6) are not points of the energy's",
                          "this checkpoint has no encoder")
    code, _, err = run(capsys, "analyze", tmp_path / "e.pt", "--data", tmp_path / "data.npz", "--data-space",
                       "data", "--quiet")
    assert code == 2
    assert_one_line_error(err, "--data-space data needs an encoder", "has none")


def test_analyze_exits_non_zero_when_the_result_is_not_usable(tmp_path, capsys):
    """A Pang et al.-style energy saved without its N(0, I) base is unbounded below: the descents run away. The run
    writes what it could, says why in its last line and exits 3 (it used to exit 0, and with no minima the network
    stage crashed on an empty array)."""
    E = nets()[0]
    with torch.no_grad():
        E[2].weight.mul_(5.0)
    path = tmp_path / "no_base.pt"
    es.save_checkpoint(path, E)                                   # no base_prior: U = E, piecewise linear
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "analyze", path, "-o", out, "--restarts", "64", "--quiet", "--threads", "1")
    assert code == 3
    last = err.strip().splitlines()[-1]
    assert last.startswith("energyscope: error: the result is not usable: U appears unbounded below")
    assert "base_prior='standard_normal'" in last and "Traceback" not in err
    assert (out / "analysis.json").exists() and (out / "report.html").exists()


def test_no_minima_is_a_clear_message_not_a_crash():
    land = es.Landscape(lambda z: -(z * z).sum(1), dim=2)
    with pytest.warns(UserWarning, match="unbounded below"):
        result = es.analyze(land, n_restarts=16, progress=False, minima_kwargs={"max_iter": 100})
    assert len(result.minima) == 0
    assert result.stage_errors["network"] == "skipped: the minima search found no minimum"
    assert result.unusable.startswith("the minima search found no minimum: U appears unbounded below")
    net = es.connect(land, result.minima, progress=False)          # an empty set connects to an empty network
    assert len(net.minima) == 0 and net.n_transition_states == 0


def test_temperature_option_reaches_the_kinetics(ckpt, tmp_path, capsys, monkeypatch):
    real = es.pipeline.analyze
    monkeypatch.setattr("energyscope.pipeline.analyze", lambda land, **kw: real(
        land, **{**kw, "n_restarts": 8, "masses": False, "n_paths": 1, "grid_size": 16}))
    code, _, err = run(capsys, "analyze", ckpt, "-o", tmp_path / "out", "--temperature", "0.5", "--quiet")
    assert code == 0, err
    saved = es.Analysis.load(tmp_path / "out")
    assert saved.settings["kinetics"]["temperature"] == 0.5 and saved.kinetics.temperature == 0.5
    assert saved.kinetics.time_unit == "time units"  # a sampler step is this dynamics only at T = 1
    code, _, err = run(capsys, "analyze", ckpt, "-o", tmp_path / "out2", "--temperature", "0", "--quiet")
    assert code == 2
    assert_one_line_error(err, "--temperature must be a positive number, got 0")


@pytest.mark.parametrize("args,fragment", [(["--seed", "-1"], "seed must be an integer in [0, 2^63)"),
                                           (["--seed", str(2**64)], "seed must be an integer in [0, 2^63)"),
                                           (["--device", "banana"], "unknown device 'banana'")])
def test_analyze_bad_seed_or_device_is_one_clear_line(ckpt, tmp_path, capsys, args, fragment):
    code, _, err = run(capsys, "analyze", ckpt, "-o", tmp_path / "o", "--quiet", *args)
    assert code == 2
    assert_one_line_error(err)
    assert fragment in err


def test_results_that_cannot_be_written_are_rescued(ckpt, tmp_path, capsys, monkeypatch):
    """A disk that fills up after the analysis must not lose it: the results go to a temporary folder, and the one
    error line says where."""
    real_save = es.Analysis.save
    target = tmp_path / "out"

    def failing(self, directory):
        if str(directory) == str(target):
            raise OSError(28, "No space left on device")
        return real_save(self, directory)
    monkeypatch.setattr(es.Analysis, "save", failing)
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the rescue folder, under the test's own folder
    code, _, err = run(capsys, "analyze", ckpt, "-o", target, "--restarts", "8", "--quiet")
    assert code == 2
    assert_one_line_error(err, f"could not write results to {target}: No space left on device; they were saved to")
    rescue = err.split("they were saved to ")[1].split(" instead")[0]
    back = es.Analysis.load(rescue)
    assert back.minima is not None and len(back.minima) >= 1
