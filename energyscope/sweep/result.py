"""The result of a sweep (:class:`Sweep`), its saved form (``sweep.json`` + ``sweep.npz``, never pickle) and how a
checkpoint's saved analysis becomes a tracking :class:`~energyscope.tracking.Snapshot`.

Layout of a sweep's folder ``OUT``::

    OUT/sweep.json               the checkpoints' table, the basin history, where and how it ran (records the
                                 SHA-256 of sweep.npz)
    OUT/sweep.npz                the history's arrays (positions, energies, masses, prototypes per checkpoint)
    OUT/report.html              the sweep report (timeline and curves over training)
    OUT/checkpoints/NAME/        one folder per checkpoint, exactly as `energyscope analyze` writes it
                                 (analysis.json, arrays.npz, report.html) plus task.json (the task's record)

``sweep.json`` and ``sweep.npz`` are derived from the checkpoints' folders: a sweep run again over the same folder
rebuilds them (and recomputes no finished checkpoint).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from energyscope.analysis import Analysis
from energyscope.io.codec import AnalysisFormatError, Decoder, Encoder, check_depth, json_bytes
from energyscope.io.results import atomic_write_bytes
from energyscope.tracking import History, Snapshot

SWEEP_FORMAT = "energyscope-sweep"
SWEEP_VERSION = 1
SWEEP_JSON, SWEEP_ARRAYS, CHECKPOINTS_DIR = "sweep.json", "sweep.npz", "checkpoints"
MAX_SWEEP_JSON_BYTES = 256 * 2**20
MAX_SWEEP_ARRAY_BYTES = 4 * 2**30


def snapshot_of(result: Analysis, name: str, epoch: float | None = None) -> Snapshot:
    """What tracking reads from one checkpoint's analysis: minima, energies, lowest barriers, prior and data
    masses, decoded prototypes and each basin's most common label."""
    minima = result.minima
    k = 0 if minima is None else len(minima)
    basins = list(result.basins or [])
    have = len(basins) == k and k > 0

    def column(field: str) -> np.ndarray | None:
        if not have:
            return None
        vals = [getattr(b, field) for b in basins]
        if all(v is None for v in vals):
            return None
        return np.array([np.nan if v is None else float(v) for v in vals])

    labels = None
    if have and any(b.dominant_label is not None for b in basins):
        labels = ["" if b.dominant_label is None else str(b.dominant_label) for b in basins]
    protos = result.prototypes if result.prototypes is not None and len(result.prototypes) == k else None
    z = np.zeros((0, 0)) if minima is None else np.asarray(minima.z, dtype=float)
    energy = np.zeros(0) if minima is None else np.asarray(minima.energy, dtype=float)
    return Snapshot(name=name, z=z, energy=energy, barrier=column("barrier"), prior_mass=column("prior_mass"),
                    data_mass=column("data_mass"), prototypes=protos, labels=labels, epoch=epoch)


def checkpoint_measures(result: Analysis) -> dict:
    """The per-checkpoint numbers the sweep report plots over training."""
    la = result.label_agreement
    kin = result.kinetics
    net = result.network
    cov = result.minima.coverage if result.minima is not None else None
    return {"n_minima": result.n_minima,
            "n_transition_states": None if net is None else int(net.n_transition_states),
            "nmi": None if la is None or la.nmi is None else float(la.nmi),
            "hdbscan_nmi": None if la is None or la.hdbscan is None or la.hdbscan.nmi is None else float(la.hdbscan.nmi),
            "mixing_ratio": None if kin is None else kin.mixing_ratio,
            "complete": None if cov is None else bool(getattr(cov, "complete", False)),
            "global_energy": None if result.n_minima == 0 else float(result.minima.energy[0])}


@dataclasses.dataclass
class Sweep:
    """Many checkpoints analysed (on Dask) and their basins tracked (:func:`energyscope.sweep`).

    Attributes:
        rows: one dict per checkpoint, in the sweep's order: ``name``, ``checkpoint`` (path), ``epoch``, ``status``
            (``done``, ``unusable`` or ``failed``), ``reason`` (why not done), ``seconds``, ``resumed`` (found
            finished on disk), ``host``, ``report`` (path relative to the sweep folder) and the measures of
            :func:`checkpoint_measures` (``n_minima``, ``nmi``, ``mixing_ratio``, ...).
        history: the tracked basins (:class:`~energyscope.tracking.History`) of the checkpoints whose analysis is
            usable, or None when none is.
        settings: the analysis settings every checkpoint used, the tracking radius and the load options.
        info: where it ran, wall time, counts.
        output: the sweep's folder.
    """

    rows: list
    history: History | None
    settings: dict
    info: dict
    output: Path | None = None

    @property
    def names(self) -> list[str]:
        return [r["name"] for r in self.rows]

    @property
    def failed(self) -> list[dict]:
        """The rows of checkpoints without usable results (failed or unusable), with their reasons."""
        return [r for r in self.rows if r["status"] != "done"]

    def analysis(self, name: str) -> Analysis:
        """The saved analysis of checkpoint ``name`` (loaded from its folder)."""
        if self.output is None:
            raise AnalysisFormatError("this sweep has no folder to load analyses from")
        if name not in self.names:
            raise KeyError(f"no checkpoint {name!r} in this sweep (checkpoints: {', '.join(self.names)})")
        return Analysis.load(Path(self.output) / CHECKPOINTS_DIR / name)

    def __repr__(self) -> str:
        done = sum(r["status"] == "done" for r in self.rows)
        hist = self.history.summary() if self.history is not None else "no history"
        return f"Sweep({len(self.rows)} checkpoints, {done} done; {hist})"

    def summary(self) -> str:
        """A few lines: checkpoints done and failed (with reasons), the events, where it ran and how long."""
        lines = [f"{len(self.rows)} checkpoints on {self.info.get('where', '?')}: "
                 f"{sum(r['status'] == 'done' for r in self.rows)} done "
                 f"({sum(bool(r.get('resumed')) for r in self.rows)} found finished), "
                 f"{len(self.failed)} without usable results; {self.info.get('wall_seconds', 0):.1f} s"]
        for r in self.failed:
            lines.append(f"  {r['name']}: {r['status']}: {r.get('reason') or '?'}")
        if self.history is not None:
            lines.append(self.history.summary())
            for e in self.history.events:
                lines.append("  " + e.describe(self.history.names))
        return "\n".join(lines)

    # ------------------------------------------------------------------ save / load
    def to_payload(self) -> tuple[dict, dict[str, np.ndarray]]:
        enc = Encoder()
        doc = {"format": SWEEP_FORMAT, "version": SWEEP_VERSION,
               "rows": enc.encode(self.rows), "settings": enc.encode(self.settings), "info": enc.encode(self.info),
               "history": enc.encode(None if self.history is None else self.history.to_dict())}
        return doc, enc.arrays

    @classmethod
    def from_payload(cls, doc: dict, arrays: Any, output: Path | None = None) -> "Sweep":
        if doc.get("format") != SWEEP_FORMAT:
            raise AnalysisFormatError(f"{SWEEP_JSON} is not an energyscope sweep (format={doc.get('format')!r})")
        if not isinstance(doc.get("version"), int) or doc["version"] > SWEEP_VERSION:
            raise AnalysisFormatError(f"{SWEEP_JSON} has format version {doc.get('version')!r}; this energyscope "
                                      f"reads up to {SWEEP_VERSION}")
        dec = Decoder(arrays)
        hist = dec.decode(doc.get("history"))
        try:
            history = None if hist is None else History.from_dict(hist)
            return cls(rows=list(dec.decode(doc["rows"])), history=history, settings=dict(dec.decode(doc["settings"])),
                       info=dict(dec.decode(doc["info"])), output=output)
        except (KeyError, TypeError, ValueError) as exc:
            raise AnalysisFormatError(f"{SWEEP_JSON} does not have the structure of a sweep: {type(exc).__name__}: "
                                      f"{exc}") from None

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``sweep.json`` + ``sweep.npz`` into ``directory``: the arrays first, then the JSON that records
        their SHA-256 (a reader that finds them disagree refuses them; a sweep run again rewrites both)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        doc, arrays = self.to_payload()
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        npz = buf.getvalue()
        atomic_write_bytes(directory / SWEEP_ARRAYS, npz)
        atomic_write_bytes(directory / SWEEP_JSON, json_bytes({**doc, "arrays_sha256": hashlib.sha256(npz).hexdigest()}))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Sweep":
        """Read a sweep saved by :meth:`save` (no pickle; damaged files are one :class:`AnalysisFormatError`)."""
        directory = Path(directory)
        jpath, apath = directory / SWEEP_JSON, directory / SWEEP_ARRAYS
        for p, limit in ((jpath, MAX_SWEEP_JSON_BYTES), (apath, MAX_SWEEP_ARRAY_BYTES)):
            if not p.is_file():
                raise AnalysisFormatError(f"{str(p)!r} is missing; run `energyscope sweep` first")
            if p.stat().st_size > limit:
                raise AnalysisFormatError(f"{str(p)!r} is larger than {limit} bytes")
        try:
            doc = json.loads(jpath.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as exc:
            raise AnalysisFormatError(f"{str(jpath)!r} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise AnalysisFormatError(f"{str(jpath)!r} is not a JSON object")
        check_depth(doc, repr(str(jpath)))
        npz = apath.read_bytes()
        if hashlib.sha256(npz).hexdigest() != doc.get("arrays_sha256"):
            raise AnalysisFormatError(f"{str(apath)!r} does not belong to {str(jpath)!r} (checksum mismatch); run the "
                                      "sweep again to rebuild both")
        try:
            with np.load(io.BytesIO(npz), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError) as exc:
            raise AnalysisFormatError(f"{str(apath)!r} cannot be read: {exc}") from None
        return cls.from_payload(doc, arrays, output=directory)

    # ------------------------------------------------------------------ report
    def render_report(self) -> str:
        """The sweep report as one self-contained HTML string."""
        from energyscope.report.sweep import render_sweep_report
        return render_sweep_report(self.rows, self.history, self.settings, self.info)

    def write_report(self, path: str | os.PathLike | None = None) -> Path:
        """Write the sweep report (default ``OUT/report.html``); links to the checkpoints' reports are relative
        to the sweep folder, so write it there."""
        if path is None:
            if self.output is None:
                raise AnalysisFormatError("give a path: this sweep has no folder")
            path = Path(self.output) / "report.html"
        path = Path(path)
        atomic_write_bytes(path, self.render_report().encode("utf-8"))
        return path


__all__ = ["CHECKPOINTS_DIR", "SWEEP_JSON", "SWEEP_ARRAYS", "Sweep", "checkpoint_measures", "snapshot_of"]
