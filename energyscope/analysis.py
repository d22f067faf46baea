"""The result of :func:`energyscope.analyze` (:mod:`energyscope.pipeline`), and its saved form (never pickle).

:class:`Analysis` holds every stage's result and what the report needs to redraw it without the model.
:meth:`Analysis.save` writes ``analysis.json`` + ``arrays.npz`` as one atomic step, under a writer's lock;
:meth:`Analysis.load` restores everything the report needs without the model (decoded prototypes and filmstrips are
stored as arrays) and refuses damaged or hostile files with one clear error (on-disk form: :mod:`energyscope.io.results`);
:meth:`Analysis.write_report` writes the self-contained HTML report (:mod:`energyscope.report`).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path as _FsPath
from typing import Any

import numpy as np

from energyscope._version import __version__
from energyscope.errors import BadArgumentError
from energyscope.interpret.records import BasinRecord, GalleryPath, LabelSummary
from energyscope.io import results as _store
from energyscope.io.codec import FORMAT_NAME, FORMAT_VERSION, JSON_NAME, AnalysisFormatError, Decoder, Encoder
from energyscope.io.results import atomic_write_bytes
from energyscope.kinetics.model import Kinetics
from energyscope.kinetics.simulate import SamplerTransitions
from energyscope.search.minima import Minima
from energyscope.search.network import TransitionNetwork
from energyscope.settings import AnalysisSettings
from energyscope.tree.graph import DisconnectivityGraph, disconnectivity


# ---------------------------------------------------------------------------------------------------------------------
# The result object
# ---------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Analysis:
    """Everything :func:`analyze` found, and what the report needs to redraw it without the model.

    Attributes:
        minima: the :class:`~energyscope.search.minima.Minima` (the network's set when connecting found new ones), or None
            when the minima stage failed.
        network: the :class:`~energyscope.search.network.TransitionNetwork`, or None.
        tree: the :class:`~energyscope.tree.graph.DisconnectivityGraph`, or None.
        basins: one :class:`~energyscope.interpret.records.BasinRecord` per minimum (sorted by energy like
            ``minima``): energy, lowest barrier out, the three masses, hits, flat and sharp directions, label counts,
            flags (fields also read by key: ``basin["prior_mass"]``).
        label_agreement: with labels, a :class:`~energyscope.interpret.records.LabelSummary`: basin-vs-label
            scores (``purity``, ``nmi``, ``ari``, ``v_measure``, ...), the HDBSCAN baseline's (``hdbscan``) and the
            basin × label table; None without labels.
        prototypes: (K, ...) decoded minima (the decoder's mean), or None without a decoder.
        paths: the path gallery, one :class:`~energyscope.interpret.records.GalleryPath` per shown path (energy
            profiles along the path and the straight line, decoded filmstrips with a decoder).
        views: data for the landscape picture: for d = 2 ``grid_x`` (G,), ``grid_y`` (G,), ``grid_U`` (G, G);
            ``reference`` (N, d), ``reference_labels`` (N,), ``reference_basin`` (N,) when there are reference latents.
        interpretation: extra results of the interpretation stage (masses details, flags, samples, ...), as saved.
        kinetics: the :class:`~energyscope.kinetics.model.Kinetics` of the network at ``settings["kinetics"]``'s
            temperature (times in the model's sampler steps), or None: no network, the stage failed
            (``stage_errors["kinetics"]``), or the rates do not exist for this landscape, e.g. on kinks
            (``diagnostics["not_available"]["kinetics"]`` says why).
        sampler_transitions: where the model's own sampler goes in one chain from each of the lowest minima
            (:class:`~energyscope.kinetics.simulate.SamplerTransitions`; measured when ``masses`` is on), or None.
        landscape: the :class:`~energyscope.landscape.Landscape` analysed (None after :meth:`load`).
        model: the landscape's description (dims, conventions, metadata).
        settings: every setting used, defaults filled in, as saved: :meth:`AnalysisSettings.to_dict
            <energyscope.settings.AnalysisSettings.to_dict>` plus ``energyscope_version`` (:attr:`typed_settings`
            reads it back as an :class:`~energyscope.settings.AnalysisSettings`).
        timings: seconds per stage.
        diagnostics: ``stage_errors`` ({stage: message}), ``not_available`` ({result: why it does not exist for
            this landscape}), ``unconverged_restarts``, ``dropped_nonfinite``, ``failed_connections`` (list of
            {i, j, reason}), ``nan_counts`` and ``warnings``.
        created: ISO time the analysis finished (kept through save/load, so a rebuilt report is identical).
    """

    minima: Minima | None = None
    network: TransitionNetwork | None = None
    tree: DisconnectivityGraph | None = None
    basins: list[BasinRecord] = dataclasses.field(default_factory=list)
    label_agreement: LabelSummary | None = None
    prototypes: np.ndarray | None = None
    paths: list[GalleryPath] = dataclasses.field(default_factory=list)
    views: dict = dataclasses.field(default_factory=dict)
    interpretation: dict = dataclasses.field(default_factory=dict)
    kinetics: Kinetics | None = None
    sampler_transitions: SamplerTransitions | None = None
    landscape: Any = None
    model: dict = dataclasses.field(default_factory=dict)
    settings: dict = dataclasses.field(default_factory=dict)
    timings: dict = dataclasses.field(default_factory=dict)
    diagnostics: dict = dataclasses.field(default_factory=dict)
    created: str = ""

    _SAVED = ("minima", "network", "basins", "label_agreement", "prototypes", "paths", "views", "interpretation",
              "kinetics", "sampler_transitions", "model", "settings", "timings", "diagnostics", "created")

    # ------------------------------------------------------------------ convenience
    @property
    def n_minima(self) -> int:
        return 0 if self.minima is None else len(self.minima)

    @property
    def typed_settings(self) -> AnalysisSettings:
        """:attr:`settings` as an :class:`~energyscope.settings.AnalysisSettings` (results saved by energyscope
        0.1.0 kept the stages' settings as ``minima_kwargs``, ... dicts; those are read too). Settings that held
        arrays or callables (``starts``, ``reference``, ``partition``) come back as their recorded description,
        e.g. ``"array (120, 2)"``: the record says what was used, it does not keep the data."""
        saved = dict(self.settings or {})
        old = {k: saved.pop(k) for k in ("minima_kwargs", "connect_kwargs", "tree_kwargs", "interpret_kwargs")
               if k in saved}
        if old:
            pipeline = {k: v for k, v in saved.items() if k in AnalysisSettings.pipeline_names()}
            return AnalysisSettings.from_arguments(**old, **pipeline)
        return AnalysisSettings.from_dict(saved)

    @property
    def stage_errors(self) -> dict:
        return dict(self.diagnostics.get("stage_errors", {}))

    @property
    def unusable(self) -> str:
        """Why the result cannot be used ("" when it can): the minima stage failed or found no minimum, descents
        ran away (U unbounded below, so p(z) ∝ exp(-U) is no distribution), or the network stage failed. (A network
        that is not connected is usable: the tree shows its components.)"""
        errors = self.stage_errors
        if "minima" in errors:
            return f"the minima search failed: {errors['minima']}"
        if self.minima is None or len(self.minima) == 0:
            why = (self.minima.stats.get("diagnosis") if self.minima is not None else None) or ""
            return "the minima search found no minimum" + (f": {why}" if why else "")
        if self.minima.stats.get("n_runaway"):
            # p(z) ∝ exp(-U) cannot be normalised: basins, barriers and masses are not those of a distribution
            return str(self.minima.stats.get("diagnosis") or "U appears unbounded below")
        net = errors.get("network", "")
        if net and not net.startswith("skipped"):
            return f"the transition network failed: {net}"
        return ""

    def __repr__(self) -> str:
        n_ts = self.network.n_transition_states if self.network is not None else 0
        return (f"Analysis(minima={self.n_minima}, transition_states={n_ts}, "
                f"stages_failed={sorted(self.stage_errors)}, saved_fields={len(self._SAVED)})")

    # ------------------------------------------------------------------ save / load
    def to_payload(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The JSON document and the arrays that :meth:`save` writes (the tree is rebuilt from the network on load)."""
        enc = Encoder()
        doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION}
        doc["energyscope_version"] = __version__
        doc["fields"] = {name: enc.encode(getattr(self, name)) for name in self._SAVED}
        if self.tree is not None:
            doc["tree"] = enc.encode(self.tree.to_dict())
        return doc, enc.arrays

    @classmethod
    def from_payload(cls, doc: dict, arrays: dict[str, np.ndarray]) -> "Analysis":
        """Rebuild an :class:`Analysis` from :meth:`to_payload`'s output (no model needed)."""
        if doc.get("format") != FORMAT_NAME:
            raise AnalysisFormatError(f"{JSON_NAME} is not an energyscope analysis (format={doc.get('format')!r})")
        if int(doc.get("version", -1)) > FORMAT_VERSION:
            raise AnalysisFormatError(
                f"{JSON_NAME} has format version {doc.get('version')}; this energyscope reads up to {FORMAT_VERSION}")
        dec = Decoder(arrays)
        fields = doc.get("fields", {})
        kwargs = {name: dec.decode(fields[name]) for name in cls._SAVED if name in fields}
        result = cls(**kwargs)
        # energyscope 0.1.0 saved the records as plain dicts
        result.basins = [b if isinstance(b, BasinRecord) else BasinRecord.from_mapping(b) for b in result.basins or []]
        result.paths = [p if isinstance(p, GalleryPath) else GalleryPath.from_mapping(p) for p in result.paths or []]
        if isinstance(result.label_agreement, dict):
            result.label_agreement = LabelSummary.from_mapping(result.label_agreement)
        result.tree = _rebuild_tree(result, dec.decode(doc["tree"]) if "tree" in doc else None)
        return result

    def save(self, directory: str | os.PathLike) -> _FsPath:
        """Write ``analysis.json`` and ``arrays.npz`` into ``directory`` (created if needed); returns the directory.

        The pair changes in one atomic step: the arrays are first written in full under a hidden content-addressed
        name, then ``analysis.json`` (which records their SHA-256) is replaced atomically — the commit — then the
        arrays are renamed onto ``arrays.npz``. A save interrupted at any point (Ctrl-C, ``kill -9``) leaves the
        previous results or the new ones, never a mix, and the next save cleans up. The save holds the folder's
        writer's lock: a concurrent writer gets :class:`~energyscope.io.results.OutputLockedError`. Details:
        :func:`energyscope.io.results.write_results`.
        """
        doc, arrays = self.to_payload()
        return _store.write_results(directory, doc, arrays)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, max_array_bytes: int | None = None,
             max_expansion: float | None = _store.MAX_EXPANSION) -> "Analysis":
        """Read results written by :meth:`save`. ``landscape`` is None; everything the report needs is restored.

        Damaged, mismatched or hostile files (a JSON nested absurdly deep or not an object, arrays from another save
        or outside the checksum, a zip bomb, malformed arrays) raise one :class:`AnalysisFormatError` naming the
        problem; memory stays bounded: the arrays may expand to at most ``max_array_bytes`` (default 4 GiB) and, unless
        ``max_expansion`` is None, to at most ``max_expansion`` (default 200) times their size on disk (or 64 MiB).
        Details: :func:`energyscope.io.results.read_results`.
        """
        return _store.read_results(directory, cls.from_payload, max_array_bytes=max_array_bytes,
                                   max_expansion=max_expansion)

    def snapshot(self) -> "Analysis":
        """An in-memory save/load round trip: exactly what :meth:`load` would give after :meth:`save`."""
        doc, arrays = _store.round_trip(*self.to_payload())
        return type(self).from_payload(doc, arrays)

    # ------------------------------------------------------------------ report and text
    def render_report(self) -> str:
        """The HTML report as a string, drawn from the saved form of these results (so a reload draws the same)."""
        from energyscope.report import render_report
        return render_report(self.snapshot() if self.landscape is not None else self)

    def write_report(self, path: str | os.PathLike) -> _FsPath:
        """Write the self-contained HTML report to ``path`` (atomically); returns the path."""
        path = _FsPath(path)
        atomic_write_bytes(path, self.render_report().encode("utf-8"))
        return path

    def summary(self) -> str:
        """A few lines of plain text: what was found, how complete, masses and labels, time per stage, problems."""
        from energyscope.report import text_summary
        return text_summary(self)


def _rebuild_tree(result: Analysis, tree_data: Any) -> DisconnectivityGraph | None:
    """The disconnectivity tree after a load: from its saved form, else (a save without one) rebuilt from the
    network. A saved tree that cannot be read is rebuilt too: the network holds everything the tree is made of."""
    from energyscope.search.network import TransitionNetwork
    if not isinstance(result.network, TransitionNetwork) or len(result.network.minima) == 0:
        return None  # no network (or a newer layout kept as plain data), or one without minima: no tree
    if tree_data is not None:
        try:
            return DisconnectivityGraph.from_dict(tree_data)
        except (BadArgumentError, KeyError, TypeError, ValueError):
            pass
    return disconnectivity(result.network)


__all__ = ["Analysis", "AnalysisFormatError", "atomic_write_bytes"]
