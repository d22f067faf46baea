"""The rotated product landscape (energyscope.surfaces.RotatedProduct): a smooth landscape whose 2^m minima,
m 2^(m-1) index-1 saddles and exact merge tree are known in any dimension (issue 14's test landscape)."""
import numpy as np
import pytest

import energyscope as es
from energyscope.surfaces import (ST_G_MINUS, ST_G_PLUS, ST_G_ZERO, RotatedProduct, rotated_product_minima,
                                  rotated_product_saddles)


@pytest.mark.parametrize("d, m", [(128, 10), (32, 6)])
def test_critical_points_are_exact(d, m):
    s = RotatedProduct(d, m)
    land = es.Landscape(s, dim=d)
    zm, em = rotated_product_minima(s)
    zs, es_, pairs = rotated_product_saddles(s)
    assert zm.shape == (2**m, d) and zs.shape == (m * 2 ** (m - 1), d) and pairs.shape == (m * 2 ** (m - 1), 2)
    rows = np.random.default_rng(0).choice(len(zs), 64, replace=False)
    for z, e in ((zm[rows % len(zm)], em[rows % len(zm)]), (zs[rows], es_[rows])):
        u, g = land.energy_and_grad(z)
        np.testing.assert_allclose(u.numpy(), e, rtol=0, atol=1e-12)
        assert np.abs(g.numpy()).max() < 1e-12
    ev_min, _ = land.hessian_eigh(zm[rows[:16] % len(zm)])
    ev_ts, _ = land.hessian_eigh(zs[rows[:16]])
    assert (ev_min > 0).all() and ((ev_ts < 0).sum(axis=1) == 1).all()
    # every energy distinct, so the merge tree is unique
    assert len(np.unique(np.round(em, 9))) == len(em) and len(np.unique(np.round(es_, 9))) == len(es_)
    # each saddle joins the two minima that differ in its direction, above both
    flip = pairs[:, 0] ^ pairs[:, 1]
    assert ((flip & (flip - 1)) == 0).all() and (es_ > np.maximum(em[pairs[:, 0]], em[pairs[:, 1]])).all()
    tree = es.DisconnectivityGraph(em, np.column_stack([pairs, es_]))
    assert len(tree.merge_edges) == 2**m - 1 and tree.n_components == 1


def test_global_minimum_and_barriers_follow_the_one_dimensional_values():
    s = RotatedProduct(16, 4, rotation_seed=None)
    zm, em = rotated_product_minima(s)
    scale = s.s.numpy()
    assert em.min() == pytest.approx(scale.sum() * ST_G_MINUS, rel=1e-14) and int(np.argmin(em)) == 0
    _, es_, pairs = rotated_product_saddles(s)
    tree = es.DisconnectivityGraph(em, np.column_stack([pairs, es_]))
    # minimum 1 (direction 0 at t+) leaves over its own direction's saddle: barrier s0 (g(t0) - g(t+))
    assert tree.barrier(1, 0) == pytest.approx(scale[0] * (ST_G_ZERO - ST_G_PLUS), rel=1e-12)


# ----------------------------------------------------------------------------------------- the analysis at scale
@pytest.fixture(scope="module")
def product_analysis():
    """analyze() with default settings on the scaled-down landscape (d = 32, 2^6 minima): issue 14's test."""
    s = RotatedProduct(32, 6)
    land = es.Landscape(s, dim=32)
    return s, es.analyze(land, seed=0, masses=False, progress=False)


def test_default_analysis_finds_every_minimum_and_the_exact_tree(product_analysis):
    s, res = product_analysis
    zm, em = rotated_product_minima(s)
    zs, e_ts, pairs = rotated_product_saddles(s)
    from scipy.spatial import cKDTree
    dist, idx = cKDTree(res.minima.z).query(zm)
    assert dist.max() < 1e-5 and np.abs(res.minima.energy[idx] - em).max() < 1e-6
    assert len(res.minima) == 64 and res.minima.coverage.complete
    net = res.network
    assert net.is_connected()
    # every validated transition state is one of the exact saddles, joining the minima that saddle joins
    code = {int(k): int(c) for c, k in enumerate(idx)}          # analysis index -> exact minimum's code
    exact = {(min(a, b), max(a, b)): e for (a, b), e in zip(pairs.tolist(), e_ts)}
    for u, v, data in net.graph.edges(data=True):
        key = tuple(sorted((code[u], code[v])))
        assert key in exact and abs(data["energy"] - exact[key]) < 1e-6
    # the merge tree is the exact one: all 63 merge energies, and the same tree
    true = es.DisconnectivityGraph(em, np.column_stack([pairs, e_ts]))
    np.testing.assert_allclose(np.sort(res.tree.merge_edges[:, 2]), np.sort(true.merge_edges[:, 2]), rtol=0,
                               atol=1e-6)
    mapped = es.DisconnectivityGraph(em, [(code[int(a)], code[int(b)], e) for a, b, e in res.tree.merge_edges])
    assert mapped.same_tree(true, rtol=1e-9)
    # the tree check probed the neighbours' segments and left no segment below the network's barriers
    check = net.info["tree_check"]
    assert check["complete"] and check["n_flagged_left"] == 0 and check["n_probed"] >= 64 * 6 / 2


def test_without_the_tree_check_the_tree_is_wrong_and_the_check_says_so(product_analysis):
    """The first round alone (4 nearest of 6 equidistant neighbours) misses saddles that the tree needs: the check
    is what makes it exact, and when it is switched off nothing claims the tree was checked."""
    s, _ = product_analysis
    land = es.Landscape(s, dim=32)
    m = es.find_minima(land, seed=0, progress=False)
    net = es.connect(land, m, k_probe=0, progress=False)
    assert not net.info["tree_check"]["complete"]
    _, em = rotated_product_minima(s)
    _, e_ts, pairs = rotated_product_saddles(s)
    true = es.DisconnectivityGraph(em, np.column_stack([pairs, e_ts]))
    got = es.disconnectivity(net)
    assert not np.allclose(np.sort(got.merge_edges[:, 2]), np.sort(true.merge_edges[:, 2]), atol=1e-6)


def test_report_prunes_the_drawn_tree_and_pages_the_table(product_analysis, tmp_path):
    _, res = product_analysis
    path = res.write_report(tmp_path / "report.html")
    html = path.read_text()
    assert "Pruned for display: 60 of 64 minima are drawn" in html
    assert 'id="basin-table"' in html and 'data-page="50"' in html and html.count("<tr data-index=") == 64
    assert path.stat().st_size < 10e6
