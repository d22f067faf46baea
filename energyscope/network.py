"""TransitionNetwork: minima joined by validated transition states (skeleton: the data classes; ``connect`` lands
with the NEB/saddles issue)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from .minima import Minima


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


@dataclass
class Attempt:
    """One pair tried by ``connect``: which minima, the outcome and, on failure, why."""

    i: int
    j: int
    outcome: str          # "connected", "connected_other" (saddle joins other minima), "split", "failed"
    reason: str = ""
    saddle_energy: float = float("nan")
    edge_minima: tuple[int, int] | None = None
    n_evals: int = 0

    def to_dict(self) -> dict:
        return {"i": self.i, "j": self.j, "outcome": self.outcome, "reason": self.reason,
                "saddle_energy": None if not np.isfinite(self.saddle_energy) else float(self.saddle_energy),
                "edge_minima": None if self.edge_minima is None else list(self.edge_minima),
                "n_evals": self.n_evals}


class TransitionNetwork:
    """Minima (nodes, by index into ``.minima``) joined by validated transition states (edges of a MultiGraph).

    Each edge carries ``energy`` (saddle U, nats), ``z`` (d,), ``negative_eigenvalue`` and ``path`` (a :class:`Path`
    or None). ``attempts`` logs every pair tried.
    """

    def __init__(self, minima: Minima, graph: nx.MultiGraph | None = None, attempts: list[Attempt] | None = None):
        self.minima = minima
        self.graph = graph if graph is not None else nx.MultiGraph()
        for k in range(len(minima)):
            if k not in self.graph:
                self.graph.add_node(k)
            self.graph.nodes[k]["energy"] = float(minima.energy[k])
        self.attempts: list[Attempt] = list(attempts or [])

    def add_transition_state(self, i: int, j: int, energy: float, z: Any, negative_eigenvalue: float,
                             path: Path | None = None, **attrs) -> None:
        self.graph.add_edge(int(i), int(j), energy=float(energy), z=np.asarray(z, dtype=float),
                            negative_eigenvalue=float(negative_eigenvalue), path=path, **attrs)

    @property
    def n_transition_states(self) -> int:
        return self.graph.number_of_edges()

    def is_connected(self) -> bool:
        return len(self.minima) <= 1 or nx.is_connected(self.graph)

    def components(self) -> list[set[int]]:
        """Connected components (sets of minima indices), largest first."""
        return sorted((set(c) for c in nx.connected_components(self.graph)), key=len, reverse=True)

    def _lowest_edges(self) -> nx.Graph:
        """A simple graph keeping, for each pair of minima, the lowest transition state energy."""
        g = nx.Graph()
        g.add_nodes_from(self.graph.nodes)
        for u, v, e in self.graph.edges(data="energy"):
            if u == v:
                continue
            if not g.has_edge(u, v) or g[u][v]["energy"] > e:
                g.add_edge(u, v, energy=e)
        return g

    def minimax_energy(self, i: int, j: int) -> float:
        """Lowest possible highest-saddle energy over paths from minimum i to j (inf if not connected)."""
        if i == j:
            return float(self.minima.energy[i])
        g = self._lowest_edges()
        mst = nx.minimum_spanning_tree(g, weight="energy")
        if not nx.has_path(mst, i, j):
            return float("inf")
        nodes = nx.shortest_path(mst, i, j)
        return float(max(mst[a][b]["energy"] for a, b in zip(nodes[:-1], nodes[1:])))

    def barrier(self, i: int, j: int) -> float:
        """Minimax barrier from minimum i to j: ``minimax_energy(i, j) - energy[i]`` (inf if not connected)."""
        return self.minimax_energy(i, j) - float(self.minima.energy[i])

    def edges(self) -> list[dict]:
        """All transition states as dicts (i, j, energy, z, negative_eigenvalue, path)."""
        return [dict(i=u, j=v, **d) for u, v, d in self.graph.edges(data=True)]
