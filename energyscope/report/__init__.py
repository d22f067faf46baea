"""The HTML report: one self-contained file (inline CSS, base64 PNG figures, no scripts, nothing fetched).

:func:`render_report` turns an :class:`~energyscope.analysis.Analysis` into HTML through the Jinja2 template
``templates/report.html`` (autoescaped); :func:`text_summary` is the closing text the CLI prints. Both read only what
:meth:`Analysis.save` keeps, so a report rebuilt with ``energyscope report OUT`` is the same file.

A figure that cannot be drawn does not stop the report: its section says so and the problem is listed under
diagnostics.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from energyscope.interpret.masses import BasinMasses
from energyscope.interpret.records import LabelSummary
from energyscope.report import figures
from energyscope.report.kinetics import kinetics_card, kinetics_context, mixing_sentence
from energyscope.report.notes import mass_notes
from energyscope.settings import AnalysisSettings

if TYPE_CHECKING:  # the report reads an Analysis; the Analysis draws itself with the report
    from energyscope.analysis import Analysis

HEAVIEST_KEPT = 8         # of the drawn leaves, at most this many chosen by prior mass
BASIN_PAGE = 50           # rows per page of the basin table
STAGE_NAMES = {"minima": "minima search", "network": "transition network (NEB + saddles)",
               "tree": "disconnectivity tree", "interpret": "interpretation (prototypes, masses, labels, paths)",
               "kinetics": "kinetics (rates, first passage)", "total": "total"}


# ---------------------------------------------------------------------------------------------------------- formats
def fmt(x: Any, digits: int = 4) -> str:
    """A number for people: ``digits`` significant digits, '—' for None, '∞' for inf."""
    if x is None:
        return "—"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v != 0 and (abs(v) >= 1e7 or abs(v) < 1e-3):
        s = f"{v:.{max(digits - 1, 1)}e}"
    elif abs(v) >= 10 ** digits:
        s = f"{v:,.0f}"
    else:
        s = f"{v:.{digits}g}"
    return s.replace("-", "−")


def pct(x: Any, se: Any = None) -> str:
    """A mass as a percentage, optionally ± its standard error."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    s = f"{100 * float(x):.1f}%"
    if se is not None and np.isfinite(float(se)) and float(se) > 0:
        s += f" ± {100 * float(se):.1f}"
    return s


def secs(x: Any) -> str:
    if x is None:
        return "—"
    v = float(x)
    return f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min"


# ---------------------------------------------------------------------------------------------------------- pieces
class _Figures:
    """Draw figures one by one; a failure becomes a note instead of an exception."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def draw(self, name: str, fn: Callable[[], str | None]) -> str | None:
        try:
            return fn()
        except Exception as exc:  # a broken figure must not lose the rest of the report
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            return None


def _title(result: Analysis) -> str:
    meta = (result.model or {}).get("metadata") or {}
    for key in ("name", "title", "model", "description"):
        if isinstance(meta.get(key), str) and meta[key].strip():
            return meta[key].strip()
    src = (result.settings or {}).get("source")
    return str(src) if src else "energy landscape"


def _model_rows(model: dict) -> list[tuple[str, str]]:
    rows = [("latent dimension d", fmt(model.get("dim"))),
            ("convention", str(model.get("convention", "energy"))),
            ("reduction", str(model.get("reduction") or "—")),
            ("temperature", fmt(model.get("temperature", 1.0))),
            ("base prior", str(model.get("base_prior") or "none")
             + (f" (σ = {fmt(model.get('base_sigma'))})" if model.get("base_prior") else "")),
            ("energy parameters", fmt(model.get("energy_parameters"))),
            ("decoder", "yes" + (f" ({fmt(model['decoder_parameters'])} parameters)"
                                 if model.get("decoder_parameters") else "") if model.get("has_decoder") else "no"),
            ("encoder", "yes" if model.get("has_encoder") else "no"),
            ("reference latents", fmt(model.get("n_reference"))),
            ("labels", "yes" if model.get("has_labels") else "no"),
            ("device / dtype", f"{model.get('device', 'cpu')} / {model.get('dtype', 'float64')}")]
    sm = model.get("smoothness") or {}
    if sm:
        rows.append(("smoothness of U", str(sm.get("message") or sm.get("kind"))))
    if model.get("convention_caution"):
        rows.append(("caution", str(model["convention_caution"])))
    sampler = model.get("sampler") or {}
    if sampler:
        rows.append(("model's sampler", ", ".join(f"{k} = {v}" for k, v in sampler.items())))
    meta = model.get("metadata") or {}
    for k, v in meta.items():
        if isinstance(v, (str, int, float, bool)) and len(str(v)) < 200:
            rows.append((f"metadata: {k}", str(v)))
    return rows


def _settings_rows(settings: dict) -> list[tuple[str, str]]:
    """The pipeline's settings one per row, then for each stage only the settings that differ from their defaults
    (results saved by 0.1.0 kept the stages' settings as the ``*_kwargs`` dicts given: those are shown as given)."""
    defaults = AnalysisSettings().to_dict()
    rows = []
    for k, v in settings.items():
        if isinstance(v, dict):
            default = defaults.get(k) if isinstance(defaults.get(k), dict) else {}
            changed = {a: b for a, b in v.items() if a not in default or default[a] != b}
            if changed:
                rows.append((k, ", ".join(f"{a} = {b}" for a, b in changed.items())))
            continue
        rows.append((k, "default" if v is None else str(v)))
    return rows


def _coverage(result: Analysis) -> dict | None:
    cov = result.minima.coverage if result.minima is not None else None
    if cov is None:
        return None
    d = dict(cov) if isinstance(cov, dict) else cov.to_dict()  # a newer layout may load as a plain dict
    found, est = d.get("found"), d.get("estimated_total")
    if found is None or est is None:
        return None
    from energyscope.completeness import assess
    c = assess(result)
    verdict, cls = (c.verdict, c.level) if c is not None else ("not available", "warn")
    d["against"] = [] if c is None else list(c.against)
    d["verdict"], d["class"] = verdict, cls
    d["stopped"] = str((getattr(result.minima, "stats", None) or {}).get("stopped") or "")
    return d


def _timings(timings: dict) -> list[dict]:
    total = float(timings.get("total") or sum(v for k, v in timings.items() if k != "total") or 0.0)
    rows = []
    for k, v in timings.items():
        if k == "total":
            continue
        rows.append({"stage": STAGE_NAMES.get(k, k), "seconds": secs(v),
                     "width": 0.0 if total <= 0 else round(100.0 * float(v) / total, 1)})
    rows.append({"stage": "total", "seconds": secs(total), "width": None})
    return rows


def _energies(result: Analysis) -> np.ndarray:
    return np.asarray(result.minima.energy, dtype=float) if result.minima is not None else np.zeros(0)


def _basin_rows(result: Analysis, thumbs: list[str] | None) -> list[dict]:
    e = _energies(result)
    e0 = float(e.min()) if len(e) else 0.0
    rows = []
    for b in result.basins:
        k = b.index
        dom, purity = b.dominant_label, b.purity
        rows.append({
            "index": k,
            "thumb": thumbs[k] if thumbs is not None and k < len(thumbs) else None,
            "energy": fmt(b.energy),
            "delta": fmt(float(b.energy) - e0, 3),
            "barrier": fmt(b.barrier, 3),
            "prior": pct(b.prior_mass, b.prior_mass_se),
            "prior_w": _bar(b.prior_mass),
            "sampler": pct(b.sampler_mass, b.sampler_mass_se),
            "sampler_w": _bar(b.sampler_mass),
            "data": pct(b.data_mass),
            "data_w": _bar(b.data_mass),
            "hits": fmt(b.hits),
            "n_flat": fmt(b.n_flat),
            "n_sharp": fmt(b.n_sharp),
            "label": "—" if dom is None else str(dom),
            "label_detail": "" if dom is None else (f"{100 * float(purity):.0f}% of " if purity is not None else "of ")
            + f"{sum(int(c) for c in b.label_counts.values())}",
            "flags": list(b.flags),
            "sort": {"energy": _num(b.energy), "barrier": _num(b.barrier), "prior": _num(b.prior_mass),
                     "sampler": _num(b.sampler_mass), "data": _num(b.data_mass), "hits": _num(b.hits),
                     "flat": _num(b.n_flat), "sharp": _num(b.n_sharp)},
        })
    return rows


def _num(x: Any) -> str:
    """A sort key for the basin table: the number as text, "" when there is none (sorted last)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return ""
    return repr(v) if np.isfinite(v) else ("1e308" if v > 0 else "")


def _bar(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if not np.isfinite(v) else round(100.0 * min(max(v, 0.0), 1.0), 1)


def _edge_points(result: Analysis) -> tuple[np.ndarray, list[np.ndarray]]:
    saddles, paths = [], []
    net = result.network
    if net is None:
        return np.zeros((0, result.minima.dim if result.minima is not None else 2)), []
    for _, _, data in net.graph.edges(data=True):
        if data.get("z") is not None:
            saddles.append(np.asarray(data["z"], dtype=float))
        p = data.get("path")
        if p is not None and len(p.z) > 1:
            paths.append(np.asarray(p.z, dtype=float))
    d = result.minima.dim
    return (np.stack(saddles) if saddles else np.zeros((0, d))), paths


def _map_figure(result: Analysis) -> tuple[str | None, str]:
    if result.minima is None or len(result.minima) == 0:
        return None, "none"
    v = result.views or {}
    saddles, paths = _edge_points(result)
    ref = v.get("reference")
    ref_lab = v.get("reference_labels")
    if result.minima.dim == 2 and v.get("grid_U") is not None:
        top = None
        if result.network is not None and result.network.n_transition_states:
            top = max(float(e) for _, _, e in result.network.graph.edges(data="energy"))
        return figures.contour_uri(v["grid_x"], v["grid_y"], v["grid_U"], result.minima.z, saddles, paths,
                                   ref, ref_lab, u_top=top), "contour"
    return figures.pca_uri(result.minima.z, saddles, paths, ref, ref_lab), "pca"


def _path_cards(result: Analysis, figs: _Figures) -> list[dict]:
    e = _energies(result)
    e0 = float(e.min()) if len(e) else 0.0
    cards = []
    for rec in result.paths:
        img = figs.draw(f"path {rec.i}–{rec.j}", lambda rec=rec: figures.path_uri(rec, e0))
        i, j = rec.i, rec.j
        cards.append({
            "title": f"minimum {i} ↔ minimum {j}",
            "img": img,
            "saddle": fmt(rec.saddle_energy),
            "barrier_ij": fmt(rec.saddle_energy - e[i], 3) if i < len(e) else "—",
            "barrier_ji": fmt(rec.saddle_energy - e[j], 3) if j < len(e) else "—",
            "line_max": fmt(np.nanmax(rec.line_energy) - e0, 3) if len(rec.line_energy) else "—",
            "validated": bool(rec.validated),
            "i": i, "j": j,
        })
    return cards


def _label_rows(la: LabelSummary | None) -> list[dict]:
    if la is None:
        return []
    names = [("purity", "purity"), ("nmi", "NMI"), ("ari", "ARI"), ("v_measure", "V-measure"),
             ("homogeneity", "homogeneity"), ("completeness", "completeness"),
             ("hungarian_accuracy", "Hungarian accuracy"), ("n_clusters", "clusters")]
    hd = la.hdbscan
    return [{"name": name, "basins": fmt(getattr(la, key), 3), "hdbscan": fmt(None if hd is None else hd[key], 3)}
            for key, name in names]


def _confusion(la: LabelSummary | None) -> tuple[np.ndarray, list[str], list[str]] | None:
    if la is None or la.confusion is None:
        return None
    counts = np.asarray(la.confusion)
    rows = [("other" if int(r) == -1 else "unresolved" if int(r) == -2 else str(int(r)))
            for r in (la.confusion_rows or range(len(counts)))]
    cols = [str(c) for c in (la.confusion_cols or range(counts.shape[1]))]
    return counts, rows, cols


def _masses_figure(result: Analysis) -> str | None:
    if not result.basins:
        return None

    def col(key: str) -> np.ndarray | None:
        vals = [getattr(b, key) for b in result.basins]
        if all(v is None for v in vals):
            return None
        return np.array([np.nan if v is None else float(v) for v in vals])
    idx = np.array([b.index for b in result.basins])
    return figures.masses_uri(idx, col("prior_mass"), col("prior_mass_se"), col("sampler_mass"),
                              col("sampler_mass_se"), col("data_mass"), col("data_mass_se"))


def _diagnostics(result: Analysis, figure_errors: list[str]) -> dict:
    d = result.diagnostics or {}
    counts = []
    for key, name in (("unconverged_restarts", "restarts that did not converge"),
                      ("dropped_nonfinite", "restarts dropped for non-finite values"),
                      ("components", "connected components of the network")):
        if key in d:
            counts.append((name, fmt(d[key])))
    for k, v in (d.get("nan_counts") or {}).items():
        counts.append((f"non-finite: {k}", fmt(v)))
    for k, v in (d.get("attempt_outcomes") or {}).items():
        counts.append((f"connection attempts: {k}", fmt(v)))
    names = {"n_restarts": "restarts", "rounds": "rounds of restarts", "n_converged": "descents converged",
             "n_saddles_pushed": "descents stopped on a saddle, pushed off", "n_rejected": "points rejected by the "
             "Hessian check", "n_stalled": "non-smooth descents that stopped on a kink",
             "n_uncertified": "kink end points that could not be certified as minima",
             "n_evals": "energy+gradient evaluations", "n_hessians": "Hessians computed"}
    stats = d.get("minima_stats") or {}
    for k, name in names.items():
        if k in stats:
            counts.append((f"minima search: {name}", fmt(stats[k])))
    counts.extend(_network_counts(result))
    return {"stage_errors": [(STAGE_NAMES.get(k, k), v) for k, v in (d.get("stage_errors") or {}).items()],
            "warnings": list(d.get("warnings") or []) + [f"figure not drawn — {e}" for e in figure_errors],
            "counts": counts,
            "failed": list(d.get("failed_connections") or []),
            "flag_notes": list(d.get("flag_notes") or [])}


def _network_counts(result: Analysis) -> list[tuple[str, str]]:
    """The network stage's cost and its tree check, as (name, value) rows."""
    net = result.network
    if net is None:
        return []
    info, rows = net.info or {}, []
    n_ts = net.n_transition_states
    if info.get("n_evals") is not None:
        rows.append(("network: energy+gradient evaluations", fmt(info["n_evals"])))
        if n_ts:
            rows.append(("network: evaluations per validated transition state", fmt(info["n_evals"] / n_ts, 3)))
    check = info.get("tree_check")
    if check:
        rows.append(("tree check: neighbour segments probed", fmt(check.get("n_probed"))))
        rows.append(("tree check: pairs tried because their segment undercut the tree",
                     fmt(sum(r.get("tried", 0) for r in check.get("rounds", [])))))
        rows.append(("tree check: segments still below the network's barriers", fmt(check.get("n_flagged_left"))))
    return rows


def context(result: Analysis) -> dict:
    """Everything the template shows, as strings, numbers and data URIs."""
    figs = _Figures()
    model = result.model or {}
    e = _energies(result)
    prototypes = result.prototypes
    thumbs = figs.draw("basin thumbnails",
                       lambda: figures.thumbnail_uris(prototypes)) if prototypes is not None else None
    dominant = None
    if any(b.dominant_label is not None for b in result.basins):
        dominant = {b.index: ("none" if b.dominant_label is None else b.dominant_label) for b in result.basins}
    shown_tree, tree_note = _display_tree(result)
    tree_img = figs.draw("disconnectivity graph",
                         lambda: figures.disconnectivity_uri(shown_tree, prototypes, dominant,
                                                             leaf_labels=figures.leaf_counts(shown_tree))
                         ) if shown_tree is not None else None
    map_img, map_kind = (figs.draw("landscape map", lambda: _map_figure(result)) or (None, "none"))
    conf = _confusion(result.label_agreement)
    confusion_img = figs.draw("basin × label table", lambda: figures.confusion_uri(*conf)) if conf else None
    masses_img = figs.draw("masses chart", lambda: _masses_figure(result))
    paths = _path_cards(result, figs)
    net = result.network
    n_ts = net.n_transition_states if net is not None else None
    comps = len(net.components()) if net is not None else None
    interp = result.interpretation or {}
    cards = [("latent dimensions", fmt(model.get("dim"))),
             ("minima", fmt(len(e)) if result.minima is not None else "—"),
             ("transition states", fmt(n_ts)),
             ("connected components", fmt(comps)),
             ("total time", secs((result.timings or {}).get("total")))]
    la = result.label_agreement
    if la is not None:
        cards.append(("NMI basins vs labels", fmt(la.nmi, 3)))
    card = kinetics_card(result)
    if card is not None:
        cards.append(card)
    return {
        "title": _title(result),
        "created": result.created or "",
        "version": (result.settings or {}).get("energyscope_version", ""),
        "cards": cards,
        "coverage": _coverage(result),
        "model_rows": _model_rows(model),
        "settings_rows": _settings_rows(result.settings or {}),
        "timings": _timings(result.timings or {}),
        "tree_img": tree_img,
        "tree_note": tree_note,
        "basin_page": BASIN_PAGE,
        "has_tree": result.tree is not None,
        "has_prototypes": prototypes is not None,
        "n_minima": len(e),
        "basins": _basin_rows(result, thumbs),
        "paths": paths,
        "has_frames": any(r.mep_frames is not None for r in result.paths),
        "masses_img": masses_img,
        "mass_notes": _mass_notes(interp),
        "confusion_img": confusion_img,
        "label_rows": _label_rows(la),
        "has_labels": la is not None,
        "map_img": map_img,
        "map_kind": map_kind,
        "dim": model.get("dim"),
        "kinetics": kinetics_context(result, figs.draw),
        "diagnostics": _diagnostics(result, figs.errors),
    }


def _display_tree(result: Analysis) -> tuple[Any, str]:
    """The energy tree to draw, pruned for display above :data:`~energyscope.report.figures.MAX_TREE_LEAVES`
    minima (keeping the heaviest by prior mass too, where masses were measured), and the sentence that says how."""
    tree = result.tree
    masses = [(b.prior_mass, b.index) for b in result.basins if b.prior_mass is not None and np.isfinite(b.prior_mass)]
    heavy = [i for _, i in sorted(masses, reverse=True)[:HEAVIEST_KEPT]]
    return figures.prune_for_display(tree, heavy)


def _mass_notes(interp: dict) -> list[str]:
    """How the masses were measured: written from the saved estimates (results saved by 0.1.0 stored the text)."""
    bm = interp.get("masses")
    if isinstance(bm, BasinMasses):
        return mass_notes(bm)
    return [str(n) for n in interp.get("mass_notes") or []]


def render_report(result: Analysis) -> str:
    """The report as one HTML string (Jinja2 template with autoescape)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
    env = Environment(loader=PackageLoader("energyscope.report", "templates"),
                      autoescape=select_autoescape(["html"], default=True), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html").render(**context(result))


# ---------------------------------------------------------------------------------------------------------- text
def text_summary(result: Analysis, max_basins: int = 12) -> str:
    """The closing summary the CLI prints: findings, completeness, masses, labels, time per stage, problems."""
    lines = []
    model = result.model or {}
    e = _energies(result)
    lines.append(f"energyscope analysis of {_title(result)} (d = {model.get('dim')}, convention "
                 f"{model.get('convention', 'energy')}"
                 + (f", base {model['base_prior']}" if model.get("base_prior") else "") + ")")
    if result.minima is not None:
        cov = _coverage(result)
        s = f"minima: {len(e)}"
        if cov:
            s += (f" (from {fmt(cov.get('n_restarts'))} restarts; seen once {cov.get('singletons')}, twice "
                  f"{cov.get('doubletons')}; Chao1 estimate {fmt(cov.get('estimated_total'), 3)} — "
                  f"{cov['verdict'].split(':')[0]})")
        lines.append(s)
        for reason in (cov or {}).get("against") or []:
            lines.append(f"  against completeness: {reason}")
    if result.network is not None:
        net = result.network
        n_failed = len((result.diagnostics or {}).get("failed_connections") or [])
        lines.append(f"transition states: {net.n_transition_states}; components: {len(net.components())}; "
                     f"failed connection attempts: {n_failed}")
    if result.basins:
        lines.append("")
        lines.append(f"{'basin':>5} {'U':>10} {'ΔU':>8} {'barrier':>8} {'prior':>7} {'sampler':>7} {'data':>7} "
                     f"{'hits':>5}  label")
        e0 = float(e.min()) if len(e) else 0.0
        for b in result.basins[:max_basins]:
            def p(x):
                return "—" if x is None else f"{100 * float(x):.1f}%"
            lab = b.dominant_label
            lines.append(f"{b.index:>5} {fmt(b.energy, 6):>10} {fmt(float(b.energy) - e0, 3):>8} "
                         f"{fmt(b.barrier, 3):>8} {p(b.prior_mass):>7} {p(b.sampler_mass):>7} "
                         f"{p(b.data_mass):>7} {fmt(b.hits):>5}  "
                         f"{'' if lab is None else lab}{' [' + ', '.join(b.flags) + ']' if b.flags else ''}")
        if len(result.basins) > max_basins:
            lines.append(f"  … {len(result.basins) - max_basins} more in the report")
    la = result.label_agreement
    if la is not None:
        s = (f"labels: purity {fmt(la.purity, 3)}, NMI {fmt(la.nmi, 3)}, ARI {fmt(la.ari, 3)}, "
             f"V-measure {fmt(la.v_measure, 3)}")
        hd = la.hdbscan
        if hd is not None:
            s += f"; HDBSCAN baseline NMI {fmt(hd.nmi, 3)}, ARI {fmt(hd.ari, 3)}"
        lines.append("")
        lines.append(s)
    if result.kinetics is not None:
        lines.append("")
        lines.append(f"kinetics ({result.kinetics.dynamics}, T = {result.kinetics.temperature:g}, "
                     f"{result.kinetics.approximation} approximation): {mixing_sentence(result.kinetics)[0]}")
    elif (result.diagnostics or {}).get("not_available", {}).get("kinetics"):
        lines.append("")
        lines.append(f"kinetics not available: {result.diagnostics['not_available']['kinetics']}")
    t = result.timings or {}
    if t:
        lines.append("")
        lines.append("time: " + ", ".join(f"{k} {float(v):.1f} s" for k, v in t.items() if k != "total")
                     + (f"; total {float(t['total']):.1f} s" if "total" in t else ""))
    d = result.diagnostics or {}
    problems = [f"{k} failed: {v}" for k, v in (d.get("stage_errors") or {}).items()]
    if d.get("unconverged_restarts"):
        problems.append(f"{d['unconverged_restarts']} restarts did not converge")
    if d.get("dropped_nonfinite"):
        problems.append(f"{d['dropped_nonfinite']} restarts dropped for non-finite values")
    problems += list(d.get("warnings") or [])
    if problems:
        lines.append("")
        lines.extend(f"note: {p}" for p in problems)
    return "\n".join(lines)


__all__ = ["render_report", "text_summary", "context", "fmt", "pct"]
