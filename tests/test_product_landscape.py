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
