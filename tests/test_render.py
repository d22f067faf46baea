"""Rendering picks the right kind of picture per output shape."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from energyscope.render import grid_figure, output_kind, rows_figure, thumbnails, to_images


@pytest.mark.parametrize("shape,kind", [((8, 8), "image"), ((1, 28, 28), "image"), ((3, 16, 12), "image"),
                                        ((64,), "line"), ((4, 8, 8), "table"), ((2, 3, 4, 5), "table"),
                                        ((1,), "table"), ((), "table"), ((1, 64), "table")])
def test_kind_from_shape(shape, kind):
    assert output_kind(shape) == kind


def test_override_and_bad_kind():
    assert output_kind((8, 8), "table") == "table"
    assert output_kind((64,), "image") == "image"
    with pytest.raises(ValueError, match="unknown render kind 'video'"):
        output_kind((8, 8), "video")


def test_to_images_layout_and_scaling():
    x = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3, 4, 5)
    img = to_images(x)
    assert img.shape == (2, 4, 5, 3)                          # channels moved last
    assert img.min() == 0.0 and img.max() == 1.0              # common min-max scaling outside [0, 1]
    assert img[1, 3, 4, 2] == 1.0 and img[0, 0, 0, 0] == 0.0
    grey = np.full((3, 1, 8, 8), 0.25)
    np.testing.assert_array_equal(to_images(grey), np.full((3, 8, 8), 0.25))  # already in [0, 1]: unchanged
    flat = np.random.default_rng(0).random((2, 64))
    np.testing.assert_array_equal(to_images(flat, image_shape=(8, 8)), flat.reshape(2, 8, 8))
    with pytest.raises(ValueError, match="cannot view items of shape"):
        to_images(flat, image_shape=(7, 7))


def test_thumbnails_per_kind():
    imgs = np.random.default_rng(0).random((4, 1, 8, 8))
    th = thumbnails(imgs)
    assert th.shape == (4, 8, 8, 3)
    np.testing.assert_array_equal(th[..., 0], imgs[:, 0])
    lines = np.stack([np.linspace(0, 1, 32), np.linspace(1, 0, 32)])
    tl = thumbnails(lines, size=(30, 40))
    assert tl.shape == (2, 30, 40, 3) and 0 <= tl.min() and tl.max() <= 1
    assert not np.allclose(tl[0], tl[1])                      # rising and falling lines look different
    tt = thumbnails(np.random.default_rng(1).random((3, 1, 5)), size=(6, 10))   # (1, 5): a table
    assert tt.shape == (3, 6, 10, 3)


def test_figures_draw_the_right_artists():
    fig = grid_figure(np.random.default_rng(0).random((5, 8, 8)), titles=list("abcde"), ncols=3)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 5 and len(fig.axes) == 6
    plt.close(fig)
    fig = grid_figure(np.random.default_rng(0).random((3, 20)))
    assert all(len(ax.lines) == 1 for ax in fig.axes)
    plt.close(fig)
    fig = grid_figure(np.random.default_rng(0).random((2, 3, 3, 3)))   # (3, 3, 3): 3 channels of 3×3 -> image
    assert all(ax.images for ax in fig.axes)
    plt.close(fig)
    fig = grid_figure(np.random.default_rng(0).random((2, 5, 3, 3)))   # 5 channels: a table of values
    assert all(ax.texts and not ax.images for ax in fig.axes)
    plt.close(fig)
    fig = rows_figure([np.zeros((3, 8, 8)), np.zeros((0, 8, 8)), np.ones((2, 8, 8))], ["a", "b", "c"])
    assert len(fig.axes) == 2 * 3                              # the empty row is left out
    plt.close(fig)


def test_mass_bars_show_other_and_unresolved_mass():
    from energyscope.interpret.masses import OTHER, UNRESOLVED, BasinMasses, MassEstimate, MassFlags
    from energyscope.render import plot_masses

    est = MassEstimate.from_samples("data", np.array([0, 0, 1, OTHER, UNRESOLVED]), 2)
    assert (est.other, est.unresolved) == (0.2, 0.2)
    no = np.zeros(2, bool)
    bm = BasinMasses([[0], [1]], np.zeros(2), None, None, est, MassFlags(no, no, no, 0, {}), 2)
    fig = plot_masses(bm)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "other/new", "unresolved"]
    np.testing.assert_allclose([p.get_height() for p in ax.patches], [0.4, 0.2, 0.2, 0.2])
    plt.close(fig)
