"""Müller–Brown analysis fixtures shared by the analysis and report tests (not collected as tests)."""
from __future__ import annotations

import functools

import numpy as np

import energyscope as es
import energyscope.search.network as network_mod
from energyscope.analysis import Analysis
from energyscope.search.network import Path, TransitionNetwork
from energyscope.surfaces import (MULLER_BROWN_MINIMA, MULLER_BROWN_MINIMA_ENERGY, MULLER_BROWN_SADDLES,
                                  MULLER_BROWN_SADDLES_ENERGY, MullerBrown)

E_MA, E_MB, E_MC = MULLER_BROWN_MINIMA_ENERGY
E_S1, E_S2 = MULLER_BROWN_SADDLES_ENERGY
SMALL_MASSES = {"n_prior": 256, "n_sampler": 128, "mala": {"n_chains": 4, "n_samples": 32, "burn_in": 50}}


def exact_connect(land, minima, **_):
    """Stand-in for ``connect`` on Müller–Brown: the two published saddles, each joining its two nearest minima,
    with a path through the saddle (straight segments, energies from the landscape)."""
    net = TransitionNetwork(minima)
    for s, e in zip(MULLER_BROWN_SADDLES, MULLER_BROWN_SADDLES_ENERGY):
        i, j = np.argsort(np.linalg.norm(minima.z - s, axis=1))[:2]
        z = np.concatenate([np.linspace(minima.z[i], s, 7), np.linspace(s, minima.z[j], 7)[1:]])
        en = land.energy(z).numpy()
        path = Path(z=z, energy=en, saddle_z=s, saddle_energy=float(e), converged=True, n_evals=0,
                    path_max_energy=float(en.max()), saddle_validated=True)
        net.add_transition_state(int(i), int(j), float(e), s, -700.0, path=path)
    return net


def mb_reference(n_per: int = 40, seed: int = 1):
    """Reference latents scattered tightly around each Müller–Brown minimum, labelled by the minimum (A, B, C)."""
    rng = np.random.default_rng(seed)
    ref = np.concatenate([m + 0.03 * rng.standard_normal((n_per, 2)) for m in MULLER_BROWN_MINIMA])
    labels = np.repeat(np.array(["A", "B", "C"]), n_per)
    return ref, labels


def mb_landscape(with_reference: bool = True, **kw) -> es.Landscape:
    ref, labels = mb_reference() if with_reference else (None, None)
    return es.Landscape(MullerBrown(), dim=2, reference=ref, labels=labels,
                        metadata={"name": "Müller–Brown <test>"}, **kw)


def run_mb(monkeypatch=None, connect=exact_connect, **kw) -> Analysis:
    """analyze() on Müller–Brown with the stand-in connect (patched for the duration of the call)."""
    old = getattr(network_mod, "connect", None)
    network_mod.connect = connect
    try:
        kw.setdefault("interpret_kwargs", SMALL_MASSES)
        kw.setdefault("n_restarts", 48)
        kw.setdefault("grid_size", 60)
        return es.analyze(mb_landscape(kw.pop("with_reference", True)), seed=kw.pop("seed", 0), progress=False,
                          **kw)
    finally:
        if old is None:
            del network_mod.connect
        else:
            network_mod.connect = old


@functools.lru_cache(maxsize=None)
def mb_analysis() -> Analysis:
    """One Müller–Brown analysis shared by the tests of this file and the report tests (treat as read-only)."""
    return run_mb()
