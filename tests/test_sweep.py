"""Sweeps over a series of real checkpoints: the digits example model trained with checkpoints along the way (small
and fast: a sixth of the images, 24 epochs, a checkpoint every 6), analysed on a real Dask ``LocalCluster`` with 2
worker processes, with a worker killed mid-sweep, in this process, resumed, and with a broken checkpoint among them.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import energyscope as es
from energyscope import cli
from energyscope.sweep.tasks import TASK_NAME, read_record

distributed = pytest.importorskip("distributed")   # the [dask] extra, installed by the test extra

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(masses=True, interpret_kwargs={"which": ("data",)})   # data masses: labels and NMI, fast
CLOCK_KEYS = {"timings", "created", "wall_time_s"}   # what two runs of one analysis may differ in: clock times


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> list[Path]:
    """Four checkpoints of one training run of the digits example (d = 2), after epochs 6, 12, 18, 24."""
    sys.path.insert(0, str(ROOT / "examples" / "digits"))
    try:
        from train import TrainConfig, load_digits_images, train
    finally:
        sys.path.pop(0)
    folder = tmp_path_factory.mktemp("series")
    x, y = load_digits_images()
    cfg = TrainConfig(latent_dim=2, seed=0, epochs=24, lr_energy=1e-3, energy_l2=1e-2)
    train(cfg, x[::6], y[::6], quiet=True, checkpoint_every=6, checkpoint_dir=folder)
    paths = sorted(folder.glob("ckpt_*.pt"))
    assert [p.name for p in paths] == [f"ckpt_{e:06d}.pt" for e in (6, 12, 18, 24)]
    return paths


@pytest.fixture(scope="module")
def serial(series, tmp_path_factory) -> es.Sweep:
    return es.sweep(series, client="serial", output=tmp_path_factory.mktemp("serial"), progress=False, **SETTINGS)


def _without_clocks(x):
    if isinstance(x, dict):
        return {k: _without_clocks(v) for k, v in x.items() if k not in CLOCK_KEYS}
    if isinstance(x, list):
        return [_without_clocks(v) for v in x]
    return x


def _payload(folder: Path) -> tuple[dict, dict]:
    doc = json.loads((folder / "analysis.json").read_text())
    fields = _without_clocks(doc["fields"])
    with np.load(folder / "arrays.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return {**doc, "fields": fields, "arrays_sha256": None}, arrays


def assert_same_results(a: es.Sweep, b: es.Sweep) -> None:
    """Every checkpoint's saved results are identical (bit for bit, clock times aside), and so are the histories."""
    assert a.names == b.names
    for name in a.names:
        da, xa = _payload(a.output / "checkpoints" / name)
        db, xb = _payload(b.output / "checkpoints" / name)
        assert da == db, name
        assert xa.keys() == xb.keys(), name
        for k in xa:
            np.testing.assert_array_equal(xa[k], xb[k], err_msg=f"{name}: {k}")
    assert a.history.signature() == b.history.signature()
    for ta, tb in zip(a.history.tracks, b.history.tracks):
        np.testing.assert_array_equal(ta.basin, tb.basin)


def test_serial_sweep_saves_every_checkpoint_as_analyze_does(serial, series):
    assert [r["status"] for r in serial.rows] == ["done"] * 4
    assert [r["epoch"] for r in serial.rows] == [6.0, 12.0, 18.0, 24.0]
    for r in serial.rows:
        folder = serial.output / "checkpoints" / r["name"]
        assert {"analysis.json", "arrays.npz", "report.html", TASK_NAME} <= {p.name for p in folder.iterdir()}
        a = es.Analysis.load(folder)
        assert a.n_minima == r["n_minima"] >= 1
        assert r["nmi"] is not None and 0 <= r["nmi"] <= 1        # labels came with the checkpoints
        assert read_record(folder)["sha256"] == es.sweep.__globals__["task_mod"].file_sha256(
            series[serial.names.index(r["name"])])
    back = es.Sweep.load(serial.output)
    assert back.rows == serial.rows
    assert back.history.signature() == serial.history.signature()
    assert (serial.output / "report.html").stat().st_size > 10_000
    assert serial.history.n_checkpoints == 4


@pytest.mark.slow
def test_two_worker_local_cluster_gives_the_serial_results(serial, series, tmp_path):
    two = es.sweep(series, workers=2, output=tmp_path / "two", progress=False, **SETTINGS)
    assert two.info["where"] == "a local Dask cluster of 2 worker processes"
    assert [r["status"] for r in two.rows] == ["done"] * 4
    assert len({r["pid"] for r in two.rows}) == 2     # both workers analysed checkpoints
    assert_same_results(serial, two)


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_loses_nothing(serial, series, tmp_path):
    out = tmp_path / "killed"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        done: dict = {}
        # the sweep connects by the scheduler's address (an existing cluster); this client only watches and kills
        runner = threading.Thread(target=lambda: done.update(result=es.sweep(
            series, client=cluster.scheduler_address, output=out, progress=False, **SETTINGS)))
        runner.start()
        killed = None
        deadline = time.time() + 300
        while killed is None and time.time() < deadline and runner.is_alive():
            busy = [w for w, keys in client.processing().items() if keys]
            finished = list(out.glob(f"checkpoints/*/{TASK_NAME}"))
            if finished and busy:          # one checkpoint is done and another is being analysed: kill its worker
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                before = {p.parent.name for p in out.glob(f"checkpoints/*/{TASK_NAME}")}
                os.kill(pid, signal.SIGKILL)
                killed = pid
            time.sleep(0.05)
        runner.join(600)
        assert killed is not None, "no moment with a finished checkpoint and a busy worker"
    result = done["result"]
    assert result.info["where"] == f"the Dask cluster at {cluster.scheduler_address}"
    assert [r["status"] for r in result.rows] == ["done"] * 4
    # what the killed worker had finished stays; what it was running was run again by a live worker
    assert {r["name"] for r in result.rows if r["pid"] == killed} <= before
    assert len(before) < 4
    assert_same_results(serial, result)


def test_rerun_resumes_and_recomputes_only_what_is_missing(serial, series, tmp_path):
    import shutil
    out = tmp_path / "resume"
    shutil.copytree(serial.output, out)
    again = es.sweep(series, client="serial", output=out, progress=False, **SETTINGS)
    assert [r["resumed"] for r in again.rows] == [True] * 4
    assert again.info["n_resumed"] == 4
    (out / "checkpoints" / "ckpt_000012" / TASK_NAME).unlink()          # as if it was killed before committing
    (out / "checkpoints" / "ckpt_000018" / "arrays.npz").write_bytes(b"damaged")
    third = es.sweep(series, client="serial", output=out, progress=False, **SETTINGS)
    assert [r["resumed"] for r in third.rows] == [True, False, False, True]
    assert_same_results(serial, third)
    # other settings: nothing is taken from the earlier run
    other = es.sweep(series, client="serial", output=out, progress=False, masses=False)
    assert not any(r["resumed"] for r in other.rows)


def test_a_broken_checkpoint_is_recorded_and_the_rest_go_on(series, tmp_path):
    broken = tmp_path / "ckpt_000015.pt"
    broken.write_bytes(b"not a checkpoint at all")
    paths = [*series[:2], broken, *series[2:]]
    result = es.sweep(paths, client="serial", output=tmp_path / "out", progress=False, masses=False)
    assert [r["name"] for r in result.rows] == ["ckpt_000006", "ckpt_000012", "ckpt_000015", "ckpt_000018",
                                                "ckpt_000024"]
    bad = result.rows[2]
    assert bad["status"] == "failed" and "CheckpointError" in bad["reason"] and bad["report"] is None
    assert [r["status"] for r in result.rows if r is not bad] == ["done"] * 4
    assert result.history.names == ["ckpt_000006", "ckpt_000012", "ckpt_000018", "ckpt_000024"]
    assert read_record(tmp_path / "out" / "checkpoints" / "ckpt_000015")["status"] == "failed"
    html = (tmp_path / "out" / "report.html").read_text()
    assert "ckpt_000015" in html and "CheckpointError" in html
    # a failed checkpoint is tried again on the next run; the others are read back
    again = es.sweep(paths, client="serial", output=tmp_path / "out", progress=False, masses=False)
    assert [r["resumed"] for r in again.rows] == [True, True, False, True, True]
    # nothing usable at all: the sweep still saves its table and its report, and the command line says so
    code = cli.main(["sweep", str(broken), "-o", str(tmp_path / "none"), "--serial", "--quiet"])
    assert code == cli.EXIT_UNUSABLE
    alone = es.Sweep.load(tmp_path / "none")
    assert alone.history is None and alone.rows[0]["status"] == "failed"
    assert "No checkpoint has usable results" in (tmp_path / "none" / "report.html").read_text()


def test_any_executor_and_bad_arguments(series, tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=1) as pool:
        result = es.sweep(series[:2], client=pool, output=tmp_path / "pool", progress=False, masses=False)
    assert result.info["where"] == "ThreadPoolExecutor" and len(result.history.names) == 2
    with pytest.raises(es.BadArgumentError, match="not found: .*nope.pt"):
        es.sweep([tmp_path / "nope.pt"], client="serial", output=tmp_path / "x")
    with pytest.raises(es.BadArgumentError, match="n_restart"):
        es.sweep(series, client="serial", output=tmp_path / "x", n_restart=3)
    with pytest.raises(es.BadArgumentError, match="plain value"):
        es.sweep(series, client="serial", output=tmp_path / "x", minima_kwargs={"starts": np.zeros((3, 2))})
    with pytest.raises(es.BadArgumentError, match="client must be"):
        es.sweep(series, client=42, output=tmp_path / "x")
    assert not (tmp_path / "x" / "checkpoints").exists()      # refused before anything ran


def test_cli_sweep(series, tmp_path, capsys):
    out = tmp_path / "cli"
    code = cli.main(["sweep", *map(str, reversed(series)), "-o", str(out), "--serial", "--no-masses", "--quiet"])
    assert code == cli.EXIT_OK
    result = es.Sweep.load(out)
    assert result.names == ["ckpt_000006", "ckpt_000012", "ckpt_000018", "ckpt_000024"]   # training order
    assert (out / "report.html").is_file()
    code = cli.main(["sweep", str(series[0]), "-o", str(out), "--serial", "--workers", "2"])
    assert code == cli.EXIT_BAD_INPUT
    assert "--serial runs in this process" in capsys.readouterr().err


def test_sweep_report_in_headless_chromium(serial, tmp_path):
    """The sweep report loads with no console errors and no requests, its figures decode, and every link to a
    checkpoint's report names a report that exists."""
    import re
    test_report_browser = pytest.importorskip("test_report_browser")
    if test_report_browser.CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    html = serial.output / "report.html"
    shot = tmp_path / "sweep.png"
    seen = test_report_browser.load_in_browser(html, tmp_path, shot)
    assert seen["errors"] == [] and seen["failed"] == []
    assert [u for u in seen["requests"] if not u.startswith(("file:", "data:"))] == []
    assert len(seen["images"]) == 2                     # the timeline and the curves over training
    for complete, nw, nh, shown, alt in seen["images"]:
        assert complete and nw > 0 and nh > 0 and shown > 0, f"image {alt!r} did not decode"
    assert seen["layout"]["sections"] == ["summary", "timeline", "training", "events", "checkpoints"]
    assert seen["layout"]["scroll"] <= seen["layout"]["inner"]
    links = re.findall(r'href="(checkpoints/[^"]+)"', html.read_text())
    assert len(links) == 4 and all((serial.output / link).is_file() for link in links)


def test_training_order_and_names_from_file_names(tmp_path):
    from energyscope.sweep.api import _ordered, checkpoint_names, epoch_of
    assert epoch_of("runs/ckpt_000040.pth") == 40 and epoch_of("model-epoch=7.ckpt") == 7 and epoch_of("last.pt") is None
    paths = [Path(p) for p in ("r/ckpt_10.pt", "r/ckpt_9.pt", "r/ckpt_100.pt")]
    assert [p.name for p in _ordered(paths, "natural")] == ["ckpt_9.pt", "ckpt_10.pt", "ckpt_100.pt"]
    assert _ordered(paths, "given") == paths
    assert _ordered([Path("b.pt"), Path("a.pt")], "natural") == [Path("b.pt"), Path("a.pt")]   # no numbers: as given
    (tmp_path / "seed1").mkdir()
    (tmp_path / "seed2").mkdir()
    same = [tmp_path / "seed1" / "ckpt_10.pt", tmp_path / "seed2" / "ckpt_10.pt"]
    assert checkpoint_names(same) == ["seed1-ckpt_10", "seed2-ckpt_10"]
    with pytest.raises(es.BadArgumentError, match="given twice"):
        checkpoint_names([same[0], same[0]])
    from energyscope.sweep.executors import open_executor
    with pytest.raises(es.BadArgumentError, match="workers= sets the size of the embedded cluster"):
        with open_executor("tcp://127.0.0.1:1", workers=2):
            pass
