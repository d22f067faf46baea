"""Saddle refinement (eigenvector following) and validation against known stationary points."""
import numpy as np
import pytest

import energyscope as es
from energyscope.search.book import MinimaBook, default_match_tol
from energyscope.search.minima import Minima
from energyscope.search.saddles import find_saddles, refine_saddles
from energyscope.surfaces import (MULLER_BROWN_MINIMA, MULLER_BROWN_MINIMA_ENERGY, MULLER_BROWN_SADDLES,
                                  MULLER_BROWN_SADDLES_ENERGY, ST_T_MINUS, ST_T_PLUS, ST_T_ZERO, MullerBrown,
                                  StyblinskiTang, styblinski_tang_minima)


def book_for(land, z, e):
    ev = land.hessian_eigh(z)[0]
    m = Minima(z=np.asarray(z), energy=np.asarray(e), hits=np.ones(len(z), dtype=int), hessian_eigenvalues=ev)
    return MinimaBook(m, default_match_tol(land, m))


@pytest.fixture(scope="module")
def mb():
    return es.Landscape(MullerBrown(), dim=2)


def test_refine_converges_to_muller_brown_saddles_from_offsets(mb):
    rng = np.random.default_rng(0)
    starts = np.repeat(MULLER_BROWN_SADDLES, 4, axis=0) + 0.03 * rng.standard_normal((8, 2))
    res = refine_saddles(mb, starts)
    assert res.converged.all()
    target = np.repeat(MULLER_BROWN_SADDLES, 4, axis=0)
    assert np.abs(res.z - target).max() < 1e-9
    assert np.abs(res.energy - np.repeat(MULLER_BROWN_SADDLES_ENERGY, 4)).max() < 1e-9
    # published eigenvalues −750.863, 490.241 (S1) and −735.247, 510.887 (S2)
    assert np.allclose(res.eigenvalues[0], [-750.863, 490.241], atol=1e-3)
    assert np.allclose(res.eigenvalues[4], [-735.247, 510.887], atol=1e-3)
    # the returned mode is the unit eigenvector of the negative eigenvalue
    h = mb.hessian(res.z[:1]).numpy()[0]
    assert np.allclose(h @ res.mode[0], res.eigenvalues[0, 0] * res.mode[0], atol=1e-6)


def test_validation_accepts_true_saddles_and_reports_minima_reached(mb):
    book = book_for(mb, MULLER_BROWN_MINIMA, MULLER_BROWN_MINIMA_ENERGY)
    recs = find_saddles(mb, MULLER_BROWN_SADDLES + 0.01, book)
    assert [r.valid for r in recs] == [True, True]
    assert sorted(recs[0].minima) == [0, 2] and sorted(recs[1].minima) == [1, 2]
    assert len(book) == 3  # nothing new
    assert all(r.negative_eigenvalue < 0 and r.reason == "" for r in recs)


def test_validation_rejects_minimum_and_index_two_point():
    land = es.Landscape(StyblinskiTang(), dim=2)
    z, e = styblinski_tang_minima(2)
    book = book_for(land, z, e)
    # stationary points that are not index-1 saddles: the maximum (t0, t0) (index 2) and a minimum (index 0)
    starts = np.array([[ST_T_ZERO, ST_T_ZERO], [ST_T_MINUS, ST_T_MINUS]])
    recs = find_saddles(land, starts, book)
    assert recs[0].converged and not recs[0].valid and "2 negative" in recs[0].reason
    assert recs[1].converged and not recs[1].valid and "0 negative" in recs[1].reason
    # from near the maximum, eigenvector following walks down the second negative mode to a true index-1 saddle
    rec = find_saddles(land, np.array([[ST_T_ZERO + 1e-3, ST_T_ZERO - 1e-3]]), book)[0]
    assert rec.valid and (rec.eigenvalues < 0).sum() == 1
    assert np.isclose(rec.z, ST_T_ZERO).sum() == 1 and np.isclose(rec.z, ST_T_PLUS).sum() == 1


def test_new_minimum_reached_by_push_off_is_added():
    land = es.Landscape(StyblinskiTang(), dim=2)
    z, e = styblinski_tang_minima(2)
    book = book_for(land, z[:1], e[:1])  # only (t-, t-) known
    rec = find_saddles(land, np.array([[ST_T_ZERO + 0.02, ST_T_MINUS]]), book)[0]
    assert rec.valid
    assert len(book) == 2
    assert np.abs(book.z[1] - [ST_T_PLUS, ST_T_MINUS]).max() < 1e-7
    assert sorted(rec.minima) == [0, 1]
    m = book.to_minima()
    assert len(m) == 2 and m.stats["n_added"] == 1 and np.allclose(m.z[0], z[0])


def test_refinement_in_chunks_gives_the_same_saddles(monkeypatch):
    """Chunking to the Hessian memory budget changes nothing: the same points, energies and eigenvalues."""
    import energyscope.landscape as landscape_module
    from energyscope.search.saddles import refine_chunk_rows, refine_saddles
    from energyscope.surfaces import RotatedProduct, rotated_product_saddles
    s = RotatedProduct(16, 3)
    land = es.Landscape(s, dim=16)
    zs, e_ts, _ = rotated_product_saddles(s)
    z0 = zs + 0.02 * np.random.default_rng(0).normal(size=zs.shape)
    whole = refine_saddles(land, z0)
    monkeypatch.setattr(landscape_module, "HESSIAN_BYTES", 6 * 8 * 16 * 16 * 5)    # 5 rows per chunk
    assert refine_chunk_rows(16) == 5 and len(z0) > 5
    parts = refine_saddles(land, z0)
    np.testing.assert_allclose(parts.z, whole.z, rtol=0, atol=1e-12)
    np.testing.assert_allclose(parts.energy, e_ts, rtol=0, atol=1e-9)
    assert parts.converged.all() and parts.n_hessians == whole.n_hessians
