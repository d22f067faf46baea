"""find_minima against exactly known minima (Müller–Brown, Styblinski–Tang), and its handling of bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

import energyscope as es
from energyscope.landscape import LandscapeError
from energyscope.search.minima import (Coverage, Minima, chao1, find_minima, group_points, make_starts, minima_from_points,
                                quench)
from energyscope.surfaces import (MULLER_BROWN_MINIMA, MULLER_BROWN_MINIMA_ENERGY, MULLER_BROWN_SADDLES, ST_G_MINUS,
                                  ST_G_PLUS, ST_T_MINUS, ST_T_PLUS, MullerBrown, StyblinskiTang,
                                  styblinski_tang_minima)

# REFERENCE.md: Hessian eigenvalues of the three Müller–Brown minima (3 decimals)
MB_EIGS = np.array([[410.531, 4068.199], [543.836, 3005.396], [221.037, 1479.197]])
# Styblinski–Tang curvature per coordinate: f'' = 6 t² − 16 at t±
ST_CURV = {ST_T_MINUS: 6 * ST_T_MINUS**2 - 16, ST_T_PLUS: 6 * ST_T_PLUS**2 - 16}


@pytest.fixture(scope="module")
def mb():
    return es.Landscape(MullerBrown(), dim=2)


@pytest.fixture(scope="module")
def mb_minima(mb):
    return find_minima(mb, progress=False)            # default settings


def _check_styblinski_tang(m: Minima, d: int) -> None:
    z_ref, e_ref = styblinski_tang_minima(d)
    assert len(m) == 2**d
    dist, idx = cKDTree(z_ref).query(m.z)
    assert dist.max() < 1e-6                                    # every minimum at the exact 1-D critical points
    assert len(set(idx.tolist())) == 2**d                       # and all of them, once each
    np.testing.assert_allclose(m.energy, e_ref[idx], rtol=0, atol=1e-9)
    curv = np.where(np.isclose(m.z, ST_T_MINUS, atol=1e-6), ST_CURV[ST_T_MINUS], ST_CURV[ST_T_PLUS])
    np.testing.assert_allclose(m.hessian_eigenvalues, np.sort(curv, axis=1), rtol=1e-9)
    assert np.all(np.diff(m.energy) >= 0)


# ------------------------------------------------------------------------------------------------ known answers
def test_muller_brown_exactly_three_minima_with_defaults(mb_minima):
    m = mb_minima
    assert len(m) == 3
    np.testing.assert_allclose(m.z, MULLER_BROWN_MINIMA, rtol=0, atol=1e-6)      # sorted by energy: MA, MB, MC
    np.testing.assert_allclose(m.energy, MULLER_BROWN_MINIMA_ENERGY, rtol=0, atol=1e-8)
    np.testing.assert_allclose(m.hessian_eigenvalues, MB_EIGS, rtol=0, atol=1e-3)
    assert m.hits.sum() >= m.stats["n_converged"] and m.hits.min() > 0
    assert m.stats["n_restarts"] == 1024 and m.stats["n_dropped_nonfinite"] == 0
    assert m.coverage.found == 3 and m.coverage.complete and m.coverage.estimated_total == 3
    assert np.all(m.n_flat == 0) and m.flat_vectors is None


def test_styblinski_tang_d6_all_64(tmp_path):
    m = find_minima(es.Landscape(StyblinskiTang(), dim=6), progress=False)
    _check_styblinski_tang(m, 6)


def test_styblinski_tang_d10_all_1024_until_complete():
    land = es.Landscape(StyblinskiTang(), dim=10)
    m = find_minima(land, n_restarts=1024, until_complete=True, seed=0, progress=False)
    _check_styblinski_tang(m, 10)
    assert m.coverage.complete and m.coverage.rounds > 1 and m.stats["stopped"].startswith("complete")
    # rounds grow: 1024, 1024, then each as many as all before it (2048, 4096, ...)
    assert m.coverage.n_restarts == m.stats["n_restarts"] == 1024 * 2 ** (m.coverage.rounds - 1)


def test_the_default_search_adds_rounds_and_says_why_it_stopped():
    land = es.Landscape(StyblinskiTang(), dim=8)                 # 256 minima: one round of 256 cannot find them
    m = find_minima(land, n_restarts=256, seed=0, progress=False)
    _check_styblinski_tang(m, 8)
    assert m.coverage.complete and m.coverage.rounds > 1 and m.stats["stopped"].startswith("complete")
    one = find_minima(land, n_restarts=256, seed=0, until_complete=False, progress=False)
    assert one.coverage.rounds == 1 and not one.coverage.complete and len(one) < 256
    assert one.stats["stopped"] == "one round (until_complete=False)"
    # given starts are used as given: one round unless until_complete=True
    given = find_minima(land, starts=np.zeros((4, 8)), progress=False)
    assert given.coverage.rounds == 1 and given.stats["n_restarts"] == 4


def test_until_complete_respects_the_budget():
    land = es.Landscape(StyblinskiTang(), dim=10)
    m = find_minima(land, n_restarts=200, until_complete=True, max_rounds=2, progress=False)
    assert m.coverage.rounds == 2 and m.stats["n_restarts"] == 400
    assert not m.coverage.complete and m.coverage.estimated_total > len(m)
    assert m.stats["stopped"].startswith("round budget spent: 2 rounds")
    m = find_minima(land, n_restarts=200, until_complete=True, max_restarts=300, progress=False)
    assert m.stats["n_restarts"] == 300 and m.coverage.rounds == 2
    assert m.stats["stopped"].startswith("restart budget spent: 300 restarts")
    m = find_minima(land, n_restarts=200, max_time=1e-9, progress=False)
    assert m.coverage.rounds == 1 and m.stats["stopped"].startswith("time budget spent")


def test_d1():
    land = es.Landscape(StyblinskiTang(), dim=1)
    m = find_minima(land, n_restarts=64, progress=False)
    np.testing.assert_allclose(m.z[:, 0], [ST_T_MINUS, ST_T_PLUS], atol=1e-9)
    np.testing.assert_allclose(m.energy, [ST_G_MINUS, ST_G_PLUS], atol=1e-9)
    assert m.hessian_eigenvalues.shape == (2, 1)
    # a (R,) vector of starts is accepted when d = 1
    m2 = find_minima(land, starts=np.array([-1.0, 0.5, 3.0]), progress=False)
    assert len(m2) == 2 and m2.hits.tolist() == [1, 2]


# ------------------------------------------------------------------------------------------------ validation
def test_flat_direction_is_kept_and_reported():
    mbf = MullerBrown()
    land = es.Landscape(lambda z: mbf(z[:, :2]), dim=3)         # ignores the third latent dimension
    m = find_minima(land, n_restarts=256, progress=False)
    assert len(m) == 3                                          # one minimum per flat valley, not one per restart
    np.testing.assert_allclose(m.z[:, :2], MULLER_BROWN_MINIMA, atol=1e-6)
    assert np.all(m.n_flat == 1) and m.stats["n_flat_minima"] == 3
    np.testing.assert_allclose(m.hessian_eigenvalues[:, 0], 0.0, atol=1e-9)
    np.testing.assert_allclose(m.hessian_eigenvalues[:, 1:], MB_EIGS, atol=1e-3)
    assert m.hits.sum() == 256
    np.testing.assert_allclose(np.abs(m.flat_vectors[:, 0]), [[0, 0, 1]] * 3, atol=1e-12)
    # a point anywhere along a flat valley is assigned to that minimum; off the valley it is not
    pts = np.c_[MULLER_BROWN_MINIMA[[2, 0, 1]], [7.0, -3.0, 0.5]]
    np.testing.assert_array_equal(m.assign(pts), [2, 0, 1])
    assert m.assign(pts + [0.1, 0, 0])[0] == -1
    back = Minima.from_dict(m.to_dict())
    np.testing.assert_array_equal(back.flat_vectors, m.flat_vectors)


def test_saddle_starts_are_pushed_off(mb):
    # both Müller–Brown saddles as starts: the gradient is already ~0 there, so only the Hessian test catches them
    m = find_minima(mb, starts=MULLER_BROWN_SADDLES, progress=False)
    assert m.stats["n_saddles_pushed"] == 2 and m.stats["n_rejected"] == 0
    assert len(m) == 3                                          # S1 -> MA, MC; S2 -> MC, MB
    np.testing.assert_allclose(m.z, MULLER_BROWN_MINIMA, atol=1e-6)
    assert m.hits.tolist() == [1, 1, 2]
    assert np.all(m.hessian_eigenvalues > 0)
    # without push-off a saddle is rejected and counted, never reported as a minimum
    m0 = find_minima(mb, starts=MULLER_BROWN_SADDLES, max_pushoffs=0, progress=False)
    assert len(m0) == 0 and m0.stats["n_rejected"] == 2


def test_styblinski_tang_saddle_start_pushed_both_ways():
    land = es.Landscape(StyblinskiTang(), dim=3)
    from energyscope.surfaces import ST_T_ZERO
    m = find_minima(land, starts=[[ST_T_ZERO, ST_T_MINUS, ST_T_PLUS]], progress=False)
    np.testing.assert_allclose(m.z, [[ST_T_MINUS, ST_T_MINUS, ST_T_PLUS], [ST_T_PLUS, ST_T_MINUS, ST_T_PLUS]],
                               atol=1e-9)


def test_nan_on_part_of_space_is_dropped_and_counted():
    st = StyblinskiTang()

    def energy(z):
        e = st(z)
        return torch.where(z[:, 0] > 1.0, torch.full_like(e, float("nan")), e)

    land = es.Landscape(energy, dim=2)
    m = find_minima(land, n_restarts=256, until_complete=False, progress=False)
    assert m.stats["n_dropped_nonfinite"] > 20                  # the starts (and descents) that met NaN
    assert m.stats["n_converged"] + m.stats["n_dropped_nonfinite"] + m.stats["n_unconverged"] == 256
    assert len(m) == 2 and np.all(np.isfinite(m.energy))        # the two minima with x = t− are still found
    np.testing.assert_allclose(m.z, [[ST_T_MINUS, ST_T_MINUS], [ST_T_MINUS, ST_T_PLUS]], atol=1e-9)


def test_wrong_shaped_energy_output_gives_a_clear_error():
    with pytest.raises(LandscapeError, match="reduction"):
        es.Landscape(lambda z: torch.stack([z[:, 0], z[:, 1], z[:, 0]], 1), dim=2)

    def sometimes_wrong(z):                                     # fine on 2 rows, wrong on larger batches
        e = (z**2).sum(1)
        return e if len(z) <= 2 else e[:-1]

    land = es.Landscape(sometimes_wrong, dim=2)
    with pytest.raises(LandscapeError, match="rows"):
        find_minima(land, n_restarts=16, progress=False)


def test_dropped_descents_keep_the_search_incomplete_but_a_fruitless_round_ends_it():
    st = StyblinskiTang()

    def energy(z):
        e = st(z)
        return torch.where(z[:, 0] > 1.0, torch.full_like(e, float("nan")), e)

    land = es.Landscape(energy, dim=2, smoothness="smooth")
    m = find_minima(land, n_restarts=128, seed=0, progress=False)
    assert len(m) == 2 and m.stats["n_dropped_nonfinite"] > 10 and not m.coverage.complete
    # every minimum seen twice or more and round 2 found none new: more restarts would meet the NaN region again
    assert m.coverage.rounds == 2 and m.stats["n_restarts"] == 256
    assert "found none new" in m.stats["stopped"] and "not complete" in m.stats["stopped"]


def test_unconverged_rows_are_counted(mb):
    with pytest.warns(UserWarning, match="did not converge"):
        m = find_minima(mb, n_restarts=64, max_iter=2, until_complete=False, progress=False)
    assert m.stats["n_unconverged"] > 0
    assert m.stats["n_unconverged"] + m.stats["n_converged"] + m.stats["n_dropped_nonfinite"] == 64


def test_energy_unbounded_below_gives_no_minima_and_a_warning():
    land = es.Landscape(lambda z: -(z**2).sum(1), dim=2)
    with pytest.warns(UserWarning, match="bounded below"):
        m = find_minima(land, n_restarts=16, max_iter=50, progress=False)
    # two fruitless rounds, then the search stops (it does not spend its whole budget on a runaway energy)
    assert len(m) == 0 and m.stats["n_unconverged"] == m.stats["n_restarts"] == 32 and not m.coverage.complete


def test_same_seed_same_result_different_seed_differs(mb):
    a = find_minima(mb, n_restarts=128, seed=3, progress=False)
    b = find_minima(mb, n_restarts=128, seed=3, progress=False)
    c = find_minima(mb, n_restarts=128, seed=4, progress=False)
    for key in ("z", "energy", "hits", "hessian_eigenvalues"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.hits.tolist() != c.hits.tolist()


def test_progress_bar_and_quiet(mb, capsys):
    find_minima(mb, n_restarts=32, progress=True)
    out = capsys.readouterr()
    assert "round 1" in out.err + out.out
    find_minima(mb, n_restarts=32, progress=False)
    out = capsys.readouterr()
    assert out.err == "" and out.out == ""


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("starts", [np.zeros((4, 3)), np.zeros(4), np.zeros((0, 2)), np.zeros((2, 2, 1))])
def test_wrong_shaped_starts(mb, starts):
    with pytest.raises(ValueError, match="starts"):
        find_minima(mb, starts=starts, progress=False)


@pytest.mark.parametrize("bounds, msg", [((0.0,), "pair"), ((np.zeros(3), np.ones(3)), "shape"),
                                         ((1.0, 0.0), "lo < hi"), ((0.0, np.inf), "finite")])
def test_bad_bounds(mb, bounds, msg):
    with pytest.raises(ValueError, match=msg):
        find_minima(mb, bounds=bounds, progress=False)


def test_bad_sources_and_method(mb):
    with pytest.raises(ValueError, match="source"):
        find_minima(mb, sources=("prior", "data"), progress=False)
    with pytest.raises(ValueError, match="no usable start source"):
        find_minima(mb, sources=("reference",), progress=False)
    with pytest.raises(ValueError, match="method"):
        find_minima(mb, method="newton", progress=False)


# ------------------------------------------------------------------------------------------------ starts
def test_starts_from_prior_reference_and_box():
    ref = np.random.default_rng(1).normal(size=(50, 2)) * 0.1 + 5.0
    land = es.Landscape(lambda z: (z**2).sum(1), dim=2, base_prior="standard_normal", reference=ref)
    z, by = make_starts(land, 120, np.random.default_rng(0), bounds=(-1.0, np.array([2.0, 3.0])))
    assert z.shape == (120, 2)
    assert by == {"prior": 40, "reference": 40, "box": 40}
    box = z[80:]
    assert np.all(box >= -1.0) and np.all(box <= [2.0, 3.0])
    assert all(any(np.array_equal(r, q) for q in ref) for r in z[40:80])     # reference rows, as they are
    assert len(np.unique(z[40:80], axis=0)) == 40                            # drawn without replacement
    # more reference starts than reference rows: the rest go to the other sources
    z, by = make_starts(land, 300, np.random.default_rng(0))
    assert by["reference"] == 50 and sum(by.values()) == 300


def test_minima_from_reference_starts():
    st = StyblinskiTang()
    ref = np.array([[ST_T_PLUS, ST_T_PLUS]]) + np.random.default_rng(0).normal(size=(40, 2)) * 0.05
    land = es.Landscape(st, dim=2, reference=ref)
    m = find_minima(land, n_restarts=40, sources=("reference",), progress=False)
    assert len(m) == 1 and m.hits.tolist() == [40]
    np.testing.assert_allclose(m.z[0], [ST_T_PLUS, ST_T_PLUS], atol=1e-9)


# ------------------------------------------------------------------------------------------------ pieces
def test_chao1_on_hand_made_hits():
    # S = 6, f1 = 3, f2 = 2, n = 12: 6 + (11/12) * 9 / 4
    assert chao1([1, 1, 1, 2, 2, 5]) == pytest.approx(6 + 11 / 12 * 9 / 4)
    # f2 = 0: bias-corrected 3 + (4/5) * 2 * 1 / 2
    assert chao1([1, 1, 3]) == pytest.approx(3.8)
    assert chao1([4, 3, 5]) == 3 and chao1([]) == 0
    c = Coverage.from_hits([1, 1, 1, 2, 2, 5], n_restarts=12)
    assert (c.found, c.singletons, c.doubletons) == (6, 3, 2) and not c.complete
    assert Coverage.from_hits([2, 3], 5).complete


def test_group_points_needs_distance_and_energy():
    z = np.array([[0.0, 0.0], [1e-4, 0.0], [2e-4, 0.0], [0.0, 1e-4], [5.0, 5.0]])
    e = np.array([1.0, 1.0, 1.0, 2.0, 1.0])             # row 3 is close in space but not in energy
    lab = group_points(z, e, np.full(5, 0.6e-4), np.full(5, 1e-6))
    assert lab[0] == lab[1] == lab[2]                    # chained within the radius
    assert len({lab[0], lab[3], lab[4]}) == 3
    # many exact duplicates still end up in one group
    zz = np.repeat(z[:1], 500, axis=0)
    assert len(np.unique(group_points(zz, np.zeros(500), np.full(500, 1e-9), np.full(500, 1e-9)))) == 1


def test_minima_from_points_and_assign(mb, mb_minima):
    rng = np.random.default_rng(5)
    res = quench(mb, rng.uniform(-1.5, 1.0, size=(100, 2)) + [0, 0.5])
    m = minima_from_points(mb, res.z.numpy())
    np.testing.assert_allclose(m.z, mb_minima.z, atol=1e-9)
    # quenched points (default gtol) are assigned to the minimum they ended in
    idx = mb_minima.assign(res.z.numpy())
    np.testing.assert_allclose(mb_minima.z[idx], res.z.numpy(), atol=mb_minima.dedup_tol)
    assert np.all(idx >= 0)
    assert mb_minima.assign(np.array([[3.0, 3.0]]))[0] == -1


def test_to_dict_round_trip_is_json_and_numpy(mb_minima, tmp_path):
    d = mb_minima.to_dict()
    arrays = {k: v for k, v in d.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in d.items() if not isinstance(v, np.ndarray)}
    (tmp_path / "m.json").write_text(json.dumps(rest))
    np.savez(tmp_path / "m.npz", **arrays)
    back = dict(json.loads((tmp_path / "m.json").read_text()))
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        back.update({k: f[k] for k in f.files})
    m2 = Minima.from_dict(back)
    for key in ("z", "energy", "hits", "hessian_eigenvalues", "grad_norm"):
        np.testing.assert_array_equal(getattr(m2, key), getattr(mb_minima, key))
    assert m2.coverage == mb_minima.coverage and m2.flat_tol == mb_minima.flat_tol
    assert m2.stats["n_restarts"] == 1024


@pytest.mark.parametrize("kind", ["smooth", "piecewise"])
def test_descents_in_chunks_give_the_same_result(monkeypatch, kind):
    """Descents are chunked to a memory budget (QUENCH_BYTES); every row is independent, so chunks change nothing."""
    import energyscope.search.minima as minima_module
    from energyscope.search.minima import quench, quench_chunk_rows
    st = StyblinskiTang()
    if kind == "smooth":
        land = es.Landscape(st, dim=3)
    else:
        land = es.Landscape(lambda z: st(z) + 0.5 * z.abs().sum(1), dim=3, smoothness="piecewise")
    z0 = np.random.default_rng(0).uniform(-4, 4, (37, 3))
    whole = quench(land, z0)
    monkeypatch.setattr(minima_module, "QUENCH_BYTES", 32 * 8 * 3 * 10)          # 10 rows per chunk
    assert quench_chunk_rows(3) == 10
    parts = quench(land, z0)
    for f in ("z", "energy", "converged", "finite", "n_iter"):
        np.testing.assert_array_equal(getattr(parts, f).numpy(), getattr(whole, f).numpy(), err_msg=f)
    assert parts.n_evals == whole.n_evals and parts.converged.all()
