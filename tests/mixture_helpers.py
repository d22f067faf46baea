"""Shared fixtures for the interpretation tests: Gaussian-mixture energies with known basin masses."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

import energyscope as es
from energyscope._tensor import to_numpy
from energyscope.search.minima import Minima, quench

# Three well-separated components on a circle of radius 1.5: neighbouring means are 2.6 apart, i.e. 4.33 s from the
# bisector each side, so the mass a component puts outside its own basin is below 2 * Phi(-4.2) < 3e-5 (the basin
# boundary moves by at most s² ln(w_i/w_j) / 2.6 ≈ 0.03 for these weights). Basin masses equal the weights to 1e-4.
MEANS = np.array([[1.5, 0.0], [-0.75, 1.299038105676658], [-0.75, -1.299038105676658]])
WEIGHTS = np.array([0.5, 0.3, 0.2])
S = 0.3
TAIL = 1e-4   # bound on |basin mass - weight| from the tails, far below any Monte-Carlo tolerance used


class Mixture(nn.Module):
    """U(z) = -log sum_k w_k N(z; mu_k, s² I); with ``subtract_base`` it returns U - ||z||²/2, so that a
    standard-normal base (p ∝ exp(-E) N(0, I)) makes the total exactly the mixture."""

    def __init__(self, means=MEANS, weights=WEIGHTS, s=S, subtract_base=False):
        super().__init__()
        self.register_buffer("mu", torch.as_tensor(np.asarray(means), dtype=torch.float64))
        self.register_buffer("logw", torch.log(torch.as_tensor(np.asarray(weights), dtype=torch.float64)))
        self.s = float(s)
        self.subtract_base = subtract_base

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        d = z.shape[1]
        sq = ((z[:, None, :] - self.mu[None]) ** 2).sum(-1)
        log_norm = d * np.log(self.s * np.sqrt(2 * np.pi))
        u = -torch.logsumexp(self.logw - sq / (2 * self.s**2) - log_norm, dim=1)
        if self.subtract_base:
            u = u - 0.5 * (z * z).sum(1)
        return u


def minima_from(land: es.Landscape, starts: np.ndarray, dedup_tol: float = 1e-3) -> Minima:
    """Minima by quenching from the given starts (one each), with exact Hessian eigenvalues."""
    r = quench(land, starts)
    z = to_numpy(r.z)
    ev, _ = land.hessian_eigh(z)
    e = to_numpy(r.energy)
    order = np.argsort(e, kind="stable")
    return Minima(z[order], e[order], np.ones(len(z), int), ev[order], dedup_tol=dedup_tol)


def mixture_landscape(base: bool, weights=WEIGHTS, **kw) -> tuple[es.Landscape, Minima, np.ndarray]:
    """(landscape, its three minima sorted by energy, the weights in the minima's order)."""
    land = es.Landscape(Mixture(weights=weights, subtract_base=base), dim=2,
                        base_prior="standard_normal" if base else None, **kw)
    r = quench(land, MEANS)
    e = to_numpy(r.energy)
    order = np.argsort(e, kind="stable")
    return land, minima_from(land, MEANS[order]), np.asarray(weights)[order]
