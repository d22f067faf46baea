""":func:`sweep`: analyse many checkpoints, one task each on Dask (or any executor), and track their basins.

    checkpoints ─► tasks (one per checkpoint; finished ones found on disk are skipped) ─► executor
                ─► OUT/checkpoints/NAME/ (each saved as `analyze` saves it) ─► snapshots ─► track ─► Sweep ─► report
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from energyscope.analysis import Analysis
from energyscope.errors import BadArgumentError
from energyscope.io.codec import AnalysisFormatError
from energyscope.io.results import lock_output
from energyscope.settings import AnalysisSettings
from energyscope.sweep import tasks as task_mod
from energyscope.sweep.executors import TASK_TRIES, SerialExecutor, open_executor
from energyscope.sweep.result import CHECKPOINTS_DIR, Sweep, checkpoint_measures, snapshot_of
from energyscope.tracking import DEFAULT_RADIUS, track

LOAD_KEYS = ("model", "spec", "trust_pickle", "device")
ORDERS = ("natural", "given")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


def epoch_of(path: str | os.PathLike) -> float | None:
    """The training epoch (or step) a checkpoint's file name states: its last number (``ckpt_000040.pth`` → 40),
    or None."""
    found = _NUMBER.findall(Path(path).stem)
    return float(found[-1]) if found else None


def checkpoint_names(paths: Sequence[Path]) -> list[str]:
    """A distinct folder name per checkpoint: its file name's stem, with its parent folders' names in front where
    stems repeat (``seed1/ckpt_10.pt`` and ``seed2/ckpt_10.pt`` → ``seed1-ckpt_10``, ``seed2-ckpt_10``)."""
    depth = 0
    while True:
        names = ["-".join([*p.resolve().parent.parts[len(p.resolve().parent.parts) - depth:], p.stem])
                 if depth else p.stem for p in paths]
        if len(set(names)) == len(names) or depth > 32:
            break
        depth += 1
    if len(set(names)) != len(names):
        raise BadArgumentError("the same checkpoint is given twice: " +
                               ", ".join(sorted({str(p) for p, n in zip(paths, names) if names.count(n) > 1})))
    return [re.sub(r"[^A-Za-z0-9._+-]", "_", n) for n in names]


def _ordered(paths: list[Path], order: str) -> list[Path]:
    if order not in ORDERS:
        raise BadArgumentError(f"order must be one of {ORDERS}, got {order!r}")
    if order == "natural" and all(epoch_of(p) is not None for p in paths):
        return sorted(paths, key=lambda p: (epoch_of(p), str(p)))
    return paths


def _settings(settings: AnalysisSettings | None, seed: int, analyze: Mapping[str, Any]) -> AnalysisSettings:
    if settings is not None:
        if analyze:
            raise BadArgumentError(f"sweep: pass either settings= or analysis settings as keywords, not both "
                                   f"({sorted(analyze)[0]!r} was given too)")
        if not isinstance(settings, AnalysisSettings):
            raise BadArgumentError(f"settings must be an AnalysisSettings, got {type(settings).__name__}")
        s = settings
    else:
        s = AnalysisSettings.from_arguments(seed=seed, **analyze)
    try:
        plain = AnalysisSettings.from_dict(s.to_dict()) == s
    except ValueError:   # an array compared with its description
        plain = False
    if not plain:
        raise BadArgumentError("sweep: every setting must be a plain value (numbers, text, lists); arrays or callables "
                               "(starts=, a partition) cannot be sent to the workers — give them per checkpoint "
                               "with es.analyze")
    return s


def sweep(checkpoints: Sequence[str | os.PathLike], client: Any = None, *, output: str | os.PathLike | None = None,
          workers: int | None = None, threads: int = 1, seed: int = 0, settings: AnalysisSettings | None = None,
          load: Mapping[str, Any] | None = None, data: str | os.PathLike | None = None, data_space: str = "auto",
          order: str = "natural", radius: float = DEFAULT_RADIUS, progress: bool = True,
          **analyze: Any) -> Sweep:
    """Analyse every checkpoint (one task each), save each as ``analyze`` does, and track basins across them.

    Parameters:
        checkpoints: checkpoint files (one training run's checkpoints, or many runs). Analysed and tracked in
            training order: by the last number in each file name (``ckpt_000040.pth`` → epoch 40) when every name
            has one (``order="natural"``, default), else as given (``order="given"``).
        client: where tasks run. None: an embedded Dask ``LocalCluster`` of ``workers`` processes; a scheduler
            address (``"tcp://10.0.0.5:8786"``) or a ``distributed.Client``: that cluster; ``"serial"``: this
            process; or any ``concurrent.futures.Executor``. Dask is the optional extra ``energyscope[dask]``.
        output: the sweep's folder (default ``energyscope_sweep``): ``sweep.json``, ``sweep.npz``, ``report.html``
            and ``checkpoints/NAME/`` per checkpoint. Run again over the same folder, finished checkpoints (same file
            bytes, same settings) are read back, not recomputed; failed ones are tried again.
        workers: worker processes of the embedded cluster (default: the CPU count, at most 8).
        threads: torch threads per task (default 1; the same count everywhere gives the same bits on every worker).
        seed, settings, **analyze: the analysis settings, as :func:`energyscope.analyze` takes them (``n_restarts=``,
            ``masses=``, ``minima_kwargs=``, ..., or ``settings=AnalysisSettings(...)``), checked before anything runs.
        load: :func:`~energyscope.load_checkpoint` options for every checkpoint: ``model``, ``spec``,
            ``trust_pickle``, ``device``.
        data, data_space: reference data (``.npz`` with ``x`` and optional labels ``y``) attached to every
            checkpoint, as ``energyscope analyze --data``.
        radius: the tracking match radius (:func:`energyscope.tracking.track`).
        progress: one progress bar over the checkpoints and a line per finished checkpoint.

    Returns:
        a :class:`~energyscope.sweep.result.Sweep` (also saved in ``output``, with its report). A checkpoint that
        fails is recorded with its reason (``Sweep.failed``) and the others go on; a worker that dies has its task
        run again elsewhere (up to 3 tries).
    """
    t0 = time.perf_counter()
    if isinstance(checkpoints, (str, os.PathLike)):
        checkpoints = [checkpoints]
    paths = [Path(p) for p in checkpoints]
    if not paths:
        raise BadArgumentError("sweep needs at least one checkpoint")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise BadArgumentError(f"checkpoint file{'s' if len(missing) > 1 else ''} not found: {', '.join(missing)}")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise BadArgumentError(f"threads must be a positive integer, got {threads!r}")
    load = dict(load or {})
    unknown = sorted(set(load) - set(LOAD_KEYS))
    if unknown:
        raise BadArgumentError(f"load: unknown option {unknown[0]!r} (accepted: {', '.join(LOAD_KEYS)})")
    s = _settings(settings, seed, analyze)
    if data is not None and not Path(data).is_file():
        raise BadArgumentError(f"data file not found: {data}")
    paths = _ordered(paths, order)
    names = checkpoint_names(paths)
    out = Path(output if output is not None else "energyscope_sweep").resolve()
    data_sha = task_mod.file_sha256(data) if data is not None else None
    key = task_mod.settings_key(s.to_dict(), load, data_sha, data_space, threads)
    jobs = [task_mod.CheckpointTask(name=n, checkpoint=str(p.resolve()), out=str(out / CHECKPOINTS_DIR / n),
                                    settings=s.to_dict(), load=load,
                                    data=None if data is None else str(Path(data).resolve()), data_space=data_space,
                                    threads=threads, key=key, sha256=task_mod.file_sha256(p))
            for n, p in zip(names, paths)]
    with lock_output(out):  # one sweep per folder at a time
        records, where = _run(jobs, client, workers, threads, progress)
        rows, history = _collect(jobs, records, paths, radius)
        info = {"where": where, "wall_seconds": round(time.perf_counter() - t0, 3), "threads_per_task": threads,
                "n_checkpoints": len(jobs), "n_resumed": sum(bool(r.get("resumed")) for r in rows),
                "n_failed": sum(r["status"] != "done" for r in rows)}
        result = Sweep(rows=rows, history=history, output=out, info=info,
                       settings={"analysis": s.to_dict(), "radius": float(radius), "load": load,
                                 "data": None if data is None else str(data), "data_space": data_space,
                                 "order": order, "key": key})
        result.save(out)
        result.write_report(out / "report.html")
    return result


def _run(jobs: list, client: Any, workers: int | None, threads: int, progress: bool) -> tuple[dict, str]:
    """Run every job not already finished; returns ({name: record}, where they ran)."""
    from tqdm.auto import tqdm
    records: dict[str, dict] = {}
    for job in jobs:
        rec = task_mod.finished(job)
        if rec is not None:
            records[job.name] = {**rec, "resumed": True}
    todo = [j for j in jobs if j.name not in records]
    bar = tqdm(total=len(jobs), initial=len(records), desc="sweep", unit="checkpoint", disable=not progress)
    where = "nothing to run: every checkpoint was found finished"
    try:
        if todo:
            with open_executor(client, workers, threads) as (executor, where):
                def done(fut: cf.Future, job: task_mod.CheckpointTask) -> None:
                    rec = records[job.name] = _outcome(fut, job)
                    bar.update(1)
                    if progress:
                        text = f"{rec['n_minima']} minim{'um' if rec['n_minima'] == 1 else 'a'}" if rec["status"] == "done" else \
                            f"{rec['status']}: {rec.get('reason') or '?'}"
                        bar.write(f"{job.name}: {text} ({rec.get('seconds') or 0:.1f} s)")
                if isinstance(executor, SerialExecutor):   # one after the other, each reported as it ends
                    for job in todo:
                        done(executor.submit(task_mod.run_task, job), job)
                else:
                    futures = {executor.submit(task_mod.run_task, job): job for job in todo}
                    for fut in cf.as_completed(futures):
                        done(fut, futures[fut])
    finally:
        bar.close()
    return records, where


def _outcome(fut: cf.Future, job: task_mod.CheckpointTask) -> dict:
    """A finished future's record; a task that raised (a worker that kept dying, a lost connection) is failed."""
    try:
        return dict(fut.result())
    except Exception as exc:  # noqa: BLE001 - recorded as this checkpoint's failure; the sweep goes on
        reason = task_mod.error_text(exc)
        if type(exc).__name__ == "KilledWorker":
            reason = f"the workers running it died {TASK_TRIES} times ({reason})"
        rec = {"name": job.name, "checkpoint": job.checkpoint, "sha256": job.sha256, "key": job.key,
               "status": task_mod.FAILED, "reason": reason, "n_minima": None, "seconds": None}
        try:
            task_mod.write_record(job, rec)
        except OSError:
            pass
        return rec


def _collect(jobs: list, records: dict, paths: list[Path], radius: float) -> tuple[list[dict], Any]:
    """The sweep's rows (one per checkpoint, in order) and the history of the usable ones."""
    rows, snaps = [], []
    for job, path in zip(jobs, paths):
        rec = records[job.name]
        row = {"name": job.name, "checkpoint": str(path), "epoch": epoch_of(path), "status": rec.get("status"),
               "reason": rec.get("reason") or "", "seconds": rec.get("seconds"), "resumed": bool(rec.get("resumed")),
               "host": rec.get("host"), "pid": rec.get("pid"), "warnings": list(rec.get("warnings") or []),
               "report": f"{CHECKPOINTS_DIR}/{job.name}/report.html" if rec.get("status") != "failed" else None}
        if rec.get("status") in (task_mod.DONE, task_mod.UNUSABLE):
            try:
                result = Analysis.load(job.out)
            except (AnalysisFormatError, OSError) as exc:
                row.update(status=task_mod.FAILED, reason=f"its saved results cannot be read: {exc}", report=None)
            else:
                row.update(checkpoint_measures(result))
                if row["status"] == task_mod.DONE:
                    snaps.append(snapshot_of(result, job.name, row["epoch"]))
        rows.append(row)
    return rows, (track(snaps, radius=radius) if snaps else None)


__all__ = ["checkpoint_names", "epoch_of", "sweep"]
