"""The whole pipeline in one call: :func:`analyze` runs the stages, in order, on a Landscape.

    settings ─► minima (find_minima) ─► network (connect) ─► tree (disconnectivity) ─► interpret ─► kinetics ─► Analysis

Each stage is called with its keywords written out (from :class:`~energyscope.settings.AnalysisSettings`, checked
once, before anything runs). Each is timed; one that raises records its error in
``Analysis.diagnostics["stage_errors"]`` and the stages that can still run do, so nothing computed is lost.
"""
from __future__ import annotations

import datetime as _dt
import os
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from energyscope import _deadline
from energyscope._version import __version__
from energyscope.analysis import Analysis
from energyscope.errors import BadArgumentError
from energyscope.interpret import stage as interpret_stage
from energyscope.interpret.records import basin_records, gallery, label_summary, landscape_views, mass_counts
from energyscope.interpret.stage import Interpretation
from energyscope.kinetics import api as kinetics_stage
from energyscope.kinetics.rates import KineticsError
from energyscope.kinetics.simulate import chain_transitions
from energyscope.landscape import Landscape, as_landscape
from energyscope.sampling import sampler_settings
from energyscope.search import minima as minima_stage
from energyscope.search import network as network_stage
from energyscope.search.minima import Minima
from energyscope.search.network import TransitionNetwork
from energyscope.settings import AnalysisSettings
from energyscope.tree import graph as tree_stage

# The stages are called through their modules (minima_stage.find_minima, ...), so that a test or a notebook that
# replaces a stage function in its module replaces it here too.

def analyze(
    land: Any,
    seed: int = 0,
    n_restarts: int | None = None,
    bounds: tuple | None = None,
    *,
    progress: bool = True,
    settings: AnalysisSettings | None = None,
    minima_kwargs: Mapping[str, Any] | None = None,
    connect_kwargs: Mapping[str, Any] | None = None,
    tree_kwargs: Mapping[str, Any] | None = None,
    interpret_kwargs: Mapping[str, Any] | None = None,
    kinetics_kwargs: Mapping[str, Any] | None = None,
    masses: bool = True,
    n_paths: int = 6,
    n_frames: int = 9,
    grid_size: int = 160,
    time_limit: float | None = None,
    **unknown: Any,
) -> Analysis:
    """Run the whole pipeline on ``land`` and return an :class:`~energyscope.analysis.Analysis`.

    Stages: ``minima`` (:func:`~energyscope.search.minima.find_minima`), ``network``
    (:func:`~energyscope.search.network.connect`), ``tree`` (:func:`~energyscope.tree.graph.disconnectivity`) and
    ``interpret`` (prototypes, masses per basin, label agreement, path gallery, the d = 2 contour grid) and
    ``kinetics`` (:func:`~energyscope.kinetics.api.kinetics`: rates in the model's sampler steps). A stage that
    raises is recorded in ``diagnostics["stage_errors"]``; later stages that do not depend on it still run.

    Parameters:
        land: a :class:`~energyscope.landscape.Landscape` (or an energy module/callable; see
            :func:`~energyscope.landscape.as_landscape`).
        seed: seed for every stochastic step (same seed, same result).
        n_restarts: multi-start restarts for the minima search (default: the minima stage's default).
        bounds: optional (lo, hi) box for start points, scalars or (d,) arrays.
        progress: show one progress bar per stage; False for scripts.
        settings: every setting at once, as an :class:`~energyscope.settings.AnalysisSettings`; then no other
            setting may be given.
        minima_kwargs, connect_kwargs, tree_kwargs, interpret_kwargs, kinetics_kwargs: settings of each stage as dicts
            (the fields of :class:`~energyscope.settings.MinimaSettings`, ``ConnectSettings``, ``TreeSettings``,
            for ``interpret_kwargs`` ``InterpretSettings`` and ``MassSettings``, and ``KineticsSettings``: e.g.
            ``{"temperature": 0.5}``).
        masses: estimate prior / sampler / data mass per basin (the slowest part of interpretation).
        n_paths: how many minimum-energy paths the gallery shows (the lowest transition states of the merge tree).
        n_frames: frames per decoded filmstrip.
        grid_size: points per axis of the energy grid drawn for d = 2.
        time_limit: seconds for each stage after the minima search. Once spent, the iterative loops running in the
            stage (bands, saddle refinement, descents, MALA chains) stop where they are, the network stage starts no
            new batch and the interpretation no new part; unfinished work counts as unresolved, and what was cut is
            recorded in ``diagnostics`` (and speaks against completeness). None: no limit.

    A misspelt keyword, an unknown key in a stage's settings or a value of the wrong type or range raises one
    :class:`~energyscope.errors.BadArgumentError` naming it and what it accepts, before anything runs.
    """
    pipeline = dict(seed=seed, n_restarts=n_restarts, bounds=bounds, masses=masses, n_paths=n_paths,
                    n_frames=n_frames, grid_size=grid_size, time_limit=time_limit)
    stage_dicts = dict(minima_kwargs=minima_kwargs, connect_kwargs=connect_kwargs, tree_kwargs=tree_kwargs,
                       interpret_kwargs=interpret_kwargs, kinetics_kwargs=kinetics_kwargs)
    if settings is None:
        settings = AnalysisSettings.from_arguments(**stage_dicts, **pipeline, **unknown)
    else:
        if not isinstance(settings, AnalysisSettings):
            raise BadArgumentError(f"settings must be an AnalysisSettings, got {type(settings).__name__}")
        default = AnalysisSettings()
        also = [k for k in unknown] + [k for k, v in stage_dicts.items() if v is not None] + [
            k for k, v in pipeline.items() if not _same(v, getattr(default, k))]
        if also:
            raise BadArgumentError(f"analyze: pass either settings= or the separate settings, not both ({also[0]!r} "
                                   "was given too; dataclasses.replace(settings, ...) changes a copy)")
    return run(as_landscape(land), settings, progress=progress)


def _same(a: Any, b: Any) -> bool:
    """Whether a keyword still has its default (bounds may be arrays)."""
    if a is None or b is None:
        return a is b
    try:
        return bool(np.all(np.asarray(a, dtype=object) == np.asarray(b, dtype=object)))
    except (TypeError, ValueError):
        return False


def run(land: Landscape, settings: AnalysisSettings, progress: bool = True) -> Analysis:
    """The pipeline on a Landscape with checked settings (what :func:`analyze` calls)."""
    s = settings
    result = Analysis(landscape=land)
    result.model = _describe(land)
    result.settings = {"energyscope_version": __version__, **s.to_dict()}
    diag = result.diagnostics
    diag.update({"stage_errors": {}, "warnings": [], "failed_connections": [], "nan_counts": {}})
    t_start = time.perf_counter()

    # 1. minima ----------------------------------------------------------------------------------------------------
    with _Stage("minima", result):
        restarts = {} if s.n_restarts is None else {"n_restarts": s.n_restarts}
        result.minima = minima_stage.find_minima(land, **restarts, seed=s.seed, bounds=s.bounds, progress=progress,
                                                 **s.minima.as_kwargs())
        _record_minima_stats(result)

    # 2. network ---------------------------------------------------------------------------------------------------
    if result.minima is not None and len(result.minima) == 0:
        diag["stage_errors"].setdefault("network", "skipped: the minima search found no minimum")
    elif result.minima is not None:
        with _Stage("network", result):
            with _deadline.time_limit(s.time_limit) as budget:
                result.network = network_stage.connect(land, result.minima, seed=s.seed, time_limit=s.time_limit,
                                                       progress=progress, **s.connect.as_kwargs())
            if budget.hit:
                result.network.info.setdefault("stopped", f"time limit of {float(s.time_limit):g} s reached; bands "
                                                          "and descents running then were stopped unfinished")
            if result.network.info.get("stopped"):
                diag["warnings"].append(f"network: {result.network.info['stopped']}")
            check = result.network.info.get("tree_check") or {}
            if check.get("n_flagged_left"):
                diag["warnings"].append(
                    f"network: the merge tree may join some basins too high: {check['n_flagged_left']} straight "
                    f"segments between neighbouring minima lie below the barrier the network gives them, and the "
                    f"tree check's tries on them are used up")
            result.minima = result.network.minima
            _record_network_stats(result)
    else:
        diag["stage_errors"].setdefault("network", "skipped: no minima")

    # 3. tree ------------------------------------------------------------------------------------------------------
    if result.network is not None:
        with _Stage("tree", result):
            result.tree = tree_stage.disconnectivity(result.network, **s.tree.as_kwargs())
    else:
        diag["stage_errors"].setdefault("tree", "skipped: no transition network")

    # 4. interpretation ----------------------------------------------------------------------------------------------
    with _Stage("interpret", result):
        mass = s.mass
        if s.masses and result.minima is not None and result.minima.stats.get("n_runaway") and mass.which is None:
            # exp(-U) cannot be normalised when U falls without bound: there is no prior mass to measure (it used to
            # take many minutes and report 0 % everywhere); the data mass is still defined
            import dataclasses
            mass = dataclasses.replace(mass, which=("data",))
            result.settings["mass"] = mass.to_dict()  # the settings record what was used
            diag["warnings"].append("interpret: prior and sampler masses skipped: U appears unbounded below, so "
                                    "exp(-U) has no normalisable mass (add the base prior)")
        with _deadline.time_limit(s.time_limit) as budget:
            _interpret_stage(result, land, s, mass.as_kwargs(), progress=progress)
        if budget.hit:
            diag["warnings"].append(f"interpret: the time limit of {float(s.time_limit):g} s stopped descents "
                                    "part-way; their samples count as not settled")

    # 5. kinetics ----------------------------------------------------------------------------------------------------
    if result.network is not None:
        with _Stage("kinetics", result):
            _kinetics_stage(result, land, s)
    else:
        diag["stage_errors"].setdefault("kinetics", "skipped: no transition network")

    result.timings["total"] = round(time.perf_counter() - t_start, 3)
    result.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    return result


#: chains of the model's own sampler started at each minimum for the one-chain check (up to CHECK_MINIMA minima)
CHECK_CHAINS = 256
CHECK_MINIMA = 24


def _kinetics_stage(result: Analysis, land: Landscape, s: AnalysisSettings) -> None:
    """Rates on the network in the sampler's own steps: the sampler the mass stage used (the checkpoint's settings,
    overridden by ``mass.sampler``), said to be the default where neither stated it. With ``masses`` on, the
    sampler itself is also run for one chain from each of the lowest minima (the check that needs no
    approximation; on kinks the only kinetics there is)."""
    cfg, defaulted = sampler_settings(land, s.mass.sampler)
    if s.masses and cfg["steps"] > 0 and cfg["noise"] and result.minima is not None and len(result.minima) > 1:
        starts = np.argsort(result.minima.energy)[:CHECK_MINIMA]
        result.sampler_transitions = _substep(result, "sampler check", lambda: chain_transitions(
            land, result.minima, cfg, starts=starts, n_chains=CHECK_CHAINS, seed=s.seed), stage="kinetics")
    try:
        kin = kinetics_stage.kinetics(result.network, landscape=land, step_size=cfg["step_size"],
                                      chain_length=cfg["steps"], noise=float(cfg["noise"]), **s.kinetics.as_kwargs())
    except KineticsError as exc:  # rates that do not exist here (kinks): said, not guessed; not a failure
        result.diagnostics.setdefault("not_available", {})["kinetics"] = str(exc)
        return
    _compare_weights(kin, result)
    if defaulted:
        kin.notes.append(f"the sampler settings {', '.join(defaulted)} are energyscope's defaults (the checkpoint does "
                         f"not state them): steps = {cfg['steps']}, step size = {cfg['step_size']:g}")
    result.kinetics = kin


def _compare_weights(kin: Any, result: Analysis) -> None:
    """Say where the kinetics' harmonic basin weights disagree with the equilibrium masses the interpretation measured
    (beyond 4 standard errors and 5 points): there the basins are not harmonic at this temperature."""
    if kin.temperature != 1.0 or len(result.basins) != kin.n_minima:
        return
    mass = np.array([np.nan if b.prior_mass is None else float(b.prior_mass) for b in result.basins])
    se = np.array([0.0 if b.prior_mass_se is None else float(b.prior_mass_se) for b in result.basins])
    if not np.isfinite(mass).all():
        return
    gap = np.abs(kin.stationary - mass)
    off = np.nonzero((gap > 0.05) & (gap > 4 * se))[0]
    if len(off):
        k = int(off[np.argmax(gap[off])])
        kin.notes.append(f"the harmonic basin weights differ from the measured equilibrium masses in {len(off)} of "
                         f"{kin.n_minima} basins (most in basin {k}: {100 * kin.stationary[k]:.1f}% against "
                         f"{100 * mass[k]:.1f}%): those basins are not harmonic at T = 1, and the times carry that "
                         "uncertainty")


# ---------------------------------------------------------------------------------------------------------------------
# Running a stage: timed, warnings recorded, a failure recorded instead of raised
# ---------------------------------------------------------------------------------------------------------------------
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


def _substep(result: Analysis, name: str, fn: Callable[[], Any], stage: str = "interpret") -> Any:
    """Run one part of a stage; a failure is recorded (``stage: name``) and the rest goes on."""
    try:
        return fn()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        result.diagnostics.setdefault("stage_errors", {})[f"{stage}: {name}"] = _error_text(exc)
        return None


# ---------------------------------------------------------------------------------------------------------------------
# What the pipeline records about each stage
# ---------------------------------------------------------------------------------------------------------------------
def _describe(land: Landscape) -> dict:
    from energyscope.io.checkpoint import convention_caution
    d = dict(land.describe())
    caution = convention_caution(land)
    if caution:
        d["convention_caution"] = caution
    d["has_decoder"] = bool(land.has_decoder)
    d["has_encoder"] = bool(land.has_encoder)
    return d


def _scalars(stats: Mapping[str, Any]) -> dict:
    """The scalar entries of a stats dict, as plain Python values."""
    out: dict[str, Any] = {}
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


def _record_minima_stats(result: Analysis) -> None:
    minima: Minima = result.minima
    stats = dict(minima.stats or {})
    diag = result.diagnostics
    diag["unconverged_restarts"] = int(stats.get("n_unconverged", 0) or 0)
    diag["dropped_nonfinite"] = int(stats.get("n_dropped_nonfinite", 0) or 0)
    diag["minima_stats"] = _scalars(stats)
    if diag["dropped_nonfinite"]:
        diag["nan_counts"]["minima search (restarts dropped)"] = diag["dropped_nonfinite"]


def _record_network_stats(result: Analysis) -> None:
    net: TransitionNetwork = result.network
    diag = result.diagnostics
    failed = []
    outcomes: dict[str, int] = {}
    for a in net.attempts:
        outcomes[a.outcome] = outcomes.get(a.outcome, 0) + 1
        if a.outcome == "failed":
            failed.append({"i": int(a.i), "j": int(a.j), "reason": str(a.reason)})
    diag["failed_connections"] = failed
    diag["attempt_outcomes"] = outcomes
    comps = net.components()
    diag["components"] = len(comps)
    if len(comps) > 1:
        diag["warnings"].append(
            f"the transition network has {len(comps)} disconnected components; the tree puts them under a "
            "'not connected' root")


# ---------------------------------------------------------------------------------------------------------------------
# The interpretation stage: prototypes, masses and labels, then the gallery and the landscape views
# ---------------------------------------------------------------------------------------------------------------------
def _interpret_stage(result: Analysis, land: Landscape, s: AnalysisSettings, mass_kwargs: dict,
                     progress: bool) -> None:
    from tqdm.auto import tqdm
    minima = result.minima
    steps = ["prototypes, masses, labels", "path gallery", "landscape views"]
    bar = tqdm(total=len(steps), desc="interpret", disable=not progress, leave=True)
    errors = result.diagnostics.setdefault("stage_errors", {})

    def out_of_time(step: str) -> bool:  # run() holds this stage under its time limit (energyscope._deadline)
        if not _deadline.expired():
            return False
        errors[f"interpret: {step}"] = f"skipped: the interpretation reached its time limit of " \
                                       f"{float(s.time_limit):g} s"
        return True
    try:
        interp: Interpretation | None = None
        if minima is not None and len(minima):
            bar.set_postfix_str(steps[0])
            interp = _substep(result, "masses and labels", lambda: interpret_stage.interpret(
                land, minima, seed=s.seed, masses=s.masses, progress=progress, **s.interpret.as_kwargs(),
                **mass_kwargs))
            if interp is None and land.has_decoder:  # keep the prototypes at least
                protos = _substep(result, "prototypes", lambda: interpret_stage.prototypes(land, minima))
                result.prototypes = None if protos is None else np.asarray(protos)
            if interp is not None:
                result.prototypes = None if interp.prototypes is None else np.asarray(interp.prototypes)
                if (interp.info or {}).get("decoder_error"):
                    errors["interpret: prototypes"] = "LandscapeError: " + str(interp.info["decoder_error"])
                result.interpretation = {"masses": interp.masses, "labels": interp.labels,
                                         "minima_off_data": interp.minima_off_data, "info": dict(interp.info)}
                result.label_agreement = label_summary(interp.labels)
                result.diagnostics.setdefault("nan_counts", {}).update(mass_counts(interp.masses))
            result.basins = basin_records(minima, result.network, None if interp is None else interp.masses,
                                          None if interp is None else interp.minima_off_data, land.labels)
        bar.update(1)
        bar.set_postfix_str(steps[1])
        if result.network is not None and minima is not None and not out_of_time("path gallery"):
            def filmstrips_failed(exc: Exception) -> None:
                errors["interpret: path filmstrips"] = _error_text(exc)
            result.paths = _substep(result, "path gallery", lambda: gallery(
                land, minima, result.network, s.n_paths, s.n_frames, on_decoder_error=filmstrips_failed)) or []
        bar.update(1)
        bar.set_postfix_str(steps[2])
        views = None if out_of_time("landscape views") else _substep(
            result, "landscape views", lambda: landscape_views(
                land, minima, result.network, (result.interpretation or {}).get("masses"), s.grid_size))
        if views is not None:
            result.views, n_bad = views
            if n_bad:
                result.diagnostics.setdefault("nan_counts", {})["contour grid points"] = n_bad
        bar.update(1)
    finally:
        bar.close()


__all__ = ["analyze", "run"]
