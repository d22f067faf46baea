"""Every setting of :func:`energyscope.analyze`, typed and checked once, where it enters.

:class:`AnalysisSettings` holds the pipeline's own settings and one settings object per stage:

============================  ==========================================  =========================================
settings                      goes to                                     ``analyze`` keyword (a dict) it replaces
============================  ==========================================  =========================================
:class:`MinimaSettings`       :func:`~energyscope.search.minima.find_minima`   ``minima_kwargs``
:class:`ConnectSettings`      :func:`~energyscope.search.network.connect`      ``connect_kwargs``
:class:`TreeSettings`         :func:`~energyscope.tree.graph.disconnectivity`  ``tree_kwargs`` (the tree has none)
:class:`InterpretSettings`    :func:`~energyscope.interpret.stage.interpret`   ``interpret_kwargs`` (with the next)
:class:`MassSettings`         :func:`~energyscope.interpret.masses.basin_masses` ``interpret_kwargs``
============================  ==========================================  =========================================

Each field is the keyword of the same name of the function it goes to, with the same default (a test keeps them
equal), and a constraint in the style of scikit-learn's parameter constraints. A wrong value raises
:class:`~energyscope.errors.BadArgumentError` naming the setting and what it accepts; an unknown key (in
:meth:`from_dict`, or in the stage dicts ``analyze`` still takes) names the closest accepted one and the list. The
dataclasses are frozen: ``dataclasses.replace(s, seed=1)`` makes a changed copy, which is checked again.
:meth:`AnalysisSettings.to_dict` is what ``analysis.json`` stores; :meth:`AnalysisSettings.from_dict` reads it back.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

from energyscope.errors import BadArgumentError, UnknownSettingError

S = TypeVar("S", bound="_Settings")
F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------------------------------------------------------------
# Constraints: each says whether a value is acceptable and how to describe what is
# ---------------------------------------------------------------------------------------------------------------------
class Constraint:
    """What one setting accepts: ``ok(value)`` and a description for the error message."""

    description = "a value"

    def ok(self, value: Any) -> bool:  # pragma: no cover - every constraint overrides it
        raise NotImplementedError

    def __or__(self, other: "Constraint | None") -> "Constraint":
        return _Either(self, _NONE if other is None else other)

    def described(self, description: str) -> "Constraint":
        """The same constraint, described in other words (for a setting whose message users know)."""
        import copy
        new = copy.copy(self)
        new.description = description
        return new


class _Either(Constraint):
    def __init__(self, *options: Constraint):
        self.options = options
        self.description = " or ".join(o.description for o in options)

    def ok(self, value: Any) -> bool:
        return any(o.ok(value) for o in self.options)


class _IsNone(Constraint):
    description = "None (the default)"

    def ok(self, value: Any) -> bool:
        return value is None


_NONE = _IsNone()


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x: Any) -> bool:
    return (_is_int(x) or isinstance(x, (float, np.floating))) and math.isfinite(float(x))


class Integer(Constraint):
    """An integer in ``[low, high]`` (either bound optional)."""

    def __init__(self, low: int | None = None, high: int | None = None):
        self.low, self.high = low, high
        bounds = [f">= {low}" if low is not None else "", f"<= {high}" if high is not None else ""]
        self.description = "an integer " + " and ".join(b for b in bounds if b) if any(bounds) else "an integer"

    def ok(self, value: Any) -> bool:
        return _is_int(value) and (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


class Real(Constraint):
    """A number with ``low < x`` (or ``<=`` when ``closed_low``) and ``x <= high``; finite unless ``allow_inf``
    (for settings where +inf switches something off)."""

    def __init__(self, low: float | None = None, high: float | None = None, closed_low: bool = False,
                 allow_inf: bool = False):
        self.low, self.high, self.closed_low, self.allow_inf = low, high, closed_low, allow_inf
        parts = []
        if low is not None:
            parts.append(f"{'>=' if closed_low else '>'} {low:g}")
        if high is not None:
            parts.append(f"<= {high:g}")
        kind = "a number" if allow_inf else "a finite number" if not parts else "a number"
        self.description = kind + (" " + " and ".join(parts) if parts else "") + (" (inf allowed)" if allow_inf
                                                                                   else "")

    def ok(self, value: Any) -> bool:
        if not (_is_real(value) or (self.allow_inf and isinstance(value, (int, float, np.integer, np.floating))
                                    and not isinstance(value, (bool, np.bool_)) and float(value) == math.inf)):
            return False
        x = float(value)
        if self.low is not None and not (x >= self.low if self.closed_low else x > self.low):
            return False
        return self.high is None or x <= self.high


class Boolean(Constraint):
    description = "True or False"

    def ok(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))


class Options(Constraint):
    """One of a fixed set of strings."""

    def __init__(self, *values: str):
        self.values = values
        self.description = "one of " + ", ".join(repr(v) for v in values)

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.values


class OptionList(Constraint):
    """A list or tuple of strings from a fixed set (non-empty unless ``allow_empty``; repeats allowed only with
    ``distinct=False``)."""

    def __init__(self, *values: str, allow_empty: bool = False, distinct: bool = True):
        self.values, self.allow_empty, self.distinct = values, allow_empty, distinct
        self.description = (f"a list of {'distinct ' if distinct else ''}names from "
                            + ", ".join(repr(v) for v in values))

    def ok(self, value: Any) -> bool:
        return (isinstance(value, (list, tuple)) and (self.allow_empty or len(value) > 0)
                and (not self.distinct or len(set(value)) == len(value))
                and all(isinstance(v, str) and v in self.values for v in value))


class Dictionary(Constraint):
    description = "a dict"

    def ok(self, value: Any) -> bool:
        return isinstance(value, Mapping)


class Anything(Constraint):
    """A value the stage checks itself (arrays, partitions): the settings only carry it."""

    def __init__(self, description: str):
        self.description = description

    def ok(self, value: Any) -> bool:
        return True


def setting(default: Any, check: Constraint, doc: str = "") -> Any:
    """A settings field: its default, its constraint and a line of documentation."""
    return dataclasses.field(default=default, metadata={"check": check, "doc": doc})


def _describe_value(v: Any) -> Any:
    """A setting as JSON-friendly data (arrays and callables by a short description)."""
    if v is None or isinstance(v, (str, bool)):
        return v
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if _is_int(v):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, Mapping):
        return {str(k): _describe_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float, bool, list, tuple)) for x in v):
        return [_describe_value(x) for x in v]
    shape = getattr(v, "shape", None)
    if shape is not None:
        return f"array {tuple(int(s) for s in shape)}"
    return getattr(v, "__name__", type(v).__name__)


def unknown_key_error(where: str, key: Any, accepted: Sequence[str], target: str = "") -> UnknownSettingError:
    """The one error for a setting that does not exist: names it, the closest accepted name and the list."""
    close = difflib.get_close_matches(str(key), sorted(accepted), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(sorted(accepted)) or "nothing"
    return UnknownSettingError(f"{where}: unknown setting {key!r}{' for ' + target if target else ''}{hint} "
                            f"(accepted: {listed})")


# ---------------------------------------------------------------------------------------------------------------------
# The settings classes
# ---------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Settings:
    """Checks every field against its constraint on creation; converts to and from plain dicts."""

    #: the name used in messages and in ``analysis.json``
    section: ClassVar[str] = ""
    #: the function(s) the fields go to (for messages)
    target: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check: Constraint | None = f.metadata.get("check")
            value = getattr(self, f.name)
            if check is not None and not check.ok(value):
                where = f"{self.section}.{f.name}" if self.section else f.name
                raise BadArgumentError(f"{where} must be {check.description}, got {value!r}")
            if isinstance(value, list):  # lists become tuples: the settings are immutable and hashable-ish
                object.__setattr__(self, f.name, tuple(value))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls: type[S], given: Mapping[str, Any] | None, where: str | None = None,
                  reserved: Mapping[str, str] | None = None) -> S:
        """Settings from a dict; an unknown key is one :class:`BadArgumentError` naming it (``where``: the name of
        the dict in messages; ``reserved``: keys the caller sets itself, with the reason)."""
        where = where or cls.section
        if given is None:
            given = {}
        if not isinstance(given, Mapping):
            raise BadArgumentError(f"{where} must be a dict of settings, got {type(given).__name__}")
        for key in given:
            if reserved and key in reserved:
                raise BadArgumentError(f"{where}: {key!r} {reserved[key]}")
            if key not in cls.names():
                raise unknown_key_error(where, key, cls.names(), cls.target)
        return cls(**dict(given))

    def to_dict(self) -> dict[str, Any]:
        """Every field, as JSON-friendly data (arrays and callables by a short description)."""
        return {f.name: _describe_value(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def as_kwargs(self) -> dict[str, Any]:
        """The fields as the keyword arguments of the function they go to (values as given)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def changed(self) -> dict[str, Any]:
        """The fields that differ from their defaults, JSON-friendly (what the report shows)."""
        default = type(self)().to_dict()
        return {k: v for k, v in self.to_dict().items() if v != default.get(k)}


_SOURCES = ("prior", "reference", "box", "sampler")


@dataclasses.dataclass(frozen=True)
class MinimaSettings(_Settings):
    """The minima search (:func:`~energyscope.search.minima.find_minima`; its docstring explains each)."""

    section: ClassVar[str] = "minima"
    target: ClassVar[str] = "find_minima"
    starts: Any = setting(None, Anything("(R, d) start points or None"), "start points used as given")
    sources: tuple[str, ...] = setting(_SOURCES, OptionList(*_SOURCES, distinct=False),
                                       "where restarts start")
    gtol: float | None = setting(None, Real(0.0) | None, "gradient tolerance (None: unit-free default)")
    max_iter: int = setting(5000, Integer(1), "iterations per descent")
    max_step: float | None = setting(None, Real(0.0) | None, "initial trust radius (latent units)")
    max_step_max: float | None = setting(None, Real(0.0, allow_inf=True) | None, "largest trust radius")
    method: str = setting("auto", Options("auto", "lbfgs", "fire", "nonsmooth"), "descent method")
    flat_tol: float | None = setting(None, Real(0.0, closed_low=True) | None, "Hessian eigenvalue counted as flat")
    until_complete: bool | None = setting(None, Boolean() | None, "add rounds of restarts until the coverage looks "
                                          "complete (None: unless starts are given)")
    max_rounds: int = setting(16, Integer(1), "rounds with until_complete")
    max_restarts: int | None = setting(None, Integer(1) | None,
                                       "restarts in all, with until_complete (None: 32 n_restarts)")
    max_time: float | None = setting(None, Real(0.0) | None, "seconds for new rounds, with until_complete")
    max_pushoffs: int = setting(3, Integer(0), "push-offs from a saddle found by descent")
    push_rel: float = setting(0.01, Real(0.0), "push-off distance, relative to the length scale")


@dataclasses.dataclass(frozen=True)
class ConnectSettings(_Settings):
    """The transition network (:func:`~energyscope.search.network.connect`)."""

    section: ClassVar[str] = "connect"
    target: ClassVar[str] = "connect"
    k_nearest: int = setting(4, Integer(0),
                             "nearest neighbours per minimum in the first round (0: the spanning tree alone)")
    max_attempts_per_pair: int = setting(2, Integer(1), "bands tried per pair")
    max_rounds: int = setting(10, Integer(0), "rounds of new pairs")
    k_probe: int = setting(16, Integer(0), "neighbours per minimum whose straight segments the tree check probes "
                                           "(0: no check)")
    max_check_rounds: int = setting(12, Integer(0), "rounds of the tree check")
    n_images: int | None = setting(None, Integer(3) | None, "images per band (None: from the distance)")
    images_per_length: float = setting(3.0, Real(0.0), "images per length scale")
    ftol_rel: float = setting(1e-2, Real(0.0, closed_low=True), "band force tolerance, relative")
    max_iter: int = setting(1000, Integer(1), "band iterations")
    dense: int = setting(8, Integer(1), "dense evaluations per band segment")
    split: bool = setting(True, Boolean(), "split bands at intermediate minima")
    retry_bump: float = setting(0.15, Real(0.0, closed_low=True), "sideways bulge of retried bands")
    match_tol: float | None = setting(None, Real(0.0, closed_low=True) | None,
                                  "distance under which two points are one minimum")


@dataclasses.dataclass(frozen=True)
class TreeSettings(_Settings):
    """The disconnectivity tree (:func:`~energyscope.tree.graph.disconnectivity`): exact, so it has no settings."""

    section: ClassVar[str] = "tree"
    target: ClassVar[str] = "disconnectivity"


@dataclasses.dataclass(frozen=True)
class KineticsSettings(_Settings):
    """Kinetics on the transition network (:func:`~energyscope.kinetics.api.kinetics`); the sampler's step size and
    chain length come from the landscape."""

    section: ClassVar[str] = "kinetics"
    target: ClassVar[str] = "kinetics"
    temperature: float = setting(1.0, Real(0.0), "temperature T (nats; the prior is T = 1)")
    dynamics: str = setting("langevin", Options("langevin", "harmonic"), "Langevin (Kramers–Langer) or PATHSAMPLE's "
                            "harmonic TST")
    approximation: str | None = setting(None, Options("harmonic", "path") | None,
                                        "harmonic, path (Smoluchowski along each path) or None: the best available")
    points_per_path: int = setting(400, Integer(10), "resolution of each path integral")
    max_path_work: int = setting(25000, Integer(0), "most transition states × dimensions path-corrected by "
                                                     "default")


@dataclasses.dataclass(frozen=True)
class MassSettings(_Settings):
    """Basin masses (:func:`~energyscope.interpret.masses.basin_masses`, and its descents:
    :func:`~energyscope.interpret.masses.assign_basins`)."""

    section: ClassVar[str] = "mass"
    target: ClassVar[str] = "basin_masses / assign_basins"
    method: str = setting("auto", Options("auto", "importance", "mala"), "equilibrium mass estimator")
    n_prior: int = setting(8192, Integer(1), "samples for the equilibrium mass")
    n_sampler: int = setting(4096, Integer(1), "chains for the sampler mass")
    sampler: dict | None = setting(None, Dictionary() | None, "short-run sampler (steps, step_size, noise)")
    mala: dict | None = setting(None, Dictionary() | None, "MALA chain settings")
    partition: Any = setting(None, Anything("a partition of the minima (lists of indices) or None"),
                             "masses of groups of minima instead of single minima")
    which: tuple[str, ...] | None = setting(None, OptionList("equilibrium", "sampler", "data",
                                                             allow_empty=True) | None,
                                            "which masses (None: all that apply)")
    keep_z: bool = setting(True, Boolean(), "keep the samples (for the report's sample images)")
    min_ess: float = setting(200.0, Real(0.0, closed_low=True, allow_inf=True),
                             "importance ESS below which MALA is used")
    hole_ratio: float = setting(3.0, Real(0.0, allow_inf=True), "prior-hole flag: prior mass / data mass")
    min_mass: float = setting(0.01, Real(0.0, 1.0, closed_low=True), "smallest mass a flag considers")
    min_diff: float = setting(0.02, Real(0.0, 1.0, closed_low=True), "sampler ≠ equilibrium: mass difference")
    n_se: float = setting(4.0, Real(0.0, closed_low=True, allow_inf=True),
                          "sampler ≠ equilibrium: standard errors")
    tol: float | None = setting(None, Real(0.0, closed_low=True) | None,
                                "distance at which a descent counts as at a minimum")
    batch_size: int = setting(4096, Integer(1), "descents run together")
    max_iter: int = setting(5000, Integer(1), "iterations per descent")


@dataclasses.dataclass(frozen=True)
class InterpretSettings(_Settings):
    """The interpretation stage (:func:`~energyscope.interpret.stage.interpret`) apart from the masses."""

    section: ClassVar[str] = "interpret"
    target: ClassVar[str] = "interpret"
    hdbscan: bool = setting(True, Boolean(), "also score an HDBSCAN clustering of the reference latents")
    reference: Any = setting(None, Anything("reference latents (N, d) or None"), "default: the landscape's")
    labels: Any = setting(None, Anything("labels (N,) or None"), "default: the landscape's")


@dataclasses.dataclass(frozen=True)
class AnalysisSettings(_Settings):
    """All of :func:`energyscope.analyze`'s settings: the pipeline's own, then one settings object per stage."""

    seed: int = setting(0, Integer(0, 2**63 - 1).described("an integer in [0, 2^63)"),
                        "seed for every stochastic step")
    n_restarts: int | None = setting(None, (Integer(1) | None).described(
        "a positive integer (or None for the default)"), "restarts of the minima search (None: its default)")
    bounds: Any = setting(None, Anything("a (lo, hi) box"), "box for start points (scalars or (d,) arrays)")
    masses: bool = setting(True, Boolean(), "estimate the basin masses (the slow part of the interpretation)")
    n_paths: int = setting(6, Integer(0).described("a non-negative integer"), "paths in the gallery")
    n_frames: int = setting(9, Integer(2), "frames per decoded filmstrip")
    grid_size: int = setting(160, Integer(8), "grid points per axis of the d = 2 picture")
    time_limit: float | None = setting(None, (Real(0.0) | None).described(
        "a positive number of seconds (or None)"), "seconds per stage after the minima search")
    minima: MinimaSettings = dataclasses.field(default_factory=MinimaSettings)
    connect: ConnectSettings = dataclasses.field(default_factory=ConnectSettings)
    tree: TreeSettings = dataclasses.field(default_factory=TreeSettings)
    interpret: InterpretSettings = dataclasses.field(default_factory=InterpretSettings)
    mass: MassSettings = dataclasses.field(default_factory=MassSettings)
    kinetics: KineticsSettings = dataclasses.field(default_factory=KineticsSettings)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, cls in STAGE_SETTINGS.items():
            if not isinstance(getattr(self, name), cls):
                raise BadArgumentError(f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if self.bounds is not None:
            if not isinstance(self.bounds, (list, tuple)) or len(self.bounds) != 2:
                raise BadArgumentError(f"bounds must be a (lo, hi) pair, got {self.bounds!r}")
            object.__setattr__(self, "bounds", tuple(self.bounds))

    @classmethod
    def pipeline_names(cls) -> tuple[str, ...]:
        """The pipeline's own settings (not the per-stage objects)."""
        return tuple(n for n in cls.names() if n not in STAGE_SETTINGS)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_arguments(cls, *, minima_kwargs: Mapping | None = None, connect_kwargs: Mapping | None = None,
                       tree_kwargs: Mapping | None = None, interpret_kwargs: Mapping | None = None,
                       kinetics_kwargs: Mapping | None = None, **pipeline: Any) -> "AnalysisSettings":
        """Settings from :func:`~energyscope.analyze`'s keywords, including the per-stage dicts it takes (as
        energyscope 0.1.0 did); ``interpret_kwargs`` may mix interpretation and mass settings."""
        def owned(where: str) -> dict[str, str]:
            return {k: f"is set by analyze itself (pass it to analyze, not in {where})"
                    for k in ("n_restarts", "seed", "bounds", "masses", "progress", "time_limit")}
        for key in pipeline:
            if key not in cls.pipeline_names():
                raise unknown_key_error("analyze", key, cls.pipeline_names() + (
                    "minima_kwargs", "connect_kwargs", "tree_kwargs", "interpret_kwargs", "kinetics_kwargs",
                    "settings", "progress"))
        given = {} if interpret_kwargs is None else interpret_kwargs
        if not isinstance(given, Mapping):
            raise BadArgumentError(f"interpret_kwargs must be a dict of settings, got {type(given).__name__}")
        both = InterpretSettings.names() + MassSettings.names()
        for key in given:
            if key in owned(""):
                raise BadArgumentError(f"interpret_kwargs: {key!r} {owned('interpret_kwargs')[key]}")
            if key not in both:
                raise unknown_key_error("interpret_kwargs", key, both, "interpret / basin_masses / assign_basins")
        return cls(minima=MinimaSettings.from_dict(minima_kwargs, "minima_kwargs", owned("minima_kwargs")),
                   connect=ConnectSettings.from_dict(connect_kwargs, "connect_kwargs", owned("connect_kwargs")),
                   tree=TreeSettings.from_dict(tree_kwargs, "tree_kwargs"),
                   interpret=InterpretSettings(**{k: v for k, v in given.items() if k in InterpretSettings.names()}),
                   mass=MassSettings(**{k: v for k, v in given.items() if k in MassSettings.names()}),
                   kinetics=KineticsSettings.from_dict(kinetics_kwargs, "kinetics_kwargs"),
                   **pipeline)

    @classmethod
    def from_dict(cls, given: Mapping[str, Any] | None, where: str | None = None,
                  reserved: Mapping[str, str] | None = None) -> "AnalysisSettings":
        """The inverse of :meth:`to_dict`. Keys that record the run rather than set it (:data:`RECORD_KEYS`) are
        ignored; any other unknown key is refused."""
        where = where or "settings"
        if not isinstance(given, Mapping):
            raise BadArgumentError(f"{where} must be a dict of settings, got {type(given).__name__}")
        top, stages = {}, {}
        for key, value in given.items():
            if key in RECORD_KEYS:
                continue
            if key in STAGE_SETTINGS:
                stages[key] = STAGE_SETTINGS[key].from_dict(value, f"{where}.{key}")
            elif key in cls.pipeline_names():
                top[key] = value
            else:
                raise unknown_key_error(where, key, cls.names())
        return cls(**top, **stages)

    def to_dict(self) -> dict[str, Any]:
        """What ``analysis.json`` stores: the pipeline's settings, then each stage's (every field, defaults filled
        in)."""
        out = {name: _describe_value(getattr(self, name)) for name in self.pipeline_names()}
        out["bounds"] = None if self.bounds is None else [np.asarray(b, dtype=float).tolist() for b in self.bounds]
        for name in STAGE_SETTINGS:
            out[name] = getattr(self, name).to_dict()
        return out


#: the per-stage settings objects of :class:`AnalysisSettings`, by field name
STAGE_SETTINGS: dict[str, type[_Settings]] = {"minima": MinimaSettings, "connect": ConnectSettings,
                                              "tree": TreeSettings, "interpret": InterpretSettings,
                                              "mass": MassSettings, "kinetics": KineticsSettings}
#: keys a saved settings dict may hold that record the run rather than set it
RECORD_KEYS = ("energyscope_version", "source")

# ---------------------------------------------------------------------------------------------------------------------
# The same checks on the stage functions called directly
# ---------------------------------------------------------------------------------------------------------------------
def checked_keywords(settings: type[_Settings] | None = None) -> Callable[[F], F]:
    """Decorator for a public function: a keyword it does not take is one :class:`UnknownSettingError` naming the
    closest one it does and the list (Python's own TypeError names neither); with ``settings``, every argument that
    is one of that settings class's fields is checked against the field's constraint, so ``find_minima(land,
    max_iter="10")`` fails at once with the same message as ``analyze(minima_kwargs={"max_iter": "10"})``."""
    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)
        params = sig.parameters
        accepted = tuple(n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        forwards = any(p.kind is p.VAR_KEYWORD for p in params.values())
        checks = {} if settings is None else {
            f.name: f.metadata["check"] for f in dataclasses.fields(settings) if "check" in f.metadata}
        where = fn.__name__

        @functools.wraps(fn)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if not forwards:
                for key in kwargs:
                    if key not in params:
                        raise unknown_key_error(where, key, accepted)
            if checks:
                try:
                    bound = sig.bind_partial(*args, **kwargs).arguments
                except TypeError:  # too many positional arguments: Python's own message says it
                    bound = kwargs
                for key, value in bound.items():
                    check = checks.get(key)
                    if check is not None and not check.ok(value):
                        raise BadArgumentError(f"{where}: {key} must be {check.description}, got {value!r}")
            return fn(*args, **kwargs)
        return checked  # type: ignore[return-value]
    return wrap


__all__ = ["AnalysisSettings", "MinimaSettings", "ConnectSettings", "TreeSettings", "InterpretSettings",
           "MassSettings", "KineticsSettings", "Constraint", "Integer", "Real", "Boolean", "Options", "OptionList", "Dictionary",
           "Anything", "setting", "unknown_key_error", "checked_keywords"]
