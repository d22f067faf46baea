"""Minima: batched multi-start search, deduplication, Hessian validation and a coverage estimate.

(Skeleton: the data class and ``quench`` are the interface other stages build on; ``find_minima`` lands with the
minima issue.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._tensor import to_numpy
from .landscape import Landscape
from .optim import MinimizeResult, minimize


def default_gtol(land: Landscape, rel: float = 1e-6) -> float:
    """Unit-free gradient tolerance: ``rel`` × σ_E / σ_z (nats per latent unit)."""
    sc = land.scales()
    return rel * sc.sigma_E / sc.length


def default_max_step(land: Landscape, rel: float = 0.25) -> float:
    """Largest optimiser step: ``rel`` × the latent length scale."""
    return rel * land.scales().length


def quench(land: Landscape, z0: Any, gtol: float | None = None, max_iter: int = 5000,
           max_step: float | None = None, method: str = "lbfgs", progress: bool = False,
           desc: str = "quench") -> MinimizeResult:
    """Descend every row of z0 (R, d) to a local minimum of U (batched; see :func:`energyscope.optim.minimize`).

    Tolerances default to the landscape's scales (:func:`default_gtol`, :func:`default_max_step`).
    """
    z0 = land.as_tensor(z0)
    return minimize(land.energy_and_grad, z0, method=method,
                    gtol=default_gtol(land) if gtol is None else gtol,
                    max_iter=max_iter, max_step=default_max_step(land) if max_step is None else max_step,
                    progress=progress, desc=desc)


@dataclass
class Coverage:
    """How complete the search looks: distinct minima found, seen once/twice, and Chao1's estimate of the total."""

    found: int
    singletons: int
    doubletons: int
    estimated_total: float
    n_restarts: int
    rounds: int = 1

    @property
    def complete(self) -> bool:
        return self.estimated_total < self.found + 0.5

    def to_dict(self) -> dict:
        return {"found": self.found, "singletons": self.singletons, "doubletons": self.doubletons,
                "estimated_total": float(self.estimated_total), "n_restarts": self.n_restarts,
                "rounds": self.rounds, "complete": self.complete}


@dataclass
class Minima:
    """Validated, deduplicated local minima, sorted by energy ascending.

    Attributes:
        z: (K, d) positions.
        energy: (K,) U at each minimum, nats.
        hits: (K,) how many restarts ended in each.
        hessian_eigenvalues: (K, d) ascending.
        coverage: a :class:`Coverage`.
        dedup_tol: distance (latent units) under which two points count as the same minimum.
        stats: counts from the search (restarts, converged, unconverged, dropped non-finite, rejected saddles, ...).
    """

    z: np.ndarray
    energy: np.ndarray
    hits: np.ndarray
    hessian_eigenvalues: np.ndarray
    coverage: Coverage | None = None
    dedup_tol: float = 1e-4
    flat_tol: float = 0.0
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.energy))

    @property
    def dim(self) -> int:
        return int(self.z.shape[1])

    @property
    def n_flat(self) -> np.ndarray:
        """(K,) number of flat directions (|eigenvalue| ≤ flat_tol) at each minimum."""
        return (np.abs(self.hessian_eigenvalues) <= self.flat_tol).sum(axis=1)

    def assign(self, z: Any, tol: float | None = None) -> np.ndarray:
        """Index of the minimum each row of z (N, d) coincides with (within ``tol``, default ``dedup_tol``), else -1."""
        z = np.atleast_2d(to_numpy(z))
        if len(self) == 0 or len(z) == 0:
            return np.full(len(z), -1, dtype=int)
        from scipy.spatial import cKDTree
        dist, idx = cKDTree(self.z).query(z, k=1)
        tol = self.dedup_tol if tol is None else tol
        return np.where(dist <= tol, idx, -1).astype(int)


__all__ = ["Minima", "Coverage", "quench", "default_gtol", "default_max_step", "torch"]
