"""Prototypes, traversals, path filmstrips, off-data flags and the interpret() bundle against known answers."""
from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

import energyscope as es
from energyscope.interpret.stage import (Interpretation, basin_samples, interpret, off_data, path_strip, path_strips,
                                   prototype_thumbnails, prototypes, traversal)
from energyscope.interpret.masses import importance_mass
from energyscope.search.network import Path, TransitionNetwork
from energyscope.render import (plot_basin_samples, plot_confusion, plot_masses, plot_path_strip, plot_prototypes,
                                plot_traversal)
from energyscope.surfaces import MULLER_BROWN_MINIMA, MULLER_BROWN_SADDLES, MullerBrown
from mixture_helpers import MEANS, Mixture, minima_from

W_DEC = torch.arange(32, dtype=torch.float64).reshape(16, 2) / 32.0


def image_decoder(z: torch.Tensor) -> torch.Tensor:
    """A fixed linear decoder (N, 2) -> (N, 1, 4, 4): known output for every latent."""
    return (z @ W_DEC.T).reshape(-1, 1, 4, 4)


class Quadratic(nn.Module):
    """U(z) = ½ Σ λ_i z_i² with λ = (4, 0.25, 1): softest direction is axis 1."""

    lam = torch.tensor([4.0, 0.25, 1.0], dtype=torch.float64)

    def forward(self, z):
        return 0.5 * (self.lam * z * z).sum(1)


def test_traversal_in_curvature_units_rises_by_t_squared_over_two():
    land = es.Landscape(Quadratic(), dim=3, decoder=lambda z: z * 2.0)
    minima = minima_from(land, np.zeros((1, 3)))
    tr = traversal(land, minima, 0, n_modes=2, t=[-2, -1, 0, 1, 2])
    np.testing.assert_allclose(tr.eigenvalues, [0.25, 1.0])
    np.testing.assert_allclose(np.abs(tr.directions), [[0, 1, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(tr.step, [2.0, 1.0])
    np.testing.assert_allclose(tr.energy, np.tile(0.5 * tr.t**2, (2, 1)), atol=1e-12)
    assert tr.decoded.shape == (2, 5, 3)
    np.testing.assert_allclose(tr.decoded, 2.0 * tr.z)
    # in units of the data's spread: sigma_z of base samples (no reference) along the eigenvector
    ts = traversal(land, minima, 0, n_modes=1, t=[1.0], unit="scales")
    assert ts.step[0] == pytest.approx(land.scales().sigma_z[1])
    with pytest.raises(ValueError, match="unknown unit"):
        traversal(land, minima, 0, unit="nats")


def test_path_strip_frames_and_profiles_on_muller_brown():
    land = es.Landscape(MullerBrown(), dim=2, decoder=lambda z: torch.cat([z, z.sum(1, keepdim=True)], 1))
    ma, mc = MULLER_BROWN_MINIMA[0], MULLER_BROWN_MINIMA[2]
    s1 = MULLER_BROWN_SADDLES[0]
    pz = np.stack([ma, s1, mc])                              # a polyline MA -> S1 -> MC
    e = land.energy(pz).numpy()
    p = Path(z=pz, energy=e, saddle_z=s1, saddle_energy=float(e[1]), converged=True, n_evals=0)
    st = path_strip(land, p, n_frames=5, n_profile=41)
    np.testing.assert_allclose(st.path_z[[0, -1]], [ma, mc])
    np.testing.assert_allclose(st.line_z, ma + np.linspace(0, 1, 5)[:, None] * (mc - ma))
    # the S1 corner is at the arc fraction |MA-S1| / (|MA-S1| + |S1-MC|); frames on either side lie on the segments
    seg = np.linalg.norm(np.diff(pz, axis=0), axis=1)
    f = seg[0] / seg.sum()
    k = int(np.searchsorted(st.frac, f)) - 1
    np.testing.assert_allclose(st.path_z[k], ma + st.frac[k] / f * (s1 - ma))
    np.testing.assert_allclose(st.path_energy[[0, -1]], [-146.699517209954014, -80.767818129659028], atol=1e-9)
    np.testing.assert_allclose(st.line_energy[[0, -1]], [-146.699517209954014, -80.767818129659028], atol=1e-9)
    assert st.path_decoded.shape == (5, 3) and st.line_decoded.shape == (5, 3)
    np.testing.assert_allclose(st.path_decoded[:, 2], st.path_z.sum(1))
    assert st.path_off_data is None                           # no reference latents
    net = TransitionNetwork(minima_from(land, MULLER_BROWN_MINIMA))
    back = Path(z=pz[::-1], energy=e[::-1], saddle_z=s1, saddle_energy=float(e[1]), converged=True, n_evals=0)
    net.add_transition_state(0, 2, float(e[1]), s1, -750.0, path=back)  # edge (0, 2); its path runs MC -> MA
    net.add_transition_state(1, 2, -72.0, MULLER_BROWN_SADDLES[1], -735.0, path=None)
    strips = path_strips(land, net, n_frames=4)
    assert len(strips) == 1 and (strips[0].i, strips[0].j) == (2, 0)
    np.testing.assert_allclose(strips[0].path_z[0], mc)
    fig = plot_path_strip(st)
    assert len(fig.axes) == 2 * 5 + 1
    assert [len(ln.get_xdata()) for ln in fig.axes[-1].lines] == [41, 41]
    plt.close(fig)


def test_off_data_ratio_to_nearest_neighbour_spacing():
    ref = np.stack([np.arange(10.0), np.zeros(10)], axis=1)  # every nearest-neighbour distance is 1
    od = off_data([[0.0, 3.0], [4.5, 0.0], [9.0, 0.0]], ref)
    assert od.nn_median == 1.0 and od.nn_p95 == 1.0
    np.testing.assert_allclose(od.distance, [3.0, 0.5, 0.0])
    np.testing.assert_allclose(od.ratio_p95, [3.0, 0.5, 0.0])
    assert od.off.tolist() == [True, False, False]
    with pytest.raises(ValueError, match="3 columns"):
        off_data(np.zeros((1, 3)), ref)


def test_basin_samples_quench_into_their_basin():
    land = es.Landscape(Mixture(subtract_base=True), dim=2, base_prior="standard_normal", decoder=image_decoder)
    minima = minima_from(land, MEANS)
    est = importance_mass(land, minima, n=2048, seed=0, progress=False)
    bs = basin_samples(land, est, per_basin=6, seed=0)
    assert bs.basins == [0, 1, 2] and bs.source == "importance"
    for b, z, dec in zip(bs.basins, bs.z, bs.decoded):
        assert len(z) == 6
        idx = [int(np.flatnonzero((est.z == row).all(1))[0]) for row in z]
        assert np.all(est.basin[idx] == b)                    # each shown sample quenched into basin b
        np.testing.assert_allclose(dec, image_decoder(torch.as_tensor(z)).numpy())
    fig = plot_basin_samples(bs)
    assert sum(bool(ax.images) for ax in fig.axes) == 18
    plt.close(fig)


def test_interpret_bundle_prototypes_labels_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    ref = np.concatenate([m + 0.25 * rng.standard_normal((40, 2)) for m in MEANS])
    labels = np.repeat([0, 1, 2], 40)
    land = es.Landscape(Mixture(subtract_base=True), dim=2, base_prior="standard_normal", decoder=image_decoder,
                        reference=ref, labels=labels, sampler={"steps": 20, "step_size": 0.1})
    minima = minima_from(land, MEANS)
    res = interpret(land, minima, n_prior=2048, n_sampler=1024, progress=False)
    np.testing.assert_allclose(res.prototypes, image_decoder(torch.as_tensor(minima.z)).numpy())
    np.testing.assert_array_equal(prototypes(land, minima), res.prototypes)
    # each labelled cluster sits in its own basin: perfect agreement, and HDBSCAN finds the same three groups
    assert res.labels.basins.nmi == pytest.approx(1.0) and res.labels.basins.hungarian_accuracy == 1.0
    assert res.labels.hdbscan is not None and res.labels.hdbscan.n == 120
    assert res.minima_off_data is not None and not res.minima_off_data.off.any()
    assert res.masses.sampler.info["steps"] == 20 and res.masses.sampler.info["defaults_used"] == ["noise"]
    th = prototype_thumbnails(land, minima)
    assert th.shape == (3, 4, 4, 3)
    for fig in (plot_prototypes(res.prototypes, minima.energy), plot_masses(res.masses), plot_confusion(res.labels),
                plot_traversal(traversal(land, minima, 0, n_modes=2))):
        fig.savefig(tmp_path / "f.png")
        plt.close(fig)
    back = Interpretation.from_dict(json.loads(json.dumps(res.to_dict(), default=lambda a: a.tolist())))
    np.testing.assert_array_equal(back.prototypes, res.prototypes)
    np.testing.assert_array_equal(back.masses.data.basin, res.masses.data.basin)
    assert back.labels.basins == res.labels.basins
