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


def _fmt_time(t: float, unit: str, connected: bool = False) -> str:
    if not np.isfinite(t):
        return f"> 10^308 {unit} (beyond the float range)" if connected else "∞ (not connected)"
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


def sampler_check(result: "Analysis", draw: Callable[[str, Callable[[], Any]], Any]) -> dict | None:
    """The model's own sampler, one chain from each of the lowest minima, beside the network's prediction for the
    same chain (where there is a network kinetics in sampler steps)."""
    st, kin = result.sampler_transitions, result.kinetics
    if st is None:
        return None
    names = [str(int(k)) for k in range(st.matrix.shape[1])]
    rows = [str(int(k)) for k in st.starts]
    panels = [(f"the sampler ({st.n_chains} chains per start)", st.matrix)]
    out: dict = {"n_chains": st.n_chains, "steps": st.steps, "sentence": "", "class": "ok"}
    if kin is not None and kin.time_unit == "sampler steps" and kin.chain_length == st.steps:
        net = np.array([kin.occupation([int(a)], float(st.steps)) for a in st.starts])
        panels.append((f"the network ({kin.approximation})", net))
        gap = np.abs(net - st.matrix) - 3 * st.stderr
        i, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
        worst = float(abs(net[i, j] - st.matrix[i, j]))
        where = f"start {int(st.starts[i])} → basin {j}: network {100 * net[i, j]:.0f}%, sampler " \
            f"{100 * st.matrix[i, j]:.0f}% ± {100 * st.stderr[i, j]:.0f}"
        if worst <= 0.1 or gap[i, j] <= 0:
            out["sentence"] = (f"The network's one-chain probabilities agree with the sampler's within "
                               f"{100 * worst:.0f} points (largest: {where}).")
        else:
            shallow = [b.index for b in result.basins if b.barrier is not None and b.barrier < kin.temperature]
            out["sentence"] = (f"The network's one-chain probabilities differ from the sampler's by up to "
                               f"{100 * worst:.0f} points ({where})"
                               + (f"; basins {', '.join(map(str, shallow))} have barriers below kT, where a jump "
                                  "between minima stands in for diffusion and the network's times are rough"
                                  if shallow else "") + ". Trust the sampler's numbers where they differ.")
            out["class"] = "warn"
    out["img"] = draw("sampler check", lambda: figures.transitions_uri(panels, rows, names))
    return out


def kinetics_context(result: "Analysis", draw: Callable[[str, Callable[[], Any]], Any]) -> dict | None:
    """Everything the kinetics section shows, or None when there is no kinetics (the reason is then in ``why``)."""
    kin = result.kinetics
    why = (result.diagnostics or {}).get("not_available", {}).get("kinetics") \
        or (result.diagnostics or {}).get("stage_errors", {}).get("kinetics")
    check = sampler_check(result, draw)
    if kin is None:
        return {"available": False, "why": why or "the kinetics stage did not run", "check": check}
    harmonic = kin.harmonic()
    K = kin.n_minima
    shown = list(np.argsort(kin.energy)[:MAX_MATRIX]) if len(kin.energy) == K else list(range(min(K, MAX_MATRIX)))
    M = kin.mfpt_matrix([[int(k)] for k in shown])
    names = [str(int(k)) for k in shown]
    known = kin.time_unit == "sampler steps" and bool(kin.chain_length)
    P = kin.passage_matrix(shown, shown, float(kin.chain_length)) if known else None
    matrix_img = draw("mean first-passage times", lambda: figures.mfpt_uri(
        M, names, kin.time_unit, None if P is None else P >= 0.5))
    # drawn unregrouped (every minimum its own leaf, at its free energy), with the regrouping at kT stated
    fe, fe_img = draw("free-energy graph", lambda: kin.free_energy_graph(regroup=0.0)), None
    lumped = draw("free-energy regrouping", kin.free_energy_graph)
    fe_shown, fe_note = figures.prune_for_display(fe.tree if fe is not None else None)
    if fe is not None:
        fe_img = draw("free-energy graph", lambda: figures.disconnectivity_uri(
            fe_shown, result.prototypes, ylabel=f"F − F(lowest) at T = {kin.temperature:g} [nats]",
            leaf_labels=figures.leaf_counts(fe_shown)))
    t, th = kin.relaxation_times, harmonic.relaxation_times
    resolved = kin.relaxation_resolved
    h_resolved = harmonic.relaxation_resolved
    relax_rows = [{"k": k + 1, "time": _fmt_time(float(t[k]), kin.time_unit) + ("" if resolved[k] else " (lower bound)"),
                   "harmonic": _fmt_time(float(th[k]), kin.time_unit) + ("" if h_resolved[k] else " (lower bound)"),
                   "ratio": "—" if not kin.chain_length or kin.time_unit != "sampler steps"
                   else f"{t[k] / kin.chain_length:.3g}"} for k in range(min(5, len(t)))]
    crossable, n_rare = [], 0
    if P is not None:
        order = sorted(((P[i, j], i, j) for i in range(len(shown)) for j in range(len(shown)) if i != j),
                       reverse=True)
        for p, i, j in order:
            if p >= 0.05:
                crossable.append(f"{int(shown[i])} → {int(shown[j])}: {100 * p:.0f}% of {kin.chain_length}-step chains "
                                 f"(mean first passage {_fmt_time(float(M[i, j]), kin.time_unit, True)})")
            else:
                n_rare += 1
    sentence, css = mixing_sentence(kin)
    from energyscope.kinetics.model import APPROXIMATIONS
    return {
        "available": True, "sentence": sentence, "class": css, "check": check,
        "dynamics": kin.dynamics, "temperature": f"{kin.temperature:g}", "unit": kin.time_unit,
        "approximation": kin.approximation, "approximation_text": APPROXIMATIONS.get(kin.approximation, ""),
        "step": None if kin.step_time is None else f"{kin.step_time:.3g}",
        "chain_length": kin.chain_length,
        "matrix_img": matrix_img, "n_shown": len(shown), "n_minima": K,
        "relax_rows": relax_rows, "crossable": crossable, "n_rare": n_rare,
        "fe_img": fe_img, "fe_notes": ([] if fe is None else list(fe.notes)) + ([fe_note.rstrip(".")] if fe_note else []),
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
