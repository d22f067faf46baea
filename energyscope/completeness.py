"""Is the set of minima complete? One verdict from every signal the pipeline produced.

The restart statistics alone (Chao1 on hit counts) cannot say a search is complete when other evidence says it is
not. :func:`assess` reads an :class:`~energyscope.analysis.Analysis` (live or loaded from disk) and collects each
signal that speaks against completeness:

- descents that did not end at a validated minimum (unconverged, uncertified, non-finite);
- descents that ran away (‖z‖ grew and U fell without bound);
- the start box: U does not rise towards its faces (minima may lie beyond it);
- minima seen by one restart only (Chao1 estimates unseen ones);
- a network stage stopped by its time limit (pairs left untried);
- checks that never ran (no network stage, no mass estimates): then the verdict is at most "warn";
- minima found after the restarts: by the network stage (bands that dip into an unknown basin, push-offs from
  saddles) or by the mass estimates (prior samples, sampler chains or data latents that quench to minima not in the
  set, or that do not settle).

The verdict is ``complete`` only when none of them speaks; otherwise it names each one, strongest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from energyscope.interpret.masses import BasinMasses
from energyscope.search.minima import Coverage

if TYPE_CHECKING:  # completeness reads an Analysis, which does not need this module
    from energyscope.analysis import Analysis

__all__ = ["Completeness", "assess", "MASS_TOLERANCE"]

#: mass (fraction) that may quench to unknown minima, or not settle, before it speaks against completeness
MASS_TOLERANCE = 0.002


@dataclass
class Completeness:
    """The completeness verdict of one analysis.

    Attributes:
        complete: True when no signal speaks against completeness.
        level: ``"ok"`` (complete), ``"warn"`` (only Chao1 estimates a few unseen minima) or ``"bad"``.
        verdict: one line for people, e.g. ``"not known to be complete: 17.5% of the prior mass quenched to minima
            not in the set"``.
        against: one sentence per signal that speaks against completeness, strongest first.
        signals: the numbers behind them (counts and fractions), by name.
    """

    complete: bool
    level: str
    verdict: str
    against: list[str] = field(default_factory=list)
    signals: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"complete": self.complete, "level": self.level, "verdict": self.verdict,
                "against": list(self.against), "signals": dict(self.signals)}


def _num(x: Any, default: float = 0.0) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return default
    return v if v == v else default


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if x >= 0.001 else f"{100 * x:.2g}%"


def _coverage_dict(result: Analysis) -> dict | None:
    cov = result.minima.coverage if result.minima is not None else None
    if cov is None:
        return None
    return cov.to_dict() if isinstance(cov, Coverage) else dict(cov)  # a newer layout may load as a plain dict


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """An attribute, or a key of a mapping (results reloaded without their classes are plain dicts)."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _minima_stats(result: Analysis) -> dict:
    """The minima search's counters: the larger value of each, from the live stats and the saved diagnostics."""
    live = dict(_get(result.minima, "stats", None) or {})
    saved = dict((_get(result, "diagnostics", None) or {}).get("minima_stats") or {})
    out = dict(saved)
    for k, v in live.items():
        if isinstance(v, (int, float)) and isinstance(out.get(k), (int, float)):
            out[k] = max(v, out[k])
        else:
            out.setdefault(k, v)
    return out


def _restart_signals(result: Analysis, cov: dict, against: list, signals: dict) -> None:
    """Descents that did not arrive, ran away, or started in a box whose faces are not uphill."""
    stats = _minima_stats(result)
    n_restarts = int(_num(cov.get("n_restarts")))
    runaway = int(_num(stats.get("n_runaway")))
    unresolved = int(_num(cov.get("n_unresolved")))
    if runaway:
        signals["runaway_descents"] = runaway
        against.append(f"{runaway} of {n_restarts} descents ran away (|z| and -U growing without bound): U may be "
                       "unbounded below — set the base prior, or bound the search")
    if unresolved:
        signals["unresolved_descents"] = unresolved
        against.append(f"{unresolved} of {n_restarts} descents did not end at a validated minimum, so where they "
                       "were headed is unknown")
    open_faces = int(_num(stats.get("box_open_faces")))
    if open_faces:
        signals["box_open_faces"] = open_faces
        n_faces = 2 * int(_num(stats.get("box_dims"), 0)) or "?"
        how = ("the bounds given" if stats.get("box_source") == "bounds" else "the start box, even after growing it")
        against.append(f"U does not rise towards {open_faces} of the {n_faces} faces of {how}: minima may lie "
                       "outside it (pass wider bounds)")


def _mass_signals(bm: BasinMasses | None, against: list, signals: dict, unchecked: list) -> None:
    """Samples that quenched to minima not in the set, or did not settle; masses present but unreadable."""
    read = 0
    for name, what in (("equilibrium", "of the prior mass"), ("sampler", "of the sampler's chains"),
                       ("data", "of the data latents")):
        est = _get(bm, name)
        if est is None:
            continue
        other, unresolved = _get(est, "other"), _get(est, "unresolved")
        if other is None or unresolved is None:
            continue
        read += 1
        other, unresolved = _num(other, 1.0), _num(unresolved, 1.0)
        n_found = len((_get(est, "info") or {}).get("new_minima") or [])
        if (_get(est, "info") or {}).get("time_limited"):
            signals[f"{name}_time_limited"] = True
            against.append(f"the estimate {what} was cut short by the time limit (its chains did not finish)")
        if other > MASS_TOLERANCE or n_found:
            signals[f"{name}_other"] = other
            against.append(f"{_pct(other)} {what} quenched to minima not in the set"
                           + (f" ({n_found} distinct)" if n_found else ""))
        if unresolved > MASS_TOLERANCE:
            signals[f"{name}_unresolved"] = unresolved
            against.append(f"{_pct(unresolved)} {what} did not settle at any minimum")
    if not read:
        unchecked.append("the mass estimates (present, but none could be read)")


def _later_minima_signals(result: Analysis, against: list, signals: dict, unchecked: list) -> None:
    """Minima that the restarts missed and later stages found, mass that never settled, and checks never run."""
    net = _get(result, "network")
    if net is None:
        unchecked.append("the network stage")
    info = (_get(net, "info") or {}) if net is not None else {}
    stopped = info.get("stopped")
    if stopped:
        signals["network_stopped"] = True
        against.append(f"the network stage stopped early ({stopped}): minima on untried paths are unknown")
    n_new = int(_num(info.get("n_new_minima")))
    if n_new:
        signals["network_new_minima"] = n_new
        against.append(f"the network stage found {n_new} minim{'um' if n_new == 1 else 'a'} the restarts missed "
                       "(bands that dipped into unknown basins, push-offs from saddles)")
    bm = (_get(result, "interpretation") or {}).get("masses")
    if bm is None:
        unchecked.append("the mass estimates")
    else:
        _mass_signals(bm, against, signals, unchecked)


def assess(result: Analysis) -> Completeness | None:
    """The completeness verdict of an analysis (live or loaded), or None when there was no minima search.

    Every signal listed in the module docstring is read; the verdict is ``complete`` only when none speaks against.
    When only Chao1 speaks (singletons among the restarts), the level is ``"warn"`` if the estimate of unseen minima
    is at most 20 % of those found, else ``"bad"``.
    """
    if result.minima is None:
        return None
    cov = _coverage_dict(result)
    if cov is None or cov.get("found") is None:
        return None
    found = int(_num(cov.get("found")))
    est = _num(cov.get("estimated_total"), float(found))
    against: list[str] = []
    signals: dict = {}
    if found == 0:
        return Completeness(False, "bad", "no minimum was found", ["the minima search found no minimum"],
                            {"found": 0})
    unchecked: list[str] = []
    _restart_signals(result, cov, against, signals)
    _later_minima_signals(result, against, signals, unchecked)
    if unchecked:
        signals["unchecked"] = list(unchecked)
    singletons = int(_num(cov.get("singletons")))
    chao = None
    if singletons:
        signals["singletons"] = singletons
        signals["chao1_missing"] = max(0.0, est - found)
        chao = (f"{singletons} of {found} minima were reached by one restart only; Chao1 estimates about "
                f"{max(0.0, est - found):.2g} more unseen")
    if not against and chao is None and unchecked:
        why = " and ".join(unchecked)
        return Completeness(False, "warn", f"the restarts look complete (every minimum reached at least twice), but "
                                           f"{why} did not run to check it", [f"{why} did not run"], signals)
    if not against and chao is None:
        return Completeness(True, "ok", "the search looks complete: every minimum was reached by at least two "
                                        "restarts and no later stage found another", [], signals)
    if not against:
        level = "warn" if est <= 1.2 * found else "bad"
        word = "nearly complete" if level == "warn" else "incomplete"
        return Completeness(False, level, f"the search looks {word}: {chao}; run more restarts", [chao], signals)
    if chao is not None:
        against.append(chao)
    verdict = "not known to be complete: " + against[0] + (f" (and {len(against) - 1} more reason"
                                                            f"{'s' if len(against) > 2 else ''}, below)"
                                                            if len(against) > 1 else "")
    return Completeness(False, "bad", verdict, against, signals)
