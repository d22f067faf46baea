"""User strings with ``$`` (class names such as "$5 note") are drawn as plain text, never as mathtext, in every
figure; and they are HTML-escaped in the report."""
from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.text import Text

import energyscope as es
import energyscope.search.network as network_mod
import energyscope.report.figures as report_figures
from energyscope import render
from energyscope.report import context
from energyscope.surfaces import MullerBrown
from mb_helpers import SMALL_MASSES, exact_connect, mb_reference

#: "$5 note" is odd (plain already), "a$b$c" would be mathtext, the last is invalid mathtext (a parse error)
LABELS = ["$5 note", "a$b$c", r"$\undefinedcommand{1}{0}$"]


def shown(t: Text) -> str:
    """What ``t`` draws, asserting that matplotlib draws it as plain text (not mathtext, not TeX)."""
    s, mode = t._preprocess_math(t.get_text())
    assert mode is False, f"{t.get_text()!r} is drawn as {mode!r}"
    return s


def drawn_strings(fig) -> set[str]:
    """Every non-empty string a figure draws (saving it first, so a mathtext parse error would raise here)."""
    fig.savefig(io.BytesIO(), format="png")
    return {shown(t) for t in fig.findobj(Text) if t.get_text()}


def test_render_figures_show_dollar_labels_as_typed():
    """Tick labels, legend entries, titles, axis labels and suptitles of every render figure."""
    _, ax = plt.subplots()
    render.energy_profile_axes(ax, np.linspace(0, 1, 5), np.zeros(5), np.linspace(0, 1, 5), np.ones(5),
                               title=LABELS[1])
    cases = [
        (render.table_figure(np.array([[3, 0, 1], [0, 2, 0]]), row_names=LABELS[:2], col_names=LABELS,
                             title="T " + LABELS[1], xlabel="X " + LABELS[0], ylabel="Y " + LABELS[2]),
         set(LABELS) | {"T a$b$c", "X $5 note", "Y " + LABELS[2]}),
        (render.bars_figure(LABELS, {"s " + lab: (np.ones(3), None) for lab in LABELS}, ylabel=LABELS[1],
                            title=LABELS[2]),
         set(LABELS) | {"s " + lab for lab in LABELS}),
        (render.grid_figure(np.random.default_rng(0).random((3, 4, 4)), titles=LABELS, suptitle="S " + LABELS[1]),
         set(LABELS) | {"S a$b$c"}),
        (render.rows_figure([np.zeros((2, 5)), np.ones((2, 5))], row_labels=LABELS[1:], col_labels=LABELS[:2],
                            suptitle="S " + LABELS[2]),
         set(LABELS) | {"S " + LABELS[2]}),
        (ax.figure, {LABELS[1]}),
    ]
    for fig, expected in cases:
        assert expected <= drawn_strings(fig)
        plt.close(fig)


def mb_tree():
    net = exact_connect(es.Landscape(MullerBrown(), dim=2), es.find_minima(
        es.Landscape(MullerBrown(), dim=2), n_restarts=24, seed=0, progress=False))
    return es.disconnectivity(net)


def test_disconnectivity_plot_legend_leaves_and_title_are_plain():
    tree = mb_tree()
    drawn = tree.plot(color_by={0: LABELS[0], 1: LABELS[1], 2: LABELS[2]}, categorical=True,
                      color_label=LABELS[1], leaf_labels={0: "a$b$", 1: LABELS[1], 2: LABELS[2]}, title=LABELS[2])
    strings = drawn_strings(drawn.fig)
    assert set(LABELS) | {"a$b$"} <= strings
    assert [shown(t) for t in drawn.legend.get_texts()] == sorted(LABELS)
    assert shown(drawn.legend.get_title()) == LABELS[1]
    plt.close(drawn.fig)
    drawn = tree.plot(color_by={0: 0.1, 1: 0.5, 2: 0.9}, color_label=LABELS[1])   # a colorbar label
    assert LABELS[1] in drawn_strings(drawn.fig)
    plt.close(drawn.fig)


@pytest.fixture(scope="module")
def dollar_analysis():
    """A small Müller–Brown analysis whose labels carry ``$`` and HTML."""
    old = network_mod.connect
    network_mod.connect = exact_connect
    try:
        ref, labels = mb_reference()
        names = np.array(["<b>$5 note</b>", LABELS[1], LABELS[2]])
        land = es.Landscape(MullerBrown(), dim=2, reference=ref, labels=names[np.searchsorted(["A", "B", "C"],
                                                                                              labels)])
        return es.analyze(land, seed=0, n_restarts=48, grid_size=30, progress=False, interpret_kwargs=SMALL_MASSES)
    finally:
        network_mod.connect = old


def test_report_figures_draw_dollar_labels_as_plain_text(dollar_analysis, monkeypatch):
    captured = []
    original = report_figures.figure_uri

    def capture(fig, dpi=report_figures.DPI):
        captured.append(fig)
        return original(fig, dpi)
    monkeypatch.setattr(report_figures, "figure_uri", capture)
    ctx = context(dollar_analysis)
    assert not [w for w in ctx["diagnostics"]["warnings"] if "figure not drawn" in w]
    strings = set().union(*(drawn_strings(f) for f in captured))
    assert {"<b>$5 note</b>", LABELS[1], LABELS[2]} <= strings                  # tree legend, confusion table
    # a d > 2 map is a PCA projection with one legend entry per label
    uri = report_figures.pca_uri(np.zeros((1, 3)), np.zeros((0, 3)), [],
                                 reference=np.random.default_rng(0).standard_normal((9, 3)),
                                 reference_labels=np.repeat(LABELS, 3))
    assert uri.startswith("data:image/png;base64,")
    assert {f"data: {lab}" for lab in LABELS} <= drawn_strings(captured[-1])


def test_report_html_escapes_labels(dollar_analysis):
    html = dollar_analysis.render_report()
    assert "<b>$5 note</b>" not in html
    assert "&lt;b&gt;$5 note&lt;/b&gt;" in html
