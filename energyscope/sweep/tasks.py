"""One checkpoint of a sweep: the task a worker runs, and how a finished one is recognised (resume).

A :class:`CheckpointTask` is plain data (it travels to Dask workers by pickle, as every Dask task does; it carries
no model and no code). :func:`run_task` loads the checkpoint, runs :func:`energyscope.pipeline.run` with the
sweep's settings at a fixed thread count, saves the results in the checkpoint's own folder exactly as ``energyscope
analyze`` does (``analysis.json``, ``arrays.npz``, ``report.html``) and last writes ``task.json``: the record of the
task (checkpoint checksum, settings key, outcome, reason, seconds, where it ran). ``task.json`` is the task's commit
point: :func:`finished` accepts a folder only when its ``task.json`` says done for the same checkpoint bytes and
settings and its results load.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from energyscope._version import __version__

TASK_NAME = "task.json"
DONE, UNUSABLE, FAILED = "done", "unusable", "failed"


@dataclasses.dataclass(frozen=True)
class CheckpointTask:
    """Everything a worker needs to analyse one checkpoint (plain data).

    Attributes:
        name: the checkpoint's name in the sweep (its folder under ``OUT/checkpoints``).
        checkpoint: absolute path of the checkpoint file.
        out: absolute path of the checkpoint's results folder.
        settings: :meth:`AnalysisSettings.to_dict <energyscope.settings.AnalysisSettings.to_dict>` of the analysis.
        load: keywords of :func:`~energyscope.io.checkpoint.load_checkpoint` (``model``, ``spec``,
            ``trust_pickle``, ``device``).
        data: optional ``.npz`` of reference data (``x``, ``y``) attached to every checkpoint, and its ``data_space``.
        threads: torch threads of the task (fixed, so that every worker computes the same bits).
        key: the settings key (:func:`settings_key`): results with another key are recomputed.
        sha256: the checkpoint file's SHA-256 (computed by the driver).
    """

    name: str
    checkpoint: str
    out: str
    settings: dict
    load: dict
    data: str | None = None
    data_space: str = "auto"
    threads: int = 1
    key: str = ""
    sha256: str = ""


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def settings_key(settings: dict, load: dict, data_sha: str | None, data_space: str, threads: int) -> str:
    """A short checksum of everything that changes a checkpoint's results besides the checkpoint itself."""
    text = json.dumps({"settings": settings, "load": load, "data": data_sha, "data_space": data_space,
                       "threads": threads}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_record(folder: str | os.PathLike) -> dict | None:
    """The folder's ``task.json`` as a dict, or None (missing or unreadable)."""
    path = Path(folder) / TASK_NAME
    try:
        if path.stat().st_size > 2**20:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def finished(task: CheckpointTask) -> dict | None:
    """The record of an earlier run of ``task`` that need not run again (done or unusable, same checkpoint bytes
    and settings key, results that load), else None. A failed task is always run again."""
    rec = read_record(task.out)
    if rec is None or rec.get("status") not in (DONE, UNUSABLE):
        return None
    if rec.get("sha256") != task.sha256 or rec.get("key") != task.key:
        return None
    from energyscope.analysis import Analysis
    from energyscope.io.codec import AnalysisFormatError
    try:
        Analysis.load(task.out)
    except (AnalysisFormatError, OSError):
        return None
    return rec


@contextlib.contextmanager
def _threads(n: int):
    """torch's intra-op thread count set to ``n`` for the block (restored after)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def error_text(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}{where}"


def write_record(task: CheckpointTask, record: dict) -> None:
    from energyscope.io.results import atomic_write_bytes
    Path(task.out).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(task.out) / TASK_NAME, json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))


def run_task(task: CheckpointTask) -> dict:
    """Analyse one checkpoint and save its results (runs on a worker, or in the calling process).

    Never raises for a problem with the checkpoint or the analysis: the outcome is returned (and written to
    ``task.json``) as ``{"name", "status": "done" | "unusable" | "failed", "reason", "seconds", "n_minima", "host",
    "pid", ...}``. ``unusable``: the results are saved but :attr:`Analysis.unusable
    <energyscope.analysis.Analysis.unusable>` says why they cannot be used (no minimum, runaway descents, ...).
    """
    t0 = time.perf_counter()
    record: dict[str, Any] = {"name": task.name, "checkpoint": task.checkpoint, "sha256": task.sha256,
                              "key": task.key, "host": socket.gethostname(), "pid": os.getpid(),
                              "energyscope_version": __version__, "threads": task.threads}
    try:
        from energyscope import pipeline
        from energyscope.io.checkpoint import convention_caution, load_checkpoint
        from energyscope.io.results import lock_output
        from energyscope.settings import AnalysisSettings
        settings = AnalysisSettings.from_dict(task.settings)
        with _threads(task.threads), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            land = load_checkpoint(task.checkpoint, **task.load)
            if task.data is not None:
                from energyscope.io.data_file import attach_data
                attach_data(land, task.data, task.data_space)
            caution = convention_caution(land)
            with lock_output(task.out):
                result = pipeline.run(land, settings, progress=False)
                result.settings["source"] = task.name
                result.save(task.out)
                (Path(task.out) / "report.html").unlink(missing_ok=True)
                result.write_report(Path(task.out) / "report.html")
        why = result.unusable
        record.update(status=UNUSABLE if why else DONE, reason=why, n_minima=result.n_minima,
                      warnings=([caution] if caution else []) + sorted({str(w.message) for w in caught})[:20])
    except Exception as exc:  # noqa: BLE001 - any failure of this checkpoint is its outcome, not the sweep's
        record.update(status=FAILED, reason=error_text(exc), n_minima=None)
    record["seconds"] = round(time.perf_counter() - t0, 3)
    with contextlib.suppress(OSError):  # a folder that cannot be written is already the reason recorded
        write_record(task, record)
    return record


__all__ = ["CheckpointTask", "DONE", "FAILED", "TASK_NAME", "UNUSABLE", "file_sha256", "finished", "read_record",
           "run_task", "settings_key"]
