"""Drawing decoded outputs: the kind of picture is chosen from the output's shape (with a user override).

* ``"image"``: per-item shape (H, W) or (C, H, W) with C in {1, 3} → image grids (grey or RGB);
* ``"line"``: per-item shape (D,) → line plots;
* ``"table"``: anything else → a table of values (flattened).

Everything here takes numpy arrays (N, ...) of decoded items and draws onto matplotlib axes or returns figures; the
computation of what to draw lives in :mod:`energyscope.interpret.stage`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from energyscope.errors import BadArgumentError

KINDS = ("image", "line", "table")


def plain_text(s: Any) -> str:
    """``s`` as a string that matplotlib draws exactly as typed: every ``$`` escaped, so that user strings such as
    class names ("$5 note", "a$b$c") are never read as mathtext (or fail to parse as it). Apply it to every user
    string that reaches a matplotlib text (titles, axis and tick labels, legend entries, annotations)."""
    return str(s).replace("$", r"\$")


def plain_texts(items: Sequence[Any]) -> list[str]:
    """:func:`plain_text` of every item."""
    return [plain_text(t) for t in items]


def output_kind(item_shape: Sequence[int], kind: str | None = None) -> str:
    """The rendering kind for one item of shape ``item_shape`` (no batch axis); ``kind`` overrides the choice."""
    if kind is not None:
        if kind not in KINDS:
            raise BadArgumentError(f"unknown render kind {kind!r}; use one of {', '.join(KINDS)}")
        return kind
    shape = tuple(int(s) for s in item_shape)
    if len(shape) == 2 and min(shape) >= 2:
        return "image"
    if len(shape) == 3 and shape[0] in (1, 3) and min(shape[1:]) >= 2:
        return "image"
    if len(shape) == 1 and shape[0] >= 2:
        return "line"
    return "table"


def _reshape(x: np.ndarray, image_shape: Sequence[int] | None) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if image_shape is not None:
        image_shape = tuple(int(s) for s in image_shape)
        if int(np.prod(image_shape)) != int(np.prod(x.shape[1:])):
            raise BadArgumentError(f"cannot view items of shape {x.shape[1:]} as images of shape {image_shape}")
        x = x.reshape((len(x),) + image_shape)
    return x


def to_images(x: Any, image_shape: Sequence[int] | None = None) -> np.ndarray:
    """Items (N, H, W) or (N, C, H, W) as display images (N, H, W) grey or (N, H, W, 3) RGB in [0, 1].

    Values already in [0, 1] are kept; otherwise the whole batch is scaled by its common min and max (so items stay
    comparable).
    """
    x = _reshape(x, image_shape)
    if x.ndim == 4:
        if x.shape[1] == 1:
            x = x[:, 0]
        elif x.shape[1] == 3:
            x = np.transpose(x, (0, 2, 3, 1))
        else:
            raise BadArgumentError(f"images must have 1 or 3 channels first, got shape {x.shape[1:]}")
    elif x.ndim != 3:
        raise BadArgumentError(f"images must be (N, H, W) or (N, C, H, W), got shape {x.shape}")
    finite = x[np.isfinite(x)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo < 0.0 or hi > 1.0:
        x = (x - lo) / (hi - lo if hi > lo else 1.0)
    return np.clip(np.nan_to_num(x), 0.0, 1.0)


def draw_item(ax, item: np.ndarray, kind: str, cmap: str = "gray", ylim: tuple[float, float] | None = None,
              title: str | None = None) -> None:
    """Draw one decoded item onto ``ax``: an image (already from :func:`to_images`), a line, or a value table."""
    if kind == "image":
        ax.imshow(item, cmap=cmap if item.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    elif kind == "line":
        ax.plot(np.arange(len(item)), item, lw=1.2)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.tick_params(labelsize=6)
    else:
        vals = np.asarray(item, dtype=float).ravel()
        shown = vals[:12]
        text = "\n".join(f"[{i}] {v:.3g}" for i, v in enumerate(shown)) + ("\n…" if len(vals) > 12 else "")
        ax.text(0.02, 0.98, text, va="top", ha="left", family="monospace", fontsize=6, transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        ax.set_title(plain_text(title), fontsize=7)


def _prepare(x: Any, kind: str | None, image_shape: Sequence[int] | None) -> tuple[np.ndarray, str]:
    x = np.asarray(x, dtype=float)
    if x.ndim < 1 or len(x) == 0:
        raise BadArgumentError(f"nothing to draw: items have shape {x.shape}")
    if image_shape is not None:
        kind = "image" if kind is None else kind
    kind = output_kind(x.shape[1:] if image_shape is None else tuple(image_shape), kind)
    if kind == "image":
        return to_images(x, image_shape), kind
    if kind == "line":
        return x.reshape(len(x), -1), kind
    return x.reshape(len(x), -1), kind


def _ylim(x: np.ndarray) -> tuple[float, float]:
    finite = x[np.isfinite(x)]
    if not finite.size:
        return (0.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    pad = 0.05 * (hi - lo if hi > lo else 1.0)
    return lo - pad, hi + pad


def grid_figure(x: Any, kind: str | None = None, titles: Sequence[str] | None = None, ncols: int | None = None,
                image_shape: Sequence[int] | None = None, panel: float = 1.1, suptitle: str | None = None):
    """A figure with one panel per item of x (N, ...), drawn by its kind; returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    items, kind = _prepare(x, kind, image_shape)
    n = len(items)
    ncols = int(ncols or min(n, 10))
    nrows = int(np.ceil(n / ncols))
    wide = 1.0 if kind == "image" else 1.6
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * wide * ncols, panel * nrows + 0.3), squeeze=False)
    ylim = _ylim(items) if kind == "line" else None
    for i, ax in enumerate(axes.ravel()):
        if i < n:
            draw_item(ax, items[i], kind, ylim=ylim, title=None if titles is None else titles[i])
        else:
            ax.axis("off")
    if suptitle:
        fig.suptitle(plain_text(suptitle), fontsize=9)
    fig.tight_layout()
    return fig


def rows_figure(rows: Sequence[Any], row_labels: Sequence[str] | None = None, kind: str | None = None,
                col_labels: Sequence[str] | None = None, image_shape: Sequence[int] | None = None,
                panel: float = 1.0, suptitle: str | None = None):
    """A figure of several rows of items (each row (M_r, ...), e.g. samples per basin or a traversal per mode)."""
    import matplotlib.pyplot as plt

    prepared = [_prepare(r, kind, image_shape) for r in rows if len(r)]
    if not prepared:
        raise BadArgumentError("nothing to draw: every row is empty")
    kind = prepared[0][1]
    labels = list(row_labels) if row_labels is not None else None
    if labels is not None:
        labels = [lab for lab, r in zip(labels, rows) if len(r)]
    ncols = max(len(p[0]) for p in prepared)
    wide = 1.0 if kind == "image" else 1.6
    fig, axes = plt.subplots(len(prepared), ncols, figsize=(panel * wide * ncols + 0.6, panel * len(prepared) + 0.3),
                             squeeze=False)
    ylim = _ylim(np.concatenate([p[0].reshape(len(p[0]), -1) for p in prepared])) if kind == "line" else None
    for r, (items, _) in enumerate(prepared):
        for c in range(ncols):
            ax = axes[r, c]
            if c < len(items):
                title = col_labels[c] if (col_labels is not None and r == 0 and c < len(col_labels)) else None
                draw_item(ax, items[c], kind, ylim=ylim, title=title)
            else:
                ax.axis("off")
        if labels is not None:
            axes[r, 0].set_ylabel(plain_text(labels[r]), fontsize=7)
    if suptitle:
        fig.suptitle(plain_text(suptitle), fontsize=9)
    fig.tight_layout()
    return fig


def thumbnails(x: Any, kind: str | None = None, image_shape: Sequence[int] | None = None,
               size: tuple[int, int] = (36, 48)) -> np.ndarray:
    """One small RGB array per item, for the disconnectivity plot's leaves and the HTML report.

    Returns:
        (N, h, w, 3) floats in [0, 1]: images keep their own resolution (grey repeated to RGB); lines and tables are
        rasterised to ``size`` = (h, w) pixels (a line plot; a colour strip of the values).
    """
    import matplotlib

    items, kind = _prepare(x, kind, image_shape)
    if kind == "image":
        return items if items.ndim == 4 else np.repeat(items[..., None], 3, axis=-1)
    h, w = size
    if kind == "table":
        cmap = matplotlib.colormaps["viridis"]
        flat = items.reshape(len(items), -1)
        lo, hi = _ylim(flat)
        cols = np.clip(np.round(np.linspace(0, flat.shape[1] - 1, w)).astype(int), 0, flat.shape[1] - 1)
        strip = cmap((flat[:, cols] - lo) / (hi - lo))[..., :3]          # (N, w, 3)
        return np.repeat(strip[:, None, :, :], h, axis=1)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, 1])
    ylim = _ylim(items)
    out = np.empty((len(items), h, w, 3))
    for i, item in enumerate(items):
        ax.clear()
        ax.plot(np.arange(len(item)), item, lw=1.0, color="C0")
        ax.set_ylim(*ylim)
        ax.set_xlim(0, max(len(item) - 1, 1))
        ax.axis("off")
        canvas.draw()
        out[i] = np.asarray(canvas.buffer_rgba())[:h, :w, :3] / 255.0
    return out


def energy_profile_axes(ax, path_s: np.ndarray, path_u: np.ndarray, line_s: np.ndarray, line_u: np.ndarray,
                        title: str | None = None) -> None:
    """Both energy profiles on one axes: U along the minimum-energy path and along the straight line (nats)."""
    ax.plot(path_s, path_u, "-", color="C0", lw=1.5, label="minimum-energy path")
    ax.plot(line_s, line_u, "--", color="C3", lw=1.2, label="straight line")
    ax.set_xlabel("fraction of length", fontsize=7)
    ax.set_ylabel("U (nats)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
    if title:
        ax.set_title(plain_text(title), fontsize=8)


def bars_figure(names: Sequence[str], series: dict[str, tuple[np.ndarray, np.ndarray | None]], ylabel: str = "mass",
                title: str | None = None):
    """Grouped bars, one group per name, one bar per series (value, optional error bar) — e.g. masses three ways."""
    import matplotlib.pyplot as plt

    n, m = len(names), max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * n * m + 1.5), 3.0))
    x = np.arange(n)
    width = 0.8 / m
    for j, (label, (val, err)) in enumerate(series.items()):
        ax.bar(x + (j - (m - 1) / 2) * width, val, width, yerr=err, label=plain_text(label), capsize=2)
    ax.set_xticks(x)
    ax.set_xticklabels(plain_texts(names), fontsize=7, rotation=0 if n <= 12 else 90)
    ax.set_ylabel(plain_text(ylabel))
    ax.legend(fontsize=7)
    if title:
        ax.set_title(plain_text(title), fontsize=9)
    fig.tight_layout()
    return fig


def table_figure(counts: np.ndarray, row_names: Sequence[str], col_names: Sequence[str], title: str | None = None,
                 xlabel: str = "label", ylabel: str = "basin"):
    """A heat map of a counts table with the numbers written in (e.g. basin × label confusion)."""
    import matplotlib.pyplot as plt

    counts = np.asarray(counts)
    fig, ax = plt.subplots(figsize=(0.4 * counts.shape[1] + 1.8, 0.3 * counts.shape[0] + 1.2))
    ax.imshow(counts, cmap="Blues", aspect="auto")
    for (r, c), v in np.ndenumerate(counts):
        if v:
            ax.text(c, r, str(int(v)), ha="center", va="center", fontsize=6,
                    color="white" if v > 0.6 * counts.max() else "black")
    ax.set_xticks(range(len(col_names)))
    ax.set_xticklabels(plain_texts(col_names), fontsize=7)
    ax.set_yticks(range(len(row_names)))
    ax.set_yticklabels(plain_texts(row_names), fontsize=7)
    ax.set_xlabel(plain_text(xlabel))
    ax.set_ylabel(plain_text(ylabel))
    if title:
        ax.set_title(plain_text(title), fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- result figures
def plot_prototypes(protos: Any, energy: Sequence[float] | None = None, kind: str | None = None,
                    image_shape: Sequence[int] | None = None, ncols: int | None = None):
    """Decoded minima (K, ...) as a grid, titled with index and energy (nats)."""
    titles = [f"#{k}" + ("" if energy is None else f" U={energy[k]:.3g}") for k in range(len(protos))]
    return grid_figure(protos, kind, titles, ncols, image_shape, suptitle="prototypes (decoded minima)")


def plot_basin_samples(samples, kind: str | None = None, image_shape: Sequence[int] | None = None):
    """Decoded samples per basin (a :class:`~energyscope.interpret.stage.BasinSamples`), one row per basin."""
    if samples.decoded is None:
        raise BadArgumentError("these basin samples were not decoded (no decoder)")
    labels = [f"basin {b}" for b in samples.basins]
    return rows_figure(samples.decoded, labels, kind, image_shape=image_shape,
                       suptitle=f"samples quenching into each basin ({samples.source})")


def plot_traversal(trav, kind: str | None = None, image_shape: Sequence[int] | None = None):
    """Decoded soft-mode walks of one minimum (a :class:`~energyscope.interpret.stage.Traversal`), one row per mode."""
    if trav.decoded is None:
        raise BadArgumentError("this traversal was not decoded (no decoder)")
    labels = [f"λ={v:.3g}" for v in trav.eigenvalues]
    cols = [f"t={t:+.3g}" for t in trav.t]
    unit = "1/√λ" if trav.unit == "curvature" else "the data's spread (σ_z along v)"
    return rows_figure(list(trav.decoded), labels, kind, cols, image_shape,
                       suptitle=f"minimum {trav.index}: softest Hessian directions (t in units of {unit})")


def plot_path_strip(strip, kind: str | None = None, image_shape: Sequence[int] | None = None):
    """Filmstrips along the minimum-energy path and the straight line, with both energy profiles beneath."""
    import matplotlib.pyplot as plt

    has_frames = strip.path_decoded is not None
    n = len(strip.frac)
    rows = 3 if has_frames else 1
    fig = plt.figure(figsize=(max(6.0, 0.9 * n), 1.0 * (rows - 1) + 2.4))
    gs = fig.add_gridspec(rows, n, height_ratios=[1] * (rows - 1) + [2.2])
    if has_frames:
        both, k = _prepare(np.concatenate([strip.path_decoded, strip.line_decoded]), kind, image_shape)
        ylim = _ylim(both) if k == "line" else None
        for r, name in enumerate(("path", "line")):
            for c in range(n):
                ax = fig.add_subplot(gs[r, c])
                draw_item(ax, both[r * n + c], k, ylim=ylim)
                off = strip.path_off_data if r == 0 else strip.line_off_data
                if off is not None and off[c] > 1:
                    for sp in ax.spines.values():
                        sp.set_color("red")
                        sp.set_linewidth(2)
                if c == 0:
                    ax.set_ylabel(name, fontsize=7)
    ax = fig.add_subplot(gs[rows - 1, :])
    energy_profile_axes(ax, strip.profile_frac, strip.path_energy, strip.profile_frac, strip.line_energy,
                        title=f"minimum {strip.i} → {strip.j}: saddle U={strip.saddle_energy:.4g}"
                        + ("; red frame: off the data" if has_frames and strip.path_off_data is not None else ""))
    fig.tight_layout()
    return fig


def plot_masses(masses, names: Sequence[str] | None = None):
    """Equilibrium, sampler and data mass per basin side by side (a :class:`~energyscope.interpret.masses.BasinMasses`)."""
    names = names or [",".join(map(str, g)) if len(g) <= 3 else f"{g[0]}+{len(g) - 1}" for g in masses.groups]
    ests = [(lab, e) for lab, e in (("prior (equilibrium)", masses.equilibrium), ("sampler", masses.sampler),
                                    ("data", masses.data)) if e is not None]
    extra = [(nm, key) for nm, key in (("other/new", "other"), ("unresolved", "unresolved"))
             if any(getattr(e, key) > 0 for _, e in ests)]      # never hide mass that reached no known minimum
    names = list(names) + [nm for nm, _ in extra]
    series = {}
    for label, est in ests:
        val = np.concatenate([est.mass, [getattr(est, key) for _, key in extra]])
        err = np.concatenate([est.se, [getattr(est, key + "_se") for _, key in extra]])
        series[f"{label}: {est.method}" if label.startswith("prior") else label] = (val, err)
    return bars_figure(names, series, ylabel="mass", title="mass per basin, three ways")


def plot_confusion(agreement):
    """The basin × label counts of a :class:`~energyscope.interpret.labels.LabelAgreement`."""
    names = {-1: "other", -2: "unresolved"}
    rows = [names.get(int(r), str(r)) for r in agreement.rows]
    s = agreement.basins
    return table_figure(agreement.confusion, rows, [str(c) for c in agreement.cols],
                        title=f"basins vs labels: NMI {s.nmi:.3f}, ARI {s.ari:.3f}, purity {s.purity:.3f}")


__all__ = ["KINDS", "plain_text", "plain_texts", "output_kind", "to_images", "draw_item", "grid_figure",
           "rows_figure", "thumbnails",
           "energy_profile_axes", "bars_figure", "table_figure", "plot_prototypes",
           "plot_basin_samples", "plot_traversal", "plot_path_strip", "plot_masses", "plot_confusion"]
