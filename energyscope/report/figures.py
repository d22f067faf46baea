"""Figures for the HTML report, drawn with matplotlib's object API (no pyplot state) and returned as PNG data URIs.

Every function takes plain numpy data (what :class:`~energyscope.analysis.Analysis` saves), so a report rebuilt from
saved results draws exactly the same pictures. PNGs carry no timestamp or software metadata, so the bytes depend only
on the data.
"""
from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from energyscope.interpret.records import GalleryPath
from energyscope.tree.graph import DisconnectivityGraph
from energyscope.tree.plot import DisconnectivityPlot
from energyscope.render import plain_text, plain_texts

DPI = 100
#: colours of the three masses, everywhere in the report
MASS_COLOURS = {"prior": "#3b6fb6", "sampler": "#e0892b", "data": "#3f9b57"}
MINIMUM_COLOUR = "#ffffff"
SADDLE_COLOUR = "#d62728"
PATH_COLOUR = "#111111"
LINE_COLOUR = "#7f7f7f"


# ------------------------------------------------------------------------------------------------------------ basics
def new_figure(width_in: float, height_in: float) -> Figure:
    """A matplotlib Figure with an Agg canvas attached (independent of pyplot and of the global backend)."""
    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure, dpi: int = DPI, tight: bool = True) -> bytes:
    """The figure as PNG bytes, without metadata (deterministic for the same data)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None, pad_inches=0.05,
                metadata={"Software": None}, facecolor="white")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_uri(fig: Figure, dpi: int = DPI) -> str:
    return data_uri(png_bytes(fig, dpi=dpi))


# ------------------------------------------------------------------------------------------------------------ outputs
def display_items(x: np.ndarray) -> tuple[np.ndarray, str]:
    """Decoded outputs (N, ...) prepared for drawing by :mod:`energyscope.render` (kind chosen from the shape):
    images as (N, H, W[, 3]) in [0, 1] on one common scale, lines and tables as (N, D)."""
    from energyscope.render import _prepare
    return _prepare(np.asarray(x, dtype=float), None, None)


def draw_items_row(fig: Figure, gs_row: Any, items: np.ndarray, kind: str, ylim: tuple[float, float] | None) -> list:
    """Draw prepared items into consecutive grid cells; returns the axes."""
    from energyscope.render import draw_item
    axes = []
    for c, cell in enumerate(gs_row):
        a = fig.add_subplot(cell)
        draw_item(a, items[c], kind, ylim=ylim)
        a.set_xticks([])
        a.set_yticks([])
        for sp in a.spines.values():
            sp.set_linewidth(0.5)
            sp.set_color("#999999")
        axes.append(a)
    return axes


def thumbnail_uris(x: np.ndarray, size_in: float = 0.6) -> list[str]:
    """One small PNG per decoded output (N, ...) for the basin table, all on one common scale."""
    from energyscope.render import thumbnails
    rgb = thumbnails(np.asarray(x, dtype=float))
    out = []
    for img in rgb:
        h, w = img.shape[:2]
        fig = new_figure(size_in * w / max(h, w), size_in * h / max(h, w))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(img, interpolation="nearest")
        ax.set_axis_off()
        out.append(data_uri(png_bytes(fig, tight=False)))
    return out


# ------------------------------------------------------------------------------------------------------------ tree
MAX_TREE_LEAVES = 60      # above this many minima a drawn tree is pruned (the analysis keeps them all)


def prune_for_display(tree: Any, heavy: Sequence[int] = (), what: str = "minima") -> tuple[Any, str]:
    """The tree to draw, and a sentence saying how it was pruned ("" when it is drawn whole).

    Up to :data:`MAX_TREE_LEAVES` leaves are drawn whole. Above that the drawing keeps the most persistent minima
    (those whose superbasin must be filled highest before it joins a deeper one: the global minimum and the deepest
    funnels first) and the minima ``heavy`` (e.g. the heaviest by mass); every other minimum is grouped with the kept
    minimum whose superbasin it joins first (:meth:`~energyscope.tree.graph.DisconnectivityGraph.prune`). Merge
    energies among the kept minima are the exact ones: pruning is for display only.
    """
    if tree is None or len(tree) <= MAX_TREE_LEAVES or not hasattr(tree, "prune"):
        return tree, ""
    ids = set(int(i) for i in tree.ids)
    heavy = [int(i) for i in heavy if int(i) in ids]
    n_deep = MAX_TREE_LEAVES - len(heavy)
    order = np.lexsort((tree.energy, -tree.persistence))          # most persistent first, then lowest
    deep = [int(tree.ids[k]) for k in order[:n_deep]]
    shown = tree.prune(keep=sorted(set(deep) | set(heavy)), min_barrier=float("inf"))
    p_min = float(np.min(tree.persistence[order[:n_deep]]))
    note = (f"Pruned for display: {len(shown)} of {len(tree)} {what} are drawn, the {n_deep} whose basins persist "
            f"longest (each joins a deeper one at least {p_min:.3g} nats above itself)"
            + (f" and the {len(heavy)} heaviest by prior mass" if heavy else "")
            + f". Each other minimum is grouped with the drawn minimum whose superbasin it joins first; the number "
              f"in brackets under a leaf counts the minima it stands for. Merge levels between drawn minima are "
              f"exact; the basin table lists all {len(tree)}.")
    return shown, note


def leaf_counts(tree: Any) -> dict[int, str] | bool:
    """Leaf labels: the minimum's id, and in brackets how many minima a pruned leaf stands for (True: ids only)."""
    rep = (getattr(tree, "info", None) or {}).get("represents")
    if not rep:
        return True
    return {int(m): (f"{m} ({n})" if n > 1 else str(m)) for m, n in rep.items()}


def disconnectivity_uri(tree: DisconnectivityGraph, prototypes: np.ndarray | None, dominant: dict[int, Any] | None = None,
                        max_thumbnails: int = 80, ylabel: str = "U − U(global minimum) [nats]",
                        leaf_labels: Any = True) -> str:
    """The disconnectivity graph, drawn by ``tree.plot``, with a decoded prototype under every leaf.

    Args:
        tree: a :class:`~energyscope.tree.graph.DisconnectivityGraph` whose ids index ``prototypes``.
        prototypes: (K, ...) decoded minima or None; drawn through the plot's ``thumbnail`` callback (images as they
            are, lines and tables rasterised by :func:`energyscope.render.thumbnails`).
        dominant: minimum id -> dominant label, to colour leaves by group (None: no colouring).
        max_thumbnails: above this many minima the thumbnails are left out (they would be unreadably small).
        ylabel: the energy axis' label.
        leaf_labels: True (minimum ids) or per-minimum text (a mapping id -> str), drawn under the leaves.
    """
    n = len(tree)
    with_thumbs = prototypes is not None and len(prototypes) >= n and n <= max_thumbnails
    width = float(np.clip(3.0 + (0.6 if with_thumbs else 0.35) * n, 9.0, 15.0))
    fig = new_figure(width, 6.0 if with_thumbs else 5.0)
    ax = fig.add_subplot(1, 1, 1)
    kwargs: dict[str, Any] = {"ax": ax, "leaf_labels": leaf_labels}
    if with_thumbs:
        from energyscope.render import thumbnails
        rgb = thumbnails(np.asarray(prototypes, dtype=float))
        kwargs["thumbnail"] = lambda m, _rgb=rgb: _rgb[int(m)]
    if dominant:
        kwargs["color_by"] = {int(k): str(v) for k, v in dominant.items()}
        kwargs["categorical"] = True
        kwargs["color_label"] = "dominant label"
    drawn = tree.plot(**kwargs)
    tidy_tree_axes(drawn)
    ax.set_ylabel(ylabel)
    return figure_uri(fig)


def mfpt_uri(mfpt: np.ndarray, names: Sequence[str], unit: str, outlined: np.ndarray | None = None) -> str:
    """Mean first-passage times between basins as a heat map (log colour scale), each cell annotated.

    Args:
        mfpt: (n, n) times, row = from, column = to (diagonal ignored); names: (n,) basin names; unit: the time unit.
        outlined: (n, n) bool, cells to outline (the report: crossings most of the sampler's chains make).
    """
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle
    n = len(mfpt)
    off = ~np.eye(n, dtype=bool)
    vals = np.where(off & np.isfinite(mfpt) & (mfpt > 0), mfpt, np.nan)
    size = float(np.clip(1.6 + 0.55 * n, 4.0, 11.0))
    fig = new_figure(size + 1.4, size)
    ax = fig.add_subplot(1, 1, 1)
    finite = vals[np.isfinite(vals)]
    norm = LogNorm(vmin=float(finite.min()), vmax=float(max(finite.max(), finite.min() * 1.0001))) if len(finite) \
        else None
    im = ax.imshow(np.ma.masked_invalid(vals), cmap="viridis_r", norm=norm)
    if n <= 16:
        for i in range(n):
            for j in range(n):
                if i != j:
                    t = mfpt[i, j]
                    light = not np.isfinite(vals[i, j]) or norm is None or float(norm(vals[i, j])) < 0.4
                    ax.text(j, i, "∞" if not np.isfinite(t) else f"{t:.2g}", ha="center", va="center",
                            fontsize=7 if n > 8 else 8, color="black" if light else "white")
    if outlined is not None:
        for i, j in zip(*np.nonzero(off & np.asarray(outlined, dtype=bool))):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#d62728", linewidth=2))
    ax.set_xticks(range(n), labels=names, rotation=90 if n > 8 else 0, fontsize="small")
    ax.set_yticks(range(n), labels=names, fontsize="small")
    ax.set_xlabel("to basin")
    ax.set_ylabel("from basin")
    if norm is not None:
        from matplotlib.ticker import FuncFormatter, NullFormatter
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=f"mean first-passage time [{unit}]")
        cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))  # plain text, not mathtext
        cb.ax.yaxis.set_minor_formatter(NullFormatter())
    return figure_uri(fig)


def transitions_uri(panels: Sequence[tuple[str, np.ndarray]], row_names: Sequence[str],
                    col_names: Sequence[str]) -> str:
    """One-chain transition probabilities as heat maps side by side (same 0–1 colour scale), each cell annotated.

    Args:
        panels: (title, (S, K) probabilities: row = start basin, column = basin after one chain) per panel.
    """
    S, K = panels[0][1].shape
    w = float(np.clip(1.5 + 0.45 * K, 3.5, 8.0))
    fig = new_figure(w * len(panels) + 1.0, float(np.clip(1.5 + 0.45 * S, 3.0, 8.0)))
    axes = [fig.add_subplot(1, len(panels), k + 1) for k in range(len(panels))]
    im = None
    for ax, (title, P) in zip(axes, panels):
        im = ax.imshow(P, cmap="Blues", vmin=0.0, vmax=1.0)
        if S * K <= 24 * 24 and K <= 16:
            for i in range(S):
                for j in range(K):
                    ax.text(j, i, f"{100 * P[i, j]:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if P[i, j] > 0.55 else "black")
        ax.set_title(title, fontsize="medium")
        ax.set_xticks(range(K), labels=col_names, fontsize="small", rotation=90 if K > 12 else 0)
        ax.set_yticks(range(S), labels=row_names, fontsize="small")
        ax.set_xlabel("basin after one chain")
    axes[0].set_ylabel("chain started at minimum")
    cb = fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02, label="probability [%]")
    from matplotlib.ticker import FuncFormatter
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.0f}"))
    return figure_uri(fig)


def tidy_tree_axes(drawn: DisconnectivityPlot) -> None:
    """Use the width for the tree: x limits around the leaves, the colour legend outside on the right."""
    leaf_x, ax = drawn.leaf_x, drawn.ax
    if ax is None or not leaf_x:
        return
    xs = np.asarray(list(leaf_x.values()), dtype=float)
    ax.set_xlim(xs.min() - 0.75, xs.max() + 0.75)
    leg = drawn.legend
    if leg is not None:
        handles, title = leg.legend_handles, leg.get_title().get_text()
        leg.remove()
        ax.legend(handles=handles, title=title, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False,
                  fontsize="small", title_fontsize="small")


# ------------------------------------------------------------------------------------------------------------ paths
def path_uri(rec: GalleryPath, e_ref: float) -> str:
    """One gallery card: the energy profile along the MEP and the straight line; with frames, both filmstrips.

    ``rec``'s ``mep_s``/``mep_energy`` and ``line_s``/``line_energy`` are the profiles (fraction of the way, U in
    nats), ``mep_frames``/``line_frames`` (F, ...) the filmstrips when decoded. Energies are drawn relative to
    ``e_ref``.
    """
    mep_frames, line_frames = rec.mep_frames, rec.line_frames
    has_frames = mep_frames is not None and line_frames is not None and len(mep_frames) > 0
    n_f = len(mep_frames) if has_frames else 0
    if has_frames:
        fig = new_figure(10.0, 2.5)
        # profile | gap for the row labels | frames
        gs = fig.add_gridspec(2, n_f + 2, width_ratios=[n_f * 0.45, 0.45] + [1] * n_f, wspace=0.06, hspace=0.12,
                              left=0.06, right=0.99, bottom=0.17, top=0.88)
        ax = fig.add_subplot(gs[:, 0])
    else:
        fig = new_figure(4.6, 2.6)
        ax = fig.add_subplot(1, 1, 1)
    s_m = np.asarray(rec.mep_s, float)
    s_l = np.asarray(rec.line_s, float)
    tot_m = s_m[-1] if len(s_m) and s_m[-1] > 0 else 1.0
    tot_l = s_l[-1] if len(s_l) and s_l[-1] > 0 else 1.0
    e_m = np.asarray(rec.mep_energy, float) - e_ref
    e_l = np.asarray(rec.line_energy, float) - e_ref
    ax.plot(s_l / tot_l, e_l, color=LINE_COLOUR, ls="--", lw=1.3, label="straight line")
    ax.plot(s_m / tot_m, e_m, color=PATH_COLOUR, lw=1.6, label="min.-energy path")
    if rec.image_s is not None and rec.image_energy is not None:
        ax.plot(np.asarray(rec.image_s, float), np.asarray(rec.image_energy, float) - e_ref, ls="none",
                marker="o", ms=2.8, color=PATH_COLOUR)
    if np.isfinite(rec.saddle_energy):
        k = int(np.nanargmax(e_m)) if np.isfinite(e_m).any() else 0
        ax.plot([s_m[k] / tot_m], [rec.saddle_energy - e_ref], marker="X", color=SADDLE_COLOUR, ms=8,
                mec="white", mew=0.8, ls="none", label="saddle")
    ax.set_xlabel("fraction of path length")
    ax.set_ylabel("U − U(global min) [nats]", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6.5, frameon=False, loc="best")
    ax.grid(alpha=0.25)
    if has_frames:
        both, kind = display_items(np.concatenate([np.asarray(mep_frames), np.asarray(line_frames)]))
        ylim = None
        if kind == "line":
            from energyscope.render import _ylim
            ylim = _ylim(both)
        for row, name in enumerate(("path", "line")):
            axes = draw_items_row(fig, [gs[row, c + 2] for c in range(n_f)], both[row * n_f:(row + 1) * n_f], kind,
                                  ylim)
            axes[0].set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    return figure_uri(fig)


# ------------------------------------------------------------------------------------------------------------ masses
def masses_uri(basin_idx: np.ndarray, prior: np.ndarray | None, prior_se: np.ndarray | None,
               sampler: np.ndarray | None, sampler_se: np.ndarray | None, data: np.ndarray | None,
               data_se: np.ndarray | None, max_basins: int = 40) -> str | None:
    """Grouped bars: equilibrium prior mass, short-run sampler mass and data mass per basin (with ±1 SE whiskers)."""
    series = [(n, m, s) for n, m, s in (("prior", prior, prior_se), ("sampler", sampler, sampler_se),
                                         ("data", data, data_se)) if m is not None]
    if not series:
        return None
    k = len(basin_idx)
    keep = np.arange(k)
    if k > max_basins:  # the basins that hold the most mass in any of the three
        top = np.max(np.stack([np.asarray(m, float) for _, m, _ in series]), axis=0)
        keep = np.sort(np.argsort(-top, kind="stable")[:max_basins])
    width = float(np.clip(2.0 + 0.32 * len(keep), 6.0, 14.0))
    fig = new_figure(width, 3.3)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(keep))
    w = 0.8 / len(series)
    labels = {"prior": "equilibrium prior", "sampler": "short-run sampler", "data": "data (reference latents)"}
    for s_i, (name, m, se) in enumerate(series):
        m = np.asarray(m, float)[keep]
        err = None if se is None else np.asarray(se, float)[keep]
        ax.bar(x + (s_i - (len(series) - 1) / 2) * w, m, w, yerr=err, color=MASS_COLOURS[name], label=labels[name],
               error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "#333333"})
    ax.set_xticks(x)
    ax.set_xticklabels([str(int(b)) for b in np.asarray(basin_idx)[keep]], fontsize=7)
    ax.set_xlabel("basin (minimum index, lowest energy first)" + (f"; {len(keep)} of {k} shown" if k > len(keep)
                                                                 else ""))
    ax.set_ylabel("mass (fraction)")
    ax.set_ylim(0, None)
    ax.legend(fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.25)
    return figure_uri(fig)


def confusion_uri(counts: np.ndarray, row_names: Sequence[str], col_names: Sequence[str]) -> str | None:
    """Basin × label heat map: colour is the fraction of each basin's reference latents with that label, the
    number is the count."""
    counts = np.asarray(counts, dtype=float)
    if counts.size == 0:
        return None
    r, c = counts.shape
    fig = new_figure(float(np.clip(1.6 + 0.48 * c, 4.0, 12.0)), float(np.clip(1.0 + 0.26 * r, 2.4, 16.0)))
    ax = fig.add_subplot(1, 1, 1)
    tot = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, tot, out=np.zeros_like(counts), where=tot > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    for i in range(r):
        for j in range(c):
            if counts[i, j] > 0:
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=6.5,
                        color="white" if frac[i, j] > 0.6 else "#222222")
    ax.set_xticks(range(c))
    ax.set_xticklabels(plain_texts(col_names), fontsize=7)
    ax.set_yticks(range(r))
    ax.set_yticklabels(plain_texts(row_names), fontsize=7)
    ax.set_xlabel("label")
    ax.set_ylabel("basin")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.set_label("fraction of the basin's data", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    return figure_uri(fig)


# ------------------------------------------------------------------------------------------------------------ maps
MAX_MAP_LABELS = 60       # above this many minima the map numbers only the lowest ones
MAP_LABELS_CROWDED = 25


def _label_colours(labels: np.ndarray) -> tuple[np.ndarray, list, list]:
    from matplotlib import colormaps
    uniq = list(np.unique(labels))
    cmap = colormaps["tab10" if len(uniq) <= 10 else "tab20"]
    col = {u: cmap(i % cmap.N) for i, u in enumerate(uniq)}
    return np.array([col[v] for v in labels]), uniq, [col[u] for u in uniq]


def _draw_markers(ax: Any, minima_xy: np.ndarray, saddles_xy: np.ndarray, paths_xy: Sequence[np.ndarray],
                  annotate: bool = True) -> None:
    """Paths, saddles and minima (numbered). Beyond :data:`MAX_MAP_LABELS` minima the marks shrink and only the
    :data:`MAP_LABELS_CROWDED` lowest minima (the first rows: minima come sorted by energy) are numbered, so that a
    thousand basins stay a picture rather than a blot."""
    crowded = len(minima_xy) > MAX_MAP_LABELS
    ms, lw, alpha = (3.5, 0.5, 0.3) if crowded else (8, 1.3, 0.85)
    for p in paths_xy:
        ax.plot(p[:, 0], p[:, 1], color=PATH_COLOUR, lw=lw, alpha=alpha, zorder=3)
    if len(saddles_xy):
        ax.plot(saddles_xy[:, 0], saddles_xy[:, 1], ls="none", marker="X", ms=ms, mfc=SADDLE_COLOUR,
                mec="white", mew=0.3 if crowded else 0.8, zorder=5, label="saddle")
    if len(minima_xy):
        ax.plot(minima_xy[:, 0], minima_xy[:, 1], ls="none", marker="o", ms=ms, mfc=MINIMUM_COLOUR, mec="black",
                mew=0.5 if crowded else 1.2, zorder=6,
                label=f"minimum ({MAP_LABELS_CROWDED} lowest numbered)" if crowded and annotate else "minimum")
        if annotate:
            for k, (x, y) in enumerate(minima_xy[:MAP_LABELS_CROWDED] if crowded else minima_xy):
                ax.annotate(str(k), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7.5,
                            fontweight="bold", zorder=7,
                            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7})


def contour_uri(grid_x: np.ndarray, grid_y: np.ndarray, grid_u: np.ndarray, minima_z: np.ndarray,
                saddles_z: np.ndarray, paths_z: Sequence[np.ndarray], reference: np.ndarray | None = None,
                reference_labels: np.ndarray | None = None, u_top: float | None = None) -> str:
    """For d = 2: filled contours of U with minima (numbered), saddles and minimum-energy paths on top.

    Colours saturate above ``lo + 1.6 (u_top - lo)`` (``u_top``: the highest saddle), else at the 85th percentile.
    """
    gx, gy, gu = (np.asarray(a, dtype=float) for a in (grid_x, grid_y, grid_u))
    fig = new_figure(7.2, 5.6)
    ax = fig.add_subplot(1, 1, 1)
    finite = gu[np.isfinite(gu)]
    lo = float(finite.min()) if finite.size else 0.0
    hi_all = float(finite.max()) if finite.size else 1.0
    hi = float(np.quantile(finite, 0.85)) if finite.size else 1.0
    if u_top is not None and np.isfinite(u_top) and u_top > lo:
        hi = min(hi_all, lo + 1.6 * (u_top - lo))
    hi = max(hi, lo + 1e-9)
    levels = np.linspace(lo, hi, 28)
    cs = ax.contourf(gx, gy, np.clip(gu, lo, hi), levels=levels, cmap="viridis", extend="max")
    ax.contour(gx, gy, np.clip(gu, lo, hi), levels=levels[::3], colors="k", linewidths=0.35, alpha=0.5)
    cb = fig.colorbar(cs, ax=ax, fraction=0.046, pad=0.02)
    cb.set_label(f"U [nats] (clipped at {hi:.4g}; max {hi_all:.4g})", fontsize=8)
    if reference is not None and len(reference):
        ref = np.asarray(reference, float)
        if reference_labels is not None:
            cols, _, _ = _label_colours(np.asarray(reference_labels))
            ax.scatter(ref[:, 0], ref[:, 1], s=3, c=cols, alpha=0.5, lw=0, zorder=2)
        else:
            ax.scatter(ref[:, 0], ref[:, 1], s=3, c="#dddddd", alpha=0.5, lw=0, zorder=2)
    _draw_markers(ax, np.asarray(minima_z, float).reshape(-1, 2), np.asarray(saddles_z, float).reshape(-1, 2),
                  [np.asarray(p, float) for p in paths_z])
    ax.set_xlim(gx.min(), gx.max())
    ax.set_ylim(gy.min(), gy.max())
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    return figure_uri(fig)


def pca_basis(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (d,), the two leading principal axes (2, d) and their explained-variance fractions (2,)."""
    x = np.asarray(points, dtype=float)
    mean = x.mean(axis=0)
    xc = x - mean
    if len(x) < 2 or not np.any(xc):
        d = x.shape[1]
        axes = np.eye(2, d) if d >= 2 else np.eye(1, d)
        return mean, axes, np.zeros(len(axes))
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    # a fixed sign per axis (largest |component| positive) so the picture does not flip between runs
    vt = vt * np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])[:, None]
    var = s**2
    frac = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    k = min(2, len(vt))
    return mean, vt[:k], frac[:k]


def pca_uri(minima_z: np.ndarray, saddles_z: np.ndarray, paths_z: Sequence[np.ndarray],
            reference: np.ndarray | None = None, reference_labels: np.ndarray | None = None) -> str:
    """For d > 2: minima, saddles and paths in the plane of the first two principal components (a projection).

    The axes are fitted to the reference latents when there are any (the data's own spread), else to the minima and
    path images.
    """
    mz = np.asarray(minima_z, float)
    fit = np.asarray(reference, float) if reference is not None and len(reference) >= 3 else np.concatenate(
        [mz] + [np.asarray(p, float) for p in paths_z]) if len(mz) else np.zeros((1, 2))
    mean, axes, frac = pca_basis(fit)

    def proj(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float).reshape(-1, len(mean))
        p = (x - mean) @ axes.T
        return p if p.shape[1] == 2 else np.column_stack([p, np.zeros(len(p))])
    fig = new_figure(7.2, 5.6)
    ax = fig.add_subplot(1, 1, 1)
    if reference is not None and len(reference):
        pr = proj(reference)
        if reference_labels is not None:
            cols, uniq, ucols = _label_colours(np.asarray(reference_labels))
            ax.scatter(pr[:, 0], pr[:, 1], s=5, c=cols, alpha=0.35, lw=0, zorder=1)
            for u, c in zip(uniq, ucols):
                ax.plot([], [], ls="none", marker="o", ms=5, color=c, label=plain_text(f"data: {u}"))
        else:
            ax.scatter(pr[:, 0], pr[:, 1], s=5, c="#bbbbbb", alpha=0.4, lw=0, zorder=1, label="data")
    _draw_markers(ax, proj(mz), proj(saddles_z) if np.size(saddles_z) else np.zeros((0, 2)),
                  [proj(p) for p in paths_z])
    ax.set_xlabel(f"PC 1 ({100 * frac[0]:.0f}% of variance)" if len(frac) else "PC 1")
    ax.set_ylabel(f"PC 2 ({100 * frac[1]:.0f}% of variance)" if len(frac) > 1 else "PC 2")
    ax.set_title("projection onto 2 principal components (distances and crossings are not preserved)", fontsize=8.5)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    ax.grid(alpha=0.2)
    return figure_uri(fig)


__all__ = ["prune_for_display", "leaf_counts", "MAX_TREE_LEAVES", "new_figure", "png_bytes", "data_uri", "figure_uri", "display_items", "draw_items_row", "thumbnail_uris",
           "disconnectivity_uri", "tidy_tree_axes", "path_uri", "masses_uri", "confusion_uri",
           "contour_uri", "pca_basis", "pca_uri", "MASS_COLOURS"]
