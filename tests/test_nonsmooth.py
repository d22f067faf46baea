"""Non-smooth energies (ReLU family, |x|, max): detection, kink minima, kink saddles, honest completeness.

Known answers: the KinkProduct surface (exact by construction, see energyscope.surfaces), a convex max of three
planes, and LeakyReLU MLP priors whose minima tests/nonsmooth_helpers.py establishes without energyscope (grid,
Nelder–Mead, then an exact solve over activation patterns).
"""
import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from torch import nn

import energyscope as es
from energyscope.search.nonsmooth import local_structure, min_norm_point, refine, ridge_points
from energyscope.optim import minimize_nonsmooth
from energyscope.smoothness import probe, scan_operations
from energyscope.surfaces import (KINK_G, KINK_TOP, SMOOTH_G, KinkProduct, MullerBrown, StyblinskiTang,
                                  kink_product_minima, kink_product_saddles)
from nonsmooth_helpers import exact_minimum, lrelu_mlp, reference_minima


# ---------------------------------------------------------------------------------------------- detection
def test_detects_relu_family_in_modules_functions_and_torchscript():
    net = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)).double()
    for energy in (net, torch.jit.script(net), lambda z: z.abs().sum(1) + 0.1 * (z * z).sum(1),
                   lambda z: torch.maximum(z[:, 0], z[:, 1]) + (z * z).sum(1)):
        sm = es.Landscape(energy, dim=2).smoothness
        assert sm.kind == "piecewise" and sm.ops, sm
    sm = es.Landscape(net, dim=2, base_prior="standard_normal").smoothness
    assert sm.piecewise_linear and sm.probe_jumps > 0 and "leaky_relu" in sm.ops


def test_smooth_models_are_smooth_and_conditionals_unknown():
    assert es.Landscape(MullerBrown(), dim=2).smoothness.kind == "smooth"
    silu = nn.Sequential(nn.Linear(3, 16), nn.SiLU(), nn.Linear(16, 1)).double()
    assert es.Landscape(silu, dim=3, base_prior="standard_normal").is_smooth
    # an ELU with alpha = 1 is C¹ (smooth enough); SELU's two slopes differ at 0
    assert scan_operations(nn.ELU(), torch.zeros(2, 3))[0] == set()
    assert scan_operations(nn.SELU(), torch.zeros(2, 3))[0]
    st = StyblinskiTang()
    land = es.Landscape(lambda z: torch.where(z[:, 0] > 5, st(z) + 1, st(z)), dim=2)
    assert land.smoothness.kind == "unknown" and "where" in land.smoothness.conditional_ops
    forced = es.Landscape(silu, dim=3, smoothness="piecewise")
    assert forced.smoothness.kind == "piecewise" and forced.smoothness.source == "given"
    with pytest.raises(es.LandscapeError, match="smoothness"):
        es.Landscape(silu, dim=3, smoothness="rough")


def test_probe_finds_jumps_only_where_there_are_kinks():
    assert probe(es.Landscape(lambda z: z.abs().sum(1), dim=3))["jumps"] > 0
    assert probe(es.Landscape(StyblinskiTang(), dim=3))["jumps"] == 0


# ---------------------------------------------------------------------------------------------- building blocks
def test_min_norm_point():
    x, lam = min_norm_point(np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 0.0]]))      # origin inside
    assert np.linalg.norm(x) < 1e-14 and lam == pytest.approx([0.25, 0.25, 0.5])
    x, lam = min_norm_point(np.array([[2.0, 1.0], [2.0, -3.0], [5.0, 0.0]]))       # nearest on an edge
    np.testing.assert_allclose(x, [2.0, 0.0], atol=1e-14)
    assert lam[2] == 0 and lam[:2] == pytest.approx([0.75, 0.25])


def test_nonsmooth_bfgs_reaches_kink_minima():
    # U = |x − 1| + 2|y + 0.5| + 0.1‖z‖²: minimum exactly at the kink (1, −0.5); the gradient never vanishes there
    land = es.Landscape(lambda z: (z[:, 0] - 1).abs() + 2 * (z[:, 1] + 0.5).abs() + 0.1 * (z * z).sum(1), dim=2)
    z0 = land.as_tensor(np.random.default_rng(0).normal(size=(64, 2)) * 2)
    res = minimize_nonsmooth(land.energy_and_grad, z0, gtol=1e-10, max_step=0.5)
    assert bool(res.stalled.all()) and not bool(res.converged.any())
    assert float((res.z - torch.tensor([1.0, -0.5], dtype=torch.float64)).norm(dim=1).max()) < 1e-6
    kp = refine(land, res.z.numpy()[:4], "minimum")
    ls = local_structure(land, kp)
    np.testing.assert_allclose(kp.z, [[1.0, -0.5]] * 4, atol=1e-14)
    assert ls.is_minimum.all() and (ls.n_sharp == 2).all() and np.isposinf(ls.eigenvalues).all()


def test_ridge_points_are_exact_maxima_along_lines():
    land = es.Landscape(KinkProduct(2, rotation_seed=None), dim=2)
    z = land.as_tensor([[0.3, 1.0], [-0.2, -1.0]])
    tau = land.as_tensor([[1.0, 0.0], [1.0, 0.0]])
    zr, e, g, ok = ridge_points(land, z, tau, torch.full((2,), 1.0, dtype=torch.float64), 1e-14)
    assert bool(ok.all())
    np.testing.assert_allclose(zr.numpy(), [[0.0, 1.0], [0.0, -1.0]], atol=1e-13)      # the ridge x = 0
    np.testing.assert_allclose(g.numpy()[:, 0], 0.0, atol=1e-12)                        # ridge gradient ⟂ τ


# ---------------------------------------------------------------------------------------------- exact surfaces
def test_convex_max_of_planes_vertex_minimum():
    c = torch.tensor([0.4, -0.7], dtype=torch.float64)

    def energy(z):
        x, y = (z - c)[:, 0], (z - c)[:, 1]
        return torch.stack([x + y, x - y, -x], 1).max(dim=1).values + 3.0

    land = es.Landscape(energy, dim=2)
    m = es.find_minima(land, n_restarts=256, progress=False)
    assert len(m) == 1 and m.kind[0] == "kink" and m.n_sharp[0] == 2
    np.testing.assert_allclose(m.z[0], c.numpy(), atol=1e-12)
    assert m.energy[0] == pytest.approx(3.0, abs=1e-12) and m.coverage.complete


@pytest.mark.parametrize("d,n_smooth", [(2, 0), (4, 2), (8, 3)])
def test_kink_product_minima_exact(d, n_smooth):
    s = KinkProduct(d, n_smooth=n_smooth, rotation_seed=1)
    land = es.Landscape(s, dim=d)
    assert land.smoothness.kind == "piecewise"
    z_true, e_true = kink_product_minima(s)
    m = es.find_minima(land, n_restarts=1024 if d < 8 else 4096, seed=0, progress=False, bounds=(-3, 3),
                       sources=("box",))
    assert len(m) == 2**d
    dist, j = cKDTree(z_true).query(m.z)
    assert len(set(j)) == 2**d and dist.max() < 1e-10
    np.testing.assert_allclose(m.energy, e_true[j], atol=1e-10)
    assert (m.n_sharp == d - n_smooth).all() and (m.kind == "kink").all()
    finite = m.hessian_eigenvalues[np.isfinite(m.hessian_eigenvalues)]
    np.testing.assert_allclose(finite, 1.0, atol=1e-9)          # the curvature along the kinks: ½t² terms
    assert m.coverage.complete and m.coverage.n_unresolved == 0


def test_kink_product_saddles_and_tree_exact():
    s = KinkProduct(3, n_smooth=1, rotation_seed=2)
    land = es.Landscape(s, dim=3)
    zm, em = kink_product_minima(s)
    zs, ets, pairs = kink_product_saddles(s)
    m = es.find_minima(land, n_restarts=1024, seed=0, progress=False, bounds=(-3, 3), sources=("box",))
    net = es.connect(land, m, progress=False)
    assert net.is_connected() and len(net.minima) == 8
    _, j = cKDTree(zm).query(net.minima.z)
    true = {tuple(p): (z, e) for p, z, e in zip(map(tuple, pairs), zs, ets)}
    for u, v, data in net.graph.edges(data=True):
        z, e = true[tuple(sorted((j[u], j[v])))]                 # every edge is a true saddle of its pair
        assert np.linalg.norm(data["z"] - z) < 1e-10 and abs(data["energy"] - e) < 1e-10
        assert data["negative_eigenvalue"] == -np.inf           # a ridge: U falls like -|x| across it
        assert data["path"].info["saddle"]["valid"]
    # the merge tree equals the one from all exact saddles (union-find in energy order)
    exact = es.TransitionNetwork(es.Minima(z=zm, energy=em, hits=np.ones(8, int),
                                           hessian_eigenvalues=np.ones((8, 3))))
    for (a, b), z, e in zip(pairs, zs, ets):
        exact.add_transition_state(a, b, e, z, -np.inf)
    for a in range(8):
        for b in range(a + 1, 8):
            assert net.minimax_energy(int(np.flatnonzero(j == a)[0]), int(np.flatnonzero(j == b)[0])) == \
                pytest.approx(exact.minimax_energy(a, b), abs=1e-10)
    assert KINK_TOP - KINK_G[0] > 0 and SMOOTH_G[0] < 0          # (the surface constants the docs quote)


def test_neb_validates_a_kink_saddle():
    s = KinkProduct(2, n_smooth=1, rotation_seed=1)
    land = es.Landscape(s, dim=2)
    zm, _ = kink_product_minima(s)
    zs, ets, pairs = kink_product_saddles(s)
    for (a, b), z, e in zip(pairs, zs, ets):
        p = es.neb(land, zm[a], zm[b])
        assert p.saddle_validated, p.info.get("saddle")
        assert np.linalg.norm(p.saddle_z - z) < 1e-10 and p.saddle_energy == pytest.approx(e, abs=1e-10)
        assert p.info["saddle"]["negative_eigenvalue"] == -np.inf


# ---------------------------------------------------------------------------------------------- LeakyReLU priors
@pytest.mark.parametrize("seed", [0, 2])
def test_leaky_relu_prior_2d_matches_independent_reference(seed):
    net = lrelu_mlp(seed)
    z_ref, e_ref = reference_minima(net)                 # grid + Nelder–Mead + exact activation-pattern solve
    land = es.Landscape(net, dim=2, base_prior="standard_normal")
    m = es.find_minima(land, n_restarts=1024, seed=0, progress=False)
    dist, j = cKDTree(m.z).query(z_ref)
    assert dist.max() < 1e-6, f"reference minima not found: {z_ref[dist >= 1e-6]}"   # every true one, global too
    np.testing.assert_allclose(m.energy[j], e_ref, atol=1e-6)
    assert m.energy[0] == pytest.approx(e_ref[0], abs=1e-9)
    for z in m.z:                                        # and every reported one is a true minimum
        ex = exact_minimum(net, z)
        assert ex is not None and np.linalg.norm(ex[0] - z) < 1e-9, f"{z} is not a local minimum"
    assert (m.kind == "kink").sum() >= 3


def test_network_on_leaky_relu_prior_has_validated_kink_saddles():
    net = lrelu_mlp(0)
    land = es.Landscape(net, dim=2, base_prior="standard_normal")
    m = es.find_minima(land, n_restarts=512, seed=0, progress=False)
    nw = es.connect(land, m, progress=False)
    assert nw.is_connected() and nw.n_transition_states >= len(nw.minima) - 1
    a = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    circle = np.stack([np.cos(a), np.sin(a)], 1)
    for u, v, data in nw.graph.edges(data=True):
        z, e = data["z"], data["energy"]
        assert e > max(nw.minima.energy[u], nw.minima.energy[v])
        # an index-1 point, checked directly: U falls on exactly two separate arcs of a small circle
        down = (land.energy(z + 1e-6 * circle).numpy() - e) < -1e-12
        changes = int((down != np.roll(down, 1)).sum())
        assert changes == 4, f"saddle at {z} has {changes // 2} downhill arcs"


def test_completeness_is_never_claimed_with_unfinished_descents():
    land = es.Landscape(lrelu_mlp(0), dim=2, base_prior="standard_normal")
    with pytest.warns(UserWarning, match="did not converge"):
        m = es.find_minima(land, n_restarts=256, max_iter=3, until_complete=False, progress=False)
    assert m.coverage.n_unresolved > 0 and not m.coverage.complete
    assert m.stats["n_converged"] + m.stats["n_unconverged"] + m.stats["n_dropped_nonfinite"] == 256


def test_analysis_report_and_reload_on_a_kinked_landscape(tmp_path):
    land = es.Landscape(lrelu_mlp(0), dim=2, base_prior="standard_normal")
    result = es.analyze(land, seed=0, n_restarts=256, progress=False)
    assert result.minima is not None and result.network is not None and not result.diagnostics.get("stage_errors")
    assert any(b["n_sharp"] > 0 for b in result.basins)
    assert result.model["smoothness"]["kind"] == "piecewise"
    result.save(tmp_path / "out")
    back = es.Analysis.load(tmp_path / "out")
    np.testing.assert_array_equal(back.minima.hessian_eigenvalues, result.minima.hessian_eigenvalues)
    html = result.write_report(tmp_path / "out" / "report.html").read_text()
    assert "piecewise-smooth" in html and '<th data-key="sharp">sharp</th>' in html


# ---------------------------------------------------------------------------------------------- the trained model
def test_trained_leaky_relu_digits_prior_2d(digits2d_lrelu):
    """examples/digits/digits2d_lrelu.pt (Pang et al. form, LeakyReLU(0.2) energy net, d = 2) against the reference
    of tests/data/digits2d_lrelu_minima.json (63 minima, established without energyscope)."""
    import json
    from pathlib import Path
    land = digits2d_lrelu
    assert land.smoothness.kind == "piecewise" and land.smoothness.piecewise_linear
    ref = json.loads((Path(__file__).parent / "data" / "digits2d_lrelu_minima.json").read_text())
    z_ref, e_ref = np.array(ref["z"]), np.array(ref["energy"])
    m = es.find_minima(land, n_restarts=1024, seed=0, until_complete=False, progress=False)
    # the global minimum, and every minimum within 0.9 nats of it, is found exactly
    assert np.linalg.norm(m.z[0] - z_ref[0]) < 1e-9 and m.energy[0] == pytest.approx(e_ref[0], abs=1e-9)
    low = e_ref < e_ref[0] + 0.9
    dist, j = cKDTree(m.z).query(z_ref[low])
    assert dist.max() < 1e-6
    np.testing.assert_allclose(m.energy[j], e_ref[low], atol=1e-9)
    # every reported minimum is a true one
    for z in m.z:
        ex = exact_minimum(land.energy_module, z)
        assert ex is not None and np.linalg.norm(ex[0] - z) < 1e-9, f"{z} is not a local minimum"
    # the far, tiny basins are not all reached by 1024 restarts, and the search does not claim completeness
    missed = cKDTree(m.z).query(z_ref)[0] > 1e-6
    assert missed.any() and not m.coverage.complete and m.coverage.estimated_total > len(m)
