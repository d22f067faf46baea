"""A minimum-energy path (a relaxed band) and its plain-data form: what the path finders (:mod:`energyscope.search.neb`)
produce and the transition network (:mod:`energyscope.search.network`) stores on its edges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _plain(x: Any) -> Any:
    """Tuples to lists, numpy scalars to Python scalars, Paths to dicts; numpy arrays are kept as arrays."""
    if isinstance(x, Path):
        return x.to_dict()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


def _revive(x: Any) -> Any:
    """Inverse of :func:`_plain` for nested Paths (dicts carrying the Path marker)."""
    if isinstance(x, dict):
        if x.get("__path__"):
            return Path.from_dict(x)
        return {k: _revive(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_revive(v) for v in x]
    return x


@dataclass
class Path:
    """One minimum-energy path (a relaxed band).

    Attributes:
        z: (M, d) images from start to end.
        energy: (M,) U at each image, nats.
        saddle_z: (d,) the highest point (the refined saddle when validated, else the climbing image).
        saddle_energy: U there.
        converged: whether the band met its force tolerance.
        n_evals: energy+gradient row evaluations spent.
        path_max_energy: highest energy seen along the densely evaluated path (an upper bound on the barrier).
        saddle_validated: True when ``saddle_z`` is a validated index-1 saddle.
    """

    z: np.ndarray
    energy: np.ndarray
    saddle_z: np.ndarray
    saddle_energy: float
    converged: bool
    n_evals: int
    path_max_energy: float = float("nan")
    saddle_validated: bool = False
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain data (numpy arrays kept as arrays); inverse of :meth:`from_dict`."""
        return {"__path__": True, "z": np.asarray(self.z, dtype=np.float64),
                "energy": np.asarray(self.energy, dtype=np.float64),
                "saddle_z": np.asarray(self.saddle_z, dtype=np.float64), "saddle_energy": float(self.saddle_energy),
                "converged": bool(self.converged), "n_evals": int(self.n_evals),
                "path_max_energy": float(self.path_max_energy), "saddle_validated": bool(self.saddle_validated),
                "info": _plain(self.info)}

    @classmethod
    def from_dict(cls, d: dict) -> "Path":
        return cls(z=np.asarray(d["z"], dtype=np.float64), energy=np.asarray(d["energy"], dtype=np.float64),
                   saddle_z=np.asarray(d["saddle_z"], dtype=np.float64), saddle_energy=float(d["saddle_energy"]),
                   converged=bool(d["converged"]), n_evals=int(d["n_evals"]),
                   path_max_energy=float(d.get("path_max_energy", float("nan"))),
                   saddle_validated=bool(d.get("saddle_validated", False)), info=_revive(d.get("info") or {}))
