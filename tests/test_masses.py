"""Basin masses against known answers: Gaussian mixtures whose basin masses equal their weights (to < 1e-4)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from energyscope.landscape import LandscapeError
from energyscope.interpret.masses import (OTHER, BasinMasses, assign_basins, basin_masses, data_mass, importance_mass,
                                mala_mass, sampler_mass, sampler_settings)
from mixture_helpers import MEANS, TAIL, minima_from, mixture_landscape

N_SE = 4.0  # tolerance: 4 Monte-Carlo standard errors (two-sided chance of a false failure ~6e-5 per basin)


def test_importance_sampling_recovers_mixture_weights():
    land, minima, w = mixture_landscape(base=True)
    est = importance_mass(land, minima, n=8192, seed=0, progress=False)
    assert est.method == "importance"
    assert est.other == 0 and est.unresolved == 0
    assert est.mass.sum() == pytest.approx(1.0)
    # the SE comes from the weights; with Kish ESS n_eff it is about sqrt(m(1-m)/n_eff)
    assert est.ess > 500
    np.testing.assert_allclose(est.se, np.sqrt(w * (1 - w) / est.ess), rtol=0.5)
    assert np.all(np.abs(est.mass - w) <= N_SE * est.se + TAIL), (est.mass, est.se)


def test_mala_recovers_mixture_weights_and_is_reproducible():
    land, minima, w = mixture_landscape(base=False)
    est = mala_mass(land, minima, n_chains=16, n_samples=256, seed=3, progress=False)
    assert est.method == "mala"
    assert est.n_samples == 16 * 256 and est.other == 0 and est.unresolved == 0
    assert np.all(np.abs(est.mass - w) <= N_SE * est.se + TAIL), (est.mass, est.se)
    assert np.all(est.se < 0.05)
    acc = np.array(est.info["acceptance"])
    assert np.all((acc > 0.4) & (acc < 0.75))     # tuned towards 0.574
    again = mala_mass(land, minima, n_chains=16, n_samples=256, seed=3, progress=False)
    np.testing.assert_array_equal(est.basin, again.basin)


def test_mala_mixes_without_the_base_form_the_same_as_with_it():
    # the same total U once as E + ||z||²/2 with a base and once as a plain energy: identical MALA chains
    land_b, minima_b, w = mixture_landscape(base=True)
    est = basin_masses(land_b, minima_b, method="mala", which=("equilibrium",), mala={"n_chains": 8,
                       "n_samples": 128}, progress=False).equilibrium
    land, minima, _ = mixture_landscape(base=False)
    ref = mala_mass(land, minima, n_chains=8, n_samples=128, progress=False)
    np.testing.assert_allclose(est.mass, ref.mass, atol=1e-12)


def test_importance_needs_standard_normal_base():
    land, minima, _ = mixture_landscape(base=False)
    with pytest.raises(LandscapeError, match="standard_normal"):
        importance_mass(land, minima, n=16, progress=False)


def test_sampler_with_zero_steps_is_the_base_and_settings_resolve():
    # equal weights, symmetric means: each basin is a 120° sector, so the base N(0, I) puts exactly 1/3 in each
    land, minima, _ = mixture_landscape(base=True, weights=[1 / 3, 1 / 3, 1 / 3], sampler={"steps": 0})
    cfg, defaulted = sampler_settings(land)
    assert cfg == {"steps": 0, "step_size": 0.4, "noise": 1.0} and defaulted == ["step_size", "noise"]
    est = sampler_mass(land, minima, n=6000, seed=0, progress=False)
    assert est.info["defaults_used"] == ["step_size", "noise"]
    assert np.all(np.abs(est.mass - 1 / 3) <= N_SE * est.se)
    # noise-free Langevin is gradient descent: it never leaves the basin it starts in, so the masses are identical
    flow = sampler_mass(land, minima, n=6000, sampler={"steps": 40, "step_size": 0.1, "noise": False}, seed=0,
                        progress=False)
    np.testing.assert_array_equal(flow.basin, est.basin)


def test_data_mass_is_exact_and_other_minima_are_counted_not_dropped():
    land, minima, w = mixture_landscape(base=True)
    two = minima_from(land, minima.z[:2])                     # a set missing the third minimum
    rng = np.random.default_rng(0)
    ref = np.concatenate([minima.z[0] + 0.05 * rng.standard_normal((5, 2)),
                          minima.z[1] + 0.05 * rng.standard_normal((3, 2)),
                          minima.z[2] + 0.05 * rng.standard_normal((2, 2))])
    est = data_mass(land, two, ref, progress=False)
    np.testing.assert_array_equal(est.mass, [0.5, 0.3])
    assert est.other == 0.2 and est.unresolved == 0.0
    assert est.info["n_other"] == 2 and est.info["new_minima_counts"] == [2]
    np.testing.assert_allclose(est.info["new_minima"][0], minima.z[2], atol=1e-3)
    np.testing.assert_array_equal(est.basin[8:], [OTHER, OTHER])


def test_data_far_from_every_minimum_is_flagged():
    land, minima, _ = mixture_landscape(base=True)
    rng = np.random.default_rng(1)
    ref = np.concatenate([m + 0.3 * rng.standard_normal((20, 2)) for m in minima.z] + [[[12.0, 0.0]]])
    est = data_mass(land, minima, ref, progress=False)
    assert est.info["far"] == [60]
    assert est.info["nearest_distance"][60] == pytest.approx(np.linalg.norm([12.0, 0.0] - MEANS[0]), abs=1e-3)


def test_flags_aggregation_and_round_trip():
    land, minima, w = mixture_landscape(base=True, sampler={"steps": 0})
    rng = np.random.default_rng(2)
    ref = np.concatenate([minima.z[0] + 0.1 * rng.standard_normal((60, 2)),
                          minima.z[1] + 0.1 * rng.standard_normal((40, 2))])   # no data in the third basin
    bm = basin_masses(land, minima, reference=ref, n_prior=4096, n_sampler=4096, seed=0, progress=False)
    assert bm.flags.unsupported.tolist() == [False, False, True]
    assert bm.flags.prior_hole.tolist() == [False, False, True]    # 0.2 prior mass, no data
    # the sampler (0 steps = the base) gives each sector about 1/3; the prior gives the deepest basin 0.5
    assert bm.flags.disagree[0]
    assert not bm.flags.prior_miss.any()                          # data 0.6 / 0.4 is not 3x the prior's 0.5 / 0.3
    rows = bm.table()
    assert rows[2]["data_count"] == 0 and rows[0]["data_mass"] == pytest.approx(0.6)

    agg = bm.aggregate([{0, 2}, {1}])
    assert agg.groups == [[0, 2], [1]]
    np.testing.assert_allclose(agg.equilibrium.mass, [bm.equilibrium.mass[[0, 2]].sum(), bm.equilibrium.mass[1]])
    np.testing.assert_allclose(agg.data.mass, [0.6, 0.4])
    assert agg.energy[0] == minima.energy[0]
    assert not agg.flags.unsupported.any()
    # the merged group's SE comes from the same weighted samples, not from adding SEs
    assert agg.equilibrium.se[0] < bm.equilibrium.se[0] + bm.equilibrium.se[2]
    assert np.all(np.abs(agg.equilibrium.mass - [w[0] + w[2], w[1]]) <= N_SE * agg.equilibrium.se + TAIL)
    with pytest.raises(ValueError, match="more than one group"):
        bm.aggregate([{0, 1}, {1, 2}])
    with pytest.raises(ValueError, match="only 3 minima"):
        bm.aggregate([{0, 1, 2, 7}])
    assert bm.aggregate([{1}]).groups == [[1], [0], [2]]   # unmentioned minima become singletons

    text = json.dumps(bm.to_dict(), default=lambda a: a.tolist())
    back = BasinMasses.from_dict(json.loads(text))
    np.testing.assert_array_equal(back.equilibrium.mass, bm.equilibrium.mass)
    np.testing.assert_array_equal(back.data.basin, bm.data.basin)
    np.testing.assert_array_equal(back.flags.prior_hole, bm.flags.prior_hole)
    np.testing.assert_allclose(back.aggregate([{0, 2}, {1}]).equilibrium.se, agg.equilibrium.se)


def test_bad_input_is_named():
    land, minima, _ = mixture_landscape(base=True)
    with pytest.raises(LandscapeError, match=r"shape \(N, 2\)"):
        assign_basins(land, minima, np.zeros((4, 3)), progress=False)
    with pytest.raises(ValueError, match="unknown method"):
        basin_masses(land, minima, method="hmc", progress=False)
    with pytest.raises(LandscapeError, match="reference latents"):
        data_mass(land, minima, progress=False)


def test_auto_falls_back_to_mala_when_importance_ess_is_too_small():
    land, minima, w = mixture_landscape(base=True)
    with pytest.warns(UserWarning, match="effective sample size"):
        bm = basin_masses(land, minima, which=("equilibrium",), n_prior=512, min_ess=10**9,
                          mala={"n_chains": 8, "n_samples": 128}, progress=False)
    eq = bm.equilibrium
    assert eq.method == "mala" and eq.info["importance"]["n_samples"] == 512
    assert np.all(np.abs(eq.mass - w) <= N_SE * eq.se + TAIL)


def test_short_run_update_is_the_pang_form():
    # U = ½ λ ||z||² (a standard-normal base with E = ½ (λ - 1) ||z||²): noise-free steps contract by (1 - s²λ/2)
    import energyscope as es
    from energyscope.interpret.masses import short_run_samples

    lam, s, k = 3.0, 0.3, 7
    land = es.Landscape(lambda z: 0.5 * (lam - 1) * (z * z).sum(1), dim=4, base_prior="standard_normal",
                        sampler={"steps": k, "step_size": s, "noise": False})
    z, info = short_run_samples(land, n=50, seed=5, progress=False)
    np.testing.assert_allclose(z, land.base_samples(50, seed=5) * (1 - 0.5 * s**2 * lam) ** k, rtol=1e-12)
    assert info["defaults_used"] == [] and info["noise"] == 0.0
    # with noise the stationary variance of this linear chain is 1 / (λ (1 - s²λ/4)); after many steps it is reached
    zn, _ = short_run_samples(land, n=4000, sampler={"steps": 200, "noise": True}, seed=0, progress=False)
    var = 1 / (lam * (1 - s**2 * lam / 4))
    assert abs(zn.var() - var) < 4 * var * np.sqrt(2 / zn.size)


def test_data_the_prior_misses_is_flagged():
    land, minima, w = mixture_landscape(base=True)
    assert w.tolist() == [0.5, 0.3, 0.2]
    rng = np.random.default_rng(4)
    ref = np.concatenate([minima.z[0] + 0.1 * rng.standard_normal((20, 2)),
                          minima.z[2] + 0.1 * rng.standard_normal((80, 2))])   # data 0.2 / 0 / 0.8
    bm = basin_masses(land, minima, reference=ref, which=("equilibrium", "data"), n_prior=4096, progress=False)
    np.testing.assert_array_equal(bm.data.mass, [0.2, 0.0, 0.8])
    assert bm.flags.prior_miss.tolist() == [False, False, True]    # 0.8 >= 3 x 0.2, 15 combined SEs apart
    assert bm.flags.prior_hole.tolist() == [False, True, False]    # 0.3 of the prior where there is no data
    assert [r["prior_miss"] for r in bm.table()] == [False, False, True]


def test_importance_ess_from_weights_alone_matches_the_full_estimate():
    from energyscope.interpret.masses import importance_ess, importance_mass
    land, minima, _ = mixture_landscape(base=True)
    full = importance_mass(land, minima, 1024, seed=3, progress=False)
    assert importance_ess(land, 1024, seed=3) == pytest.approx(full.ess, rel=1e-9)


def test_sampler_mass_is_skipped_when_nothing_is_known_about_the_sampler():
    land, minima, _ = mixture_landscape(base=False)
    assert not land.sampler and land.base_prior is None
    bm = basin_masses(land, minima, method="mala", mala={"n_chains": 4, "n_samples": 16, "burn_in": 20},
                      progress=False)
    assert bm.sampler is None and bm.equilibrium is not None
    # asked for explicitly (or known from the checkpoint), it is computed
    bm = basin_masses(land, minima, which=("sampler",), sampler={"steps": 5, "step_size": 0.1}, n_sampler=64,
                      progress=False)
    assert bm.sampler is not None and bm.sampler.n_samples == 64
