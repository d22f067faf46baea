"""``es.kinetics``: the kinetics of a transition network, an :class:`~energyscope.analysis.Analysis`, or PATHSAMPLE data."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from energyscope.errors import BadArgumentError
from energyscope.io.pathsample import PathsampleData, log_vib
from energyscope.kinetics.model import APPROXIMATIONS, Kinetics
from energyscope.kinetics.paths import path_fluxes
from energyscope.kinetics.rates import KineticsError, RateNetwork, harmonic_network, langevin_network
from energyscope.landscape import Landscape
from energyscope.sampling import sampler_settings
from energyscope.search.network import TransitionNetwork
from energyscope.settings import KineticsSettings, checked_keywords

if TYPE_CHECKING:  # pragma: no cover
    from energyscope.analysis import Analysis

DYNAMICS = ("langevin", "harmonic")


@checked_keywords(KineticsSettings)
def kinetics(source: "TransitionNetwork | Analysis | PathsampleData", temperature: float = 1.0,
             dynamics: str = "langevin", approximation: str | None = None, *, landscape: Landscape | None = None,
             step_size: float | None = None, chain_length: int | None = None, noise: float | None = None,
             points_per_path: int = 400, max_path_work: int = 25000) -> Kinetics:
    """Rates between the minima of a transition network, and the first-passage quantities they give.

    Args:
        source: a :class:`~energyscope.search.network.TransitionNetwork` (from :func:`energyscope.connect`), an
            :class:`~energyscope.analysis.Analysis` (its network, landscape and sampler), or
            :class:`~energyscope.io.pathsample.PathsampleData` (``read_pathsample``: keeps its ``log_vib`` and
            point-group orders, so PATHSAMPLE networks keep their own rates).
        temperature: T, in the energy's units (nats: the prior p ∝ exp(−U) is T = 1).
        dynamics: ``"langevin"``: overdamped Langevin dz = −∇U dt + √(2T) dW on the latent U (Kramers–Langer rates
            from the Hessians at minima and saddles, parallel transition states summed); ``"harmonic"``: harmonic
            transition-state theory from log_vib and point-group orders, the PATHSAMPLE / PyGT / pele convention.
        approximation: ``"harmonic"`` (the plain Kramers–Langer / harmonic value) or ``"path"`` (Langevin only:
            the Smoluchowski flux along each transition state's steepest-descent path, :mod:`~energyscope.kinetics.paths`).
            Default: the best available, ``"path"`` when the landscape is at hand and the correction's work, the
            number of transition states × the dimension, is at most ``max_path_work`` (it costs one descent with
            Hessians per transition state: about 0.02 s at d = 32 and 0.25 s at d = 128 on one core, so the default
            25000 is at most about a minute), else ``"harmonic"``;
            :attr:`Kinetics.approximation` and :attr:`Kinetics.notes` say which was used and why.
        landscape: U, for the path correction (an Analysis brings its own).
        step_size: the model's sampler step s (times are then in sampler steps, Δt = s²/2, at T = 1); default: the
            landscape's sampler settings where the checkpoint states them.
        chain_length: the sampler's steps per chain (for the mixing ratio); default: the landscape's sampler.
        noise: the sampler's noise factor ν (z ← z − (s²/2)∇U + ν·s·ε samples at temperature ν²); default: the
            landscape's sampler, else 1. Times are in sampler steps only where T = ν².
        points_per_path: resolution of each path integral.
        max_path_work: above this many transition states × dimensions the default is ``"harmonic"`` and a note
            says why (a count, not a clock, so that the same input gets the same answer on every machine);
            ``approximation="path"`` corrects every transition state whatever it costs.
    Returns:
        a :class:`~energyscope.kinetics.model.Kinetics`.
    Raises:
        KineticsError: rates that do not exist for this network (saddles or minima on kinks; Langevin rates from
            PATHSAMPLE files, which hold no negative eigenvalues).
    """
    T = _check_temperature(temperature)
    if dynamics not in DYNAMICS:
        raise BadArgumentError(f"dynamics must be one of {DYNAMICS}, got {dynamics!r}")
    if approximation is not None and approximation not in APPROXIMATIONS:
        raise BadArgumentError(f"approximation must be one of {tuple(APPROXIMATIONS)} or None, got {approximation!r}")
    network, land = _resolve(source, landscape)
    notes: list[str] = []
    if isinstance(network, PathsampleData):
        if dynamics == "langevin":
            raise KineticsError("PATHSAMPLE files hold no saddle eigenvalues, so Langevin (Kramers–Langer) rates "
                                "cannot be formed from them; use dynamics='harmonic' (their own convention)")
        rn = harmonic_network(network.energy, network.log_vib, network.order, network.ts_minima, network.ts_energy,
                              network.ts_log_vib, network.ts_order, T)
        energy = network.energy
    else:
        rn = _network_rates(network, dynamics, T, land)
        energy = np.asarray(network.minima.energy, dtype=float)
    harmonic_flux = rn.log_flux.copy()
    used, reasons = _choose_approximation(approximation, dynamics, network, land, rn, T, points_per_path, notes,
                                          int(max_path_work))
    if network is not None and not isinstance(network, PathsampleData) and not network.is_connected():
        notes.append(f"the network has {len(network.components())} components: first-passage times between them are "
                     "infinite, and the stationary probabilities are the global equilibrium weights")
    time_unit, step_time, chain = _time_unit(dynamics, T, step_size, chain_length, noise, land, notes)
    return Kinetics(rn, harmonic_flux, T, dynamics, used, time_unit, step_time, chain, energy,
                    notes=rn.notes + notes, path_reasons=reasons)


def _check_temperature(temperature: Any) -> float:
    try:
        T = float(temperature)
    except (TypeError, ValueError):
        raise BadArgumentError(f"temperature must be a number > 0, got {temperature!r}") from None
    if not (np.isfinite(T) and T > 0):
        raise BadArgumentError(f"temperature must be a finite number > 0, got {temperature!r}")
    return T


def _resolve(source: Any, landscape: Landscape | None) -> tuple[Any, Landscape | None]:
    """(network or PATHSAMPLE data, landscape or None)."""
    if isinstance(source, (TransitionNetwork, PathsampleData)):
        return source, landscape
    network = getattr(source, "network", None)
    if isinstance(network, TransitionNetwork):  # an Analysis
        return network, landscape if landscape is not None else getattr(source, "landscape", None)
    if network is None and hasattr(source, "minima") and hasattr(source, "tree"):
        raise KineticsError("this analysis has no transition network (its connect stage did not run or failed)")
    raise BadArgumentError(f"kinetics takes a TransitionNetwork, an Analysis or PathsampleData; got "
                           f"{type(source).__name__}")


def _network_rates(network: TransitionNetwork, dynamics: str, T: float, land: Landscape | None) -> RateNetwork:
    m = network.minima
    edges = list(network.graph.edges(data=True))
    pairs = np.array([(u, v) for u, v, _ in edges], dtype=np.int64).reshape(-1, 2)
    ts_energy = np.array([d["energy"] for _, _, d in edges], dtype=float)
    flat_tol = float(m.flat_tol or 0.0)
    if dynamics == "harmonic":
        nodes = network.graph.nodes
        ev = m.hessian_eigenvalues
        known = ev is not None and ev.ndim == 2 and ev.shape[1] > 0
        lv = np.array([nodes[k]["log_vib"] if "log_vib" in nodes[k] else
                       (log_vib(ev[k], flat_tol) if known else 0.0) for k in range(len(m))])
        order = np.array([nodes[k].get("order", 1) for k in range(len(m))])
        ts_lv = np.array([d["log_vib"] if "log_vib" in d else log_vib(d.get("eigenvalues", []), flat_tol)
                          for _, _, d in edges])
        ts_order = np.array([d.get("order", 1) for _, _, d in edges])
        rn = harmonic_network(m.energy, lv, order, pairs, ts_energy, ts_lv, ts_order, T)
        blind = sum("log_vib" not in nodes[k] for k in range(len(m))) if not known else 0
        blind += sum("log_vib" not in d and d.get("eigenvalues") is None for _, _, d in edges)
        if blind:
            rn.notes.append(f"{blind} stationary point(s) have no Hessian eigenvalues or log_vib: their log_vib is "
                            "taken as 0")
        return rn
    missing = [k for k, (_, _, d) in enumerate(edges) if d.get("eigenvalues") is None]
    if missing and (land is None or any(np.size(edges[k][2].get("z", ())) != land.dim for k in missing)):
        raise KineticsError(f"{len(missing)} transition state(s) carry no Hessian eigenvalues (e.g. a network read "
                            "from PATHSAMPLE files), so Langevin rates cannot be formed; pass landscape= (their "
                            "Hessians are then computed) or use dynamics='harmonic'")
    ts_ev = [d.get("eigenvalues") for _, _, d in edges]
    if missing:  # a network built by hand: the Hessians at its saddles, from the landscape
        ev, _ = land.hessian_eigh(np.array([np.asarray(edges[k][2]["z"], dtype=float) for k in missing]))
        for k, row in zip(missing, ev):
            ts_ev[k] = row
    ts_ev = np.array([np.asarray(e, dtype=float) for e in ts_ev]).reshape(len(edges), m.dim)
    return langevin_network(m.hessian_eigenvalues, m.energy, pairs, ts_energy, ts_ev, T, flat_tol)


def _choose_approximation(asked: str | None, dynamics: str, network: Any, land: Landscape | None, rn: RateNetwork,
                          T: float, points_per_path: int, notes: list[str], max_path_work: int
                          ) -> tuple[str, list[str]]:
    """Apply the path correction where asked for (or by default where possible); returns (used, per-edge reasons)."""
    if asked == "harmonic":
        return "harmonic", []
    why_not = ""
    if dynamics != "langevin":
        why_not = "the path correction is defined for Langevin dynamics"
    elif land is None:
        why_not = "no landscape at hand (pass landscape=, or use an Analysis that still holds it)"
    elif len(rn.pairs) == 0:
        why_not = "the network has no transition states"
    elif asked is None and len(rn.pairs) * land.dim > max_path_work:
        why_not = (f"{len(rn.pairs)} transition states in d = {land.dim}: {len(rn.pairs) * land.dim} transition "
                   f"states × dimensions, more than max_path_work={max_path_work} (about 0.25 s per transition state "
                   f"at d = 128 on one core; pass approximation='path' to apply it anyway)")
    if why_not:
        if asked == "path":
            raise KineticsError(f"approximation='path' is not available: {why_not}")
        notes.append(f"harmonic approximation: {why_not}")
        return "harmonic", []
    edges = [(u, v, d) for u, v, d in network.graph.edges(data=True) if u != v]
    m = network.minima
    z_s = np.array([np.asarray(d["z"], dtype=float) for _, _, d in edges])
    ends = np.stack([np.asarray(m.z[[u for u, _, _ in edges]]), np.asarray(m.z[[v for _, v, _ in edges]])], axis=1)
    results = path_fluxes(land, z_s, ends, T, float(m.flat_tol or 0.0), points_per_path=points_per_path)
    reasons = [r.reason for r in results]
    ok = np.array([not r.reason and np.isfinite(r.log_flux) for r in results])
    rn.log_flux = np.where(ok, [r.log_flux for r in results], rn.log_flux)
    if not ok.any():
        if asked == "path":
            raise KineticsError(f"approximation='path' failed on every transition state ({reasons[0]})")
        notes.append(f"harmonic approximation: the path correction failed on every transition state ({reasons[0]})")
        return "harmonic", reasons
    if not ok.all():
        notes.append(f"path correction on {int(ok.sum())} of {len(ok)} transition states; the others keep their "
                     "harmonic flux (see path_reasons)")
    return "path", reasons


def _time_unit(dynamics: str, T: float, step_size: float | None, chain_length: int | None, noise: float | None,
               land: Landscape | None, notes: list[str]) -> tuple[str, float | None, int | None]:
    """(time unit, Δt per sampler step or None, chain length or None): sampler steps where the step is known and
    the sampler's own temperature ν² is T."""
    if dynamics == "harmonic":
        return "time units", None, chain_length
    cfg, defaulted = sampler_settings(land) if land is not None else ({}, ["steps", "step_size"])
    s = step_size if step_size is not None else (None if "step_size" in defaulted else cfg.get("step_size"))
    chain = chain_length if chain_length is not None else (None if "steps" in defaulted else cfg.get("steps"))
    if s is None:
        notes.append("times in time units: the sampler's step size is not known (pass step_size=)")
        return "time units", None, chain
    if not (float(s) > 0):
        raise BadArgumentError(f"step_size must be > 0, got {s!r}")
    nu = float(noise if noise is not None else (1.0 if "noise" in defaulted else cfg.get("noise", 1.0)))
    if nu == 0.0:
        notes.append("times in time units: the sampler runs without noise (noise = 0), so it never crosses a "
                     "barrier at all")
        return "time units", None, chain
    if abs(T - nu * nu) > 1e-12 * max(T, nu * nu):
        notes.append(f"times in time units: a sampler step z ← z − (s²/2)∇U + {nu:g}·s·ε is this dynamics only at "
                     f"T = {nu * nu:g} (here T = {T:g}); one step would be Δt = {float(s) ** 2 / 2:.3g}")
        return "time units", None, chain
    return "sampler steps", float(s) ** 2 / 2, None if chain is None else int(chain)


__all__ = ["kinetics", "DYNAMICS"]
