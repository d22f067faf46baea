"""The report's kinetics section: how long the model's own sampler takes to cross between basins.

Reads only the saved :class:`~energyscope.kinetics.model.Kinetics` (so a rebuilt report is the same); the figures
come from :mod:`energyscope.report.figures`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from energyscope.report import figures

if TYPE_CHECKING:  # pragma: no cover
    from energyscope.analysis import Analysis
    from energyscope.kinetics.model import Kinetics

#: the MFPT heat map shows at most this many basins (the lowest in energy)
MAX_MATRIX = 24


def _fmt_time(t: float, unit: str) -> str:
    if not np.isfinite(t):
        return "∞ (not connected)"
    return (f"{t:.3g}" if t < 1e4 else f"{t:.2e}".replace("e+0", "×10^").replace("e+", "×10^")) + f" {unit}"


def mixing_sentence(kin: "Kinetics") -> tuple[str, str]:
    """(sentence, css class): the slowest relaxation time beside the sampler's chain length."""
    t = kin.relaxation_times
    if not len(t):
        return "A single minimum: there is nothing to cross.", "ok"
    slow = _fmt_time(float(t[0]), kin.time_unit)
    if kin.mixing_ratio is None:
        return (f"Slowest relaxation mode: {slow} (the sampler's step size is not known, so times are not in "
                "sampler steps).", "warn")
    r = kin.mixing_ratio
    if r > 1:
        return (f"Slowest relaxation mode: {slow}; the sampler runs {kin.chain_length} steps (ratio {r:.3g}): its "
                "chains cannot equilibrate between the slowest-exchanging basins, so its basin masses need not match "
                "the equilibrium masses.", "warn" if r < 10 else "bad")
    return (f"Slowest relaxation mode: {slow}; the sampler runs {kin.chain_length} steps (ratio {r:.3g}): its chains "
            "are long enough to relax between basins.", "ok")


def kinetics_context(result: "Analysis", draw: Callable[[str, Callable[[], Any]], Any]) -> dict | None:
    """Everything the kinetics section shows, or None when there is no kinetics (the reason is then in ``why``)."""
    kin = result.kinetics
    why = (result.diagnostics or {}).get("not_available", {}).get("kinetics") \
        or (result.diagnostics or {}).get("stage_errors", {}).get("kinetics")
    if kin is None:
        return {"available": False, "why": why or "the kinetics stage did not run"}
    harmonic = kin.harmonic()
    K = kin.n_minima
    shown = list(np.argsort(kin.energy)[:MAX_MATRIX]) if len(kin.energy) == K else list(range(min(K, MAX_MATRIX)))
    M = kin.mfpt_matrix([[int(k)] for k in shown])
    names = [str(int(k)) for k in shown]
    matrix_img = draw("mean first-passage times", lambda: figures.mfpt_uri(M, names, kin.time_unit, kin.chain_length))
    # drawn unregrouped (every minimum its own leaf, at its free energy), with the regrouping at kT stated
    fe, fe_img = draw("free-energy graph", lambda: kin.free_energy_graph(regroup=0.0)), None
    lumped = draw("free-energy regrouping", kin.free_energy_graph)
    if fe is not None:
        fe_img = draw("free-energy graph", lambda: figures.disconnectivity_uri(
            fe.tree, result.prototypes, ylabel=f"F − F(lowest) at T = {kin.temperature:g} [nats]"))
    t, th = kin.relaxation_times, harmonic.relaxation_times
    resolved = kin.relaxation_resolved
    relax_rows = [{"k": k + 1, "time": _fmt_time(float(t[k]), kin.time_unit) + ("" if resolved[k] else " (lower bound)"),
                   "harmonic": _fmt_time(float(th[k]), kin.time_unit),
                   "ratio": "—" if not kin.chain_length or kin.time_unit != "sampler steps"
                   else f"{t[k] / kin.chain_length:.3g}"} for k in range(min(5, len(t)))]
    crossable, not_crossable = [], []
    if kin.time_unit == "sampler steps" and kin.chain_length:
        for i, a in enumerate(shown):
            for j, b in enumerate(shown):
                if i != j:
                    (crossable if M[i, j] <= kin.chain_length else not_crossable).append(
                        f"{int(a)} → {int(b)}: {_fmt_time(float(M[i, j]), kin.time_unit)}")
    sentence, css = mixing_sentence(kin)
    from energyscope.kinetics.model import APPROXIMATIONS
    return {
        "available": True, "sentence": sentence, "class": css,
        "dynamics": kin.dynamics, "temperature": f"{kin.temperature:g}", "unit": kin.time_unit,
        "approximation": kin.approximation, "approximation_text": APPROXIMATIONS.get(kin.approximation, ""),
        "step": None if kin.step_time is None else f"{kin.step_time:.3g}",
        "chain_length": kin.chain_length,
        "matrix_img": matrix_img, "n_shown": len(shown), "n_minima": K,
        "relax_rows": relax_rows, "crossable": crossable, "n_not_crossable": len(not_crossable),
        "fe_img": fe_img, "fe_notes": [] if fe is None else list(fe.notes),
        "fe_states": None if lumped is None else len(lumped.groups),
        "fe_groups": [] if lumped is None else [sorted(int(k) for k in g) for g in lumped.groups if len(g) > 1],
        "notes": list(kin.notes) + [f"transition state {e}: {r}; it keeps its harmonic flux"
                                    for e, r in enumerate(kin.path_reasons) if r],
    }


def kinetics_card(result: "Analysis") -> tuple[str, str] | None:
    """The summary card: slowest relaxation over the chain length."""
    kin = result.kinetics
    if kin is None or kin.mixing_ratio is None:
        return None
    return ("slowest mode / sampler chain", f"{kin.mixing_ratio:.3g}×")


__all__ = ["kinetics_context", "kinetics_card", "mixing_sentence"]
