"""The sweep report: one self-contained HTML file over many checkpoints (inline CSS, base64 PNG figures, no scripts).

It answers *when do the basins appear, which merge or split, and when does the prior stop changing*:

* the **timeline**: tracks (basins followed through training) as rows, checkpoints as columns, each cell the
  basin's decoded prototype (a disc sized by its mass without a decoder), births, deaths, merges and splits drawn;
* **curves over training**: number of minima, basins-vs-labels NMI (and the HDBSCAN baseline), the sampler's mixing
  ratio, and each track's energy, lowest barrier and prior mass;
* the **checkpoints' table**, each linked to its own report, with failed checkpoints and their reasons.

:func:`render_sweep_report` reads plain rows and a :class:`~energyscope.tracking.History`, nothing else.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from energyscope.report import _Figures, fmt, secs
from energyscope.report import figures
from energyscope.tracking import EVENT_KINDS, History

MAX_TIMELINE_TRACKS = 40     # above this many tracks the timeline draws the most prominent ones (the table keeps all)
EVENT_COLOURS = {"merge": "#b3261e", "split": "#3b6fb6", "regroup": "#7b3fb6", "birth": "#2f7d46",
                 "death": "#555555"}


# ---------------------------------------------------------------------------------------------------------- tracks
def track_order(history: History) -> list[int]:
    """Tracks in display order: each track, then (recursively) the tracks that split off it, so that a split
    child sits under its parent; roots in the order they start."""
    children: dict[int, list[int]] = {}
    roots = []
    for tr in history.tracks:
        if tr.origin == "split" and tr.parent is not None:
            children.setdefault(tr.parent, []).append(tr.id)
        else:
            roots.append(tr.id)
    order: list[int] = []

    def visit(t: int) -> None:
        order.append(t)
        for c in children.get(t, []):
            visit(c)
    for r in roots:
        visit(r)
    return order


def prominent_tracks(history: History, limit: int = MAX_TIMELINE_TRACKS) -> list[int]:
    """Up to ``limit`` tracks to draw: the largest peak prior mass (data mass, else the longest-lived and lowest
    energy) first; returned in display order."""
    order = track_order(history)
    if len(order) <= limit:
        return order
    mass = history.series("prior_mass")
    if not np.isfinite(mass).any():
        mass = history.series("data_mass")
    energy = history.series("energy")
    life = np.array([len(t.steps) for t in history.tracks], dtype=float)
    peak = np.where(np.isfinite(mass).any(axis=1), np.nanmax(np.where(np.isfinite(mass), mass, -1), axis=1), -1)
    low = np.nanmin(np.where(np.isfinite(energy), energy, np.inf), axis=1)
    rank = sorted(range(len(history.tracks)), key=lambda t: (-peak[t], -life[t], low[t], t))
    keep = set(rank[:limit])
    return [t for t in order if t in keep]


def track_name(history: History, tid: int) -> str:
    """``T3`` or, where the basins carry data labels, ``T3 ‘7’`` (the label at the track's last checkpoint)."""
    tr = history.tracks[tid]
    snap = history.snapshots[tr.end]
    label = snap.labels[tr.basin[tr.end]] if snap.labels is not None else ""
    return f"T{tid}" + (f" ‘{label}’" if label else "")


def _x_labels(history: History) -> list[str]:
    ep = history.epochs
    if np.isfinite(ep).all():
        return [f"{e:g}" for e in ep]
    return list(history.names)


def timeline_uri(history: History, shown: Sequence[int]) -> str:
    """The timeline figure (module docstring) for the tracks ``shown`` (in display order)."""
    from matplotlib.patches import FancyArrowPatch
    n = history.n_checkpoints
    rows = {t: r for r, t in enumerate(shown)}
    has_protos = all(s.prototypes is not None for s in history.snapshots) and len(history.snapshots)
    cell = 0.62 if has_protos else 0.42
    fig = figures.new_figure(max(5.0, 1.6 + cell * 1.25 * n), max(2.2, 0.9 + cell * len(shown)))
    ax = fig.add_axes((0.16, 0.09 if len(shown) > 6 else 0.16, 0.82, 0.84 if len(shown) > 6 else 0.74))
    prototypes = None
    if has_protos:
        items, kind = figures.display_items(np.concatenate([s.prototypes for s in history.snapshots]))
        offsets = np.cumsum([0] + [len(s) for s in history.snapshots])
        prototypes = (items, kind, offsets)
    mass = history.series("prior_mass")
    if not np.isfinite(mass).any():
        mass = history.series("data_mass")
    colours = _track_colours(len(history.tracks))
    for tid in shown:
        tr, y = history.tracks[tid], rows[tid]
        steps = tr.steps
        ax.plot(steps, np.full(len(steps), y), color=colours[tid], lw=2.0, alpha=0.8, zorder=1)
        for t in steps:
            b = int(tr.basin[t])
            if prototypes is not None and prototypes[1] == "image":
                items, _, offsets = prototypes
                img = items[offsets[t] + b]
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest",
                          extent=(t - 0.36, t + 0.36, y + 0.36, y - 0.36), zorder=3)
            else:
                m = mass[tid, t]
                size = 30 + 400 * (m if np.isfinite(m) else 0.05)
                ax.scatter([t], [y], s=size, color="#3b6fb6", alpha=0.8, edgecolor="white", zorder=3)
        if tr.origin == "birth":
            ax.scatter([tr.start - 0.5], [y], marker="+", s=60, color=EVENT_COLOURS["birth"], zorder=4)
        if tr.fate == "death":
            ax.scatter([tr.end + 0.5], [y], marker="x", s=40, color=EVENT_COLOURS["death"], zorder=4)
    for tid in shown:     # merges and splits: arrows between rows
        tr = history.tracks[tid]
        if tr.fate == "merge" and tr.merged_into in rows:
            ax.add_patch(FancyArrowPatch((tr.end + 0.38, rows[tid]), (tr.end + 0.62, rows[tr.merged_into]),
                                         arrowstyle="-|>", mutation_scale=9, lw=1.4, color=EVENT_COLOURS["merge"],
                                         connectionstyle="arc3,rad=0.0", zorder=5))
        if tr.origin == "split" and tr.parent in rows:
            ax.add_patch(FancyArrowPatch((tr.start - 0.62, rows[tr.parent]), (tr.start - 0.38, rows[tid]),
                                         arrowstyle="-|>", mutation_scale=9, lw=1.4, color=EVENT_COLOURS["split"],
                                         connectionstyle="arc3,rad=0.0", zorder=5))
    ax.set_xlim(-0.7, n - 0.3)
    ax.set_ylim(len(shown) - 0.4, -0.6)
    ax.set_xticks(range(n))
    ax.set_xticklabels(_x_labels(history), fontsize=8, rotation=0 if n <= 16 else 60)
    ax.set_xlabel("epoch" if np.isfinite(history.epochs).all() else "checkpoint", fontsize=9)
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([track_name(history, t) for t in shown], fontsize=8)
    for label, tid in zip(ax.get_yticklabels(), shown):   # the colours of the curves over training
        label.set_color(colours[tid])
        label.set_fontweight("bold")
    ax.tick_params(length=0)
    for sp in ax.spines.values():
        sp.set_visible(False)
    ax.grid(axis="x", color="#eef1f6", lw=0.8, zorder=0)
    return figures.figure_uri(fig)


def _track_colours(n: int) -> list:
    from matplotlib import colormaps
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def curves_uri(history: History | None, rows: list[dict]) -> str | None:
    """Curves over training: minima, NMI, mixing ratio (from the rows); energy, barrier, prior mass per track."""
    done = [r for r in rows if r.get("n_minima") is not None]
    if not done:
        return None
    x_all = np.arange(len(rows))
    idx = np.array([i for i, r in enumerate(rows) if r.get("n_minima") is not None])
    epochs = [r.get("epoch") for r in rows]
    use_epochs = all(e is not None for e in epochs)
    x = np.array([float(e) for e in epochs]) if use_epochs else x_all.astype(float)
    fig = figures.new_figure(11.0, 5.6)
    axes = fig.subplots(2, 3)
    fig.subplots_adjust(hspace=0.45, wspace=0.3)

    def series(key: str) -> np.ndarray:
        return np.array([np.nan if rows[i].get(key) is None else float(rows[i][key]) for i in idx])

    ax = axes[0, 0]
    ax.plot(x[idx], series("n_minima"), "o-", color="#1f2a44", ms=3)
    ax.set_title("minima", fontsize=9)
    ax = axes[0, 1]
    nmi, base = series("nmi"), series("hdbscan_nmi")
    if np.isfinite(nmi).any():
        ax.plot(x[idx], nmi, "o-", color="#3f9b57", ms=3, label="basins")
        if np.isfinite(base).any():
            ax.plot(x[idx], base, "s--", color="#7f7f7f", ms=3, label="HDBSCAN")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, frameon=False)
    else:
        ax.text(0.5, 0.5, "no labels", ha="center", va="center", transform=ax.transAxes, color="#5a6376")
    ax.set_title("NMI against the labels", fontsize=9)
    ax = axes[0, 2]
    mix = series("mixing_ratio")
    if np.isfinite(mix).any() and (mix[np.isfinite(mix)] > 0).any():
        ax.semilogy(x[idx], np.where(mix > 0, mix, np.nan), "o-", color="#e0892b", ms=3)
        ax.axhline(1.0, color="#b3261e", lw=0.8, ls=":")
    else:
        ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes, color="#5a6376")
    ax.set_title("slowest relaxation / chain length", fontsize=9)
    if history is not None:
        hx = np.array([x[[r["name"] for r in rows].index(nm)] for nm in history.names])
        colours = _track_colours(len(history.tracks))
        for ax, key, title in ((axes[1, 0], "energy", "energy of each track (nats)"),
                               (axes[1, 1], "barrier", "lowest barrier out (nats)"),
                               (axes[1, 2], "prior_mass", "prior mass of each track")):
            vals = history.series(key)
            if key == "prior_mass" and not np.isfinite(vals).any():
                vals, title = history.series("data_mass"), "data mass of each track"
            if not np.isfinite(vals).any():
                ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes,
                        color="#5a6376")
            data = history.series("data_mass") if key == "prior_mass" and title.startswith("prior") else None
            for tid in range(len(history.tracks)):
                ok = np.isfinite(vals[tid])
                if ok.any():
                    ax.plot(hx[ok], vals[tid][ok], "o-", ms=2.5, lw=1.1, color=colours[tid])
                if data is not None and np.isfinite(data[tid]).any():
                    ok = np.isfinite(data[tid])
                    ax.plot(hx[ok], data[tid][ok], "s--", ms=2, lw=0.9, color=colours[tid], alpha=0.7)
            if data is not None and np.isfinite(data).any():
                title = "prior mass (solid) and data mass (dashed)"
            ax.set_title(title, fontsize=9)
    for ax in axes.ravel():
        ax.tick_params(labelsize=7)
        ax.set_xlabel("epoch" if use_epochs else "checkpoint", fontsize=8)
    return figures.figure_uri(fig)


# ---------------------------------------------------------------------------------------------------------- page
def _event_rows(history: History | None) -> list[dict]:
    if history is None:
        return []
    out = []
    for e in history.events:
        out.append({"kind": e.kind, "colour": EVENT_COLOURS[e.kind],
                    "where": f"{history.names[e.step - 1]} → {history.names[e.step]}",
                    "before": ", ".join(track_name(history, t) for t in e.tracks_before) or "—",
                    "after": ", ".join(track_name(history, t) for t in e.tracks_after) or "—",
                    "masses": _event_masses(history, e),
                    "nearest": "—" if e.nearest is None else f"{e.nearest:.2f}"})
    return out


def _event_masses(history: History, e: Any) -> str:
    def side(step: int, basins: list) -> str:
        m = history.snapshots[step].prior_mass
        if m is None:
            return ""
        return " + ".join(f"{100 * m[b]:.1f}%" for b in basins)
    a, b = side(e.step - 1, e.before), side(e.step, e.after)
    return f"{a or '—'} → {b or '—'}" if (a or b) else ""


def _row_view(r: dict) -> dict:
    status_class = {"done": "ok", "unusable": "warn", "failed": "bad"}.get(r.get("status"), "warn")
    mix = r.get("mixing_ratio")
    return {"name": r["name"], "epoch": "—" if r.get("epoch") is None else f"{r['epoch']:g}",
            "status": r.get("status"), "class": status_class, "reason": r.get("reason") or "",
            "minima": fmt(r.get("n_minima")), "ts": fmt(r.get("n_transition_states")),
            "nmi": "—" if r.get("nmi") is None else f"{r['nmi']:.3f}",
            "mixing": "—" if mix is None or (isinstance(mix, float) and math.isnan(mix)) else fmt(mix, 3),
            "complete": {True: "yes", False: "no"}.get(r.get("complete"), "—"),
            "seconds": secs(r.get("seconds")), "resumed": bool(r.get("resumed")), "report": r.get("report"),
            "host": r.get("host") or ""}


def sweep_context(rows: list[dict], history: History | None, settings: dict, info: dict) -> dict:
    """Everything the sweep template shows."""
    figs = _Figures()
    safe = figs.draw
    shown = prominent_tracks(history) if history is not None else []
    timeline = safe("timeline", lambda: timeline_uri(history, shown)) if history is not None and shown else None
    counts = {k: (history.count(k) if history is not None else 0) for k in EVENT_KINDS}
    cards = [("checkpoints", fmt(len(rows))), ("analysed", fmt(sum(r["status"] == "done" for r in rows))),
             ("failed", fmt(sum(r["status"] != "done" for r in rows))),
             ("tracks", fmt(0 if history is None else len(history.tracks)))] + \
            [(k + "s", fmt(v)) for k, v in counts.items() if k != "regroup" or v]
    settled = _settled(history)
    return {"title": info.get("title") or "checkpoint sweep", "cards": cards,
            "timeline": timeline, "n_tracks": 0 if history is None else len(history.tracks), "n_shown": len(shown),
            "curves": safe("curves", lambda: curves_uri(history, rows)),
            "events": _event_rows(history), "rows": [_row_view(r) for r in rows],
            "failed": [r for r in rows if r["status"] != "done"], "settled": settled,
            "where": info.get("where", ""), "wall": secs(info.get("wall_seconds")),
            "all_resumed": bool(rows) and info.get("n_resumed", 0) == len(rows),
            "threads": info.get("threads_per_task"), "n_resumed": info.get("n_resumed", 0),
            "radius": settings.get("radius"), "changed": _changed(settings.get("analysis") or {}),
            "figure_errors": figs.errors}


def _settled(history: History | None) -> str:
    """A sentence on when the basin structure stopped changing (the last event), for the summary."""
    if history is None or history.n_checkpoints < 2:
        return ""
    if not history.events:
        return f"No basin was born, died, merged or split over the {history.n_checkpoints} checkpoints."
    last = max(e.step for e in history.events)
    if last == history.n_checkpoints - 1:
        return (f"The basins were still changing at the last checkpoint ({history.names[last - 1]} → "
                f"{history.names[last]}): training had not settled the prior's structure.")
    return (f"The last change was between {history.names[last - 1]} and {history.names[last]}; from then on "
            f"({history.n_checkpoints - 1 - last} more checkpoint{'s' if history.n_checkpoints - 1 - last != 1 else ''}) "
            "every basin continued.")


def _changed(analysis: dict) -> list[tuple[str, str]]:
    from energyscope.settings import AnalysisSettings
    try:
        changed = AnalysisSettings.from_dict(analysis).changed()
    except Exception:  # noqa: BLE001 - settings from a newer energyscope: show nothing rather than fail
        return []
    out = []
    for k, v in changed.items():
        if isinstance(v, dict):
            out.extend((f"{k}.{kk}", str(vv)) for kk, vv in v.items())
        else:
            out.append((k, str(v)))
    return out


def render_sweep_report(rows: list[dict], history: History | None, settings: dict, info: dict) -> str:
    """The sweep report as one HTML string (Jinja2, autoescaped)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
    env = Environment(loader=PackageLoader("energyscope.report", "templates"),
                      autoescape=select_autoescape(["html"], default=True), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    return env.get_template("sweep.html").render(**sweep_context(rows, history, settings, info))


__all__ = ["MAX_TIMELINE_TRACKS", "curves_uri", "prominent_tracks", "render_sweep_report", "sweep_context",
           "timeline_uri", "track_order"]
