"""The free-energy disconnectivity graph at temperature T (Krivov & Karplus 2002; Evans & Wales 2003; Carr & Wales,
J. Chem. Phys. 123, 234901 (2005)).

Free energies come from the same weights and fluxes as the rates (:mod:`energyscope.kinetics.rates`):
F_i = −T log Z_i for a minimum and F_e = −T log(J_e/ν_e) for a transition state (ν_e: its attempt frequency,
|λ_e|/2π for Langevin), so that k_ij = J_e/Z_i = ν_e exp(−(F_e − F_i)/T): the free-energy barrier is what sets the
rate. In the harmonic approximation F_e − F_i = E_e − E_i + (T/2) log(|det H_e| / det H_i). (For PATHSAMPLE's
harmonic networks, ν = 1/2π and F_i = E_i + T S_i/2 + T log o_i, its own definitions.)

Regrouping, as PATHSAMPLE's ``REGROUPFREE``: minima joined by a transition state whose free-energy barrier, from
either side, is below the threshold are lumped into one free-energy minimum, F_I = −T log Σ_{i∈I} exp(−F_i/T); the
transition states between two groups become one, F_IJ = −T log Σ_e exp(−F_e/T); repeated until no barrier is below
the threshold. The graph is then the exact merge tree of the groups over the F_IJ, drawn like the energy tree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from energyscope.errors import BadArgumentError
from energyscope.tree.graph import DisconnectivityGraph

if TYPE_CHECKING:  # pragma: no cover
    from energyscope.kinetics.model import Kinetics


@dataclass
class FreeEnergyGraph:
    """The free-energy disconnectivity graph and the regrouping behind it.

    Attributes:
        tree: the :class:`~energyscope.tree.graph.DisconnectivityGraph` of the groups; each leaf's id is the group's
            lowest-free-energy minimum; ``tree.plot()`` draws it (its energy axis is the free energy).
        groups: the minima (0-based) of each group, in the order of ``tree``'s positions.
        free_energy: (n,) F of each group (nats); minima_free_energy: (K,) F_i.
        temperature: T; threshold: the regrouping threshold (nats).
    """

    tree: DisconnectivityGraph
    groups: list[set[int]]
    free_energy: np.ndarray
    minima_free_energy: np.ndarray
    temperature: float
    threshold: float
    notes: list[str] = field(default_factory=list)

    def plot(self, ax=None, **kwargs):
        """Draw the tree (see :meth:`DisconnectivityGraph.plot`); the vertical axis is the free energy F at T."""
        out = self.tree.plot(ax=ax, **kwargs)
        axis = out if hasattr(out, "set_ylabel") else getattr(out, "axes", None)
        if axis is not None and hasattr(axis, "set_ylabel"):
            axis.set_ylabel(f"free energy F at T = {self.temperature:g} (nats)")
        return out


def free_energy_graph(kin: "Kinetics", regroup: float | None = None) -> FreeEnergyGraph:
    """The free-energy disconnectivity graph of ``kin`` at its temperature.

    Args:
        kin: a :class:`~energyscope.kinetics.model.Kinetics`.
        regroup: the free-energy barrier (nats) below which minima are lumped; default T (barriers under kT do not
            make a metastable state); 0 lumps only minima whose free-energy barrier vanishes.
    """
    T = float(kin.temperature)
    threshold = T if regroup is None else float(regroup)
    if not threshold >= 0:
        raise BadArgumentError(f"regroup must be a free energy >= 0, got {regroup!r}")
    net = kin.network
    if net.n_minima == 0:
        raise BadArgumentError("free_energy_graph: the network has no minima")
    F_min = -T * net.log_weight
    F_ts = -T * (net.log_flux - net.log_frequency)
    K = net.n_minima
    member = np.arange(K)  # group of each minimum
    while True:
        Fg = _group_free_energy(F_min, member, T)
        ab, f = _group_ts(net.pairs, F_ts, member, T)
        if not len(f):
            break
        barrier = f - np.maximum(Fg[ab[:, 0]], Fg[ab[:, 1]])
        k = int(np.argmin(barrier))  # the lowest barrier first; the groups' F change after each merge
        if barrier[k] > threshold:
            break
        member[member == ab[k, 1]] = ab[k, 0]
        _, member = np.unique(member, return_inverse=True)
    Fg = _group_free_energy(F_min, member, T)
    groups = [set(np.nonzero(member == g)[0].tolist()) for g in range(len(Fg))]
    ab, f = _group_ts(net.pairs, F_ts, member, T)
    rows = np.column_stack([ab.astype(float), np.maximum(f, np.maximum(Fg[ab[:, 0]], Fg[ab[:, 1]]))])
    ids = [min(g, key=lambda k: F_min[k]) for g in groups]
    tree = DisconnectivityGraph(Fg, rows.reshape(-1, 3), ids=ids)
    notes = [f"{K} minima regrouped into {len(groups)} free-energy minima (barriers ≤ {threshold:.3g} nats lumped)"] \
        if len(groups) < K else []
    return FreeEnergyGraph(tree, groups, Fg, F_min, T, threshold, notes)


def _log_sum_by(keys: np.ndarray, log_terms: np.ndarray, n: int) -> np.ndarray:
    """(n,) log Σ exp(log_terms) over the entries of each key 0..n-1, shifted per key so nothing under- or
    overflows (−inf for a key with no entries)."""
    top = np.full(n, -np.inf)
    np.maximum.at(top, keys, log_terms)
    sums = np.bincount(keys, weights=np.exp(log_terms - top[keys]), minlength=n)
    with np.errstate(divide="ignore"):
        return top + np.log(sums)


def _group_free_energy(F_min: np.ndarray, member: np.ndarray, T: float) -> np.ndarray:
    """(G,) F_I = −T log Σ_{i∈I} exp(−F_i/T)."""
    return -T * _log_sum_by(member, -F_min / T, int(member.max()) + 1)


def _group_ts(pairs: np.ndarray, F_ts: np.ndarray, member: np.ndarray, T: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of groups joined by transition states, (P, 2) with a < b, and their one transition state each,
    F_IJ = −T log Σ exp(−F_e/T) (P,)."""
    gi, gj = member[pairs[:, 0]], member[pairs[:, 1]]
    between = gi != gj
    lo, hi = np.minimum(gi, gj)[between], np.maximum(gi, gj)[between]
    if not len(lo):
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    G = int(member.max()) + 1
    keys, inverse = np.unique(lo * G + hi, return_inverse=True)
    f = -T * _log_sum_by(inverse, -F_ts[between] / T, len(keys))
    return np.column_stack([keys // G, keys % G]), f


__all__ = ["FreeEnergyGraph", "free_energy_graph"]
