"""The disconnectivity graph against exact answers: Styblinski–Tang (separable, so every merge energy is known in
closed form), Müller–Brown (REFERENCE.md) and hand-built networks; layout and drawing checked by positions."""
from __future__ import annotations

import itertools
import json

import matplotlib
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pytest
from matplotlib.offsetbox import AnnotationBbox

import energyscope as es
from energyscope.tree.graph import DisconnectivityGraph, basin_index, disconnectivity
from energyscope.tree.plot import NOT_CONNECTED, plot_disconnectivity, tree_layout
from energyscope.search.minima import Minima
from energyscope.search.network import TransitionNetwork
from energyscope.surfaces import (MULLER_BROWN_MINIMA, MULLER_BROWN_MINIMA_ENERGY, MULLER_BROWN_SADDLES,
                                  MULLER_BROWN_SADDLES_ENERGY, ST_G_MINUS, ST_G_PLUS, ST_G_ZERO,
                                  ST_T_ZERO, styblinski_tang_minima)

matplotlib.use("Agg")


# ---------------------------------------------------------------------------------------------------- builders
def st_network(d: int) -> TransitionNetwork:
    """The exact Styblinski–Tang network: 2^d minima, an index-1 saddle for each pair differing in one coordinate
    (that coordinate at t0), saddle energy = sum of the 1-D values."""
    z, e = styblinski_tang_minima(d)
    codes = (np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1
    g2 = lambda t: 6 * t * t - 16  # noqa: E731  (1-D second derivative of ½(t⁴ − 16t² + 5t))
    ev = np.sort(g2(z), axis=1)
    net = TransitionNetwork(Minima(z=z, energy=e, hits=np.ones(len(e), dtype=int), hessian_eigenvalues=ev))
    for a in range(2**d):
        for c in range(d):
            b = a ^ (1 << c)
            if a < b:
                zs = z[a].copy()
                zs[c] = ST_T_ZERO
                m = int(codes[a].sum() - codes[a, c])      # other coordinates at t+
                energy = ST_G_ZERO + m * ST_G_PLUS + (d - 1 - m) * ST_G_MINUS
                eig = np.sort(g2(zs))
                net.add_transition_state(a, b, energy, zs, float(eig[0]), eigenvalues=eig)
    return net


def mb_network() -> TransitionNetwork:
    """Müller–Brown from REFERENCE.md: minima MA, MB, MC (sorted by energy); S1 joins MA–MC, S2 joins MC–MB."""
    m = Minima(z=MULLER_BROWN_MINIMA.copy(), energy=MULLER_BROWN_MINIMA_ENERGY.copy(), hits=np.ones(3, dtype=int),
               hessian_eigenvalues=np.array([[410.531, 4068.199], [543.836, 3005.396], [221.037, 1479.197]]))
    net = TransitionNetwork(m)
    net.add_transition_state(0, 2, MULLER_BROWN_SADDLES_ENERGY[0], MULLER_BROWN_SADDLES[0], -750.863)
    net.add_transition_state(2, 1, MULLER_BROWN_SADDLES_ENERGY[1], MULLER_BROWN_SADDLES[1], -735.247)
    return net


def random_network(K: int, T: int, seed: int) -> TransitionNetwork:
    """Random minima energies and random transition states above both ends (parallel edges and loops included)."""
    rng = np.random.default_rng(seed)
    e = np.sort(rng.normal(size=K) * 3)
    net = TransitionNetwork(Minima(z=rng.normal(size=(K, 2)), energy=e, hits=np.ones(K, dtype=int),
                                   hessian_eigenvalues=np.ones((K, 2))))
    for _ in range(T):
        i, j = rng.integers(0, K, size=2)
        net.add_transition_state(i, j, max(e[i], e[j]) + rng.exponential(4.0), np.zeros(2), -1.0)
    return net


def n_plus(d: int) -> np.ndarray:
    return ((np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1).sum(1)


# ---------------------------------------------------------------------------------------------------- exact trees
@pytest.mark.parametrize("d", [3, 4])
def test_styblinski_tang_tree_is_exact(d):
    tree = es.disconnectivity(st_network(d))
    k = n_plus(d)
    assert len(tree) == 2**d and tree.n_components == 1 and tree.global_minimum == 0
    # A minimum with k ≥ 1 coordinates at t+ first leaves through its cheapest saddle: one t+ coordinate at t0.
    first = tree.first_merge_energy()
    expect = ST_G_ZERO + (k - 1) * ST_G_PLUS + (d - k) * ST_G_MINUS
    np.testing.assert_allclose(first[k >= 1], expect[k >= 1], rtol=0, atol=1e-12)
    # d distinct merge levels: at level m all minima with ≤ m+1 coordinates at t+ share the global basin.
    levels = ST_G_ZERO + np.arange(d) * ST_G_PLUS + (d - 1 - np.arange(d)) * ST_G_MINUS
    np.testing.assert_allclose(np.unique(tree.merge_edges[:, 2]), levels, rtol=0, atol=1e-12)
    for m, L in enumerate(levels):
        below, above = tree.basins_at(L - 1e-9), tree.basins_at(L + 1e-9)
        main = {int(a) for a in np.nonzero(k <= m)[0]} if m > 0 else {0}
        assert below[0] == main and all(len(s) == 1 for s in below[1:])
        assert above[0] == {int(a) for a in np.nonzero(k <= m + 1)[0]}
        assert sum(len(s) for s in above) == 2**d
    # Every non-global minimum is absorbed by a deeper basin exactly g(t0) − g(t+) above itself.
    np.testing.assert_allclose(tree.persistence[1:], ST_G_ZERO - ST_G_PLUS, rtol=0, atol=1e-12)
    assert np.isinf(tree.persistence[0])
    # Merge energy between any two minima = the network's minimax saddle energy (independent computation).
    net = st_network(d)
    for i, j in itertools.combinations(range(2**d), 2):
        assert tree.merge_energy(i, j) == pytest.approx(net.minimax_energy(i, j), abs=1e-12)


def test_muller_brown_tree():
    tree = disconnectivity(mb_network())
    # MC (2) joins MB (1) at E(S2); {MB, MC} joins MA (0) at E(S1).
    assert tree.merge_edges[:, 2].tolist() == [MULLER_BROWN_SADDLES_ENERGY[1], MULLER_BROWN_SADDLES_ENERGY[0]]
    assert tree.merge_energy(1, 2) == MULLER_BROWN_SADDLES_ENERGY[1]
    assert tree.merge_energy(0, 2) == tree.merge_energy(0, 1) == MULLER_BROWN_SADDLES_ENERGY[0]
    assert tree.basins_at(-80.0) == [{0}, {1}, {2}]
    assert tree.basins_at(-60.0) == [{0}, {1, 2}]
    assert tree.basins_at(0.0) == [{0, 1, 2}]
    np.testing.assert_allclose(tree.barrier(2, 1), MULLER_BROWN_SADDLES_ENERGY[1] - MULLER_BROWN_MINIMA_ENERGY[2])
    assert tree.barrier(1, 0) == pytest.approx(MULLER_BROWN_SADDLES_ENERGY[0] - MULLER_BROWN_MINIMA_ENERGY[1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_energy_equals_network_minimax(seed):
    net = random_network(12, 20, seed)
    tree = disconnectivity(net)
    assert tree.n_components == len(net.components())
    for i, j in itertools.combinations(range(12), 2):
        assert tree.merge_energy(i, j) == net.minimax_energy(i, j)
    # basins_at agrees with connected components of the sub-threshold graph.
    for level in np.quantile(tree.merge_edges[:, 2], [0.2, 0.5, 0.9]):
        g = nx.Graph()
        g.add_nodes_from(range(12))
        g.add_edges_from((u, v) for u, v, e in net.graph.edges(data="energy") if e < level and u != v)
        assert sorted(map(sorted, tree.basins_at(level))) == sorted(map(sorted, nx.connected_components(g)))


# ---------------------------------------------------------------------------------------------------- hand-built
def test_chain_structure_and_barrier_partitions():
    tree = DisconnectivityGraph([0.0, 1.0, 2.0, 3.0], [(0, 1, 5.0), (1, 2, 4.0), (2, 3, 10.0)])
    assert tree.merge_edges.tolist() == [[1, 2, 4.0], [0, 1, 5.0], [2, 3, 10.0]]
    np.testing.assert_array_equal(tree.persistence, [np.inf, 4.0, 2.0, 7.0])
    np.testing.assert_array_equal(tree.absorbed_by, [-1, 0, 1, 0])
    assert tree.basins_by_barrier(0.0) == [{0}, {1}, {2}, {3}]
    assert tree.basins_by_barrier(2.0) == [{0}, {1}, {2}, {3}]        # strict: a barrier of exactly 2 stays
    assert tree.basins_by_barrier(3.0) == [{0}, {1, 2}, {3}]
    assert tree.basins_by_barrier(5.0) == [{0, 1, 2}, {3}]
    assert tree.basins_by_barrier(np.inf) == [{0, 1, 2, 3}]
    assert tree.basins_at(4.0) == [{0}, {1}, {2}, {3}]                  # strict: the saddle at 4 is not below 4
    assert tree.basins_at(4.5) == [{0}, {1, 2}, {3}]
    np.testing.assert_array_equal(basin_index(tree.basins_at(4.5), [3, 2, 1, 0]), [2, 1, 1, 0])
    with pytest.raises(ValueError, match="delta_E"):
        tree.basins_by_barrier(-1.0)


def test_star():
    e = [0.0, 1.0, 2.0, 3.0, 4.0]
    tree = DisconnectivityGraph(e, [(0, k, 10.0 + k) for k in range(1, 5)])
    assert tree.n_components == 1
    for k in range(1, 5):
        assert tree.merge_energy(0, k) == 10.0 + k
        assert tree.persistence[k] == 10.0
    for a, b in itertools.combinations(range(1, 5), 2):
        assert tree.merge_energy(a, b) == 10.0 + max(a, b)
    lay = tree_layout(tree)
    assert sorted(lay.order) == [0, 1, 2, 3, 4]


def test_two_components_and_minima_without_edges():
    tree = DisconnectivityGraph([0.0, 1.0, 2.0, 5.0, -1.0, 3.0], [(0, 1, 3.0), (2, 3, 6.0)])
    assert tree.global_minimum == 4
    assert tree.components == [{4}, {0, 1}, {2, 3}, {5}]
    assert tree.not_connected == [{0, 1}, {2, 3}, {5}]
    assert tree.basins_at(np.inf) == tree.components
    assert tree.merge_energy(0, 2) == np.inf and tree.barrier(4, 5) == np.inf
    parts = tree.basins_at(4.0)
    assert sorted(len(s) for s in parts) == [1, 1, 1, 1, 2] and sum(map(len, parts)) == 6
    assert np.isinf(tree.persistence[[4, 0, 2, 5]]).all()


def test_one_minimum():
    tree = DisconnectivityGraph([2.5])
    assert len(tree) == 1 and tree.components == [{0}] and tree.basins_at(100.0) == [{0}]
    assert tree.basins_by_barrier(1.0) == [{0}]
    drawn = tree.plot(leaf_labels=True)
    assert drawn.leaf_x == {0: 0.0} and drawn.leaf_y == {0: 0.0}
    drawn.fig.canvas.draw()
    plt.close(drawn.fig)


def test_parallel_edges_lowest_wins_and_self_loops_ignored():
    tree = DisconnectivityGraph([0.0, 1.0, 2.0], [(0, 1, 5.0), (1, 0, 3.0), (1, 1, -7.0), (1, 2, 4.0),
                                                   (2, 1, 9.0)])
    assert tree.merge_energy(0, 1) == 3.0 and tree.merge_energy(1, 2) == 4.0
    assert tree.info == {"n_transition_states": 5, "n_self_loops": 1, "n_redundant": 2}


def test_ties_are_deterministic():
    edges = [(0, 1, 5.0), (0, 2, 5.0), (1, 2, 5.0)]
    a = DisconnectivityGraph([0.0, 1.0, 1.0], edges)
    b = DisconnectivityGraph([0.0, 1.0, 1.0], edges[::-1])
    np.testing.assert_array_equal(a.merge_edges, b.merge_edges)
    assert a.same_tree(b)


@pytest.mark.parametrize("energy, edges, match", [
    ([0.0, np.nan], [], "non-finite energy"),
    ([], [], "non-empty"),
    ([0.0, 1.0], [(0, 2, 3.0)], r"integers in \[0, 2\)"),
    ([0.0, 1.0], [(0, 1.5, 3.0)], "integers"),
    ([0.0, 1.0], [(0, 1, np.nan)], "non-finite energy"),
    ([0.0, 1.0], [(0, 1)], r"\(T, 3\)"),
    ([0.0, 1.0], [(0, 1, 0.5)], "below minimum 1"),
])
def test_bad_input_is_named(energy, edges, match):
    with pytest.raises(ValueError, match=match):
        DisconnectivityGraph(energy, edges)


def test_disconnectivity_rejects_non_networks():
    with pytest.raises(TypeError, match="TransitionNetwork"):
        disconnectivity([1.0, 2.0])


# ---------------------------------------------------------------------------------------------------- prune, JSON
def test_prune_keeps_exact_merge_energies():
    net = random_network(15, 30, 3)
    tree = disconnectivity(net)
    small = tree.prune(n_lowest=6)
    assert sorted(small.ids.tolist()) == np.argsort(tree.energy, kind="stable")[:6].tolist()
    for i, j in itertools.combinations(small.ids.tolist(), 2):
        assert small.merge_energy(i, j) == tree.merge_energy(i, j)
    cut = 2.0
    deep = tree.prune(min_barrier=cut)
    assert set(deep.ids.tolist()) == set(np.nonzero(tree.persistence >= cut)[0].tolist())
    for i, j in itertools.combinations(deep.ids.tolist(), 2):
        assert deep.merge_energy(i, j) == tree.merge_energy(i, j)
    # persistence of the kept minima is unchanged (their deeper partners are kept too)
    np.testing.assert_array_equal(deep.persistence, tree.persistence[deep.ids])
    assert len(tree) == 15    # the original is untouched
    with pytest.raises(ValueError, match="n_lowest"):
        tree.prune(n_lowest=0)


def test_prune_st_by_barrier():
    tree = disconnectivity(st_network(3))
    assert tree.prune(min_barrier=ST_G_ZERO - ST_G_PLUS + 1e-9).ids.tolist() == [0]
    assert len(tree.prune(min_barrier=ST_G_ZERO - ST_G_PLUS - 1e-9)) == 8


def test_json_round_trip(tmp_path):
    tree = disconnectivity(random_network(10, 14, 5))
    path = tmp_path / "tree.json"
    tree.to_json(path)
    back = DisconnectivityGraph.from_json(path)
    assert back.same_tree(tree)
    np.testing.assert_array_equal(back.merge_edges, tree.merge_edges)
    np.testing.assert_array_equal(back.energy, tree.energy)
    assert back.components == tree.components and back.info == tree.info
    pruned = tree.prune(n_lowest=4)
    again = DisconnectivityGraph.from_dict(json.loads(json.dumps(pruned.to_dict())))
    assert again.same_tree(pruned) and again.ids.tolist() == pruned.ids.tolist()
    with pytest.raises(ValueError, match="format"):
        DisconnectivityGraph.from_dict({"energy": [0.0]})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        DisconnectivityGraph.from_json(tmp_path / "bad.json")


def test_same_tree_detects_a_different_merge():
    a = DisconnectivityGraph([0.0, 1.0, 2.0], [(0, 1, 3.0), (1, 2, 4.0)])
    b = DisconnectivityGraph([0.0, 1.0, 2.0], [(0, 2, 3.0), (1, 2, 4.0)])
    c = DisconnectivityGraph([0.0, 1.0, 2.0], [(0, 1, 3.0), (1, 2, 4.5)])
    assert a.same_tree(a) and not a.same_tree(b) and not a.same_tree(c)


# ---------------------------------------------------------------------------------------------------- layout
def _contiguous_subtrees(tree, lay):
    """Every display subtree's leaves occupy consecutive x slots (a planar drawing)."""
    K = len(tree)

    def leaves(n):
        if 0 <= n < K:
            return [int(tree.ids[n])]
        return [m for c in lay.node_children[n] for m in leaves(c)]

    for n in lay.node_children:
        xs = sorted(lay.leaf_x[m] for m in leaves(n))
        assert xs == list(np.arange(xs[0], xs[0] + len(xs)))


@pytest.mark.parametrize("d", [3, 4])
def test_layout_st_positions(d):
    tree = disconnectivity(st_network(d))
    lay = tree_layout(tree)
    K = 2**d
    assert sorted(lay.leaf_x.values()) == list(map(float, range(K)))
    assert lay.order == sorted(lay.leaf_x, key=lay.leaf_x.get)
    # global minimum in the middle of the picture (within one slot of the centre)
    assert abs(lay.leaf_x[0] - (K - 1) / 2) <= 1.0
    _contiguous_subtrees(tree, lay)
    # equal-energy merges are drawn as one node: d display nodes, one per level
    assert len(lay.node_children) == d
    assert sorted(len(c) for c in lay.node_children.values()) == sorted(
        [1 + int((n_plus(d) == 1).sum())] + [1 + int((n_plus(d) == k).sum()) for k in range(2, d + 1)])
    # every leaf's branch ends exactly at its energy above the global minimum
    for s in lay.segments:
        if s.leaf is not None:
            assert s.xy[-1, 1] == pytest.approx(tree.energy[s.leaf] - tree.energy[0], abs=1e-12)
            assert s.xy[-1, 0] == lay.leaf_x[s.leaf]


def test_layout_larger_basins_nearer_centre():
    # gmin 0; at E=10 it meets a 3-minimum basin {1,2,3}, a 2-minimum basin {4,5} and a lone minimum 6.
    e = [0.0, 1.0, 1.5, 1.7, 2.0, 2.5, 3.0]
    edges = [(1, 2, 5.0), (2, 3, 5.0), (4, 5, 6.0), (0, 1, 10.0), (0, 4, 10.0), (0, 6, 10.0)]
    tree = DisconnectivityGraph(e, edges)
    lay = tree_layout(tree)
    xg = lay.leaf_x[0]

    def gap(group):
        return min(abs(lay.leaf_x[m] - xg) for m in group)

    assert gap({1, 2, 3}) <= gap({4, 5}) < gap({6})
    root = tree.roots[0]
    assert len(lay.node_children[root]) == 4            # three binary merges at E=10 drawn as one node
    assert lay.node_xy[root][1] == 10.0
    _contiguous_subtrees(tree, lay)


def test_layout_levels_bin_merges():
    tree = DisconnectivityGraph([0.0, 1.0, 2.0, 3.0], [(0, 1, 5.0), (1, 2, 4.0), (2, 3, 10.0)])
    lay = tree_layout(tree, delta_E=3.0)
    np.testing.assert_allclose(lay.levels, [3.0, 6.0, 9.0, 12.0])
    ys = sorted(y for k, (x, y) in lay.node_xy.items())
    assert ys == [6.0, 12.0]           # merges at 4 and 5 share the 6 level (one node), the one at 10 goes to 12
    lay2 = tree_layout(tree, n_levels=2)
    np.testing.assert_allclose(lay2.levels, [5.0, 10.0])
    assert sorted(y for _, y in lay2.node_xy.values()) == [5.0, 10.0]
    with pytest.raises(ValueError, match="not both"):
        tree_layout(tree, n_levels=3, delta_E=1.0)
    with pytest.raises(ValueError, match="delta_E"):
        tree_layout(tree, delta_E=-1.0)
    # the exact tree is untouched by display levels
    assert tree.merge_edges[:, 2].tolist() == [4.0, 5.0, 10.0]


def test_layout_not_connected_root():
    tree = DisconnectivityGraph([0.0, 1.0, 2.0, 5.0, 0.5], [(0, 1, 3.0), (2, 3, 6.0)])
    lay = tree_layout(tree)
    assert lay.not_connected and lay.components == [{0, 1}, {4}, {2, 3}]
    assert set(lay.node_children[NOT_CONNECTED]) == set(tree.roots)
    xr, yr = lay.node_xy[NOT_CONNECTED]
    assert yr == lay.top and yr > max(y for k, (x, y) in lay.node_xy.items() if k != NOT_CONNECTED)
    assert sum(s.dashed for s in lay.segments) == 3 and lay.stems == []


# ---------------------------------------------------------------------------------------------------- drawing
def test_plot_not_connected_listed_and_drawn():
    tree = DisconnectivityGraph([0.0, 1.0, 2.0, 5.0, 0.5], [(0, 1, 3.0), (2, 3, 6.0)])
    drawn = tree.plot()
    texts = [t.get_text() for t in drawn.ax.texts]
    assert "not connected (3 components)" in texts
    assert {"C1: 2 min", "C2: min 4", "C3: 2 min"} <= set(texts)
    assert drawn.components == [{0, 1}, {4}, {2, 3}] and drawn.not_connected == [{4}, {2, 3}]
    drawn.fig.canvas.draw()
    plt.close(drawn.fig)


def test_plot_global_minimum_centred_and_axes():
    tree = disconnectivity(st_network(4))
    drawn = tree.plot(n_levels=4, leaf_labels=True)
    lo, hi = drawn.ax.get_xlim()
    assert abs(drawn.leaf_x[0] - (lo + hi) / 2) <= 1.0
    assert drawn.ax.get_ylabel().startswith("energy above global minimum")
    ylo, yhi = drawn.ax.get_ylim()
    assert ylo < 0.0 and yhi >= max(drawn.leaf_y.values())
    assert sorted(t.get_text() for t in drawn.ax.texts) == sorted(str(m) for m in range(16))
    drawn.fig.canvas.draw()
    plt.close(drawn.fig)


def test_plot_thumbnails_fake_8x8():
    tree = disconnectivity(st_network(3))
    rng = np.random.default_rng(0)
    imgs = {m: rng.uniform(0, 16, size=(8, 8)) for m in range(8)}
    imgs[5] = None                                     # a minimum without a prototype
    imgs[6] = rng.uniform(size=(3, 8, 8))              # channels-first RGB
    imgs[7] = rng.uniform(size=(8, 8, 3))              # channels-last RGB
    drawn = tree.plot(thumbnail=lambda m: imgs[m], leaf_labels=True)
    boxes = [a for a in drawn.ax.artists if isinstance(a, AnnotationBbox)]
    assert len(boxes) == 7 and set(drawn.thumbnails) == {0, 1, 2, 3, 4, 6, 7}
    for m, ab in drawn.thumbnails.items():
        assert ab.xy == (drawn.leaf_x[m], drawn.leaf_y[m])
        data = np.asarray(ab.offsetbox.get_data())
        assert data.shape == ((8, 8) if m < 6 else (8, 8, 3))
    np.testing.assert_array_equal(drawn.thumbnails[0].offsetbox.get_data(), imgs[0])
    # room below the lowest leaf for its thumbnail
    assert drawn.ax.get_ylim()[0] < min(drawn.leaf_y.values()) - 1.0
    drawn.fig.canvas.draw()
    plt.close(drawn.fig)
    with pytest.raises(ValueError, match=r"thumbnail\(\d+\) returned an array of shape \(8,\)"):
        tree.plot(thumbnail=lambda m: np.zeros(8))
    with pytest.raises(TypeError, match="callable"):
        tree.plot(thumbnail=np.zeros((8, 8, 8)))
    plt.close("all")


def test_plot_colour_by_group_and_value():
    tree = disconnectivity(st_network(3))
    groups = ["a" if k < 2 else "b" for k in n_plus(3)]
    drawn = tree.plot(color_by=groups, color_label="dominant label")
    assert drawn.legend is not None and [t.get_text() for t in drawn.legend.get_texts()] == ["a", "b"]
    assert drawn.colors[0] == drawn.colors[1] != drawn.colors[3] == drawn.colors[7]
    plt.close(drawn.fig)
    values = np.linspace(0.0, 1.0, 8)
    drawn = tree.plot(color_by=values, cmap="viridis", color_label="data mass")
    assert drawn.colorbar is not None and drawn.legend is None
    assert drawn.colors[0] == matplotlib.colormaps["viridis"](0.0)
    assert drawn.colors[7] == matplotlib.colormaps["viridis"](1.0)
    drawn.fig.canvas.draw()
    plt.close(drawn.fig)
    with pytest.raises(ValueError, match="color_by"):
        tree.plot(color_by=[1, 2])
    plt.close("all")


def test_plot_with_pruning_into_given_axes():
    tree = disconnectivity(random_network(20, 40, 7))
    fig, ax = plt.subplots()
    drawn = tree.plot(ax=ax, n_lowest=5, delta_E=1.0)
    assert drawn.ax is ax and drawn.fig is fig
    assert set(drawn.leaf_x) == set(np.argsort(tree.energy, kind="stable")[:5].tolist())
    assert len(tree) == 20
    plt.close(fig)
    with pytest.raises(TypeError, match="DisconnectivityGraph"):
        plot_disconnectivity(st_network(2))


def test_round_off_ties_drawn_as_one_node_but_tree_stays_exact():
    # Two saddles that should be equal but differ by round-off (as when each is refined on its own): the tree keeps
    # both exact merges; the drawing shows one node with three children, not a one-child chain.
    e = [0.0, 1.0, 1.0]
    tree = DisconnectivityGraph(e, [(0, 1, 10.0), (0, 2, 10.0 + 1e-12)])
    assert tree.merge_edges[:, 2].tolist() == [10.0, 10.0 + 1e-12]
    lay = tree_layout(tree)
    assert len(lay.node_children) == 1 and len(next(iter(lay.node_children.values()))) == 3
    assert lay.leaf_x[0] == 1.0
    # A real gap is still drawn as two nodes.
    lay = tree_layout(DisconnectivityGraph(e, [(0, 1, 10.0), (0, 2, 10.5)]))
    assert len(lay.node_children) == 2


def test_leaf_labels_upright_when_they_fit():
    tree = disconnectivity(st_network(4))
    fig, ax = plt.subplots(figsize=(9, 5))
    drawn = tree.plot(ax=ax, leaf_labels={m: format(m, "04b") for m in range(16)})
    rot = {t.get_text(): t.get_rotation() for t in drawn.ax.texts}
    assert rot["0000"] == 0.0 and rot["1111"] == 0.0
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(3, 5))
    drawn = tree.plot(ax=ax, leaf_labels={m: f"minimum number {m}" for m in range(16)})
    assert all(t.get_rotation() == 90.0 for t in drawn.ax.texts if t.get_text().startswith("minimum number"))
    plt.close(fig)


def test_global_minimum_centred_along_its_chain():
    # The digits model's tree: {0,1} then 5 join, {2,3} then 4 join, the two halves meet at the top. Greedy bottom-up
    # alone puts the global minimum in slot 1 of 0..5; balancing its chain puts it next to the middle.
    e = [0.0, 0.056, 0.267, 0.500, 0.715, 1.279]
    edges = [(2, 3, 0.595), (3, 4, 0.757), (0, 1, 1.190), (0, 5, 1.318), (0, 3, 1.571)]
    lay = tree_layout(DisconnectivityGraph(e, edges))
    assert lay.leaf_x[0] in (2.0, 3.0)
    _contiguous_subtrees(DisconnectivityGraph(e, edges), lay)
    # A comb (each minimum joins the global one's basin in turn) ends with the global minimum in the middle.
    K = 9
    comb = DisconnectivityGraph(np.arange(K, dtype=float), [(0, k, 10.0 + k) for k in range(1, K)])
    assert tree_layout(comb).leaf_x[0] == (K - 1) / 2


def test_prune_keeps_the_given_minima_and_counts_what_each_leaf_stands_for():
    # a chain 0-1-2-3-4 with rising minima; minimum 3 is shallow (joins 2 just above itself), 4 joins 3
    energy = [0.0, 1.0, 2.0, 2.9, 3.5]
    edges = [(0, 1, 5.0), (1, 2, 4.0), (2, 3, 3.0), (3, 4, 3.6)]
    g = es.DisconnectivityGraph(energy, edges)
    p = g.prune(keep=[0, 2], min_barrier=float("inf"))
    assert sorted(p.ids.tolist()) == [0, 2]
    assert p.merge_energy(0, 2) == g.merge_energy(0, 2) == 5.0
    # 1 joins 2's superbasin first (at 4.0), 3 and 4 too: leaf 2 stands for 2, 3, 4 and 1
    assert p.info["represents"] == {0: 1, 2: 4} and p.info["n_pruned"] == 3
    assert sum(p.info["represents"].values()) == len(g)
