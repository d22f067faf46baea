"""PATHSAMPLE / disconnectionDPS min.data and ts.data: exact round trips and clear errors on malformed files."""
from __future__ import annotations

import numpy as np
import pytest

import energyscope as es
from energyscope.tree.graph import DisconnectivityGraph
from energyscope.io.pathsample import log_vib, read_pathsample, write_pathsample
from energyscope.surfaces import ST_T_MINUS, ST_T_PLUS, ST_T_ZERO

from test_disconnectivity import mb_network, random_network, st_network


def test_round_trip_styblinski_tang_gives_the_same_tree(tmp_path):
    net = st_network(4)
    min_path, ts_path = write_pathsample(net, tmp_path)
    assert (min_path.name, ts_path.name) == ("min.data", "ts.data")
    data = read_pathsample(tmp_path)
    assert len(data.energy) == 16 and len(data.ts_energy) == 4 * 2**3
    np.testing.assert_array_equal(data.energy, net.minima.energy)          # 17 significant digits: exact
    back = data.to_network()
    for tree in (es.disconnectivity(back), data.tree(), DisconnectivityGraph(data.energy, data.edges)):
        assert tree.same_tree(es.disconnectivity(net))
        np.testing.assert_array_equal(tree.merge_edges, es.disconnectivity(net).merge_edges)
    # Frequency factors: log product of the positive Hessian eigenvalues g''(t) = 6t² − 16 per coordinate.
    g2 = lambda t: 6 * t * t - 16  # noqa: E731
    k_plus = ((np.arange(16)[:, None] >> np.arange(4)[None, :]) & 1).sum(1)
    expect = k_plus * np.log(g2(ST_T_PLUS)) + (4 - k_plus) * np.log(g2(ST_T_MINUS))
    np.testing.assert_allclose(data.log_vib, expect, rtol=1e-14)
    # A transition state leaves out its one negative eigenvalue (the t0 coordinate).
    assert g2(ST_T_ZERO) < 0
    for (i, j), lv in zip(data.ts_minima, data.ts_log_vib):
        others = ((i >> np.arange(4)) & 1)[((i ^ j) >> np.arange(4)) & 1 == 0]
        want = np.log(g2(np.where(others == 1, ST_T_PLUS, ST_T_MINUS))).sum()
        assert lv == pytest.approx(want, rel=1e-13)
    np.testing.assert_array_equal(data.order, 1)
    np.testing.assert_array_equal(data.inertia, 0.0)


def test_file_layout_is_pathsample(tmp_path):
    write_pathsample(mb_network(), tmp_path)
    mins = (tmp_path / "min.data").read_text().splitlines()
    ts = (tmp_path / "ts.data").read_text().splitlines()
    assert len(mins) == 3 and len(ts) == 2
    assert all(len(line.split()) == 6 for line in mins) and all(len(line.split()) == 8 for line in ts)
    # ts.data: energy, log_vib, order, min1, min2 (1-based), inertia
    first = ts[0].split()
    assert (int(first[3]), int(first[4])) == (1, 3) and first[2] == "1"
    assert float(first[0]) == mb_network().edges()[0]["energy"]
    assert float(mins[0].split()[1]) == pytest.approx(np.log(410.531) + np.log(4068.199), rel=1e-14)


def test_parallel_edges_and_self_loops_survive(tmp_path):
    net = random_network(9, 25, 11)          # random networks hold parallel edges and self-loops
    loops = sum(1 for u, v in net.graph.edges() if u == v)
    assert loops > 0
    write_pathsample(net, tmp_path)
    data = read_pathsample(min_path=tmp_path / "min.data", ts_path=tmp_path / "ts.data")
    assert len(data.ts_energy) == net.n_transition_states
    assert int((data.ts_minima[:, 0] == data.ts_minima[:, 1]).sum()) == loops
    assert data.tree().same_tree(es.disconnectivity(net))
    assert es.disconnectivity(data.to_network()).info == es.disconnectivity(net).info


def test_write_from_a_graph_and_read_fortran_style(tmp_path):
    tree = es.disconnectivity(random_network(7, 12, 2))
    write_pathsample(tree, tmp_path)
    assert read_pathsample(tmp_path).tree().same_tree(tree)
    # Hand-written files as Fortran tools write them: D exponents, extra columns, blank lines.
    (tmp_path / "min.data").write_text("  -1.0D+01  3.5D0  1  0.0 0.0 0.0\n\n  -5.0D0 2.0 2 1.0 1.0 1.0 extra\n")
    (tmp_path / "ts.data").write_text("  -2.5D0  1.0  1  1  2  0.0 0.0 0.0\n")
    data = read_pathsample(tmp_path)
    np.testing.assert_array_equal(data.energy, [-10.0, -5.0])
    np.testing.assert_array_equal(data.order, [1, 2])
    np.testing.assert_array_equal(data.ts_minima, [[0, 1]])
    assert data.tree().merge_energy(0, 1) == -2.5


@pytest.mark.parametrize("min_text, ts_text, match", [
    ("0.0 0.0 1 0 0 0\n", "1.0 0.0 1 1 3 0 0 0\n", r"line 1 joins minima 1 and 3, but min.data has minima 1\.\.1"),
    ("0.0 0.0 1\n", "", r"min.data:1: expected at least 6 columns"),
    ("0.0 abc 1 0 0 0\n", "", r"min.data:1: not a number"),
    ("nan 0.0 1 0 0 0\n", "", r"non-finite energy"),
    ("", "", r"no minima"),
    ("0.0 0.0 1 0 0 0\n", "1.0 0.0 1 1\n", r"ts.data:1: expected at least 8 columns"),
])
def test_malformed_files_are_named(tmp_path, min_text, ts_text, match):
    (tmp_path / "min.data").write_text(min_text)
    (tmp_path / "ts.data").write_text(ts_text)
    with pytest.raises(ValueError, match=match):
        read_pathsample(tmp_path)


def test_missing_file_and_bad_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="min.data file not found"):
        read_pathsample(tmp_path)
    with pytest.raises(TypeError, match="TransitionNetwork or a DisconnectivityGraph"):
        write_pathsample([0.0, 1.0], tmp_path)
    with pytest.raises(ValueError, match="directory"):
        read_pathsample()


def test_log_vib():
    assert log_vib([-3.0, 0.0, 2.0, 5.0]) == pytest.approx(np.log(10.0))
    assert log_vib([1e-9, 2.0], flat_tol=1e-6) == pytest.approx(np.log(2.0))
    assert log_vib([-1.0]) == 0.0
