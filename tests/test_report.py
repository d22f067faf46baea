"""The HTML report's structure: sections, self-contained images, nothing external, escaping, rebuild from saved
results (API and `energyscope report`), and graceful handling of missing pieces."""
from __future__ import annotations

import base64
import functools
import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from PIL import Image

import energyscope as es
from energyscope.analysis import Analysis
from energyscope.report import fmt, pct, render_report, text_summary
from mb_helpers import SMALL_MASSES, mb_analysis, run_mb

SECTIONS = ("summary", "tree", "basins", "paths", "masses", "labels", "kinetics", "map", "diagnostics")


class _Collect(HTMLParser):
    """Tags and attributes of a page (stdlib parser; fails loudly on nothing, so the checks below do)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> _Collect:
    p = _Collect()
    p.feed(html)
    p.close()
    return p


def png_images(page: _Collect) -> list[Image.Image]:
    out = []
    for tag, attrs in page.tags:
        if tag != "img":
            continue
        src = attrs.get("src", "")
        assert src.startswith("data:image/png;base64,"), src[:60]
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        img = Image.open(io.BytesIO(raw))
        img.load()                      # decodes the whole image; raises on a truncated or corrupt PNG
        assert img.width > 0 and img.height > 0
        out.append(img)
    return out


def check_self_contained(html: str) -> _Collect:
    page = parse(html)
    assert not re.search(r"https?://", html), "the report must not reference the network"
    tags = [t for t, _ in page.tags]
    assert "iframe" not in tags and "object" not in tags and "embed" not in tags
    # one inline script, the report's own (sorting and paging the basin table); nothing loaded from anywhere
    scripts = [attrs for t, attrs in page.tags if t == "script"]
    assert len(scripts) <= 1 and all("src" not in a for a in scripts)
    if scripts:
        body = html.split("<script>", 1)[1].split("</script>", 1)[0]
        assert body.lstrip().startswith("/* The basin table: sort by a column")
        assert not re.search(r"\b(fetch|XMLHttpRequest|eval|import|innerHTML|document\.write)\b", body)
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            v = attrs.get(name)
            if v is not None:
                assert v.startswith(("data:", "#")), f"<{tag} {name}={v[:40]!r}> points outside the file"
    assert "<style>" in html and "stylesheet" not in html
    return page


# ------------------------------------------------------------------------------------------------------ structure
def test_report_sections_images_and_self_contained(tmp_path):
    res = mb_analysis()
    path = res.write_report(tmp_path / "report.html")
    html = path.read_text(encoding="utf-8")
    page = check_self_contained(html)
    ids = [a.get("id") for t, a in page.tags if t == "section"]
    assert ids == list(SECTIONS)
    imgs = png_images(page)
    # tree + 2 paths + masses + confusion + first-passage matrix + free-energy graph + the sampler check + contour
    # map (no decoder: no thumbnails)
    assert len(imgs) == 9
    assert all(i.width >= 300 and i.height >= 200 for i in imgs)
    text = " ".join(page.text)
    for heading in ("Summary", "Disconnectivity graph", "Basins", "Path gallery", "Prior versus data mass",
                    "Basins versus labels", "Kinetics: how long the sampler takes between basins",
                    "Free-energy disconnectivity graph at T = 1", "Contour map", "Diagnostics"):
        assert heading in text
    # the kinetics section states the slowest mode beside the chain length, in the sampler's steps
    kin = res.kinetics
    assert f"the sampler runs {kin.chain_length} steps (ratio {kin.mixing_ratio:.3g})" in text
    assert "energyscope's defaults" in text  # Müller–Brown states no sampler: the defaults are named as such
    # the basin table: one row per minimum with the exact barriers
    rows = re.findall(r"<tr data-index=\"\d+\"[^>]*>\s*<td>(\d+)</td>", html)
    assert rows == ["0", "1", "2"]
    for b in res.basins:
        assert fmt(b.barrier, 3) in html
        assert pct(b.data_mass) in html
    assert "Search completeness" in html and "looks complete" in html
    for stage in ("minima search", "transition network", "disconnectivity tree", "interpretation"):
        assert stage in html


def test_report_escapes_model_text(tmp_path):
    res = mb_analysis().snapshot()
    res.model = dict(res.model, metadata={"name": "<script>alert('x')</script>", "note": "a & b"})
    html = res.render_report()
    assert "<script>alert" not in html and html.count("<script>") == 1     # only the report's own script
    assert "&lt;script&gt;" in html and "a &amp; b" in html


def test_d_greater_than_2_shows_a_labelled_projection():
    """For d > 2 the map is a PCA projection, labelled as one, instead of contours."""
    # The Müller–Brown result lifted to 3-D with a zero third coordinate (the report only needs saved data).
    res = mb_analysis().snapshot()
    res.minima.z = np.column_stack([res.minima.z, np.zeros(len(res.minima.z))])
    for _, _, d in res.network.graph.edges(data=True):
        d["z"] = np.append(d["z"], 0.0)
        d["path"].z = np.column_stack([d["path"].z, np.zeros(len(d["path"].z))])
    res.views = {"reference": np.column_stack([res.views["reference"], np.zeros(120)]),
                 "reference_labels": res.views["reference_labels"]}
    res.model = dict(res.model, dim=3)
    html = res.render_report()
    assert "Projection of minima and paths" in html and "principal components" in html
    assert "Contour map" not in html
    png_images(parse(html))


def test_missing_stages_still_give_a_report():
    res = run_mb(connect=lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no paths today")),
                 with_reference=False, masses=False)
    html = res.render_report()
    check_self_contained(html)
    png_images(parse(html))
    assert "no paths today" in html
    assert "No disconnectivity graph" in html and "No paths" in html
    assert "No labels" in html


def test_a_figure_that_fails_is_reported_not_fatal():
    res = mb_analysis().snapshot()

    class BrokenTree:
        def __len__(self):
            return 3

        def plot(self, **kw):
            raise RuntimeError("cannot draw")
    res.tree = BrokenTree()
    html = render_report(res)
    assert "figure not drawn — disconnectivity graph: RuntimeError: cannot draw" in html
    assert 'id="basins"' in html


@functools.lru_cache(maxsize=None)
def decoder_analysis() -> Analysis:
    """Müller–Brown with a small fixed decoder to 4×4 images, so that prototypes and filmstrips exist."""
    torch.manual_seed(0)
    dec = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Sigmoid(), torch.nn.Unflatten(1, (1, 4, 4)))
    from mb_helpers import exact_connect, mb_reference
    import energyscope.search.network as network_mod
    ref, labels = mb_reference()
    land = es.Landscape(es.surfaces.MullerBrown(), decoder=dec, dim=2, reference=ref, labels=labels,
                        metadata={"name": "Müller–Brown with a toy decoder"})
    old = getattr(network_mod, "connect", None)
    network_mod.connect = exact_connect
    try:
        return es.analyze(land, seed=0, n_restarts=32, progress=False, interpret_kwargs=SMALL_MASSES, grid_size=40,
                          n_frames=5)
    finally:
        if old is None:
            del network_mod.connect
        else:
            network_mod.connect = old


def test_thumbnails_and_filmstrips_with_a_decoder():
    """With a decoder the basin table shows one prototype per minimum and each path card two filmstrips."""
    res = decoder_analysis()
    land = res.landscape
    assert res.prototypes.shape == (3, 1, 4, 4)
    np.testing.assert_allclose(res.prototypes, land.decode(res.minima.z))
    assert res.paths[0]["mep_frames"].shape == (5, 1, 4, 4)
    html = res.render_report()
    page = parse(html)
    thumbs = [a for t, a in page.tags if t == "img" and "thumb" in a.get("class", "")]
    assert len(thumbs) == 3
    png_images(page)
    assert "decoded filmstrip" in html
    back = Analysis.from_payload(*res.to_payload())
    np.testing.assert_array_equal(back.prototypes, res.prototypes)
    assert back.render_report() == html


# ------------------------------------------------------------------------------------------------------ rebuild
def test_report_rebuilt_from_saved_results_is_identical(tmp_path):
    res = mb_analysis()
    out = tmp_path / "out"
    res.save(out)
    first = res.write_report(out / "report.html").read_bytes()
    again = Analysis.load(out).write_report(tmp_path / "again.html").read_bytes()
    assert first == again


def test_cli_report_rebuilds_the_same_html(tmp_path, capsys):
    cli = pytest.importorskip("energyscope.cli")
    res = mb_analysis()
    out = tmp_path / "out"
    res.save(out)
    original = res.write_report(out / "report.html").read_bytes()
    (out / "report.html").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "report.html").read_bytes() == original
    assert cli.main(["report", str(tmp_path / "missing")]) == 2
    assert "results folder not found" in capsys.readouterr().err


def test_text_summary_and_formats():
    assert fmt(None) == "—" and fmt(float("inf")) == "∞" and fmt(-1.5) == "−1.5" and fmt(12345.6) == "12,346"
    assert pct(0.25, 0.01) == "25.0% ± 1.0" and pct(None) == "—"
    s = text_summary(mb_analysis())
    assert s.splitlines()[0].startswith("energyscope analysis of Müller–Brown <test> (d = 2")
    assert "Chao1 estimate 3" in s


@pytest.mark.slow
def test_cli_analyze_then_report_on_the_shipped_digits_model(tmp_path, capsys):
    """The README's main command end to end, then `energyscope report` rebuilds the identical file."""
    from pathlib import Path
    cli = pytest.importorskip("energyscope.cli")
    ckpt = Path(__file__).resolve().parents[1] / "examples" / "digits" / "digits.pt"
    if not ckpt.is_file():
        pytest.skip("the shipped digits model is not there")
    out = tmp_path / "out"
    assert cli.main(["analyze", str(ckpt), "-o", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["analysis.json", "arrays.npz", "report.html"]
    first = (out / "report.html").read_bytes()
    res = Analysis.load(out)
    assert res.diagnostics["stage_errors"] == {}
    assert len(res.minima) >= 2 and res.network.is_connected()
    assert res.prototypes.shape[1:] == (1, 8, 8)
    assert res.label_agreement["nmi"] > 0.3
    page = check_self_contained(first.decode("utf-8"))
    imgs = png_images(page)
    assert len(imgs) >= 5 + len(res.minima)           # figures plus one thumbnail per basin
    assert "Projection of minima and paths" in first.decode("utf-8")
    (out / "report.html").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "report.html").read_bytes() == first
