"""The on-disk form of results (energyscope.io.results): hostile files on load, the atomic pair, the writer's lock.

Every hostile case plays the attacker who can rewrite both files: wherever the arrays change, the JSON's
``arrays_sha256`` is recomputed to match, so the checksum alone cannot be what stops them. Tests that need the new
module import it inside the test, so the others also run (and fail) against an energyscope without it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import energyscope as es
from energyscope.analysis import Analysis, AnalysisFormatError

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


# --------------------------------------------------------------------------------------------------------- helpers
def _small(seed: int = 1, shift: float = 0.0, n: int = 12) -> Analysis:
    """A tiny result with one array (``views["grid_U"]``, saved as member ``a0``) and a seed in its settings."""
    return Analysis(settings={"seed": seed}, views={"grid_U": np.arange(float(n)) + shift},
                    created="2024-01-01T00:00:00")


def _saved(tmp_path: Path, name: str = "out", **kwargs) -> Path:
    out = tmp_path / name
    _small(**kwargs).save(out)
    return out


def _doc(out: Path) -> dict:
    return json.loads((out / "analysis.json").read_text())


def _forge(out: Path, doc: dict | None = None, npz: bytes | None = None) -> None:
    """Replace the JSON and/or the arrays, recomputing the JSON's checksum of the arrays (what an attacker would do)."""
    doc = _doc(out) if doc is None else doc
    if npz is not None:
        (out / "arrays.npz").write_bytes(npz)
    doc["arrays_sha256"] = hashlib.sha256((out / "arrays.npz").read_bytes()).hexdigest()
    (out / "analysis.json").write_text(json.dumps(doc))


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _npy_header(shape: tuple, descr: str = "<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _lying_member() -> bytes:
    """An npz whose member declares (central directory) header + 80 bytes but whose data expands to 800 kB more."""
    header = _npy_header((10,))
    raw = _zip({"a0.npy": header + bytes(800_000)})
    cd = raw.rindex(b"PK\x01\x02")
    patched = bytearray(raw)
    struct.pack_into("<I", patched, cd + 24, len(header) + 80)   # the uncompressed size the directory declares
    return bytes(patched)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> tuple[bytes, int]:
    """(npz bytes, declared bytes): one member of 1 GiB of float64 zeros, deflated to about 1 MB."""
    n = 2**27
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("a0.npy", "w", force_zip64=True) as fh:
            fh.write(_npy_header((n,)))
            zeros = bytes(4 * 2**20)
            for _ in range(n * 8 // len(zeros)):
                fh.write(zeros)
    return buf.getvalue(), n * 8


# -------------------------------------------------------------------------------------------- hostile files on load
def test_zip_bomb_is_refused_quickly_in_bounded_memory(tmp_path, bomb):
    npz, declared = bomb
    out = _saved(tmp_path)
    _forge(out, npz=npz)
    assert len(npz) < 2 * 2**20 and declared == 2**30
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(AnalysisFormatError, match=r"arrays\.npz.*declares 1073741\d+ bytes.*zip bomb"):
            Analysis.load(out)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 5.0
    assert peak < 64 * 2**20, f"peak traced memory {peak / 2**20:.0f} MiB"


def test_the_expansion_limits_are_configurable(tmp_path):
    out = _saved(tmp_path)
    zeros = np.zeros(12 * 2**20)                      # 96 MiB that deflate ~1000:1: over the default limit
    buf = io.BytesIO()
    np.savez_compressed(buf, a0=zeros)
    _forge(out, npz=buf.getvalue())
    with pytest.raises(AnalysisFormatError, match="zip bomb"):
        Analysis.load(out)
    with pytest.raises(AnalysisFormatError, match="zip bomb"):
        Analysis.load(out, max_expansion=None, max_array_bytes=2**20)
    back = Analysis.load(out, max_expansion=None)     # genuine results that compress so well: the caller opts in
    assert back.views["grid_U"].shape == zeros.shape and not back.views["grid_U"].any()


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000],
                         ids=["lists", "objects"])
def test_absurdly_nested_json_is_one_clear_error(tmp_path, text):
    out = _saved(tmp_path)
    (out / "analysis.json").write_text(text)
    with pytest.raises(AnalysisFormatError, match="analysis.json' is nested too deeply"):
        Analysis.load(out)


def test_deep_but_parseable_json_is_refused_before_decoding(tmp_path):
    out = _saved(tmp_path)
    doc = _doc(out)
    deep: list = []
    for _ in range(700):             # json parses this; a recursive decoder would overflow the stack
        deep = [deep]
    doc["fields"]["settings"] = {"seed": deep}
    _forge(out, doc)
    with pytest.raises(AnalysisFormatError, match="nested more than 100 levels deep"):
        Analysis.load(out)
    from energyscope.io import codec
    with pytest.raises(AnalysisFormatError, match="nested more than 100 levels deep"):
        codec.Decoder({}).decode(deep)


@pytest.mark.parametrize("text, kind", [("[]", "list"), ("[1, 2]", "list"), ('"x"', "str"), ("3", "int"),
                                        ("null", "NoneType")])
def test_json_that_is_not_an_object_is_one_clear_error(tmp_path, text, kind):
    out = _saved(tmp_path)
    (out / "analysis.json").write_text(text)
    with pytest.raises(AnalysisFormatError, match=f"holds a JSON {kind}, not the object"):
        Analysis.load(out)


def test_an_integer_too_long_for_python_is_invalid_json(tmp_path):
    out = _saved(tmp_path)
    (out / "analysis.json").write_text('{"format": ' + "9" * 5000 + "}")
    with pytest.raises(AnalysisFormatError, match="is not valid JSON"):
        Analysis.load(out)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_results_file_that_is_no_regular_file_is_refused_without_blocking(tmp_path, kind):
    import signal
    out = _saved(tmp_path)
    (out / "arrays.npz").unlink()
    if kind == "fifo":
        os.mkfifo(out / "arrays.npz")          # reading it would block forever
    else:
        os.symlink("/dev/zero", out / "arrays.npz")  # hashing it would never end

    def too_slow(signum, frame):
        raise TimeoutError("load blocked")
    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, 10.0)
    try:
        with pytest.raises(AnalysisFormatError, match="arrays.npz' is not a regular file"):
            Analysis.load(out)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_the_cli_reports_a_hostile_json_in_one_line(tmp_path, capsys):
    from energyscope.cli import main
    out = _saved(tmp_path)
    (out / "analysis.json").write_text("[]")
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds a JSON list" in err and not (out / "report.html").exists()


def test_truncated_or_corrupted_arrays_with_a_matching_checksum(tmp_path):
    out = _saved(tmp_path, n=4000)
    good = (out / "arrays.npz").read_bytes()
    _forge(out, npz=good[: len(good) // 2])
    with pytest.raises(AnalysisFormatError, match="arrays.npz' is not a readable npz archive"):
        Analysis.load(out)
    bad = bytearray(good)
    mid = len(bad) // 2                     # inside the member's compressed data
    bad[mid:mid + 16] = bytes(b ^ 0xFF for b in bad[mid:mid + 16])
    _forge(out, npz=bytes(bad))
    with pytest.raises(AnalysisFormatError, match="arrays.npz': array 'a0' cannot be read"):
        Analysis.load(out)


@pytest.mark.parametrize("members, message", [
    ({"a0.npy": _npy(np.array([{"x": 1}, None], dtype=object))}, "object dtype"),
    ({"a0.npy": b"this is no npy header at all" * 4}, "not an .npy array"),
    ({"a0.npy": _npy_header((2**40,)) + bytes(80)}, r"declares shape \(1099511627776,\).*holds 80 bytes"),
    ({"a0.npy": _npy_header((3,), descr="<zz") + bytes(24)}, "cannot be read"),
    ("lying", "Bad CRC-32"),
    ({"a0.npy": _npy(np.zeros(3)), "notes.txt": b"hello"}, "unexpected member 'notes.txt'"),
], ids=["object-dtype", "garbage-header", "huge-shape", "bad-descr", "longer-than-declared", "not-npy"])
def test_malformed_members_are_one_clear_error(tmp_path, members, message):
    out = _saved(tmp_path)
    _forge(out, npz=_lying_member() if members == "lying" else _zip(members))
    with pytest.raises(AnalysisFormatError, match=message):
        Analysis.load(out)


def test_every_array_used_is_covered_by_the_checksum(tmp_path):
    out = _saved(tmp_path)
    doc = _doc(out)
    del doc["arrays_sha256"]                 # e.g. a save from before checksums, or a stripped one
    (out / "analysis.json").write_text(json.dumps(doc))
    with pytest.raises(AnalysisFormatError, match="records no checksum of its arrays.*run `energyscope analyze`"):
        Analysis.load(out)
    doc["arrays_sha256"] = "../../../etc/passwd"  # never used as (part of) a file name
    (out / "analysis.json").write_text(json.dumps(doc))
    with pytest.raises(AnalysisFormatError, match="malformed arrays_sha256"):
        Analysis.load(out)


def test_references_to_missing_arrays_are_one_clear_error(tmp_path):
    out = _saved(tmp_path)
    for ref in ("a999", ["a0"], 7):
        doc = _doc(out)
        doc["fields"]["views"]["grid_U"] = {"__array__": ref}
        _forge(out, doc)
        with pytest.raises(AnalysisFormatError, match=r"arrays.npz has no array .* that analysis.json refers to"):
            Analysis.load(out)


def test_a_json_of_the_wrong_structure_is_one_clear_error(tmp_path):
    out = _saved(tmp_path)
    doc = _doc(out)
    doc["fields"]["views"] = {"__dict__": [1, 2]}     # a list where the decoder expects an object
    _forge(out, doc)
    with pytest.raises(AnalysisFormatError, match="does not have the structure of an energyscope analysis"):
        Analysis.load(out)


def test_members_the_json_never_names_are_not_decompressed(tmp_path):
    out = _saved(tmp_path)
    with zipfile.ZipFile(out / "arrays.npz") as zf:
        real = zf.read("a0.npy")
    # garbage that would fail if it were read, under a name no reference uses
    _forge(out, npz=_zip({"a0.npy": real, "zz.npy": b"\x93NUMPY garbage"}))
    np.testing.assert_array_equal(Analysis.load(out).views["grid_U"], np.arange(12.0))


# ------------------------------------------------------------------------------------------------ the atomic pair
_KILLER = textwrap.dedent("""
    import json, os, shutil, signal, sys
    import numpy as np
    from energyscope.analysis import Analysis
    template, root = sys.argv[1], sys.argv[2]
    new = Analysis.load(template)
    new.settings["seed"] = 2
    new.views["grid_U"] = new.views["grid_U"] + 100.0
    k = 0
    while True:
        k += 1
        out = os.path.join(root, f"k{k:03d}")
        shutil.copytree(template, out)
        pid = os.fork()
        if pid == 0:          # the child: SIGKILL itself just before its k-th file-system call of the save
            calls = [0]
            def hooked(fn):
                def call(*a, **kw):
                    calls[0] += 1
                    if calls[0] == k:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return fn(*a, **kw)
                return call
            for name in ("open", "replace", "rename", "unlink", "fsync", "ftruncate", "pwrite", "mkdir"):
                setattr(os, name, hooked(getattr(os, name)))
            new.save(out)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            break
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    print(json.dumps(k))
""")


def test_a_save_killed_at_any_step_leaves_the_old_or_the_new_results(tmp_path):
    template = _saved(tmp_path, "template", seed=1)
    root = tmp_path / "runs"
    root.mkdir()
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(template), str(root)], capture_output=True, text=True,
                          timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n_steps = json.loads(proc.stdout.strip().splitlines()[-1])
    assert n_steps >= 10                              # the save has that many file-system steps to die between
    old_grid, new_grid = np.arange(12.0), np.arange(12.0) + 100.0
    seen = set()
    for k in range(1, n_steps + 1):
        out = root / f"k{k:03d}"
        back = Analysis.load(out)                     # never an error, never a mix:
        seed = back.settings["seed"]
        seen.add(seed)
        np.testing.assert_array_equal(back.views["grid_U"], old_grid if seed == 1 else new_grid)
        assert seed in (1, 2)
        if k == n_steps:                              # the save that ran to the end leaves exactly the two files
            assert seed == 2 and sorted(os.listdir(out)) == ["analysis.json", "arrays.npz"]
        _small(seed=3, shift=50.0).save(out)          # the next save finishes or cleans up whatever was left
        assert sorted(os.listdir(out)) == ["analysis.json", "arrays.npz"], k
        assert Analysis.load(out).settings["seed"] == 3
    assert seen == {1, 2}                             # the kills fell both before and after the commit


def test_a_committed_save_whose_arrays_wait_under_the_staged_name_loads_and_is_finished(tmp_path, monkeypatch):
    out = _saved(tmp_path, seed=1)
    real = os.replace

    def stop_after_commit(src, dst):                  # the last step (staged arrays -> arrays.npz) never happens
        if Path(dst).name == "arrays.npz":
            raise KeyboardInterrupt
        return real(src, dst)
    monkeypatch.setattr(os, "replace", stop_after_commit)
    with pytest.raises(KeyboardInterrupt):
        _small(seed=2, shift=100.0).save(out)
    monkeypatch.setattr(os, "replace", real)
    staged = [n for n in os.listdir(out) if n.startswith(".arrays-")]
    assert len(staged) == 1                           # the new arrays, under their content-addressed name
    back = Analysis.load(out)
    assert back.settings["seed"] == 2 and back.views["grid_U"][0] == 100.0
    _small(seed=3).save(out)
    assert sorted(os.listdir(out)) == ["analysis.json", "arrays.npz"]


def test_a_reader_racing_a_writer_always_gets_one_whole_save(tmp_path):
    out = _saved(tmp_path, seed=1, shift=100.0)
    stop = time.monotonic() + 2.0
    saves: list[int] = []
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            while time.monotonic() < stop:
                seed = 1 + len(saves) % 2
                _small(seed=seed, shift=100.0 * seed).save(out)
                saves.append(seed)
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)
    t = threading.Thread(target=writer)
    t.start()
    loads = 0
    try:
        while t.is_alive():
            back = Analysis.load(out)                 # never an error, never the JSON of one save with another's arrays
            assert back.views["grid_U"][0] == 100.0 * back.settings["seed"]
            loads += 1
    finally:
        t.join()
    assert not failures and len(saves) > 5 and loads > 5, (failures, len(saves), loads)


# ------------------------------------------------------------------------------------------------ the writer's lock
_HOLDER = textwrap.dedent("""
    import sys
    from energyscope.io import results as store
    with store.lock_output(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()
""")


def test_a_second_writer_is_refused_and_a_dead_writer_leaves_no_stale_lock(tmp_path):
    from energyscope.io.results import OutputLockedError
    out = _saved(tmp_path, seed=1)
    before = {p: (out / p).read_bytes() for p in ("analysis.json", "arrays.npz")}
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=rf"another energyscope process \(pid {holder.pid}\) is writing"):
            _small(seed=2).save(out)
        assert {p: (out / p).read_bytes() for p in before} == before
        assert Analysis.load(out).settings["seed"] == 1            # readers need no lock
    finally:
        holder.kill()                                              # SIGKILL: no cleanup in the holder
        holder.wait(timeout=60)
    _small(seed=2).save(out)
    assert sorted(os.listdir(out)) == ["analysis.json", "arrays.npz"]
    assert Analysis.load(out).settings["seed"] == 2


def test_the_lock_is_reentrant_in_a_thread_and_refuses_other_threads(tmp_path):
    from energyscope.io import results as store
    out = tmp_path / "out"
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            _small(seed=9).save(out)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
    with store.lock_output(out):
        assert (out / store.LOCK_NAME).read_text().strip() == str(os.getpid())
        _small(seed=2).save(out)                        # a run holding the lock saves inside it
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert (out / store.LOCK_NAME).exists()
    assert len(errors) == 1 and isinstance(errors[0], store.OutputLockedError)
    assert "another thread of this process" in str(errors[0])
    assert sorted(os.listdir(out)) == ["analysis.json", "arrays.npz"]   # the lock file goes with the lock
    assert Analysis.load(out).settings["seed"] == 2


_CONTENDER = textwrap.dedent("""
    import os, sys, time
    from energyscope.io import results as store
    out, go = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    held = refused = overlaps = 0
    stop = time.monotonic() + 1.5
    while time.monotonic() < stop:
        try:
            with store.lock_output(out):
                held += 1
                try:   # only one holder at a time may own this marker
                    fd = os.open(os.path.join(out, "marker"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                    os.close(fd)
                    os.unlink(os.path.join(out, "marker"))
                except FileExistsError:
                    overlaps += 1
        except store.OutputLockedError:
            refused += 1
    print(held, refused, overlaps, flush=True)
""")


def test_two_processes_never_hold_the_lock_at_once(tmp_path):
    out, go = tmp_path / "out", tmp_path / "go"
    out.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _CONTENDER, str(out), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    counts = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr[-2000:]
        counts.append([int(x) for x in stdout.split()])
    held, refused, overlaps = (sum(c[i] for c in counts) for i in range(3))
    assert overlaps == 0 and held > 0 and refused > 0, counts
    assert os.listdir(out) == []


def _same_data(a, b, where="") -> list[str]:
    """Differences between two nested values, types included (tuple vs list, numpy vs Python, int vs str keys)."""
    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, dict):
        if list(a) != list(b):
            return [f"{where}: keys {list(a)} vs {list(b)}"]
        return [d for k in a for d in _same_data(a[k], b[k], f"{where}[{k!r}]")]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _same_data(x, y, f"{where}[{i}]")]
    if isinstance(a, np.ndarray):
        ok = a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        return [] if ok else [f"{where}: arrays differ"]
    if dataclasses.is_dataclass(a):
        return [d for f in dataclasses.fields(a) for d in _same_data(getattr(a, f.name), getattr(b, f.name),
                                                                      f"{where}.{f.name}")]
    if isinstance(a, float) and a != a:
        return [] if b != b else [f"{where}: nan vs {b!r}"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def test_a_real_network_round_trips_with_its_types():
    """The network is saved through its to_dict: every edge attribute (Paths and their info, tuples, numpy
    scalars), the attempts, the info (int keys too) and the network's minima come back as they were."""
    from mb_helpers import mb_landscape
    land = mb_landscape(with_reference=False)
    minima = es.find_minima(land, n_restarts=16, seed=0, progress=False)
    net = es.connect(land, minima, progress=False)
    net.info["bad_minima"] = {1: "an int key"}          # as connect records input minima that fail their check
    back = Analysis(minima=net.minima, network=net).snapshot().network
    assert back.n_transition_states == net.n_transition_states >= 2
    assert _same_data(list(net.graph.edges(data=True)), list(back.graph.edges(data=True)), "edges") == []
    assert _same_data(net.attempts, back.attempts, "attempts") == []
    assert _same_data(net.info, back.info, "info") == []
    assert _same_data(net.minima, back.minima, "minima") == []
