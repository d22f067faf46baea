"""Kinetics on transition networks: agreement with PyGT and deeptime on the same networks, numerical stability over
rates of 10⁻³⁰⁰ … 1, and the Langevin rates on the triple-well against an exact grid solve of the Fokker–Planck
generator."""
import numpy as np
import pytest

import energyscope as es
from energyscope.io.pathsample import read_pathsample, write_pathsample
from energyscope.kinetics import KineticsError, first_passage_times
from energyscope.kinetics.rates import RateNetwork
from energyscope.surfaces import KinkProduct, MullerBrown, TripleWell
from kinetics_helpers import grid_kinetics, triple_well_np, write_random_pathsample

RTOL = 1e-8
DEEP_A = (-1.04805499, -0.0420936663)  # the triple well's deep minima (to 1e-8)
DEEP_B = (1.04805499, -0.0420936663)


def pygt():
    return pytest.importorskip("PyGT", reason="PyGT (pip install pygt, in the test extras) is not installed")


def deeptime_analysis():
    return pytest.importorskip("deeptime.markov.tools.analysis",
                               reason="deeptime (pip install deeptime, in the test extras) is not installed")


def pygt_reference(directory, T):
    """PyGT's own reading of min.data / ts.data: branching matrix, waiting times, rates K[i, j] = k(j → i), and the
    Boltzmann distribution of its harmonic free energies."""
    PyGT = pygt()
    B, K, tau, N, u, s, Emin, retained = PyGT.io.load_ktn(str(directory), beta=1.0 / T)
    assert retained.all()
    log_pi = -u / T + s
    pi = np.exp(log_pi - log_pi.max())
    return PyGT, B, K.toarray(), tau, pi / pi.sum()


def uniformized(rate_matrix):
    """Discrete chain P = I + L/Λ with the same first-passage probabilities, and its step length 1/Λ."""
    L = rate_matrix - np.diag(rate_matrix.sum(axis=1))
    lam = 1.05 * float(-np.diag(L).min())
    return np.eye(len(L)) + L / lam, 1.0 / lam


@pytest.fixture(scope="module")
def random_ktn(tmp_path_factory):
    return write_random_pathsample(tmp_path_factory.mktemp("ktn"), n_minima=30, n_extra=25, spread=8.0, seed=3)


@pytest.fixture(scope="module")
def triple_well():
    land = es.Landscape(TripleWell(), dim=2)
    minima = es.find_minima(land, n_restarts=256, seed=0, bounds=(-2, 2.5), progress=False)
    network = es.connect(land, minima, progress=False)
    assert len(minima) == 3 and network.n_transition_states == 3 and network.is_connected()
    return land, network


# ------------------------------------------------------------------------------------------- PyGT and deeptime
@pytest.mark.parametrize("T", [1.0, 0.5])
def test_pathsample_network_agrees_with_pygt(random_ktn, T):
    PyGT, B, K, tau, pi = pygt_reference(random_ktn, T)
    kin = es.kinetics(read_pathsample(random_ktn), temperature=T, dynamics="harmonic")
    np.testing.assert_allclose(kin.rate_matrix(), K.T, rtol=RTOL, atol=0)
    np.testing.assert_allclose(kin.stationary, pi, rtol=RTOL)
    A, Bset = [0, 1, 2], list(range(20, 30))
    a_sel, b_sel = np.isin(np.arange(30), A), np.isin(np.arange(30), Bset)
    ref = PyGT.stats.compute_rates(a_sel, b_sel, B, tau, pi, MFPTonly=False)
    assert kin.mfpt(A, Bset) == pytest.approx(ref["MFPTBA"], rel=RTOL)
    assert kin.mfpt(Bset, A) == pytest.approx(ref["MFPTAB"], rel=RTOL)
    assert kin.rate(A, Bset) == pytest.approx(ref["kFBA"], rel=RTOL)
    assert kin.rate(Bset, A) == pytest.approx(ref["kFAB"], rel=RTOL)
    # PyGT's fully graph-transformed route (the one it takes for ill-conditioned networks) gives the same
    ref_gt = PyGT.stats.compute_rates(a_sel, b_sel, B, tau, pi, fullGT=True)
    assert kin.mfpt(A, Bset) == pytest.approx(ref_gt["MFPTBA"], rel=RTOL)


def test_pathsample_network_agrees_with_deeptime(random_ktn):
    an = deeptime_analysis()
    kin = es.kinetics(read_pathsample(random_ktn), temperature=1.0, dynamics="harmonic")
    P, dt = uniformized(kin.rate_matrix())
    A, B = [4, 7], [11, 12, 13]
    np.testing.assert_allclose(kin.committor(A, B), an.committor(P, A, B, forward=True), rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(kin.stationary, an.stationary_distribution(P), rtol=1e-8)
    mfpt = an.mfpt(P, B, origin=A, tau=dt, mu=kin.stationary)
    assert kin.mfpt(A, B) == pytest.approx(float(mfpt), rel=RTOL)
    # relaxation times: deeptime's implied timescales of the uniformized chain, converted to continuous time
    ev = np.sort(np.linalg.eigvals(P).real)[::-1][1:4]
    np.testing.assert_allclose(kin.relaxation_times[:3], dt / (1 - ev), rtol=1e-7)


def test_energyscope_networks_agree_with_pygt_and_deeptime(tmp_path, triple_well):
    """Networks energyscope produces: written as PATHSAMPLE files, PyGT reads the same rates and first-passage times
    (harmonic TST); the Langevin network's first passage agrees with deeptime."""
    land, network = triple_well
    an = deeptime_analysis()
    write_pathsample(network, tmp_path)
    PyGT, B, K, tau, pi = pygt_reference(tmp_path, 0.5)
    kin = es.kinetics(network, temperature=0.5, dynamics="harmonic")
    np.testing.assert_allclose(kin.rate_matrix(), K.T, rtol=RTOL)
    a_sel, b_sel = np.array([True, False, True]), np.array([False, True, False])
    with pytest.raises(NotImplementedError):  # PyGT needs two states on one side; compare with deeptime instead
        PyGT.stats.compute_rates(np.eye(3, dtype=bool)[0], np.eye(3, dtype=bool)[1], B, tau, pi)
    ref = PyGT.stats.compute_rates(a_sel, b_sel, B.toarray(), tau, pi, MFPTonly=False)  # (sparse fails at N = 3)
    assert kin.mfpt([0, 2], [1]) == pytest.approx(ref["MFPTBA"], rel=RTOL)
    assert kin.rate([0, 2], [1]) == pytest.approx(ref["kFBA"], rel=RTOL)
    for approx in ("harmonic", "path"):
        lk = es.kinetics(network, temperature=0.5, landscape=land, approximation=approx)
        P, dt = uniformized(lk.rate_matrix())
        assert lk.mfpt([0], [1]) == pytest.approx(float(an.mfpt(P, [1], origin=[0], tau=dt)), rel=RTOL)
        np.testing.assert_allclose(lk.committor([0], [1]), an.committor(P, [0], [1]), rtol=RTOL)


def test_muller_brown_network_detailed_balance_and_partition_mfpt():
    land = es.Landscape(MullerBrown(), dim=2)
    m = es.find_minima(land, n_restarts=128, seed=0, bounds=((-1.5, -0.5), (1.2, 2.0)), progress=False)
    net = es.connect(land, m, progress=False)
    kin = es.kinetics(net, temperature=20.0, landscape=land)
    assert kin.approximation == "path" and not any(kin.path_reasons)
    R, pi = kin.rate_matrix(), kin.stationary
    np.testing.assert_allclose(pi[:, None] * R, (pi[:, None] * R).T, rtol=1e-12, atol=0)
    M = kin.mfpt_matrix([[0], [1, 2]])
    assert M[0, 0] == 0 and M[0, 1] == pytest.approx(kin.mfpt([0], [1, 2]))


# ------------------------------------------------------------------------------------------- numerical range
def chain_kinetics(k01, k10, k12, k21):
    """A chain 0 – 1 – 2 with the given rates (weights put in detailed balance), built from log rates."""
    l01, l10, l12, l21 = np.log([k01, k10, k12, k21])
    lw = np.array([0.0, l01 - l10, l01 - l10 + l12 - l21])  # Z1/Z0 = k01/k10, Z2/Z1 = k12/k21
    rn = RateNetwork(lw, [(0, 1), (1, 2)], [l01 + lw[0], l12 + lw[1]])
    return es.Kinetics(rn, rn.log_flux, 1.0, "harmonic", "harmonic")


def test_first_passage_is_exact_over_300_decades():
    """Rates from 1 down to 1e-300: graph transformation keeps full precision (a linear solve of the generator
    would lose all of it). The birth-death chain's first-passage times and committor are known exactly."""
    k01, k10, k12, k21 = 1e-300, 1.0, 1e-5, 1e-3
    kin = chain_kinetics(k01, k10, k12, k21)
    T1 = (1 + k10 / k01) / k12  # exact mean first-passage times to minimum 2
    T0 = 1 / k01 + T1
    assert np.isfinite(T0) and T0 > 1e300
    assert kin.mfpt([0], [2]) == pytest.approx(T0, rel=1e-12)
    assert kin.mfpt([1], [2]) == pytest.approx(T1, rel=1e-12)
    assert kin.mfpt([2], [0]) == pytest.approx(1 / k21 + (1 + k12 / k21) / k10, rel=1e-12)
    assert kin.rate([2], [0]) == pytest.approx(1 / kin.mfpt([2], [0]), rel=1e-12)
    tiny = chain_kinetics(1e-3, 1.0, 1e-250, 1e-3)
    assert tiny.committor([0], [2])[1] == pytest.approx(1e-250 / (1 + 1e-250), rel=1e-12)
    assert tiny.committor([2], [0])[1] == pytest.approx(1 / (1 + 1e-250), rel=1e-12)
    np.testing.assert_allclose(tiny.stationary.sum(), 1.0)


# ------------------------------------------------------------------------------------------- Langevin, exact grid
@pytest.fixture(scope="module")
def grid_reference():
    """MFPT between the deep wells (balls of radius 0.1) and the slowest relaxation time at T = 0.5, from the
    square-root approximation of the Fokker–Planck generator on 200² and 400² grids (converged to < 0.1 %)."""
    coarse = grid_kinetics(triple_well_np, 0.5, 200, DEEP_A, DEEP_B, 0.1)
    fine = grid_kinetics(triple_well_np, 0.5, 400, DEEP_A, DEEP_B, 0.1)
    np.testing.assert_allclose(coarse, fine, rtol=2e-3)
    return fine


def test_triple_well_langevin_matches_the_fokker_planck_grid(triple_well, grid_reference):
    land, network = triple_well
    mfpt_exact, relax_exact = grid_reference
    kin = es.kinetics(network, temperature=0.5, landscape=land)
    assert kin.approximation == "path" and kin.time_unit == "time units"
    deep = list(np.argsort(network.minima.energy)[:2])
    mfpt, relax = kin.mfpt([deep[0]], [deep[1]]), kin.relaxation_times[0]
    assert mfpt == pytest.approx(mfpt_exact, rel=0.05)
    assert relax == pytest.approx(relax_exact, rel=0.05)
    harmonic = kin.harmonic()
    h_mfpt, h_relax = harmonic.mfpt([deep[0]], [deep[1]]), harmonic.relaxation_times[0]
    # the plain Kramers–Langer value is reported beside it, and is clearly worse at barriers of ~5 kT
    assert abs(h_mfpt / mfpt_exact - 1) > 0.08 and abs(h_relax / relax_exact - 1) > 0.08
    assert abs(mfpt / mfpt_exact - 1) < abs(h_mfpt / mfpt_exact - 1) / 3
    assert harmonic.approximation == "harmonic"


def test_simulation_matches_the_grid(triple_well):
    """Batched Langevin first passage on the true U (T = 1, where crossings are quick) agrees with the grid."""
    land, _ = triple_well
    exact, _ = grid_kinetics(triple_well_np, 1.0, 200, DEEP_A, DEEP_B, 0.1)
    fp = first_passage_times(land, DEEP_A, np.array([DEEP_B]), 0.1, temperature=1.0, dt=5e-3, n_chains=600,
                             max_time=80.0, seed=1)
    assert fp.n_censored == 0
    assert abs(fp.mean - exact) < 4 * fp.stderr + 0.03 * exact


# ------------------------------------------------------------------------------------------- the API
def test_sampler_steps_and_mixing(triple_well):
    land, network = triple_well
    kin = es.kinetics(network, temperature=1.0, landscape=land, step_size=0.1, chain_length=60)
    assert kin.time_unit == "sampler steps" and kin.step_time == pytest.approx(0.005)
    t = es.kinetics(network, temperature=1.0, landscape=land).relaxation_times
    np.testing.assert_allclose(kin.relaxation_times, t / 0.005, rtol=1e-12)
    assert kin.mixing_ratio == pytest.approx(kin.relaxation_times[0] / 60)
    cross = kin.crossings()
    assert len(cross) == 6 and all(c["crossable"] is False for c in cross)
    hot = es.kinetics(network, temperature=2.0, landscape=land, step_size=0.1)
    assert hot.time_unit == "time units" and any("only at T = 1" in n for n in hot.notes)


def test_committor_stationary_and_roundtrip(triple_well):
    land, network = triple_well
    kin = es.kinetics(network, temperature=0.7, landscape=land)
    q = kin.committor([0], [1])
    assert q[0] == 0 and q[1] == 1 and q[2] == pytest.approx(0.5, abs=1e-9)  # the symmetric shallow well
    assert kin.stationary.sum() == pytest.approx(1.0)
    again = es.Kinetics.from_dict(kin.to_dict())
    assert again.mfpt([0], [1]) == kin.mfpt([0], [1])
    np.testing.assert_array_equal(again.relaxation_times, kin.relaxation_times)


def test_free_energy_graph_regroups_the_shallow_well(triple_well):
    land, network = triple_well
    kin = es.kinetics(network, temperature=1.0, landscape=land)
    fe = kin.free_energy_graph()
    # at T = 1 the shallow well's free-energy barrier (< kT) lumps it with a deep one; without regrouping, three
    assert sorted(len(g) for g in fe.groups) == [1, 2] and len(fe.tree) == 2
    assert len(kin.free_energy_graph(regroup=0.0).groups) == 3
    cold = es.kinetics(network, temperature=0.2, landscape=land).free_energy_graph()
    assert len(cold.groups) == 3


def test_bad_arguments_get_one_clear_error(triple_well, random_ktn):
    land, network = triple_well
    kin = es.kinetics(network, landscape=land)
    with pytest.raises(es.BadArgumentError, match="disjoint"):
        kin.mfpt([0, 1], [1])
    with pytest.raises(es.BadArgumentError, match="minima 0..2"):
        kin.mfpt([0], [7])
    with pytest.raises(es.BadArgumentError, match="empty"):
        kin.committor([], [1])
    with pytest.raises(es.BadArgumentError, match="temperature"):
        es.kinetics(network, temperature=0)
    with pytest.raises(es.BadArgumentError, match="dynamics"):
        es.kinetics(network, dynamics="brownian")
    with pytest.raises(KineticsError, match="no saddle eigenvalues"):
        es.kinetics(read_pathsample(random_ktn))
    with pytest.raises(KineticsError, match="no landscape"):
        es.kinetics(network, approximation="path")
    harmonic = es.kinetics(network)
    assert harmonic.approximation == "harmonic" and any("no landscape" in n for n in harmonic.notes)


def test_kink_networks_refuse_harmonic_rates():
    """Minima and saddles on kinks (ReLU family) have no Hessian, so Kramers–Langer rates do not exist: one clear
    error, never a number."""
    land = es.Landscape(KinkProduct(2, rotation_seed=None), dim=2)
    minima = es.find_minima(land, n_restarts=64, seed=0, progress=False)
    network = es.connect(land, minima, progress=False)
    assert network.n_transition_states > 0 and not np.isfinite(minima.hessian_eigenvalues).all()
    with pytest.raises(KineticsError, match="kinks"):
        es.kinetics(network, landscape=land)


# ------------------------------------------------------------------------------------------- in analyze and the report
def test_analyze_saves_and_reloads_the_kinetics(tmp_path):
    from mb_helpers import run_mb
    res = run_mb(masses=False, kinetics_kwargs={"temperature": 25.0})
    kin = res.kinetics
    assert kin.temperature == 25.0 and res.settings["kinetics"]["temperature"] == 25.0
    assert kin.approximation == "path" and kin.time_unit == "time units"
    res.save(tmp_path / "out")
    again = es.Analysis.load(tmp_path / "out").kinetics
    assert again.mfpt([0], [1]) == kin.mfpt([0], [1]) and again.notes == kin.notes
    np.testing.assert_array_equal(again.network.log_flux, kin.network.log_flux)
    with pytest.raises(es.BadArgumentError, match="kinetics_kwargs"):
        run_mb(masses=False, kinetics_kwargs={"temprature": 1.0})


def test_kinked_landscape_says_kinetics_is_not_available(tmp_path):
    land = es.Landscape(KinkProduct(2, rotation_seed=None), dim=2)
    res = es.analyze(land, seed=0, n_restarts=64, masses=False, progress=False, n_paths=1, grid_size=16)
    assert res.kinetics is None and "kinetics" not in res.stage_errors
    why = res.diagnostics["not_available"]["kinetics"]
    assert "kinks" in why
    html = res.write_report(tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Kinetics not available" in html and "kinks" in html


def test_a_single_minimum_has_nothing_to_relax():
    land = es.Landscape(lambda z: 0.5 * (z**2).sum(dim=1), dim=3)
    minima = es.find_minima(land, n_restarts=8, seed=0, progress=False)
    kin = es.kinetics(es.connect(land, minima, progress=False), landscape=land, step_size=0.4, chain_length=60)
    assert kin.n_minima == 1 and len(kin.relaxation_times) == 0 and kin.mixing_ratio == 0.0
    np.testing.assert_allclose(kin.stationary, [1.0])
    assert "nothing to relax" in kin.summary()


def test_free_energies_are_pathsamples_own(tmp_path):
    """For a PATHSAMPLE network F_i = E_i + T S_i/2 + T log o_i and F_e = E_e + T S_e/2 + T log o_e (its REGROUPFREE
    definitions); lumping two minima gives F = −T log(exp(−F_1/T) + exp(−F_2/T))."""
    (tmp_path / "min.data").write_text("0.0 1.0 1 1 1 1\n0.3 -0.5 2 1 1 1\n2.0 0.2 1 1 1 1\n")
    (tmp_path / "ts.data").write_text("0.5 0.4 1 1 2 1 1 1\n4.0 -1.0 2 2 3 1 1 1\n")
    T = 0.8
    kin = es.kinetics(read_pathsample(tmp_path), temperature=T, dynamics="harmonic")
    F = np.array([0.0 + T * 0.5, 0.3 - T * 0.25 + T * np.log(2), 2.0 + T * 0.1])
    F_ts = np.array([0.5 + T * 0.2, 4.0 - T * 0.5 + T * np.log(2)])
    fe = kin.free_energy_graph(regroup=0.0)
    np.testing.assert_allclose(fe.minima_free_energy, F, rtol=1e-12)
    assert len(fe.groups) == 3 and fe.tree.merge_energy(0, 1) == pytest.approx(F_ts[0], rel=1e-12)
    assert fe.tree.merge_energy(1, 2) == pytest.approx(F_ts[1], rel=1e-12)
    lumped = kin.free_energy_graph(regroup=0.5)  # the 0–1 free-energy barrier is 0.006 nats from minimum 1's side
    assert sorted(map(sorted, lumped.groups)) == [[0, 1], [2]]
    assert lumped.free_energy[0] == pytest.approx(-T * np.logaddexp(-F[0] / T, -F[1] / T), rel=1e-12)


def test_the_sampler_itself_agrees_with_the_network_from_the_deep_wells(triple_well):
    """One chain of the model's own sampler (400 steps of size 0.1, T = 1: 2 time units) from each minimum, quenched:
    from the deep wells it lands where the network's occupation at the same time says (to 3 standard errors); from the
    shallow well (0.5 kT deep) the jump model is rough, which the report then says."""
    from energyscope.kinetics.simulate import SamplerTransitions, chain_transitions
    land, network = triple_well
    st = chain_transitions(land, network.minima, {"steps": 400, "step_size": 0.1, "noise": True}, n_chains=400, seed=0)
    assert st.matrix.shape == (3, 3) and np.allclose(st.other, 0.0)
    kin = es.kinetics(network, landscape=land, step_size=0.1, chain_length=400)
    deep = list(np.argsort(network.minima.energy)[:2])
    for i in deep:
        net = kin.occupation([i], 400)
        assert np.all(np.abs(net - st.matrix[i]) <= 3 * st.stderr[i] + 0.01), (net, st.matrix[i])
    again = SamplerTransitions.from_dict(st.to_dict())
    np.testing.assert_array_equal(again.matrix, st.matrix)
    p = kin.passage_probability([deep[0]], [deep[1]], 400)
    assert 0 < p < 1 and p >= kin.occupation([deep[0]], 400)[deep[1]]  # reached by then ≥ there then


def test_one_dimensional_flux_is_the_exact_integral():
    """In 1-D the path correction's flux is the exact Smoluchowski flux T / ∫ exp(U/T) dx between the minima."""
    from scipy.integrate import quad
    b, T = 3.0, 1.0
    land = es.Landscape(lambda z: b * (z[:, 0] ** 2 - 1) ** 2, dim=1)
    minima = es.find_minima(land, n_restarts=32, seed=0, bounds=(-2, 2), progress=False)
    net = es.connect(land, minima, progress=False)
    kin = es.kinetics(net, temperature=T, landscape=land, approximation="path")
    assert kin.approximation == "path" and not any(kin.path_reasons)
    exact = T / quad(lambda x: np.exp(b * (x * x - 1) ** 2 / T), -1, 1, epsabs=0, epsrel=1e-12)[0]
    assert np.exp(kin.network.log_flux[0]) == pytest.approx(exact, rel=1e-4)


def test_sampler_noise_sets_its_temperature(triple_well):
    land, network = triple_well
    kin = es.kinetics(network, landscape=land, step_size=0.1, noise=0.5)
    assert kin.time_unit == "time units" and any("only at T = 0.25" in n for n in kin.notes)
    cold = es.kinetics(network, temperature=0.25, landscape=land, step_size=0.1, noise=0.5)
    assert cold.time_unit == "sampler steps"
    silent = es.kinetics(network, landscape=land, step_size=0.1, noise=0.0)
    assert silent.time_unit == "time units" and any("never crosses" in n for n in silent.notes)


def test_sets_masks_and_bad_networks(triple_well):
    land, network = triple_well
    kin = es.kinetics(network, landscape=land)
    assert kin.mfpt(np.array([True, False, False]), np.array([False, True, False])) == kin.mfpt([0], [1])
    with pytest.raises(es.BadArgumentError, match="whole minimum indices"):
        kin.mfpt([0.5], [1])
    with pytest.raises(es.BadArgumentError, match="finite"):
        RateNetwork([0.0, 0.0], [(0, 1)], [np.nan])
    with pytest.raises(es.BadArgumentError, match="itself"):
        RateNetwork([0.0, 0.0], [(1, 1)], [0.0])
    with pytest.raises(es.BadArgumentError, match="there are 2 minima"):
        RateNetwork([0.0, 0.0], [(0, 5)], [0.0])


def test_times_beyond_the_float_range_are_not_called_unreachable():
    kin = chain_kinetics(1e-300, 1.0, 1e-10, 1e-3)  # a connected chain whose first passage exceeds 1.8e308
    with pytest.warns(UserWarning, match="exceed the float range"):
        assert kin.mfpt([0], [2]) == np.inf


def test_passage_matrix_is_passage_probability_for_every_pair_dense_and_sparse(monkeypatch):
    """The report's matrix of one-chain passage probabilities: one survival computation per target, equal to the
    pairwise definition, whether by dense expm or by the sparse exponential's action (used for large K)."""
    from energyscope.kinetics import model as kmodel
    rng = np.random.default_rng(3)
    K = 12
    energy = rng.uniform(0, 3, K)
    pairs = np.array([(i, i + 1) for i in range(K - 1)] + [(0, 5), (2, 9), (4, 11)])
    ts = np.maximum(energy[pairs[:, 0]], energy[pairs[:, 1]]) + rng.uniform(0.5, 3, len(pairs))
    from energyscope.kinetics.rates import harmonic_network
    rn = harmonic_network(energy, np.zeros(K), np.ones(K), pairs, ts, np.zeros(len(pairs)), np.ones(len(pairs)), 1.0)
    kin = kmodel.Kinetics(rn, rn.log_flux.copy(), 1.0, "harmonic", "harmonic", "time units", None, None, energy)
    starts, targets = [0, 3, 7, 11], [0, 5, 11]
    want = np.array([[kin.passage_probability([a], [b], 2.5) if a != b else 0.0 for b in targets] for a in starts])
    np.testing.assert_allclose(kin.passage_matrix(starts, targets, 2.5), want, rtol=1e-9, atol=1e-12)
    monkeypatch.setattr(kmodel, "DENSE_EXPM", 0)                 # the sparse route, on the same network
    np.testing.assert_allclose(kin.passage_matrix(starts, targets, 2.5), want, rtol=1e-7, atol=1e-10)
    assert (want[want > 0] < 1).all() and want.max() > 0.01    # not a trivial matrix


def test_mfpt_matrix_on_a_reduced_chain_equals_the_full_computation():
    """mfpt_matrix removes the minima outside its sets once (graph transformation), then works on the small chain:
    the times are those of the whole network, set by set."""
    from energyscope.kinetics.model import Kinetics
    from energyscope.kinetics.rates import harmonic_network
    rng = np.random.default_rng(5)
    K = 40
    energy = rng.uniform(0, 4, K)
    pairs = np.array([(i, i + 1) for i in range(K - 1)] + [tuple(rng.choice(K, 2, replace=False)) for _ in range(30)])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    ts = np.maximum(energy[pairs[:, 0]], energy[pairs[:, 1]]) + rng.uniform(0.2, 6, len(pairs))
    rn = harmonic_network(energy, np.zeros(K), np.ones(K), pairs, ts, np.zeros(len(pairs)), np.ones(len(pairs)), 0.7)
    kin = Kinetics(rn, rn.log_flux.copy(), 0.7, "harmonic", "harmonic", "time units", None, None, energy)
    sets = [[3], [7, 8], [20], [39], [0, 11]]
    M = kin.mfpt_matrix(sets)
    for I, a in enumerate(sets):
        for J, b in enumerate(sets):
            want = 0.0 if I == J else kin.mfpt(a, b)
            assert M[I, J] == pytest.approx(want, rel=1e-10)
