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
from energyscope.interpret.masses import assign_basins
from energyscope.landscape import Landscape
from energyscope.sampling import run_sampler
from energyscope.search.minima import Minima


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


@dataclass
class SamplerTransitions:
    """Where the model's own sampler goes in one chain: chains started at each minimum, run for the chain length,
    quenched to the basin they end in.

    Attributes:
        starts: (S,) the minima the chains started at (0-based).
        matrix: (S, K) fraction of the chains from each start that ended in each basin (rows may sum to less than 1:
            the rest ended in no known basin, ``other``).
        other: (S,) that rest.
        n_chains: chains per start; steps, step_size: the sampler's settings.
    """

    starts: np.ndarray
    matrix: np.ndarray
    other: np.ndarray
    n_chains: int
    steps: int
    step_size: float

    @property
    def stderr(self) -> np.ndarray:
        """(S, K) binomial standard errors of :attr:`matrix`."""
        p = self.matrix
        return np.sqrt(p * (1 - p) / max(self.n_chains, 1))

    def to_dict(self) -> dict:
        return {"starts": self.starts, "matrix": self.matrix, "other": self.other, "n_chains": int(self.n_chains),
                "steps": int(self.steps), "step_size": float(self.step_size)}

    @classmethod
    def from_dict(cls, d: dict) -> "SamplerTransitions":
        return cls(np.asarray(d["starts"], dtype=np.int64), np.asarray(d["matrix"], dtype=float),
                   np.asarray(d["other"], dtype=float), int(d["n_chains"]), int(d["steps"]), float(d["step_size"]))


def chain_transitions(land: Landscape, minima: Minima, sampler: dict, starts=None, n_chains: int = 256,
                      seed: int = 0, progress: bool = False) -> SamplerTransitions:
    """Run the model's own sampler (settings ``sampler``: steps, step_size, noise) for one chain from each start
    minimum and quench the end points to their basins: the one-chain transition probabilities, measured on the true U
    with no approximation (kinks included).

    Args:
        minima: the known minima (the basins); starts: which of them to start from (default all).
        n_chains: chains per start.
    """
    starts = np.arange(len(minima)) if starts is None else np.asarray(list(starts), dtype=np.int64)
    if n_chains < 2:
        raise BadArgumentError(f"n_chains must be at least 2, got {n_chains}")
    z0 = np.repeat(np.asarray(minima.z, dtype=float)[starts], n_chains, axis=0)
    ends = run_sampler(land, z0, sampler, seed=seed, progress=progress, desc="sampler from each minimum")
    basin = assign_basins(land, minima, ends, progress=progress, desc="quench sampler chains").basin
    K = len(minima)
    rows = np.asarray(basin).reshape(len(starts), n_chains)
    matrix = np.stack([np.bincount(r[r >= 0], minlength=K)[:K] / n_chains for r in rows]) if len(starts) else \
        np.zeros((0, K))
    return SamplerTransitions(starts, matrix, 1.0 - matrix.sum(axis=1), int(n_chains), int(sampler["steps"]),
                              float(sampler["step_size"]))


__all__ = ["FirstPassage", "first_passage_times", "SamplerTransitions", "chain_transitions"]
