"""NEB: tangents, batching, exact saddles on analytic surfaces, splitting at intermediate minima, bad input."""
import numpy as np
import pytest
import torch

import energyscope as es
from energyscope.search.neb import NEBError, neb, profile_dips, relax_bands, tangents
from energyscope.surfaces import (MULLER_BROWN_MINIMA, MULLER_BROWN_SADDLES, MULLER_BROWN_SADDLES_ENERGY, ST_G_MINUS,
                                  ST_G_PLUS, ST_G_ZERO, ST_T_MINUS, ST_T_PLUS, ST_T_ZERO, MullerBrown, StyblinskiTang)


class TripleWell(torch.nn.Module):
    """E = x²(x²-4)² + 5 (y - 0.3 sin x)²: minima at x = -2, 0, 2 on the curved valley y = 0.3 sin x (all E = 0), so
    the straight line between the outer two runs through the middle one; saddles at x = ±2/√3 with E = 256/27."""

    def forward(self, z):
        x, y = z[:, 0], z[:, 1]
        return x**2 * (x**2 - 4) ** 2 + 5 * (y - 0.3 * torch.sin(x)) ** 2


def triple_well_point(x):
    return np.array([x, 0.3 * np.sin(x)])


@pytest.fixture(scope="module")
def mb():
    return es.Landscape(MullerBrown(), dim=2)


def test_tangent_flat_triple_and_coincident_images_give_no_nan():
    X = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 0.0], [3.0, 1.0]]], dtype=torch.float64)
    E = torch.zeros(1, 5, dtype=torch.float64)  # all equal: every interior triple is flat
    tau = tangents(X, E)
    assert torch.isfinite(tau).all()
    assert torch.allclose(tau.norm(dim=-1), torch.ones(1, 3, dtype=torch.float64))
    assert torch.allclose(tau[0, 0], torch.tensor([1.0, 0.0], dtype=torch.float64))  # bisector of two +x segments
    # all images on one point: falls back to the end-to-end direction
    Y = torch.zeros(1, 4, 2, dtype=torch.float64)
    Y[0, -1] = torch.tensor([0.0, 2.0])
    Y[0, 1:3] = 0.0
    tau = tangents(Y, torch.zeros(1, 4, dtype=torch.float64))
    assert torch.isfinite(tau).all()


def test_tangent_is_uphill_segment_on_monotone_stretch():
    X = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]], dtype=torch.float64)
    E = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64)
    assert torch.allclose(tangents(X, E)[0, 0], torch.tensor([0.0, 1.0], dtype=torch.float64))
    E = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(tangents(X, E)[0, 0], torch.tensor([1.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("pair,saddle", [((0, 2), 0), ((2, 1), 1)])
def test_muller_brown_neb_finds_published_saddles(mb, pair, saddle):
    a, b = pair
    path = neb(mb, MULLER_BROWN_MINIMA[a], MULLER_BROWN_MINIMA[b])
    assert path.converged and path.saddle_validated
    assert abs(path.saddle_energy - MULLER_BROWN_SADDLES_ENERGY[saddle]) < 1e-8
    assert np.abs(path.saddle_z - MULLER_BROWN_SADDLES[saddle]).max() < 1e-6
    assert path.info["saddle"]["negative_eigenvalue"] < 0
    # the band runs from start to end and its highest image is near the saddle
    assert np.allclose(path.z[0], MULLER_BROWN_MINIMA[a]) and np.allclose(path.z[-1], MULLER_BROWN_MINIMA[b])
    assert np.max(path.energy) <= path.saddle_energy + 1e-9
    assert np.max(path.energy) > path.saddle_energy - 0.05 * (path.saddle_energy - path.energy.min())
    assert path.n_evals > 0


def test_muller_brown_ma_to_mb_is_split_at_mc(mb):
    path = neb(mb, MULLER_BROWN_MINIMA[0], MULLER_BROWN_MINIMA[1])
    inter = path.info["intermediate_minima"]
    assert inter.shape == (1, 2)
    assert np.abs(inter[0] - MULLER_BROWN_MINIMA[2]).max() < 1e-6
    assert len(path.info["pieces"]) == 2
    # the higher of the two saddles is the path's saddle: S1
    assert abs(path.saddle_energy - MULLER_BROWN_SADDLES_ENERGY[0]) < 1e-8


def test_relax_bands_one_energy_call_per_step_for_all_bands():
    land = es.Landscape(StyblinskiTang(), dim=3)
    z_minus = np.full(3, ST_T_MINUS)
    ends = np.array([[ST_T_PLUS, ST_T_MINUS, ST_T_MINUS], [ST_T_MINUS, ST_T_PLUS, ST_T_MINUS],
                     [ST_T_MINUS, ST_T_MINUS, ST_T_PLUS], [ST_T_PLUS, ST_T_PLUS, ST_T_MINUS]])
    starts = np.tile(z_minus, (4, 1))
    calls0 = land.n_energy_calls
    res = relax_bands(land, starts, ends, 11, curvature=np.full(4, 35.0))
    n_calls = land.n_energy_calls - calls0
    assert all(r.converged for r in res[:3])
    # 2 endpoint calls, then one call per step (+1 for the final evaluation) covering every active band
    assert n_calls == 2 + max(r.n_iter for r in res) + 1
    for r in res:
        assert r.z.shape == (11, 3) and np.isfinite(r.energy).all()


@pytest.mark.parametrize("coord", [0, 2])
def test_styblinski_tang_one_coordinate_saddle_exact(coord):
    d = 3
    land = es.Landscape(StyblinskiTang(), dim=d)
    za = np.array([ST_T_MINUS, ST_T_PLUS, ST_T_MINUS])
    zb = za.copy()
    zb[coord] = ST_T_PLUS if za[coord] == ST_T_MINUS else ST_T_MINUS
    path = neb(land, za, zb)
    expect = za.copy()
    expect[coord] = ST_T_ZERO
    e_expect = sum(ST_G_ZERO if k == coord else (ST_G_MINUS if za[k] < 0 else ST_G_PLUS) for k in range(d))
    assert path.saddle_validated
    assert abs(path.saddle_energy - e_expect) < 1e-8
    assert np.abs(path.saddle_z - expect).max() < 1e-8


def test_band_through_intermediate_minimum_is_split_and_minimum_added():
    land = es.Landscape(TripleWell(), dim=2)
    za, zb = triple_well_point(-2.0), triple_well_point(2.0)
    # the straight line really runs through the middle minimum
    assert np.allclose(0.5 * (za + zb), triple_well_point(0.0))
    path = neb(land, za, zb)
    inter = path.info["intermediate_minima"]
    assert inter.shape == (1, 2)
    assert np.abs(inter[0] - triple_well_point(0.0)).max() < 1e-6
    pieces = path.info["pieces"]
    assert len(pieces) == 2 and all(p.saddle_validated for p in pieces)
    for p, x in zip(pieces, (-2 / np.sqrt(3), 2 / np.sqrt(3))):
        assert abs(p.saddle_energy - 256 / 27) < 1e-8
        assert np.abs(p.saddle_z - triple_well_point(x)).max() < 1e-6
    # without splitting, the single band's climbing image sits on one of the two humps
    whole = neb(land, za, zb, split=False, refine=False)
    assert "pieces" not in whole.info and abs(whole.path_max_energy - 256 / 27) < 0.5


def test_profile_dips_finds_interior_minima_only():
    e = np.array([0.0, 2.0, 5.0, 3.0, 1.0, 3.0, 6.0, 2.0, -1.0])
    assert profile_dips(e, depth=0.1).tolist() == [4]
    assert profile_dips(np.array([0.0, 1.0, 2.0, 1.0, 0.0]), 0.1).size == 0
    assert profile_dips(np.array([0.0, 1.0, 0.999, 1.0, 0.0]), 0.1).size == 0  # too shallow


def test_identical_and_bad_endpoints_raise_clear_errors(mb):
    with pytest.raises(NEBError, match="identical"):
        neb(mb, MULLER_BROWN_MINIMA[0], MULLER_BROWN_MINIMA[0])
    with pytest.raises(NEBError, match="shape"):
        neb(mb, np.zeros(3), MULLER_BROWN_MINIMA[0])
    with pytest.raises(NEBError, match="non-finite"):
        neb(mb, np.array([np.nan, 0.0]), MULLER_BROWN_MINIMA[0])


class HoleyWell(torch.nn.Module):
    """(x² - 1)² + y², but NaN in the strip |x| < 0.2 that every path between the minima must cross."""

    def forward(self, z):
        x, y = z[:, 0], z[:, 1]
        e = (x**2 - 1) ** 2 + y**2
        return torch.where(x.abs() < 0.2, torch.full_like(e, float("nan")), e)


def test_band_meeting_nan_is_reported_not_crashed():
    land = es.Landscape(HoleyWell(), dim=2, reference=np.random.default_rng(0).normal(size=(64, 2)) + [1, 0])
    path = neb(land, [-1.0, 0.0], [1.0, 0.0])
    assert not path.converged
    assert "non-finite" in path.info["reason"]
    assert not path.saddle_validated


def test_es_neb_is_callable_after_submodule_import(mb):
    import energyscope.search.neb  # noqa: F401 - binds the package attribute to the module
    p = es.neb(mb, MULLER_BROWN_MINIMA[2], MULLER_BROWN_MINIMA[1])
    assert isinstance(p, es.Path) and p.saddle_validated


def test_relax_bands_stop_at_dip_stops_a_band_through_an_intermediate_minimum_early(mb):
    # MA-MB runs through MC: with stop_at_dip the band stops before climbing, with an interior image below both
    # neighbours; a band without a dip (MA-MC) is unaffected and climbs to convergence as without the option
    ma, mb_, mc = MULLER_BROWN_MINIMA
    starts, ends = np.array([ma, ma]), np.array([mb_, mc])
    plain = relax_bands(mb, starts, ends, 9)
    early = relax_bands(mb, starts, ends, 9, stop_at_dip=True)
    assert plain[0].converged and plain[0].climbing
    assert not early[0].converged and not early[0].climbing
    assert early[0].reason.startswith("interior minimum") and early[0].n_iter < plain[0].n_iter
    e = early[0].energy
    assert any(e[i] < e[i - 1] and e[i] < e[i + 1] for i in range(1, len(e) - 1))
    assert early[1].converged and early[1].n_iter == plain[1].n_iter
    np.testing.assert_allclose(early[1].z, plain[1].z, rtol=0, atol=0)
