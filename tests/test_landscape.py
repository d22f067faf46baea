"""Landscape: conventions, shape variants, exact Hessians, isolation from the user's module, sign check, bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import energyscope as es
from energyscope import Landscape, LandscapeError
from energyscope.surfaces import MULLER_BROWN_MINIMA, MULLER_BROWN_SADDLES, MullerBrown

D = 4
# torch.jit.script (used by the tests, and inside torch.func in torch 2.13) warns that it is deprecated
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def make_mlp(d: int = D, hidden: int = 16, out: int = 1, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, out))


def points(n: int = 32, d: int = D, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def raw_f(mlp: nn.Module, z: np.ndarray) -> np.ndarray:
    """The module's own output in float64, computed independently of the Landscape."""
    m = make_mlp()
    m.load_state_dict(mlp.state_dict())
    with torch.no_grad():
        return m.double()(torch.as_tensor(z)).reshape(len(z), -1).numpy()


class Negate(nn.Module):
    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, z):
        return -self.inner(z)


class Reshape(nn.Module):
    """Returns the inner (N, 1) output as a given per-row shape."""

    def __init__(self, inner: nn.Module, shape: tuple[int, ...]):
        super().__init__()
        self.inner = inner
        self.shape = shape

    def forward(self, z):
        return self.inner(z).reshape(z.shape[0], *self.shape)


class ConvEnergy(nn.Module):
    """The same MLP as 1×1 convolutions: only accepts (N, d, 1, 1) latents."""

    def __init__(self, mlp: nn.Sequential):
        super().__init__()
        l1, l2 = mlp[0], mlp[2]
        self.c1 = nn.Conv2d(l1.in_features, l1.out_features, 1)
        self.c2 = nn.Conv2d(l2.in_features, l2.out_features, 1)
        with torch.no_grad():
            self.c1.weight.copy_(l1.weight[:, :, None, None])
            self.c1.bias.copy_(l1.bias)
            self.c2.weight.copy_(l2.weight[:, :, None, None])
            self.c2.bias.copy_(l2.bias)

    def forward(self, z):
        if z.ndim != 4:
            raise RuntimeError(f"ConvEnergy wants (N, d, 1, 1) input, got {tuple(z.shape)}")
        return self.c2(torch.tanh(self.c1(z)))


# ---------------------------------------------------------------------------------------------- conventions
def test_energy_convention_is_the_module_output():
    mlp = make_mlp()
    z = points()
    u = Landscape(mlp).energy(z).numpy()
    np.testing.assert_allclose(u, raw_f(mlp, z)[:, 0], rtol=1e-12, atol=1e-12)


def test_log_density_with_negated_output_gives_same_U():
    mlp = make_mlp()
    z = points()
    u_e = Landscape(mlp, convention="energy").energy(z).numpy()
    u_l = Landscape(Negate(mlp), convention="log_density").energy(z).numpy()
    np.testing.assert_allclose(u_l, u_e, rtol=1e-12, atol=1e-12)


def test_logits_reduced_with_logsumexp():
    logits = make_mlp(out=5)
    z = points()
    lse = np.log(np.exp(raw_logits(logits, z)).sum(axis=1))
    u = Landscape(logits, convention="logits").energy(z).numpy()
    np.testing.assert_allclose(u, -lse, rtol=1e-10, atol=1e-12)
    # the same through an explicit energy-convention callable
    u2 = Landscape(lambda t: -torch.logsumexp(logits.double()(t), dim=1), dim=D).energy(z).numpy()
    np.testing.assert_allclose(u, u2, rtol=1e-12, atol=1e-12)


def raw_logits(mod: nn.Module, z: np.ndarray) -> np.ndarray:
    m = make_mlp(out=5)
    m.load_state_dict(mod.state_dict())
    with torch.no_grad():
        return m.double()(torch.as_tensor(z)).numpy()


def test_sum_reduction_of_K_outputs():
    mod = make_mlp(out=5)
    z = points()
    u = Landscape(mod, reduction="sum").energy(z).numpy()
    np.testing.assert_allclose(u, raw_logits(mod, z).sum(axis=1), rtol=1e-12, atol=1e-12)


def test_K_outputs_without_reduction_is_a_clear_error():
    with pytest.raises(LandscapeError, match="reduction"):
        Landscape(make_mlp(out=3))


@pytest.mark.parametrize("shape", [(), (1,), (1, 1, 1)])
def test_output_shapes_become_N(shape):
    mlp = make_mlp()
    z = points()
    u = Landscape(Reshape(mlp, shape), dim=D).energy(z)
    assert u.shape == (len(z),)
    np.testing.assert_allclose(u.numpy(), raw_f(mlp, z)[:, 0], rtol=1e-12, atol=1e-12)


def test_module_wanting_N_d_1_1_inputs():
    mlp = make_mlp()
    z = points()
    land = Landscape(ConvEnergy(mlp), dim=D)
    np.testing.assert_allclose(land.energy(z).numpy(), raw_f(mlp, z)[:, 0], rtol=1e-12, atol=1e-12)
    # gradients and Hessians go through the same adapter
    e1, g1 = land.energy_and_grad(z)
    e2, g2 = Landscape(mlp).energy_and_grad(z)
    np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(land.hessian(z[:3]).numpy(), Landscape(mlp).hessian(z[:3]).numpy(), atol=1e-10)
    # (N, d, 1, 1) latents are also accepted at the surface
    np.testing.assert_allclose(land.energy(z[:, :, None, None]).numpy(), e1.numpy(), rtol=1e-12)


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_standard_normal_base_adds_half_squared_norm(sigma):
    mlp = make_mlp()
    z = points()
    u = Landscape(mlp, base_prior="standard_normal", base_sigma=sigma).energy(z).numpy()
    expected = raw_f(mlp, z)[:, 0] + 0.5 * (z**2).sum(axis=1) / sigma**2
    np.testing.assert_allclose(u, expected, rtol=1e-12, atol=1e-12)


def test_temperature_divides_the_model_term_only():
    mlp = make_mlp()
    z = points()
    u = Landscape(mlp, temperature=2.5, base_prior="standard_normal").energy(z).numpy()
    np.testing.assert_allclose(u, raw_f(mlp, z)[:, 0] / 2.5 + 0.5 * (z**2).sum(axis=1), rtol=1e-12)
    u_l = Landscape(Negate(mlp), convention="log_density", temperature=2.5).energy(z).numpy()
    np.testing.assert_allclose(u_l, raw_f(mlp, z)[:, 0] / 2.5, rtol=1e-12)


def test_float32_module_is_evaluated_in_float64():
    mlp = make_mlp()  # float32 parameters
    land = Landscape(mlp)
    u = land.energy(points())
    assert u.dtype == torch.float64
    assert land.energy_module[0].weight.dtype == torch.float64


def test_chunked_evaluation_matches_one_batch():
    mlp = make_mlp()
    z = points(100)
    full = Landscape(mlp)
    small = Landscape(mlp, batch_size=7)
    np.testing.assert_allclose(small.energy(z).numpy(), full.energy(z).numpy(), rtol=1e-14)
    e1, g1 = small.energy_and_grad(z)
    e2, g2 = full.energy_and_grad(z)
    np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------- derivatives
def fd_hessian(land: Landscape, z: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central finite differences of the exact gradient: (N, d, d)."""
    n, d = z.shape
    out = np.zeros((n, d, d))
    for i in range(d):
        e = np.zeros(d)
        e[i] = h
        _, gp = land.energy_and_grad(z + e)
        _, gm = land.energy_and_grad(z - e)
        out[:, :, i] = (gp.numpy() - gm.numpy()) / (2 * h)
    return 0.5 * (out + out.transpose(0, 2, 1))


def test_gradient_matches_finite_differences():
    land = Landscape(MullerBrown(), dim=2)
    z = np.array([[-0.3, 0.9], [0.4, 0.2], [-1.0, 1.3]])
    _, g = land.energy_and_grad(z)
    h = 1e-6
    fd = np.stack([(land.energy(z + h * e).numpy() - land.energy(z - h * e).numpy()) / (2 * h)
                   for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(g.numpy(), fd, rtol=1e-7, atol=1e-6)


def test_hessian_matches_finite_differences_and_reference_eigenvalues():
    land = Landscape(MullerBrown(), dim=2)
    z = np.concatenate([MULLER_BROWN_MINIMA, MULLER_BROWN_SADDLES, [[0.1, 0.7]]])
    h = land.hessian(z).numpy()
    np.testing.assert_allclose(h, fd_hessian(land, z), rtol=1e-6, atol=1e-4)
    vals, _ = land.hessian_eigh(z)
    # REFERENCE.md: MA (410.531, 4068.199), S1 (-750.863, 490.241), S2 (-735.247, 510.887)
    np.testing.assert_allclose(vals[0], [410.531, 4068.199], atol=2e-3)
    np.testing.assert_allclose(vals[3], [-750.863, 490.241], atol=2e-3)
    np.testing.assert_allclose(vals[4], [-735.247, 510.887], atol=2e-3)


def test_hessian_of_a_known_quartic():
    # U(z) = sum z_i^4 + z0 z1 (+ ||z||²/2 from the base): H = diag(12 z²) + [[0,1],[1,0]] block + I
    def f(z):
        return (z**4).sum(dim=1) + z[:, 0] * z[:, 1]
    land = Landscape(f, dim=3, base_prior="standard_normal")
    z = points(5, 3)
    expected = np.zeros((5, 3, 3))
    for k in range(5):
        expected[k] = np.diag(12 * z[k] ** 2) + np.eye(3)
        expected[k, 0, 1] = expected[k, 1, 0] = 1.0
    np.testing.assert_allclose(land.hessian(z).numpy(), expected, rtol=1e-12, atol=1e-12)


class _Cube(torch.autograd.Function):
    """z³ as an old-style autograd.Function: double-differentiable, but torch.func cannot transform it."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return z**3

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return grad * 3 * z**2


def test_double_backward_fallback_path():
    def f(z):  # U = sum z³ + z0 z1: H = diag(6 z) + offdiag(0, 1)
        return _Cube.apply(z).sum(dim=1) + z[:, 0] * z[:, 1]
    land = Landscape(f, dim=3, hessian_method="func")
    z = points(5, 3)
    h = land.hessian(z).numpy()
    assert land._func_ok is False  # torch.func refused: the double-backward path produced h
    expected = np.stack([np.diag(6 * zk) for zk in z])
    expected[:, 0, 1] += 1.0
    expected[:, 1, 0] += 1.0
    np.testing.assert_allclose(h, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h, fd_hessian(land, z), rtol=1e-6, atol=1e-6)


def test_torchscript_module_energy_and_hessian():
    mlp = make_mlp()
    scripted = torch.jit.script(make_mlp())
    scripted.load_state_dict(mlp.state_dict())
    land = Landscape(scripted, dim=D, hessian_method="func")
    z = points(6)
    np.testing.assert_allclose(land.energy(z).numpy(), raw_f(mlp, z)[:, 0], rtol=1e-12)
    h = land.hessian(z).numpy()
    np.testing.assert_allclose(h, fd_hessian(land, z), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h, Landscape(mlp).hessian(z).numpy(), rtol=1e-10, atol=1e-12)
    # the double-backward path gives the same Hessians on the scripted module
    land.hessian_method = "autograd"
    np.testing.assert_allclose(land.hessian(z).numpy(), h, rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in scripted.parameters())
    assert scripted.training and next(scripted.parameters()).dtype == torch.float32


# ---------------------------------------------------------------------------------------------- isolation
def test_user_module_is_not_modified_and_gets_no_grads():
    mlp = make_mlp()
    mlp.train()
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    land = Landscape(mlp, base_prior="standard_normal")
    z = points(8)
    land.energy(z)
    land.energy_and_grad(z)
    land.hessian(z[:2])
    assert mlp.training  # still in train mode
    for name, p in mlp.named_parameters():
        assert p.grad is None, name
        assert p.requires_grad, name
        assert p.dtype == torch.float32, name
        assert p.device.type == "cpu"
        assert torch.equal(p.detach(), before[name]), name
    # and the landscape's own copy is in eval mode with frozen parameters
    assert not land.energy_module.training
    assert all(not p.requires_grad and p.grad is None for p in land.energy_module.parameters())


def test_eval_mode_is_used_dropout_and_batchnorm():
    torch.manual_seed(0)
    mod = nn.Sequential(nn.Linear(D, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 1))
    mod.train()
    with torch.no_grad():
        mod(torch.randn(64, D))  # move the running statistics away from their initial values
    land = Landscape(mod)
    z = points(10)
    u1 = land.energy(z).numpy()
    u2 = land.energy(z).numpy()
    np.testing.assert_array_equal(u1, u2)  # deterministic: dropout off, running stats used
    # a single row is fine in eval mode (BatchNorm in train mode would refuse one row)
    np.testing.assert_allclose(land.energy(z[:1]).numpy(), u1[:1], rtol=1e-12)


# ---------------------------------------------------------------------------------------------- sign check, scales
def test_sign_check_passes_when_data_sits_low():
    f = lambda z: ((z - 3.0) ** 2).sum(dim=1)  # noqa: E731 - data near z = 3 is probable
    ref = 3.0 + 0.1 * points(50, 2)
    land = Landscape(f, dim=2, reference=ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sc = land.sign_check()
    assert sc.ok and sc.mean_U_reference < sc.mean_U_base


def test_sign_check_warns_when_flipped_and_names_the_fix():
    f = lambda z: -((z - 3.0) ** 2).sum(dim=1)  # noqa: E731 - a log-density passed as an energy
    ref = 3.0 + 0.1 * points(50, 2)
    land = Landscape(f, dim=2, reference=ref)
    with pytest.warns(UserWarning, match="convention='log_density'"):
        sc = land.sign_check()
    assert not sc.ok and sc.mean_U_reference > sc.mean_U_base
    # and the other way round
    land2 = Landscape(lambda z: ((z - 3.0) ** 2).sum(dim=1), dim=2, reference=ref, convention="log_density")
    with pytest.warns(UserWarning, match="convention='energy'"):
        assert not land2.sign_check().ok
    assert Landscape(f, dim=2).sign_check() is None  # nothing to compare without reference latents


def test_scales_from_reference_and_from_base():
    ref = np.random.default_rng(0).standard_normal((4000, 3)) * np.array([1.0, 2.0, 0.5])
    land = Landscape(lambda z: (z**2).sum(dim=1), dim=3, reference=ref)
    sc = land.scales()
    assert sc.source == "reference"
    np.testing.assert_allclose(sc.sigma_z, ref.std(axis=0), rtol=1e-12)
    u = (ref**2).sum(axis=1)
    np.testing.assert_allclose(sc.sigma_E, 1.4826 * np.median(np.abs(u - np.median(u))), rtol=1e-12)
    assert sc.length == pytest.approx(np.sqrt(np.mean(ref.std(axis=0) ** 2)))

    land2 = Landscape(lambda z: (z**2).sum(dim=1), dim=3, base_prior="standard_normal", base_sigma=2.0)
    sc2 = land2.scales(n_samples=20000)
    assert sc2.source == "base_prior"
    np.testing.assert_allclose(sc2.sigma_z, 2.0, rtol=0.03)
    # U = 1.125 ||z||² with z ~ N(0, 4 I): ||z||²/4 ~ chi²(3); sigma_E = 1.4826 × 1.125 × 4 × MAD(chi²(3)), with the
    # population MAD a solving F(m + a) - F(m - a) = 1/2 around the median m
    from scipy.optimize import brentq
    from scipy.stats import chi2
    m = chi2.median(3)
    mad = brentq(lambda a: chi2.cdf(m + a, 3) - chi2.cdf(m - a, 3) - 0.5, 1e-6, 10.0)
    assert sc2.sigma_E == pytest.approx(1.4826 * 1.125 * 4 * mad, rel=0.05)


def test_scales_are_not_dominated_by_steep_walls():
    from energyscope.surfaces import MullerBrown
    land = Landscape(MullerBrown(), dim=2)
    u = land.energy(land.base_samples(2048)).numpy()
    # a few samples on the exponential wall make the standard deviation enormous; the robust spread is not
    assert np.std(u) > 1e4
    assert 10 < land.scales().sigma_E < 2e3


# ---------------------------------------------------------------------------------------------- bad input
def test_wrong_shaped_output_is_a_clear_error():
    with pytest.raises(LandscapeError, match="rows"):
        Landscape(lambda z: z[:1, 0], dim=3)
    with pytest.raises(LandscapeError, match="torch.Tensor"):
        Landscape(lambda z: 1.0, dim=3)


def test_wrong_latent_shape_is_a_clear_error():
    land = Landscape(make_mlp())
    with pytest.raises(LandscapeError, match=r"\(N, 4\)"):
        land.energy(np.zeros((3, 5)))
    with pytest.raises(LandscapeError, match=r"\(N, 4\)"):
        land.energy_and_grad(np.zeros((2, 3, 4)))


def test_bad_arguments_name_the_problem():
    with pytest.raises(LandscapeError, match="convention"):
        Landscape(make_mlp(), convention="density")
    with pytest.raises(LandscapeError, match="temperature"):
        Landscape(make_mlp(), temperature=0.0)
    with pytest.raises(LandscapeError, match="dim"):
        Landscape(lambda z: z.sum(1))
    with pytest.raises(LandscapeError, match="reference"):
        Landscape(make_mlp(), dim=4, reference=np.zeros((5, 3)))
    with pytest.raises(LandscapeError, match="labels"):
        Landscape(make_mlp(), reference=np.zeros((5, 4)), labels=np.zeros(4))


def test_nan_energies_come_back_as_nan_rows():
    def f(z):  # NaN where z0 < -1 (log of a negative number), finite elsewhere
        return torch.log(z[:, 0] + 1.0) + (z**2).sum(dim=1)
    land = Landscape(f, dim=2)
    z = np.array([[0.0, 0.0], [-2.0, 0.5], [0.5, 0.5]])
    u = land.energy(z).numpy()
    assert np.isnan(u[1]) and np.isfinite(u[[0, 2]]).all()
    np.testing.assert_allclose(u[[0, 2]], [0.0, np.log(1.5) + 0.5], rtol=1e-12)
    e, g = land.energy_and_grad(z)
    assert np.isnan(e[1].item()) and np.isfinite(g.numpy()[[0, 2]]).all()
    np.testing.assert_allclose(g.numpy()[0], [1.0, 0.0], rtol=1e-12)


def test_bad_numbers_get_clear_errors():
    """Constant and integer-valued energies, and NaN/inf reference latents, used to fail deep inside autograd or the
    tolerances (`element 0 of tensors does not require grad`, `gtol must be positive ... got nan`)."""
    with pytest.raises(es.LandscapeError, match="does not depend on z"):
        es.Landscape(lambda z: torch.ones(len(z), dtype=z.dtype), dim=2)
    with pytest.raises(es.LandscapeError, match="int64 values; it must return floating-point"):
        es.Landscape(lambda z: (3 * z.sum(1)).round().long(), dim=2)
    ref = np.random.default_rng(0).standard_normal((20, 2))
    ref[[3, 7], 1] = [np.nan, np.inf]
    with pytest.raises(es.LandscapeError, match="NaN or inf in 2 of 20 rows \\(first: row 3\\)"):
        es.Landscape(lambda z: (z * z).sum(1), dim=2, reference=ref)
    # a constant energy plus the base prior is a plain Gaussian: fine
    land = es.Landscape(lambda z: torch.zeros(len(z), dtype=z.dtype), dim=2, base_prior="standard_normal")
    m = es.find_minima(land, n_restarts=16, progress=False)
    assert len(m) == 1 and np.abs(m.z).max() < 1e-6
    with pytest.raises(ValueError, match="seed must be an integer in \\[0, 2\\^63\\)"):
        es.find_minima(land, n_restarts=4, seed=-1, progress=False)
    with pytest.raises(ValueError, match="unknown device 'banana'"):
        es.Landscape(lambda z: (z * z).sum(1), dim=2, device="banana")
