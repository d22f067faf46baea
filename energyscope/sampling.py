"""The model's own short-run sampler (Pang et al. 2020): z ← z − (s²/2) ∇U(z) + noise · s · ε from the base.

Used for the sampler mass (:mod:`energyscope.interpret.masses`) and as a start source of the minima search
(:mod:`energyscope.search.starts`); it depends on the landscape only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from energyscope.errors import BadArgumentError
from energyscope._tensor import to_numpy
from energyscope.landscape import Landscape

SAMPLER_DEFAULTS = {"steps": 60, "step_size": 0.4, "noise": True}
_SAMPLER_ALIASES = {"steps": ("steps", "n_steps", "langevin_steps", "K"),
                    "step_size": ("step_size", "langevin_step_size", "s"),
                    "noise": ("noise",)}


def _progress(iterable, progress: bool, desc: str, total: int | None = None):
    if not progress:
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, total=total, leave=False)


def sampler_settings(land: Landscape, sampler: dict | None = None) -> tuple[dict, list[str]]:
    """The short-run sampler's settings: ``sampler`` overrides ``land.sampler``, which overrides the defaults.

    Returns (settings with keys steps, step_size, noise; names of the settings that fell back to the defaults).
    """
    given = {**(land.sampler or {}), **(sampler or {})}
    out, defaulted = {}, []
    for key, names in _SAMPLER_ALIASES.items():
        for nm in names:
            if nm in given:
                out[key] = given[nm]
                break
        else:
            out[key] = SAMPLER_DEFAULTS[key]
            defaulted.append(key)
    out["steps"] = int(out["steps"])
    out["step_size"] = float(out["step_size"])
    noise = out["noise"]
    out["noise"] = float(noise) if not isinstance(noise, bool) else (1.0 if noise else 0.0)
    if out["steps"] < 0 or not out["step_size"] > 0:
        raise BadArgumentError(f"sampler needs steps >= 0 and step_size > 0, got {out}")
    return out, defaulted


def short_run_samples(land: Landscape, n: int = 4096, sampler: dict | None = None, seed: int = 0,
                      progress: bool = True) -> tuple[np.ndarray, dict]:
    """The model's own short-run Langevin samples: from the base, z ← z − (s²/2)∇U(z) + noise · s · ε.

    Returns ((n, d) samples, info with the settings used and which of them were defaults).
    """
    cfg, defaulted = sampler_settings(land, sampler)
    z = run_sampler(land, land.base_samples(n, seed=seed), cfg, seed=int(seed) + 1, progress=progress)
    return z, {"seed": seed, **cfg, "defaults_used": defaulted}


def run_sampler(land: Landscape, z0: Any, cfg: dict, seed: int = 0, progress: bool = False,
                desc: str = "short-run sampler") -> np.ndarray:
    """The sampler's chains from given starts: ``cfg["steps"]`` steps z ← z − (s²/2)∇U(z) + noise · s · ε.

    Args:
        z0: (n, d) starts; cfg: settings from :func:`sampler_settings` (steps, step_size, noise).
    Returns:
        (n, d) end points.
    """
    z = land.as_tensor(z0)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    s = cfg["step_size"]
    for _ in _progress(range(cfg["steps"]), progress, desc, total=cfg["steps"]):
        _, g = land.energy_and_grad(z)
        z = z - 0.5 * s**2 * g
        if cfg["noise"]:
            z = z + cfg["noise"] * s * torch.randn(z.shape, generator=gen, dtype=land.dtype).to(land.device)
    return to_numpy(z)


__all__ = ["SAMPLER_DEFAULTS", "sampler_settings", "short_run_samples", "run_sampler"]
