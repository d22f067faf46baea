"""The whole pipeline in one call, and its results saved as JSON + npz (never pickle).

:func:`analyze` runs minima → transition network → disconnectivity tree → interpretation on a
:class:`~energyscope.landscape.Landscape` and returns an :class:`Analysis`. Each stage is timed; a stage that fails
records its error in ``Analysis.diagnostics["stage_errors"]`` and the stages that can still run do, so nothing computed
is lost. :meth:`Analysis.save` writes ``analysis.json`` + ``arrays.npz`` as one atomic step, under a writer's lock;
:meth:`Analysis.load` restores everything the report needs without the model (decoded prototypes and filmstrips are
stored as arrays) and refuses damaged or hostile files with one clear error (on-disk form: :mod:`energyscope.store`);
:meth:`Analysis.write_report` writes the self-contained HTML report (:mod:`energyscope.report`).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib
import inspect
import os
import time
import warnings
import traceback
from pathlib import Path as _FsPath
from typing import Any, Callable

import numpy as np

from .errors import BadArgumentError
from . import _deadline
from ._geometry import arc_length
from ._tensor import to_numpy
from . import store as _store
# The on-disk form of results (codec, atomic writes, save/load, the writer's lock) lives in .store; these names are
# re-exported here for the code and tests that import them from this module.
from .store import (  # noqa: F401
    ARRAYS_NAME, FORMAT_NAME, FORMAT_VERSION, JSON_NAME, AnalysisFormatError, OutputLockedError, _Decoder, _Encoder,
    _json_default, _package_class, _registry, atomic_write_bytes)

STAGES = ("minima", "network", "tree", "interpret")


# ---------------------------------------------------------------------------------------------------------------------
# The result object
# ---------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Analysis:
    """Everything :func:`analyze` found, and what the report needs to redraw it without the model.

    Attributes:
        minima: the :class:`~energyscope.minima.Minima` (the network's set when connecting found new ones), or None
            when the minima stage failed.
        network: the :class:`~energyscope.network.TransitionNetwork`, or None.
        tree: the :class:`~energyscope.disconnectivity.DisconnectivityGraph`, or None.
        basins: one dict per minimum (sorted by energy like ``minima``): ``index``, ``energy`` (nats), ``barrier``
            (lowest barrier out, nats; None when the minimum has no transition state), ``prior_mass``,
            ``prior_mass_se``, ``sampler_mass``, ``data_mass`` (fractions in [0, 1] or None), ``hits``, ``n_flat``,
            ``n_sharp`` (kink directions; 0 for a smooth minimum),
            ``label_counts`` ({label: count}), ``dominant_label``, ``purity``, ``flags`` (list of str),
            ``nearest_data`` (distance to the nearest reference latent relative to the data's typical
            nearest-neighbour distance, or None).
        label_agreement: with labels: basin-vs-label scores (``purity``, ``nmi``, ``ari``, ``v_measure``, ...) and an
            ``hdbscan`` entry with the baseline's scores; None without labels.
        prototypes: (K, ...) decoded minima (the decoder's mean), or None without a decoder.
        paths: the path gallery, one dict per shown path: ``i``, ``j`` (minima), ``saddle_energy``, ``barrier``,
            ``validated``, ``mep_s`` (M,) arc length, ``mep_energy`` (M,), ``line_s``/``line_energy`` (L,) along the
            straight line, and with a decoder ``mep_frames``/``line_frames`` (F, ...) decoded filmstrips.
        views: data for the landscape picture: for d = 2 ``grid_x`` (G,), ``grid_y`` (G,), ``grid_U`` (G, G);
            ``reference`` (N, d), ``reference_labels`` (N,), ``reference_basin`` (N,) when there are reference latents.
        interpretation: extra results of the interpretation stage (masses details, flags, samples, ...), as saved.
        landscape: the :class:`~energyscope.landscape.Landscape` analysed (None after :meth:`load`).
        model: the landscape's description (dims, conventions, metadata).
        settings: every setting used, including defaults that were filled in.
        timings: seconds per stage.
        diagnostics: ``stage_errors`` ({stage: message}), ``unconverged_restarts``, ``dropped_nonfinite``,
            ``failed_connections`` (list of {i, j, reason}), ``nan_counts`` and ``warnings``.
        created: ISO time the analysis finished (kept through save/load, so a rebuilt report is identical).
    """

    minima: Any = None
    network: Any = None
    tree: Any = None
    basins: list = dataclasses.field(default_factory=list)
    label_agreement: dict | None = None
    prototypes: np.ndarray | None = None
    paths: list = dataclasses.field(default_factory=list)
    views: dict = dataclasses.field(default_factory=dict)
    interpretation: dict = dataclasses.field(default_factory=dict)
    landscape: Any = None
    model: dict = dataclasses.field(default_factory=dict)
    settings: dict = dataclasses.field(default_factory=dict)
    timings: dict = dataclasses.field(default_factory=dict)
    diagnostics: dict = dataclasses.field(default_factory=dict)
    created: str = ""

    _SAVED = ("minima", "network", "basins", "label_agreement", "prototypes", "paths", "views", "interpretation",
              "model", "settings", "timings", "diagnostics", "created")

    # ------------------------------------------------------------------ convenience
    @property
    def n_minima(self) -> int:
        return 0 if self.minima is None else len(self.minima)

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
        enc = _Encoder()
        doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION}
        try:
            from . import __version__
            doc["energyscope_version"] = __version__
        except ImportError:  # pragma: no cover
            pass
        doc["fields"] = {name: enc.encode(getattr(self, name)) for name in self._SAVED}
        if self.tree is not None and hasattr(self.tree, "to_dict"):
            try:
                doc["tree"] = enc.encode(self.tree.to_dict())
            except Exception:  # the tree can always be rebuilt from the network
                pass
        return doc, enc.arrays

    @classmethod
    def from_payload(cls, doc: dict, arrays: dict[str, np.ndarray]) -> "Analysis":
        """Rebuild an :class:`Analysis` from :meth:`to_payload`'s output (no model needed)."""
        if doc.get("format") != FORMAT_NAME:
            raise AnalysisFormatError(f"{JSON_NAME} is not an energyscope analysis (format={doc.get('format')!r})")
        if int(doc.get("version", -1)) > FORMAT_VERSION:
            raise AnalysisFormatError(
                f"{JSON_NAME} has format version {doc.get('version')}; this energyscope reads up to {FORMAT_VERSION}")
        dec = _Decoder(arrays)
        fields = doc.get("fields", {})
        kwargs = {name: dec.decode(fields[name]) for name in cls._SAVED if name in fields}
        result = cls(**kwargs)
        result.basins = [Record(b) for b in (result.basins or [])]
        if isinstance(result.label_agreement, dict):
            la = Record(result.label_agreement)
            for key in ("hdbscan", "hdbscan_vs_basins"):
                if isinstance(la.get(key), dict):
                    la[key] = Record(la[key])
            result.label_agreement = la
        result.tree = _rebuild_tree(result, dec.decode(doc["tree"]) if "tree" in doc else None)
        return result

    def save(self, directory: str | os.PathLike) -> _FsPath:
        """Write ``analysis.json`` and ``arrays.npz`` into ``directory`` (created if needed); returns the directory.

        The pair changes in one atomic step: the arrays are first written in full under a hidden content-addressed
        name, then ``analysis.json`` (which records their SHA-256) is replaced atomically — the commit — then the
        arrays are renamed onto ``arrays.npz``. A save interrupted at any point (Ctrl-C, ``kill -9``) leaves the
        previous results or the new ones, never a mix, and the next save cleans up. The save holds the folder's
        writer's lock: a concurrent writer gets :class:`~energyscope.store.OutputLockedError`. Details:
        :func:`energyscope.store.write_results`.
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
        Details: :func:`energyscope.store.read_results`.
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
        from .report import render_report
        return render_report(self.snapshot() if self.landscape is not None else self)

    def write_report(self, path: str | os.PathLike) -> _FsPath:
        """Write the self-contained HTML report to ``path`` (atomically); returns the path."""
        path = _FsPath(path)
        atomic_write_bytes(path, self.render_report().encode("utf-8"))
        return path

    def summary(self) -> str:
        """A few lines of plain text: what was found, how complete, masses and labels, time per stage, problems."""
        from .report import text_summary
        return text_summary(self)


def _rebuild_tree(result: Analysis, tree_data: Any) -> Any:
    """The disconnectivity tree after a load: from its own saved form when it supports that, else from the network."""
    if result.network is None:
        return None
    try:
        mod = importlib.import_module(".disconnectivity", __package__)
    except ImportError:
        return None
    graph_cls = getattr(mod, "DisconnectivityGraph", None)
    if tree_data is not None and graph_cls is not None and hasattr(graph_cls, "from_dict"):
        try:
            return graph_cls.from_dict(tree_data)
        except Exception:  # fall through to a rebuild
            pass
    try:
        return mod.disconnectivity(result.network)
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------------------------------
#: keywords the pipeline itself passes to each stage (and may not be given again in the stage's settings)
_PIPELINE_KEYWORDS = {"minima_kwargs": {"n_restarts", "seed", "bounds", "progress"},
                      "connect_kwargs": {"seed", "progress"},
                      "tree_kwargs": set(),
                      "interpret_kwargs": {"seed", "masses", "progress"}}


def _stage_parameters(name: str) -> tuple[set[str], str]:
    """The keywords a stage's settings may hold, and the function(s) they go to (for messages)."""
    from .disconnectivity import disconnectivity
    from .interpret import interpret
    from .masses import assign_basins, basin_masses
    from .minima import find_minima
    from .network import connect

    def names(fn: Callable, skip: int) -> set[str]:
        ps = list(inspect.signature(fn).parameters.values())[skip:]
        return {p.name for p in ps if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if name == "minima_kwargs":
        return names(find_minima, 1), "find_minima"
    if name == "connect_kwargs":
        return names(connect, 2), "connect"
    if name == "tree_kwargs":
        return names(disconnectivity, 1), "disconnectivity"
    # interpret passes what it does not take to basin_masses, and that to assign_basins
    return (names(interpret, 2) | names(basin_masses, 2) | names(assign_basins, 3)) - {"z"}, \
        "interpret / basin_masses / assign_basins"


def _check_stage_settings(**settings: dict) -> None:
    """A misspelt or misplaced key in a stage's settings is one clear error naming it and what is accepted (these
    were filtered out silently, so a typo ran the default)."""
    import difflib
    for name, given in settings.items():
        if not isinstance(given, dict):
            raise BadArgumentError(f"{name} must be a dict of settings, got {type(given).__name__}")
        allowed, where = _stage_parameters(name)
        own = _PIPELINE_KEYWORDS[name]
        for key in given:
            if key in own:
                raise BadArgumentError(f"{name}: {key!r} is set by analyze itself (pass it to analyze, not in {name})")
            if key not in allowed:
                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                accepted = ", ".join(sorted(allowed - own)) or "nothing"
                raise BadArgumentError(f"{name}: unknown setting {key!r} for {where}{hint} (accepted: {accepted})")


def _accepted_kwargs(fn: Callable, kwargs: dict) -> dict:
    """The subset of ``kwargs`` that ``fn`` accepts (all of them if it takes ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


def _call(fn: Callable, *args, **kwargs) -> Any:
    return fn(*args, **_accepted_kwargs(fn, kwargs))


def _error_text(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


class _Stage:
    """Times one stage, records the warnings it raises in the diagnostics (and passes them on), and turns an
    exception into a recorded error instead of a crash."""

    def __init__(self, name: str, result: Analysis):
        self.name = name
        self.result = result
        self.ok = False

    def __enter__(self) -> "_Stage":
        self.t0 = time.perf_counter()
        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("default")
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._catcher.__exit__(None, None, None)
        for w in self._caught:
            self.result.diagnostics.setdefault("warnings", []).append(f"{self.name}: {w.message}")
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self.result.timings[self.name] = round(time.perf_counter() - self.t0, 3)
        if exc is None:
            self.ok = True
            return False
        if isinstance(exc, KeyboardInterrupt):
            return False
        self.result.diagnostics.setdefault("stage_errors", {})[self.name] = _error_text(exc)
        return True


def analyze(
    land: Any,
    seed: int = 0,
    n_restarts: int | None = None,
    bounds: tuple | None = None,
    *,
    progress: bool = True,
    minima_kwargs: dict | None = None,
    connect_kwargs: dict | None = None,
    tree_kwargs: dict | None = None,
    interpret_kwargs: dict | None = None,
    masses: bool = True,
    n_paths: int = 6,
    n_frames: int = 9,
    grid_size: int = 160,
    time_limit: float | None = None,
) -> Analysis:
    """Run the whole pipeline on ``land`` and return an :class:`Analysis`.

    Stages: ``minima`` (:func:`~energyscope.minima.find_minima`), ``network`` (:func:`~energyscope.network.connect`),
    ``tree`` (:func:`~energyscope.disconnectivity.disconnectivity`) and ``interpret`` (prototypes, masses per basin,
    label agreement, path gallery, the d = 2 contour grid). A stage that raises is recorded in
    ``diagnostics["stage_errors"]``; later stages that do not depend on it still run.

    Parameters:
        land: a :class:`~energyscope.landscape.Landscape` (or an energy module/callable; see
            :func:`~energyscope.landscape.as_landscape`).
        seed: seed for every stochastic step (same seed, same result).
        n_restarts: multi-start restarts for the minima search (default: the minima stage's default).
        bounds: optional (lo, hi) box for start points, scalars or (d,) arrays.
        progress: show one progress bar per stage; False for scripts.
        minima_kwargs, connect_kwargs, tree_kwargs, interpret_kwargs: extra keyword arguments for each stage
            (:func:`~energyscope.minima.find_minima`, :func:`~energyscope.network.connect`,
            :func:`~energyscope.disconnectivity.disconnectivity`, :func:`~energyscope.interpret.interpret` with
            :func:`~energyscope.masses.basin_masses`); an unknown key, or one analyze sets itself, raises
            ``ValueError`` naming it before anything runs.
        masses: estimate prior / sampler / data mass per basin (the slowest part of interpretation).
        n_paths: how many minimum-energy paths the gallery shows (the lowest transition states of the merge tree).
        n_frames: frames per decoded filmstrip.
        grid_size: points per axis of the energy grid drawn for d = 2.
        time_limit: seconds for each stage after the minima search. Once spent, the iterative loops running in the
            stage (bands, saddle refinement, descents, MALA chains) stop where they are, the network stage starts no
            new batch and the interpretation no new part; unfinished work counts as unresolved, and what was cut is
            recorded in ``diagnostics`` (and speaks against completeness). None: no limit.
    """
    from .landscape import as_landscape
    _check_arguments(n_restarts, n_paths, n_frames, grid_size, seed)
    if time_limit is not None and (isinstance(time_limit, (bool, np.bool_)) or not isinstance(
            time_limit, (int, float, np.integer, np.floating)) or not float(time_limit) > 0):
        raise BadArgumentError(f"time_limit must be a positive number of seconds (or None), got {time_limit!r}")
    land = as_landscape(land)
    _check_stage_settings(minima_kwargs=minima_kwargs or {}, connect_kwargs=connect_kwargs or {},
                          tree_kwargs=tree_kwargs or {}, interpret_kwargs=interpret_kwargs or {})
    minima_kwargs = dict(minima_kwargs or {})
    connect_kwargs = dict(connect_kwargs or {})
    tree_kwargs = dict(tree_kwargs or {})
    interpret_kwargs = dict(interpret_kwargs or {})
    result = Analysis(landscape=land)
    result.model = _describe(land)
    from . import __version__
    result.settings = {"energyscope_version": __version__, "seed": int(seed), "n_restarts": n_restarts,
                       "bounds": None if bounds is None else [np.asarray(b, dtype=float).tolist() for b in bounds],
                       "masses": bool(masses), "n_paths": int(n_paths), "n_frames": int(n_frames),
                       "grid_size": int(grid_size), "time_limit": None if time_limit is None else float(time_limit),
                       "minima_kwargs": _plain(minima_kwargs),
                       "connect_kwargs": _plain(connect_kwargs), "tree_kwargs": _plain(tree_kwargs),
                       "interpret_kwargs": _plain(interpret_kwargs)}
    diag = result.diagnostics
    diag.update({"stage_errors": {}, "warnings": [], "failed_connections": [], "nan_counts": {}})
    t_start = time.perf_counter()

    # 1. minima ----------------------------------------------------------------------------------------------------
    with _Stage("minima", result):
        from .minima import find_minima
        kw = dict(n_restarts=n_restarts, seed=seed, bounds=bounds, progress=progress)
        if n_restarts is None:
            kw.pop("n_restarts")
        result.minima = _call(find_minima, land, **kw, **minima_kwargs)
        _record_minima_stats(result)

    # 2. network ---------------------------------------------------------------------------------------------------
    if result.minima is not None and len(result.minima) == 0:
        diag["stage_errors"].setdefault("network", "skipped: the minima search found no minimum")
    elif result.minima is not None:
        with _Stage("network", result):
            from .network import connect
            ckw = {"time_limit": time_limit, **connect_kwargs}
            with _deadline.time_limit(time_limit) as budget:
                result.network = _call(connect, land, result.minima, seed=seed, progress=progress, **ckw)
            if budget.hit:
                result.network.info.setdefault("stopped", f"time limit of {float(time_limit):g} s reached; bands "
                                                          "and descents running then were stopped unfinished")
            if (getattr(result.network, "info", None) or {}).get("stopped"):
                diag["warnings"].append(f"network: {result.network.info['stopped']}")
            if getattr(result.network, "minima", None) is not None:
                result.minima = result.network.minima
            _record_network_stats(result)
    else:
        diag["stage_errors"].setdefault("network", "skipped: no minima")

    # 3. tree ------------------------------------------------------------------------------------------------------
    if result.network is not None:
        with _Stage("tree", result):
            from .disconnectivity import disconnectivity
            result.tree = _call(disconnectivity, result.network, **tree_kwargs)
    else:
        diag["stage_errors"].setdefault("tree", "skipped: no transition network")

    # 4. interpretation ----------------------------------------------------------------------------------------------
    with _Stage("interpret", result):
        unbounded = bool(_plain_stats(getattr(result.minima, "stats", {}) or {}).get("n_runaway"))
        if masses and unbounded and "which" not in interpret_kwargs:
            # exp(-U) cannot be normalised when U falls without bound: there is no prior mass to measure (it used to
            # take many minutes and report 0 % everywhere); the data mass is still defined
            interpret_kwargs = {**interpret_kwargs, "which": ("data",)}
            diag["warnings"].append("interpret: prior and sampler masses skipped: U appears unbounded below, so "
                                    "exp(-U) has no normalisable mass (add the base prior)")
        with _deadline.time_limit(time_limit) as budget:
            _interpret_stage(result, land, seed=seed, masses=masses, n_paths=n_paths, n_frames=n_frames,
                             grid_size=grid_size, progress=progress, time_limit=time_limit, **interpret_kwargs)
        if budget.hit:
            diag["warnings"].append(f"interpret: the time limit of {float(time_limit):g} s stopped descents part-way; "
                                    "their samples count as not settled")

    result.timings["total"] = round(time.perf_counter() - t_start, 3)
    result.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    return result


def _check_arguments(n_restarts: Any, n_paths: Any, n_frames: Any, grid_size: Any, seed: Any = 0) -> None:
    """Bad settings fail at once with one clear message (a failing stage is recorded, a bad call is not)."""
    def is_int(x: Any) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))
    if not is_int(seed) or not 0 <= int(seed) < 2**63:
        raise BadArgumentError(f"seed must be an integer in [0, 2^63), got {seed!r}")
    if n_restarts is not None and (not is_int(n_restarts) or n_restarts < 1):
        raise BadArgumentError(f"n_restarts must be a positive integer (or None for the default), got {n_restarts!r}")
    if not is_int(n_paths) or n_paths < 0:
        raise BadArgumentError(f"n_paths must be a non-negative integer, got {n_paths!r}")
    if not is_int(n_frames) or n_frames < 2:
        raise BadArgumentError(f"n_frames must be an integer >= 2, got {n_frames!r}")
    if not is_int(grid_size) or grid_size < 8:
        raise BadArgumentError(f"grid_size must be an integer >= 8, got {grid_size!r}")


def _plain(d: dict) -> dict:
    """Settings as JSON-friendly values (callables and objects by name)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float, bool)) for x in v):
            out[k] = list(v)
        else:
            out[k] = getattr(v, "__name__", type(v).__name__)
    return out


def _describe(land: Any) -> dict:
    try:
        d = dict(land.describe())
    except Exception:  # a user landscape without describe(): the essentials
        d = {"dim": int(getattr(land, "dim", 0))}
    try:
        from .checkpoint import convention_caution
        caution = convention_caution(land)
    except Exception:  # a user landscape without metadata: nothing was guessed
        caution = None
    if caution:
        d["convention_caution"] = caution
    d["has_decoder"] = bool(getattr(land, "has_decoder", False))
    d["has_encoder"] = bool(getattr(land, "has_encoder", False))
    return d


def _record_minima_stats(result: Analysis) -> None:
    stats = dict(getattr(result.minima, "stats", {}) or {})
    diag = result.diagnostics
    diag["unconverged_restarts"] = int(stats.get("n_unconverged", stats.get("unconverged", 0)) or 0)
    diag["dropped_nonfinite"] = int(stats.get("n_dropped_nonfinite", stats.get("dropped_nonfinite", 0)) or 0)
    diag["minima_stats"] = _plain_stats(stats)
    if diag["dropped_nonfinite"]:
        diag["nan_counts"]["minima search (restarts dropped)"] = diag["dropped_nonfinite"]


def _plain_stats(stats: dict) -> dict:
    out = {}
    for k, v in stats.items():
        if isinstance(v, (bool, np.bool_)):
            out[k] = bool(v)
        elif isinstance(v, (int, np.integer)):
            out[k] = int(v)
        elif isinstance(v, (float, np.floating)):
            out[k] = float(v)
        elif isinstance(v, str):
            out[k] = v
    return out


def _record_network_stats(result: Analysis) -> None:
    net = result.network
    diag = result.diagnostics
    failed = []
    outcomes: dict[str, int] = {}
    for a in getattr(net, "attempts", []):
        outcome = str(getattr(a, "outcome", "?"))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome == "failed":
            failed.append({"i": int(a.i), "j": int(a.j), "reason": str(getattr(a, "reason", ""))})
    diag["failed_connections"] = failed
    diag["attempt_outcomes"] = outcomes
    comps = net.components() if hasattr(net, "components") else []
    diag["components"] = len(comps)
    if len(comps) > 1:
        diag["warnings"].append(
            f"the transition network has {len(comps)} disconnected components; the tree puts them under a "
            "'not connected' root")


# ---------------------------------------------------------------------------------------------------------------------
# The interpretation stage: glue between the pipeline and energyscope.interpret / masses / labels
# ---------------------------------------------------------------------------------------------------------------------
class Record(dict):
    """A dict whose keys also read as attributes (``basin.prior_mass`` or ``basin["prior_mass"]``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _substep(result: Analysis, name: str, fn: Callable[[], Any]) -> Any:
    """Run one part of the interpretation; a failure is recorded (``interpret: name``) and the rest goes on."""
    try:
        return fn()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        result.diagnostics.setdefault("stage_errors", {})[f"interpret: {name}"] = _error_text(exc)
        return None


def _interpret_stage(result: Analysis, land: Any, *, seed: int, masses: bool, n_paths: int, n_frames: int,
                     grid_size: int, progress: bool, time_limit: float | None = None, **interpret_kwargs) -> None:
    from tqdm.auto import tqdm
    minima = result.minima
    steps = ["prototypes, masses, labels", "path gallery", "landscape views"]
    bar = tqdm(total=len(steps), desc="interpret", disable=not progress, leave=True)

    def out_of_time(step: str) -> bool:  # analyze runs this stage under its time limit (energyscope._deadline)
        if not _deadline.expired():
            return False
        result.diagnostics.setdefault("stage_errors", {})[f"interpret: {step}"] = \
            f"skipped: the interpretation reached its time limit of {float(time_limit):g} s"
        return True
    try:
        interp = None
        if minima is not None and len(minima):
            bar.set_postfix_str(steps[0])
            from .interpret import interpret
            interp = _substep(result, "masses and labels", lambda: interpret(
                land, minima, seed=seed, masses=masses, progress=progress, **interpret_kwargs))
            if interp is None and getattr(land, "has_decoder", False):  # keep the prototypes at least
                from .interpret import prototypes
                protos = _substep(result, "prototypes", lambda: prototypes(land, minima))
                result.prototypes = None if protos is None else np.asarray(protos)
            if interp is not None:
                result.prototypes = None if interp.prototypes is None else np.asarray(interp.prototypes)
                if (interp.info or {}).get("decoder_error"):
                    result.diagnostics.setdefault("stage_errors", {})["interpret: prototypes"] = \
                        "LandscapeError: " + str(interp.info["decoder_error"])
                result.interpretation = {"masses": interp.masses, "labels": interp.labels,
                                         "minima_off_data": interp.minima_off_data, "info": dict(interp.info)}
                result.label_agreement = _label_record(interp.labels)
                _mass_notes(result, interp.masses)
                _mass_counts(result, interp.masses)
            result.basins = _basin_records(result, land, interp)
        bar.update(1)
        bar.set_postfix_str(steps[1])
        if result.network is not None and minima is not None and not out_of_time("path gallery"):
            result.paths = _substep(result, "path gallery", lambda: _gallery(
                result, land, n_paths=n_paths, n_frames=n_frames)) or []
        bar.update(1)
        bar.set_postfix_str(steps[2])
        views = {} if out_of_time("landscape views") else \
            _substep(result, "landscape views", lambda: _views(result, land, grid_size)) or {}
        result.views = views
        bar.update(1)
    finally:
        bar.close()


def _plain_label(x: Any) -> Any:
    if isinstance(x, np.generic):
        x = x.item()
    return x if isinstance(x, (int, str, float, bool)) else str(x)


def _label_record(la: Any) -> Record | None:
    if la is None:
        return None
    rec = Record(la.basins.to_dict())
    rec["hdbscan"] = None if la.hdbscan is None else Record(la.hdbscan.to_dict())
    rec["hdbscan_vs_basins"] = None if la.hdbscan_vs_basins is None else Record(la.hdbscan_vs_basins.to_dict())
    rec["hdbscan_noise"] = la.hdbscan_noise
    rec["hdbscan_params"] = la.hdbscan_params
    rec["n_unassigned"] = int(la.n_unassigned)
    rec["confusion"] = np.asarray(la.confusion, dtype=np.int64)
    rec["confusion_rows"] = [int(r) for r in np.asarray(la.rows).tolist()]
    rec["confusion_cols"] = [_plain_label(c) for c in np.asarray(la.cols).tolist()]
    return rec


def _mass_notes(result: Analysis, bm: Any) -> None:
    if bm is None:
        return
    notes = []
    names = {"importance": "self-normalised importance sampling from the base N(0, I)",
             "mala": "Metropolis-adjusted Langevin chains"}
    eq = bm.equilibrium
    if eq is not None:
        notes.append(f"Equilibrium prior mass: {names.get(eq.method, eq.method)}, {eq.n_samples:,} samples, "
                     f"effective sample size {eq.ess:,.0f}; {100 * eq.other:.1f}% reached minima not in the set, "
                     f"{100 * eq.unresolved:.1f}% did not converge.")
    sm = bm.sampler
    if sm is not None:
        info = sm.info or {}
        dflt = info.get("defaults_used") or []
        notes.append(f"Sampler mass: the model's short-run Langevin sampler ({info.get('steps')} steps of size "
                     f"{info.get('step_size')}" + (f"; default {', '.join(dflt)}" if dflt else "")
                     + f"), {sm.n_samples:,} chains from the base; {100 * sm.other:.1f}% reached other minima, "
                     f"{100 * sm.unresolved:.1f}% did not settle (diverged or unconverged).")
    else:
        notes.append("Sampler mass: not computed — the checkpoint records no sampler settings and the landscape has "
                     "no standard-normal base, so there is no short-run sampler to imitate (pass "
                     "interpret_kwargs={'sampler': {'steps': ..., 'step_size': ...}} to set one).")
    dm = bm.data
    if dm is not None:
        notes.append(f"Data mass: {dm.n_samples:,} reference latents; {int(dm.info.get('n_far', 0))} lie far from "
                     f"every minimum; {100 * dm.other:.1f}% descended to minima not in the set.")
    thr = bm.flags.thresholds
    notes.append(f"Flags: prior hole = prior mass ≥ {thr.get('hole_ratio')}× data mass and ≥ "
                 f"{100 * float(thr.get('min_mass', 0)):.0f}%; sampler ≠ equilibrium = masses differ by ≥ "
                 f"{100 * float(thr.get('min_diff', 0)):.0f} points and > {thr.get('n_se')} standard errors.")
    result.interpretation["mass_notes"] = notes


def _mass_counts(result: Analysis, bm: Any) -> None:
    """Non-finite and unsettled samples of the mass estimates, for the diagnostics."""
    if bm is None:
        return
    nan = result.diagnostics.setdefault("nan_counts", {})
    for name, est in (("prior", bm.equilibrium), ("sampler", bm.sampler), ("data", bm.data)):
        if est is None:
            continue
        info = est.info or {}
        if info.get("n_nonfinite"):
            nan[f"{name} samples with a non-finite weight"] = int(info["n_nonfinite"])
        if info.get("n_unresolved"):
            nan[f"{name} samples whose descent did not settle"] = int(info["n_unresolved"])


def _basin_records(result: Analysis, land: Any, interp: Any) -> list[Record]:
    minima = result.minima
    k = len(minima)
    lowest = np.full(k, np.inf)
    if result.network is not None:
        for u, v, e in result.network.graph.edges(data="energy"):
            if u != v and e is not None:
                lowest[u] = min(lowest[u], float(e))
                lowest[v] = min(lowest[v], float(e))
    n_flat = np.asarray(minima.n_flat) if hasattr(minima, "n_flat") else np.zeros(k, dtype=int)
    n_sharp = np.isposinf(np.asarray(minima.hessian_eigenvalues, dtype=float)).sum(axis=1) if k else \
        np.zeros(0, dtype=int)
    bm = interp.masses if interp is not None else None
    od = interp.minima_off_data if interp is not None else None
    data_basin = bm.data.basin if bm is not None and bm.data is not None else None
    labels = getattr(land, "labels", None)
    out = []
    for i in range(k):
        r = Record(index=i, energy=float(minima.energy[i]),
                   barrier=None if not np.isfinite(lowest[i]) else float(lowest[i] - minima.energy[i]),
                   hits=int(minima.hits[i]), n_flat=int(n_flat[i]), n_sharp=int(n_sharp[i]))
        for key, est in (("prior", None if bm is None else bm.equilibrium),
                         ("sampler", None if bm is None else bm.sampler),
                         ("data", None if bm is None else bm.data)):
            r[f"{key}_mass"] = None if est is None else float(est.mass[i])
            r[f"{key}_mass_se"] = None if est is None else float(est.se[i])
        r["label_counts"], r["dominant_label"], r["purity"] = {}, None, None
        if data_basin is not None:
            r["data_count"] = int((data_basin == i).sum())
            if labels is not None and len(labels) == len(data_basin):
                labs, cnt = np.unique(np.asarray(labels)[data_basin == i], return_counts=True)
                order = np.lexsort((labs.astype(str), -cnt))
                r["label_counts"] = {_plain_label(labs[o]): int(cnt[o]) for o in order}
                if len(cnt):
                    r["dominant_label"] = _plain_label(labs[order[0]])
                    r["purity"] = float(cnt[order[0]] / cnt.sum())
        flags = []
        if bm is not None:
            if bool(bm.flags.prior_hole[i]):
                flags.append("prior hole")
            if bm.data is not None and bool(bm.flags.unsupported[i]):
                flags.append("no data")
            if bool(bm.flags.disagree[i]):
                flags.append("sampler ≠ equilibrium")
        r["nearest_data"] = None if od is None else float(od.ratio_p95[i])
        if od is not None and bool(od.off[i]):
            flags.append("off data")
        r["flags"] = flags
        out.append(r)
    return out


def _gallery_edges(network: Any, n_paths: int) -> list[tuple[int, int, dict]]:
    """The transition states that build the merge tree, most significant first: those joining the largest
    superbasins (by number of minima), ties broken by lower energy; at most ``n_paths``, shown by energy."""
    edges = sorted(((float(d.get("energy", np.inf)), int(u), int(v), d)
                    for u, v, d in network.graph.edges(data=True) if u != v and d.get("path") is not None),
                   key=lambda t: (t[0], min(t[1], t[2]), max(t[1], t[2])))
    parent = list(range(max(network.graph.nodes, default=-1) + 1))
    size = [1] * len(parent)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a
    merges = []
    for e, u, v, d in edges:
        ru, rv = find(u), find(v)
        if ru == rv:
            continue
        merges.append((min(size[ru], size[rv]), e, u, v, d))
        parent[rv] = ru
        size[ru] += size[rv]
    chosen = sorted(merges, key=lambda t: (-t[0], t[1]))[:max(int(n_paths), 0)]
    return [(u, v, d) for _, _, u, v, d in sorted(chosen, key=lambda t: t[1])]


def _gallery(result: Analysis, land: Any, n_paths: int, n_frames: int) -> list[dict]:
    from .interpret import path_strip
    from .landscape import LandscapeError
    minima = result.minima
    out = []
    decode = bool(getattr(land, "has_decoder", False))
    for u, v, d in _gallery_edges(result.network, n_paths):
        path = d["path"]
        pz = np.asarray(path.z, dtype=float)
        i, j = u, v
        if np.linalg.norm(pz[0] - minima.z[v]) < np.linalg.norm(pz[0] - minima.z[u]):
            i, j = v, u
        try:
            strip = path_strip(land, path, n_frames=n_frames, i=i, j=j, decode=decode)
        except LandscapeError as exc:  # a failing decoder costs the filmstrips, not the energy profiles
            if not decode:
                raise
            result.diagnostics.setdefault("stage_errors", {})["interpret: path filmstrips"] = _error_text(exc)
            decode = False
            strip = path_strip(land, path, n_frames=n_frames, i=i, j=j, decode=False)
        arc = arc_length(pz)
        rec = {"i": int(i), "j": int(j), "saddle_energy": float(d.get("energy", path.saddle_energy)),
               "validated": bool(getattr(path, "saddle_validated", True)),
               "negative_eigenvalue": float(d.get("negative_eigenvalue", np.nan)),
               "path_length": float(arc[-1]), "line_length": float(np.linalg.norm(pz[-1] - pz[0])),
               "mep_s": np.asarray(strip.profile_frac), "mep_energy": np.asarray(strip.path_energy),
               "line_s": np.asarray(strip.profile_frac), "line_energy": np.asarray(strip.line_energy),
               "image_s": arc / arc[-1] if arc[-1] > 0 else arc, "image_energy": np.asarray(path.energy, float),
               "frame_s": np.asarray(strip.frac)}
        if strip.path_decoded is not None:
            rec["mep_frames"] = np.asarray(strip.path_decoded)
            rec["line_frames"] = np.asarray(strip.line_decoded)
        if strip.path_off_data is not None:
            rec["mep_off_data"] = np.asarray(strip.path_off_data)
            rec["line_off_data"] = np.asarray(strip.line_off_data)
        out.append(rec)
    return out


def _views(result: Analysis, land: Any, grid_size: int) -> dict:
    views: dict[str, Any] = {}
    ref = getattr(land, "reference", None)
    if ref is not None:
        views["reference"] = np.asarray(ref, dtype=float)
        labels = getattr(land, "labels", None)
        if labels is not None:
            views["reference_labels"] = np.asarray([_plain_label(x) for x in np.asarray(labels).tolist()])
        bm = (result.interpretation or {}).get("masses")
        if bm is not None and bm.data is not None:
            views["reference_basin"] = np.asarray(bm.data.basin, dtype=np.int64)
    if land.dim == 2 and result.minima is not None and len(result.minima):
        pts = [np.asarray(result.minima.z, float)]
        if result.network is not None:
            for _, _, d in result.network.graph.edges(data=True):
                if d.get("path") is not None:
                    pts.append(np.asarray(d["path"].z, float))
        pts = np.concatenate(pts)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        span = np.maximum(hi - lo, 0.5 * land.scales().length)
        lo, hi = lo - 0.35 * span, hi + 0.35 * span
        gx, gy = np.linspace(lo[0], hi[0], grid_size), np.linspace(lo[1], hi[1], grid_size)
        xx, yy = np.meshgrid(gx, gy)
        u = to_numpy(land.energy(np.column_stack([xx.ravel(), yy.ravel()]))).reshape(xx.shape)
        n_bad = int((~np.isfinite(u)).sum())
        if n_bad:
            result.diagnostics.setdefault("nan_counts", {})["contour grid points"] = n_bad
        views.update(grid_x=gx, grid_y=gy, grid_U=u)
    return views


__all__ = ["Analysis", "AnalysisFormatError", "Record", "analyze", "atomic_write_bytes"]
