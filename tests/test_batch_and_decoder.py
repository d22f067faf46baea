"""A batch of one is evaluated robustly (modules that ``.squeeze()`` their output), and decoder faults (raising,
NaN/inf, wrong row count, non-float output) are clear errors that the pipeline records instead of drawing garbage."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import energyscope as es
import energyscope.search.network as network_mod
from energyscope import Landscape, LandscapeError
from energyscope.surfaces import MullerBrown
from mb_helpers import SMALL_MASSES, exact_connect, mb_reference

D = 3
# torch.func uses torch.jit.script internally in recent torch, which warns that it is deprecated
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def make_mlp(out: int = 1, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, out))


class Squeezed(nn.Module):
    """``return self.net(z).squeeze()``: shape () for one row, (N,) otherwise."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z):
        return self.net(z).squeeze()


class SqueezedConvLogits(nn.Module):
    """1×1 convolutions on (N, d, 1, 1) latents with 4 output channels, squeezed: (N, 4), but (4,) for N = 1."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.c1 = nn.Conv2d(D, 8, 1)
        self.c2 = nn.Conv2d(8, 4, 1)

    def forward(self, z):
        if z.ndim != 4:
            raise RuntimeError("wants (N, d, 1, 1) latents")
        return self.c2(torch.tanh(self.c1(z))).squeeze()


class SqueezedImageDecoder(nn.Module):
    """Latents (N, d) -> images (N, 1, 4, 4), squeezed: (N, 4, 4), but (4, 4) for N = 1."""

    def __init__(self, seed: int = 1):
        super().__init__()
        self.net = make_mlp(out=16, seed=seed)

    def forward(self, z):
        return self.net(z).reshape(-1, 1, 4, 4).squeeze()


def latents(n: int = 5, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D))


# ------------------------------------------------------------------------------------------------ a batch of one
@pytest.mark.parametrize("method", ["autograd", "func"])
def test_squeezing_energy_single_latent_matches_the_batch(method):
    z = latents()
    net = make_mlp()
    plain = Landscape(net, dim=D, hessian_method=method)
    padded = Landscape(net, dim=D, hessian_method=method)
    padded._energy_fn.pad_single = True          # an ordinary module, padded anyway: nothing may change
    squeezed = Landscape(Squeezed(net), dim=D, hessian_method=method)
    # only the module that needs it is padded (padding inside torch.func's vmap costs several times the work)
    assert plain._energy_fn.pad_single is False and squeezed._energy_fn.pad_single is True
    e_all, g_all = plain.energy_and_grad(z)
    h_all = plain.hessian(z)
    for land in (plain, padded, squeezed):
        for i in range(len(z)):
            one = z[i:i + 1]
            e1 = land.energy(one)
            e2, g2 = land.energy_and_grad(one)
            h2 = land.hessian(one)
            assert e1.shape == (1,) and g2.shape == (1, D) and h2.shape == (1, D, D)
            # padding a row to two must not change anything for an ordinary module
            torch.testing.assert_close(e1[0], e_all[i], rtol=0, atol=1e-12)
            torch.testing.assert_close(e2[0], e_all[i], rtol=0, atol=1e-12)
            torch.testing.assert_close(g2[0], g_all[i], rtol=0, atol=1e-12)
            torch.testing.assert_close(h2[0], h_all[i], rtol=0, atol=1e-12)
        torch.testing.assert_close(land.energy(z), e_all, rtol=0, atol=1e-12)
        torch.testing.assert_close(land.hessian(z), h_all, rtol=0, atol=1e-12)
    if method == "func":  # torch.func (vmap calls the module with ONE row) worked, with no fallback
        assert all(getattr(land, "_func_ok", True) is True for land in (padded, squeezed))


def test_single_row_gradient_matches_finite_differences():
    land = Landscape(Squeezed(make_mlp()), dim=D)
    z = latents(1)
    _, g = land.energy_and_grad(z)
    eps = 1e-6
    fd = [(land.energy(z + eps * np.eye(D)[k]) - land.energy(z - eps * np.eye(D)[k])).item() / (2 * eps)
          for k in range(D)]
    np.testing.assert_allclose(g[0].numpy(), fd, rtol=1e-6, atol=1e-9)


def test_squeezing_conv_logits_of_one_row():
    """(1, 4, 1, 1).squeeze() is (4,): without padding, 'the energy returned 4 rows for 1 latents'."""
    land = Landscape(SqueezedConvLogits(), dim=D, convention="logits")
    z = latents()
    e_all, g_all = land.energy_and_grad(z)
    for i in range(len(z)):
        e1, g1 = land.energy_and_grad(z[i:i + 1])
        torch.testing.assert_close(e1[0], e_all[i], rtol=0, atol=1e-12)
        torch.testing.assert_close(g1[0], g_all[i], rtol=0, atol=1e-12)
    torch.testing.assert_close(land.hessian(z[:1])[0], land.hessian(z)[0], rtol=0, atol=1e-12)


def test_squeezing_decoder_single_latent_and_batch():
    dec = SqueezedImageDecoder()
    land = Landscape(make_mlp(), dim=D, decoder=dec)
    z = latents()
    with torch.no_grad():
        expected = dec.double()(torch.as_tensor(z)).numpy()            # (N, 4, 4)
    x = land.decode(z)
    assert x.shape == (5, 4, 4)
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-12)
    for i in range(len(z)):
        one = land.decode(z[i])                                        # a (d,) latent is one row
        assert one.shape == (1, 4, 4)
        np.testing.assert_allclose(one[0], expected[i], rtol=0, atol=1e-12)


def test_scalar_energy_is_a_clear_error():
    """An energy that sums over the batch is not one value per latent; the message says so (no IndexError)."""
    with pytest.raises(LandscapeError, match=r"the energy returned a single value .* for 2 latents"):
        Landscape(lambda z: (z**2).sum(), dim=D)


# ------------------------------------------------------------------------------------------------ decoder faults
def nan_rows(rows):
    """A decoder that returns NaN in the given rows (of each call) and z * 2 elsewhere."""
    def decode(z):
        out = 2.0 * z
        out[[r for r in rows if r < len(z)]] = float("nan")
        return out
    return decode


def test_nan_decoder_output_names_the_count_and_first_row():
    land = Landscape(make_mlp(), dim=D, decoder=nan_rows([2, 5, 7]))
    with pytest.raises(LandscapeError, match=r"the decoder returned NaN or inf for 3 of 10 latents \(first: row 2\)"):
        land.decode(latents(10))


def test_inf_decoder_output_is_reported_across_chunks():
    def decode(z):
        out = z.clone()
        out[z[:, 0] > 0.5] = float("inf")
        return out
    z = latents(40)
    bad = np.flatnonzero(z[:, 0] > 0.5)
    land = Landscape(make_mlp(), dim=D, decoder=decode, batch_size=7)
    with pytest.raises(LandscapeError, match=rf"NaN or inf for {len(bad)} of 40 latents \(first: row {bad[0]}\)"):
        land.decode(z)


@pytest.mark.parametrize("decoder,rows", [(lambda z: z[:-1], "9 rows for 10"),
                                          (lambda z: torch.cat([z, z]), "20 rows for 10")])
def test_wrong_row_count_is_a_clear_error(decoder, rows):
    land = Landscape(make_mlp(), dim=D, decoder=decoder)
    with pytest.raises(LandscapeError, match=f"the decoder returned {rows} latents"):
        land.decode(latents(10))


def test_integer_decoder_output_is_a_clear_error():
    land = Landscape(make_mlp(), dim=D, decoder=lambda z: (z > 0).long())
    with pytest.raises(LandscapeError, match="the decoder returned int64 values"):
        land.decode(latents(4))


def test_raising_decoder_names_the_decoder_and_the_exception():
    def broken(z):
        raise RuntimeError("weights missing")
    land = Landscape(make_mlp(), dim=D, decoder=broken)
    with pytest.raises(LandscapeError, match=r"decoder.*RuntimeError.*weights missing"):
        land.decode(latents(3))

    def sometimes(z):   # works for the first call (which fixes the layout), raises later
        if len(z) == 3:
            raise ValueError("bad batch")
        return z
    land = Landscape(make_mlp(), dim=D, decoder=sometimes)
    land.decode(latents(4))
    with pytest.raises(LandscapeError, match=r"the decoder raised ValueError.*bad batch"):
        land.decode(latents(3))


def test_tuple_decoder_output_uses_its_mean():
    land = Landscape(make_mlp(), dim=D, decoder=lambda z: (2.0 * z, torch.zeros_like(z)))
    z = latents(4)
    np.testing.assert_allclose(land.decode(z), 2.0 * z)
    np.testing.assert_allclose(land.decode(z[0]), 2.0 * z[:1])


# ------------------------------------------------------------------------------------------------ in the pipeline
def analyze_mb_with_decoder(monkeypatch, decoder, tmp_path):
    """analyze() on Müller–Brown (stand-in connect, small masses) with the given decoder; saved and reloaded."""
    monkeypatch.setattr(network_mod, "connect", exact_connect)
    ref, labels = mb_reference()
    land = Landscape(MullerBrown(), dim=2, decoder=decoder, reference=ref, labels=labels)
    res = es.analyze(land, seed=0, n_restarts=48, grid_size=30, progress=False, n_frames=4,
                     interpret_kwargs=SMALL_MASSES)
    res.save(tmp_path / "out")
    return res, es.Analysis.load(tmp_path / "out")


def decoder_messages(res) -> list[str]:
    diag = res.diagnostics
    return [f"{k}: {v}" for k, v in diag["stage_errors"].items()] + list(diag["warnings"])


@pytest.mark.filterwarnings("ignore:prototypes not decoded:RuntimeWarning")
@pytest.mark.parametrize("decoder,problem", [
    (nan_rows([0, 1]), "the decoder returned NaN or inf"),
    (lambda z: z[:-1] if len(z) > 2 else z, "the decoder returned"),
])
def test_faulty_decoder_is_recorded_and_the_analysis_is_kept(monkeypatch, tmp_path, decoder, problem):
    res, loaded = analyze_mb_with_decoder(monkeypatch, decoder, tmp_path)
    for r in (res, loaded):
        assert len(r.minima) == 3 and r.network is not None and r.tree is not None
        assert r.prototypes is None                                   # no garbage images
        assert all("mep_frames" not in rec for rec in (r.paths or []))
        assert [b.data_mass for b in r.basins] == pytest.approx([1 / 3] * 3)   # masses survive the decoder
        msgs = decoder_messages(r)
        assert any(problem in m for m in msgs), msgs
    assert not {"minima", "network", "tree"} & set(res.diagnostics["stage_errors"])
