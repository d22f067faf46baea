"""Batched simulation of overdamped Langevin dynamics on the true U: first-passage times with standard errors.

This is the check that needs no approximation beyond the time step: many chains z ← z − ∇U(z) Δt + √(2TΔt) ε
(Euler–Maruyama; at T = 1 and Δt = s²/2 exactly the model's short-run sampler with step size s) run side by side
until each enters the target set (a ball around the target minima). Use it where harmonic rates do not exist
(minima and saddles on kinks) or to check the network's numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from energyscope._tensor import to_numpy
from energyscope.errors import BadArgumentError
from energyscope.landscape import Landscape


@dataclass
class FirstPassage:
    """First-passage times of simulated chains.

    Attributes:
        times: (n,) each chain's first-passage time (time units; ``max_time`` for chains that had not arrived).
        arrived: (n,) bool.
        dt: the time step.
    """

    times: np.ndarray
    arrived: np.ndarray
    dt: float

    @property
    def n_censored(self) -> int:
        """Chains still out when the simulation stopped (then :attr:`mean` is a lower bound)."""
        return int((~self.arrived).sum())

    @property
    def mean(self) -> float:
        """Mean first-passage time (a lower bound when chains were censored)."""
        return float(self.times.mean())

    @property
    def stderr(self) -> float:
        """Standard error of :attr:`mean`."""
        return float(self.times.std(ddof=1) / np.sqrt(len(self.times))) if len(self.times) > 1 else float("nan")


def first_passage_times(land: Landscape, start, target_z, radius: float, temperature: float = 1.0,
                        dt: float = 1e-3, n_chains: int = 1000, max_time: float = 1e4, seed: int = 0,
                        check_every: int = 1) -> FirstPassage:
    """Simulate chains from ``start`` until they come within ``radius`` of any of ``target_z``.

    Args:
        land: the landscape U.
        start: (d,) one start for all chains, or (n_chains, d) starts.
        target_z: (m, d) target minima; radius: the target balls' radius (latent units).
        temperature: T; dt: time step (time units; a sampler with step size s at T = 1 has dt = s²/2).
        n_chains: chains run side by side; max_time: stop then (chains still out are censored).
        seed: random seed; check_every: test arrival every this many steps.
    """
    if not (dt > 0 and radius > 0 and temperature > 0 and n_chains >= 2 and max_time > 0):
        raise BadArgumentError("first_passage_times needs dt, radius, temperature, max_time > 0 and n_chains >= 2")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    start = np.asarray(start, dtype=float)
    z = land.as_tensor(np.broadcast_to(start, (n_chains, land.dim)).copy())
    tgt = land.as_tensor(np.asarray(target_z, dtype=float).reshape(-1, land.dim))
    noise = float(np.sqrt(2 * temperature * dt))
    times = np.full(n_chains, float(max_time))
    arrived = np.zeros(n_chains, dtype=bool)
    active = torch.arange(n_chains, device=z.device)
    n_steps = int(np.ceil(max_time / dt))
    for step in range(1, n_steps + 1):
        _, g = land.energy_and_grad(z[active])
        eps = torch.randn(len(active), land.dim, generator=gen, dtype=z.dtype, device="cpu").to(z.device)  # one stream on any device
        z[active] = z[active] - dt * g + noise * eps
        if step % check_every == 0:
            hit = (torch.cdist(z[active], tgt) <= radius).any(dim=1)
            if bool(hit.any()):
                idx = to_numpy(active[hit]).astype(np.int64)
                times[idx] = step * dt
                arrived[idx] = True
                active = active[~hit]
                if len(active) == 0:
                    break
    return FirstPassage(times, arrived, float(dt))


__all__ = ["FirstPassage", "first_passage_times"]
