"""Pair selection for connect() (energyscope.search.pairs) and the bottleneck levels it relies on."""
import networkx as nx
import numpy as np
import pytest
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import cdist

import energyscope as es
from energyscope._geometry import minimax_levels
from energyscope.search.pairs import (candidate_pairs, line_maxima, lower_line_pairs, missing_connections,
                                      neighbour_graph)
from energyscope.surfaces import MullerBrown


def _bottleneck_reference(n, i, j, level, qi, qj):
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for a, b, w in zip(i, j, level):
        if a != b and (not g.has_edge(a, b) or g[a][b]["weight"] > w):
            g.add_edge(a, b, weight=w)
    t = nx.minimum_spanning_tree(g)
    out = []
    for a, b in zip(qi, qj):
        if a == b:
            out.append(-np.inf)
            continue
        try:
            p = nx.shortest_path(t, a, b)
        except nx.NetworkXNoPath:
            out.append(np.inf)
            continue
        out.append(max(t[u][v]["weight"] for u, v in zip(p, p[1:])))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_minimax_levels_match_the_spanning_tree_bottleneck(seed):
    rng = np.random.default_rng(seed)
    n, E, Q = 80, 160, 600
    i, j, lev = rng.integers(0, n, E), rng.integers(0, n, E), rng.normal(size=E)
    qi, qj = rng.integers(0, n, Q), rng.integers(0, n, Q)
    got = minimax_levels(n, i, j, lev, qi, qj)
    np.testing.assert_array_equal(got, _bottleneck_reference(n, i, j, lev, qi, qj))
    assert np.isinf(got).any() and np.isfinite(got).any()          # both kinds of answer are exercised


def test_the_spanning_tree_is_the_euclidean_one_and_the_graph_is_connected():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(size=(150, 5)), rng.normal(size=(50, 5)) + 40.0])   # two far clusters
    g = neighbour_graph(z, 4)
    assert nx.is_connected(nx.Graph(g.tolist()))
    emst = minimum_spanning_tree(cdist(z, z)).tocoo()
    want = {(min(a, b), max(a, b)) for a, b in zip(emst.row.tolist(), emst.col.tolist())}
    assert want <= set(candidate_pairs(z, 0))
    assert candidate_pairs(z[:5] * 0 + np.arange(5)[:, None], 0) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_missing_connections_join_every_component_and_avoid_blocked_pairs():
    z = np.arange(6, dtype=float)[:, None] * np.array([[1.0, 0.0]])
    energy = np.array([0.0, 1, 2, 3, 4, 5])
    comp = np.array([0, 0, 1, 1, 2, 2])
    usable = np.ones(6, dtype=bool)
    assert missing_connections(z, energy, comp, usable, set()) == [(1, 2), (3, 4)]
    # with the nearest crossing blocked, another crossing pair is chosen
    got = missing_connections(z, energy, comp, usable, {(1, 2)})
    assert (1, 2) not in got and any(comp[a] != comp[b] and {comp[a], comp[b]} == {0, 1} for a, b in got)
    assert missing_connections(z, energy, np.zeros(6, dtype=int), usable, set()) == []


def test_segments_through_a_saddle_read_its_energy_and_flag_a_missing_lower_path():
    land = es.Landscape(MullerBrown(), dim=2)
    m = es.find_minima(land, seed=0, progress=False)
    z, e = m.z, m.energy
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    top = line_maxima(land, z, pairs)
    # the maximum along a segment, found to round-off: no denser sampling finds a higher point
    t = np.linspace(0, 1, 20001)[:, None]
    for (a, b), mx in zip(pairs, top):
        dense = land.energy(z[a] + t * (z[b] - z[a])).numpy().max()
        assert mx >= dense - 1e-9 and mx <= dense + 1e-6
    # a network whose only edges are far above the segments: every pair is flagged; at the segments' level: none
    high = np.array([[0, 1, top.max() + 50], [1, 2, top.max() + 50]])
    flagged, mm = lower_line_pairs(z, e, high, pairs, top, 1e-6)
    assert len(flagged) == 3 and np.allclose(mm, top.max() + 50)
    exact = np.column_stack([pairs, top])
    flagged, _ = lower_line_pairs(z, e, exact, pairs, top, 1e-6)
    assert len(flagged) == 0
