"""The report's prose about how the masses were measured, written from the saved mass estimates."""
from __future__ import annotations

from energyscope.interpret.masses import BasinMasses

_METHOD_NAMES = {"importance": "self-normalised importance sampling from the base N(0, I)",
                 "mala": "Metropolis-adjusted Langevin chains"}


def mass_notes(bm: BasinMasses) -> list[str]:
    """One sentence per mass (equilibrium, sampler, data) saying how it was estimated and what was lost, then the
    flags' thresholds."""
    notes = []
    eq = bm.equilibrium
    if eq is not None:
        notes.append(f"Equilibrium prior mass: {_METHOD_NAMES.get(eq.method, eq.method)}, {eq.n_samples:,} samples, "
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
    return notes
