"""connect(): Müller–Brown and Styblinski–Tang networks against exact answers, splitting, bad input, persistence."""
import itertools

import networkx as nx
import numpy as np
import pytest
import torch

import energyscope as es
from energyscope.search.minima import Minima
from energyscope.search.network import Attempt, TransitionNetwork, candidate_pairs
from energyscope.surfaces import (MULLER_BROWN_MINIMA, MULLER_BROWN_MINIMA_ENERGY, MULLER_BROWN_SADDLES,
                                  MULLER_BROWN_SADDLES_ENERGY, ST_G_MINUS, ST_G_PLUS, ST_G_ZERO,
                                  MullerBrown, StyblinskiTang, styblinski_tang_minima)


def make_minima(land, z, e):
    z = np.asarray(z, dtype=float)
    ev = land.hessian_eigh(z)[0]
    return Minima(z=z, energy=np.asarray(e, dtype=float), hits=np.ones(len(z), dtype=int), hessian_eigenvalues=ev)


@pytest.fixture(scope="module")
def mb_net():
    land = es.Landscape(MullerBrown(), dim=2)
    return es.connect(land, make_minima(land, MULLER_BROWN_MINIMA, MULLER_BROWN_MINIMA_ENERGY), progress=False)


def test_muller_brown_both_published_saddles(mb_net):
    net = mb_net
    assert net.is_connected() and net.n_transition_states == 2
    assert len(net.minima) == 3
    by_pair = {tuple(sorted((e["i"], e["j"]))): e for e in net.edges()}
    assert set(by_pair) == {(0, 2), (1, 2)}
    for pair, s in (((0, 2), 0), ((1, 2), 1)):
        e = by_pair[pair]
        assert abs(e["energy"] - MULLER_BROWN_SADDLES_ENERGY[s]) < 1e-8
        assert np.abs(e["z"] - MULLER_BROWN_SADDLES[s]).max() < 1e-6
        ev = e["eigenvalues"]
        assert (ev < 0).sum() == 1 and e["negative_eigenvalue"] == ev[0]
        assert e["path"].saddle_validated
        assert e["path_max_energy"] >= e["energy"]  # labelled upper bound


def test_muller_brown_minimax_barriers(mb_net):
    net = mb_net
    S1, S2 = MULLER_BROWN_SADDLES_ENERGY
    EA, EB, EC = MULLER_BROWN_MINIMA_ENERGY
    assert net.minimax_energy(0, 1) == pytest.approx(S1, abs=1e-8)
    assert net.minimax_energy(1, 2) == pytest.approx(S2, abs=1e-8)
    assert net.barrier(1, 0) == pytest.approx(S1 - EB, abs=1e-8)
    assert net.barrier(2, 1) == pytest.approx(S2 - EC, abs=1e-8)
    assert net.barrier(0, 2) == pytest.approx(S1 - EA, abs=1e-8)
    assert net.minimax_energy(0, 1, kind="path_max") >= net.minimax_energy(0, 1) - 1e-12


def test_muller_brown_attempts_logged(mb_net):
    outcomes = {(a.i, a.j): a for a in mb_net.attempts}
    assert set(outcomes) == {(0, 1), (0, 2), (1, 2)}
    assert outcomes[(0, 2)].outcome == "connected" and outcomes[(1, 2)].outcome == "connected"
    # MA–MB runs through MC: split, one edge per piece
    assert outcomes[(0, 1)].outcome == "split"
    assert sorted(outcomes[(0, 1)].edges) == [(0, 2), (1, 2)]
    assert all(a.n_evals > 0 for a in mb_net.attempts)


def analytic_st_minimax(z, e, d):
    """Minimax saddle energies over the hypercube by a Floyd–Warshall bottleneck recursion on exact edge energies."""
    K = len(z)
    W = np.full((K, K), np.inf)
    for i, j in itertools.combinations(range(K), 2):
        diff = np.nonzero(np.abs(z[i] - z[j]) > 1)[0]
        if len(diff) == 1:
            c = diff[0]
            s = ST_G_ZERO + sum((ST_G_MINUS if z[i][k] < 0 else ST_G_PLUS) for k in range(d) if k != c)
            W[i, j] = W[j, i] = s
    for m in range(K):
        W = np.minimum(W, np.maximum(W[:, m:m + 1], W[m:m + 1, :]))
    return W


def test_styblinski_tang_d4_hypercube():
    d = 4
    land = es.Landscape(StyblinskiTang(), dim=d)
    z, e = styblinski_tang_minima(d)
    order = np.argsort(e, kind="stable")
    z, e = z[order], e[order]
    net = es.connect(land, make_minima(land, z, e), progress=False)
    assert len(net.minima) == 16 and net.is_connected()
    assert net.n_transition_states == 32
    for ed in net.edges():
        diff = np.abs(net.minima.z[ed["i"]] - net.minima.z[ed["j"]]) > 1
        assert diff.sum() == 1  # a hypercube edge
    assert len({tuple(sorted((ed["i"], ed["j"]))) for ed in net.edges()}) == 32
    W = analytic_st_minimax(z, e, d)
    for i, j in itertools.combinations(range(16), 2):
        assert net.minimax_energy(i, j) == pytest.approx(W[i, j], abs=1e-8)
        assert net.barrier(i, j) == pytest.approx(W[i, j] - e[i], abs=1e-8)


class TripleWell(torch.nn.Module):
    def forward(self, z):
        x, y = z[:, 0], z[:, 1]
        return x**2 * (x**2 - 4) ** 2 + 5 * (y - 0.3 * torch.sin(x)) ** 2


def test_connect_splits_and_adds_intermediate_minimum():
    land = es.Landscape(TripleWell(), dim=2)
    z = np.array([[-2.0, 0.3 * np.sin(-2.0)], [2.0, 0.3 * np.sin(2.0)]])
    net = es.connect(land, make_minima(land, z, [0.0, 0.0]), progress=False)
    assert len(net.minima) == 3
    assert np.allclose(net.minima.z[:2], z)  # input minima keep their indices
    assert np.abs(net.minima.z[2]).max() < 1e-6 and net.minima.stats["n_added"] == 1
    assert net.is_connected() and net.n_transition_states == 2
    assert {tuple(sorted((ed["i"], ed["j"]))) for ed in net.edges()} == {(0, 2), (1, 2)}
    att = net.attempts[0]
    assert att.outcome == "split" and att.new_minima == [2]
    assert net.minimax_energy(0, 1) == pytest.approx(256 / 27, abs=1e-8)


class HoleyWell(torch.nn.Module):
    def forward(self, z):
        x, y = z[:, 0], z[:, 1]
        e = (x**2 - 1) ** 2 + y**2
        return torch.where(x.abs() < 0.2, torch.full_like(e, float("nan")), e)


def test_bad_input_is_logged_never_crashes():
    # identical endpoints and endpoints that are not minima on Müller–Brown
    land = es.Landscape(MullerBrown(), dim=2)
    z = np.vstack([MULLER_BROWN_MINIMA, MULLER_BROWN_MINIMA[2] + 1e-9, MULLER_BROWN_SADDLES[0],
                   MULLER_BROWN_MINIMA[0] + [0.05, 0.05]])
    e = land.energy(z).numpy()
    net = es.connect(land, make_minima(land, z, e), progress=False, max_rounds=2)
    reasons = {(a.i, a.j): (a.outcome, a.reason) for a in net.attempts}
    assert reasons[(2, 3)][0] == "failed" and "identical endpoints" in reasons[(2, 3)][1]
    bad_saddle = [r for (i, j), r in reasons.items() if 4 in (i, j) and 5 not in (i, j)]
    bad_point = [r for (i, j), r in reasons.items() if 5 in (i, j) and 4 not in (i, j)]
    assert bad_saddle and all(o == "failed" and "minimum 4 is not a local minimum" in r for o, r in bad_saddle)
    assert bad_point and all(o == "failed" and "minimum 5 is not a local minimum" in r for o, r in bad_point)
    assert "eigenvalue" in bad_saddle[0][1] and "descent" in bad_point[0][1]
    # the genuine minima still got connected
    assert nx.has_path(net.graph, 0, 1)
    # a band that meets NaN
    hland = es.Landscape(HoleyWell(), dim=2)
    hz = np.array([[-1.0, 0.0], [1.0, 0.0]])
    hnet = es.connect(hland, make_minima(hland, hz, [0.0, 0.0]), progress=False)
    assert hnet.attempts and all(a.outcome == "failed" and "non-finite" in a.reason for a in hnet.attempts)
    assert len(hnet.attempts) == 2  # first try and one retry (max_attempts_per_pair=2), then given up
    assert not hnet.is_connected() and hnet.minimax_energy(0, 1) == np.inf


def test_candidate_pairs_knn_plus_spanning_tree():
    z = np.array([[0.0, 0], [1, 0], [2, 0], [10, 0], [11, 0]])
    assert candidate_pairs(z, 0) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert (0, 2) in candidate_pairs(z, 2) and (2, 3) in candidate_pairs(z, 1)


def test_round_trip_to_dict(mb_net):
    d = mb_net.to_dict()
    assert isinstance(d["edges"][0]["z"], np.ndarray)
    back = TransitionNetwork.from_dict(d)
    assert back.n_transition_states == 2 and len(back.attempts) == 3
    assert isinstance(back.attempts[0], Attempt) and back.attempts[0].edges == mb_net.attempts[0].edges
    assert back.minimax_energy(0, 1) == mb_net.minimax_energy(0, 1)
    e0 = back.edges()[0]
    assert isinstance(e0["path"], es.Path) and e0["path"].z.shape == mb_net.edges()[0]["path"].z.shape
    assert np.array_equal(back.minima.z, mb_net.minima.z)
