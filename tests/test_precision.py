"""Unit-free tolerances: float32 models and energies scaled by 1e-8 or 1e8 give the minima and saddles of the
float64, unscaled Müller–Brown surface (REFERENCE.md). Before, a float32 landscape took 140-290 s and found 5-7
"minima" (duplicates) and no transition state; an energy × 1e-8 found no transition state (its descents crawled at
|∇U| per step and never converged)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import energyscope as es
from energyscope.surfaces import (MULLER_BROWN_MINIMA, MULLER_BROWN_MINIMA_ENERGY, MULLER_BROWN_SADDLES,
                                  MULLER_BROWN_SADDLES_ENERGY, MullerBrown)


class Scaled(torch.nn.Module):
    def __init__(self, k: float):
        super().__init__()
        self.mb, self.k = MullerBrown(), k

    def forward(self, z):
        return self.k * self.mb(z)


def _in_float32(z):  # a callable that computes in float32 inside a float64 landscape
    return MullerBrown().float()(z.float())


def search(land):
    m = es.find_minima(land, n_restarts=64, progress=False)
    net = es.connect(land, m, progress=False)
    return m, net


def saddles_of(net):
    z = np.array([d["z"] for _, _, d in net.graph.edges(data=True)])
    e = np.array([d["energy"] for _, _, d in net.graph.edges(data=True)])
    order = np.argsort(e)
    return z[order], e[order]


@pytest.mark.parametrize("make, k, ztol, rtol", [
    (lambda: es.Landscape(MullerBrown(), dim=2), 1.0, 1e-6, 1e-9),
    (lambda: es.Landscape(MullerBrown(), dim=2, dtype=torch.float32), 1.0, 2e-3, 1e-5),
    (lambda: es.Landscape(_in_float32, dim=2), 1.0, 2e-3, 1e-5),
    (lambda: es.Landscape(Scaled(1e-8), dim=2), 1e-8, 1e-6, 1e-9),
    (lambda: es.Landscape(Scaled(1e8), dim=2), 1e8, 1e-6, 1e-9),
], ids=["float64", "float32", "float32-inside", "x1e-8", "x1e8"])
def test_same_minima_and_saddles_whatever_the_precision_or_scale(make, k, ztol, rtol):
    land = make()
    m, net = search(land)
    assert len(m) == 3, m.energy
    np.testing.assert_allclose(m.z, MULLER_BROWN_MINIMA, atol=ztol)
    np.testing.assert_allclose(m.energy, k * MULLER_BROWN_MINIMA_ENERGY, rtol=rtol)
    assert net.is_connected() and net.graph.number_of_edges() == 2
    z, e = saddles_of(net)
    order = np.argsort(MULLER_BROWN_SADDLES_ENERGY)
    np.testing.assert_allclose(e, k * MULLER_BROWN_SADDLES_ENERGY[order], rtol=rtol)
    np.testing.assert_allclose(z, MULLER_BROWN_SADDLES[order], atol=ztol)


def test_precision_of_a_landscape():
    assert es.Landscape(MullerBrown(), dim=2).eps == np.finfo(np.float64).eps
    assert es.Landscape(MullerBrown(), dim=2, dtype=torch.float32).eps == np.finfo(np.float32).eps
    inside = es.Landscape(_in_float32, dim=2)
    assert inside.dtype == torch.float64 and inside.eps == np.finfo(np.float32).eps
    # float64 tolerances are the documented ones; coarser types raise them to what they resolve
    assert es.Landscape(MullerBrown(), dim=2).resolvable(1e-6) == 1e-6
    assert inside.resolvable(1e-6) == pytest.approx(1e3 * np.finfo(np.float32).eps)


@pytest.mark.parametrize("blind_scale", [None, "units"])
def test_lbfgs_iterations_do_not_depend_on_the_energy_unit(blind_scale):
    """The same descent, step for step, for U and 1e-8 U (the old first step −g crawled at |g| per step)."""
    from energyscope.optim import minimize
    a = torch.tensor([3.0, 0.5, 1.0], dtype=torch.float64)

    def make(k):
        def f(z):
            return k * (a * (z - 1.0) ** 2).sum(1) + k * 0.1 * (z ** 4).sum(1), \
                k * (2 * a * (z - 1.0) + 0.4 * z ** 3)
        return f
    z0 = torch.tensor([[-2.0, 3.0, 0.5], [4.0, -1.0, 2.0]], dtype=torch.float64)
    runs = []
    for k in (1.0, 1e-8):
        bs = None if blind_scale is None else 1.0 / k
        runs.append(minimize(make(k), z0, gtol=1e-9 * k, max_step=0.5, blind_scale=bs))
    assert runs[0].converged.all() and runs[1].converged.all()
    assert torch.equal(runs[0].n_iter, runs[1].n_iter)
    np.testing.assert_allclose(runs[1].z.numpy(), runs[0].z.numpy(), atol=1e-10)
