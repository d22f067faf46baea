"""The batched optimisers: known minima, per-row independence, non-finite rows, caps, and the L-BFGS recursion
against a dense BFGS inverse-Hessian update."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from energyscope.optim import FIRE, LBFGSMemory, minimize


def rosenbrock(z: torch.Tensor):
    """Batched 2-D Rosenbrock, minimum 0 at (1, 1)."""
    x, y = z[:, 0], z[:, 1]
    e = (1 - x) ** 2 + 100 * (y - x * x) ** 2
    g = torch.stack([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)], 1)
    return e, g


def quadratic(A: torch.Tensor, c: torch.Tensor):
    def f(z):
        d = z - c
        return 0.5 * (d * A * d).sum(1), A * d
    return f


STARTS = torch.tensor([[-1.2, 1.0], [2.0, 2.0], [0.0, 0.0], [-2.0, -1.0], [1.5, -0.5]], dtype=torch.float64)


@pytest.mark.parametrize("method, max_iter", [("lbfgs", 2000), ("fire", 20000)])
def test_rosenbrock_converges_to_1_1(method, max_iter):
    r = minimize(rosenbrock, STARTS, method=method, gtol=1e-8, max_iter=max_iter, max_step=0.2)
    assert bool(r.converged.all()) and bool(r.finite.all())
    assert float(r.grad_norm.max()) <= 1e-8
    np.testing.assert_allclose(r.z.numpy(), 1.0, atol=1e-7)
    assert r.n_evals >= int(r.n_iter.sum())


def test_lbfgs_trust_radius_grows_and_saves_iterations():
    A = torch.logspace(0, 2, 20, dtype=torch.float64)
    f = quadratic(A, torch.full((20,), 30.0, dtype=torch.float64))
    z0 = torch.zeros(3, 20, dtype=torch.float64)
    fixed = minimize(f, z0, gtol=1e-8, max_step=0.1, max_iter=5000)
    grown = minimize(f, z0, gtol=1e-8, max_step=0.1, max_step_max=10.0, max_iter=5000)
    assert bool(fixed.converged.all()) and bool(grown.converged.all())
    np.testing.assert_allclose(grown.z.numpy(), 30.0, atol=1e-7)
    # the start is |c| = 134 away: a fixed 0.1 cap needs > 1300 steps, a growing one far fewer
    assert int(fixed.n_iter.min()) > 1300 and int(grown.n_iter.max()) < 200


def test_max_step_caps_the_first_step():
    f = quadratic(torch.ones(3, dtype=torch.float64), torch.full((3,), 100.0, dtype=torch.float64))
    r = minimize(f, torch.zeros(2, 3, dtype=torch.float64), gtol=1e-12, max_iter=1, max_step=0.5)
    np.testing.assert_allclose(r.z.norm(dim=1).numpy(), 0.5, rtol=1e-12)
    assert not bool(r.converged.any()) and bool(r.finite.all())           # hit the cap: unconverged, not dropped
    assert r.n_unconverged == 2 and r.n_dropped == 0


def test_rows_are_independent_of_the_batch():
    together = minimize(rosenbrock, STARTS, gtol=1e-10, max_step=0.3)
    for i in range(len(STARTS)):
        alone = minimize(rosenbrock, STARTS[i:i + 1], gtol=1e-10, max_step=0.3)
        np.testing.assert_array_equal(alone.z.numpy()[0], together.z.numpy()[i])
        assert int(alone.n_iter[0]) == int(together.n_iter[i])


def test_nonfinite_rows_are_dropped_and_do_not_poison_others():
    def f(z):
        e, g = rosenbrock(z)
        bad = z[:, 0] > 5.0                        # NaN on part of space
        return torch.where(bad, torch.nan, e), torch.where(bad[:, None], torch.nan, g)

    z0 = torch.cat([STARTS, torch.tensor([[6.0, 0.0], [7.0, 1.0]], dtype=torch.float64)])
    r = minimize(f, z0, gtol=1e-10, max_step=0.3)
    clean = minimize(rosenbrock, STARTS, gtol=1e-10, max_step=0.3)
    assert r.finite.tolist() == [True] * 5 + [False, False] and r.n_dropped == 2
    assert bool(torch.isnan(r.energy[5:]).all())
    np.testing.assert_array_equal(r.z.numpy()[:5], clean.z.numpy())


def test_row_that_walks_into_nan_is_dropped_not_crashing():
    def f(z):                                       # a downhill slope that turns to NaN at x = 1
        e = -z[:, 0] + 0.5 * z[:, 1] ** 2
        g = torch.stack([-torch.ones_like(e), z[:, 1]], 1)
        bad = z[:, 0] >= 1.0
        return torch.where(bad, torch.nan, e), torch.where(bad[:, None], torch.nan, g)

    r = minimize(f, torch.zeros(1, 2, dtype=torch.float64), gtol=1e-8, max_step=0.3, max_iter=500)
    assert r.n_dropped == 1 and not bool(r.converged[0])
    assert float(r.z[0, 0]) < 1.0                   # it stopped at its last finite point


def test_stalled_row_stops_unconverged():
    def f(z):                                       # gradient that never shrinks, energy that always rises
        return (z**2).sum(1) * 0 + 1.0 + z[:, 0] * 0, torch.ones_like(z) * -1.0

    def rising(z):
        e, g = f(z)
        return e + z.norm(dim=1), g
    r = minimize(rising, torch.zeros(2, 2, dtype=torch.float64), gtol=1e-6, max_iter=1000, max_stalls=3)
    assert not bool(r.converged.any()) and bool(r.finite.all())
    assert int(r.n_iter.max()) == 3


def test_empty_and_already_converged():
    f = quadratic(torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    r = minimize(f, torch.zeros(0, 2, dtype=torch.float64))
    assert r.z.shape == (0, 2) and r.n_evals == 0
    r = minimize(f, torch.zeros(3, 2, dtype=torch.float64))
    assert bool(r.converged.all()) and int(r.n_iter.sum()) == 0


def test_unknown_method():
    with pytest.raises(ValueError, match="method"):
        minimize(rosenbrock, STARTS, method="cg")


def _bfgs_inverse(pairs, n):
    """Dense BFGS inverse-Hessian from the oldest pair to the newest, started at γ I (γ from the newest pair)."""
    s_n, y_n = pairs[-1]
    H = (s_n @ y_n) / (y_n @ y_n) * np.eye(n)
    for s, y in pairs:
        rho = 1.0 / (s @ y)
        V = np.eye(n) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return H


def test_lbfgs_two_loop_matches_dense_bfgs_update():
    rng = np.random.default_rng(0)
    n, m, B = 6, 4, 3
    mem = LBFGSMemory(B, n, m=m)
    M = rng.normal(size=(n, n))
    A = M @ M.T + n * np.eye(n)                     # SPD, so every pair passes the curvature test
    history = [[] for _ in range(B)]
    for step in range(7):
        s = rng.normal(size=(B, n))
        y = s @ A
        if step == 3:                               # row 2 skips this update (gets an empty pair)
            mem.update(torch.tensor([0, 1]), torch.tensor(s[:2]), torch.tensor(y[:2]))
            for b in range(2):
                history[b].append((s[b], y[b]))
            continue
        mem.update(None, torch.tensor(s), torch.tensor(y))
        for b in range(B):
            history[b].append((s[b], y[b]))
    g = rng.normal(size=(B, n))
    d = mem.direction(None, torch.tensor(g)).numpy()
    for b in range(B):
        kept = history[b][-m:] if b < 2 else history[b][-(m - 1):]     # row 2's ring holds one empty slot
        np.testing.assert_allclose(d[b], -_bfgs_inverse(kept, n) @ g[b], rtol=1e-10)
    # subsets of rows, compaction and reset
    np.testing.assert_allclose(mem.direction(torch.tensor([2, 0]), torch.tensor(g[[2, 0]])).numpy(), d[[2, 0]])
    mem.compact(torch.tensor([1]))
    np.testing.assert_allclose(mem.direction(None, torch.tensor(g[1:2])).numpy(), d[1:2])
    mem.reset()
    np.testing.assert_allclose(mem.direction(None, torch.tensor(g[1:2])).numpy(), -g[1:2])


def test_lbfgs_memory_skips_pairs_without_positive_curvature():
    mem = LBFGSMemory(2, 2, m=3)
    s = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([[2.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)    # row 1: s·y < 0
    mem.update(None, s, y)
    assert mem.count.tolist() == [1, 0]
    g = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    d = mem.direction(None, g)
    np.testing.assert_allclose(d[1].numpy(), [-1.0, -1.0])             # no memory: steepest descent


def test_fire_stepper_relaxes_rows_with_their_own_state():
    A = torch.tensor([1.0, 10.0], dtype=torch.float64)
    x = torch.tensor([[1.0, 1.0], [-2.0, 0.5], [0.3, -0.7]], dtype=torch.float64)
    fire = FIRE(3, 2, dt=0.05, dt_max=0.3, max_step=0.2)
    rows = torch.tensor([0, 2])                     # row 1 is frozen: only rows 0 and 2 move
    for _ in range(400):
        x[rows] = fire.step(x[rows], -A * x[rows], rows)
    assert float(x[[0, 2]].abs().max()) < 1e-6
    np.testing.assert_array_equal(x[1].numpy(), [-2.0, 0.5])
    assert float(fire.v[1].abs().max()) == 0.0
    fire.reset(rows)
    assert float(fire.v.abs().max()) == 0.0


def test_chunked_rows_give_the_same_result():
    whole = minimize(rosenbrock, STARTS, gtol=1e-10, max_step=0.3)
    chunked = minimize(rosenbrock, STARTS, gtol=1e-10, max_step=0.3, max_rows=2)
    np.testing.assert_array_equal(whole.z.numpy(), chunked.z.numpy())
    assert whole.n_evals == chunked.n_evals and chunked.n_calls > whole.n_calls
