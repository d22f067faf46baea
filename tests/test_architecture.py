"""The package's import contracts (pyproject.toml, [tool.importlinter]) hold: arrows only point down.

Run through pytest so that CI checks them with the README's test command; `lint-imports` prints the same report.
"""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold(monkeypatch, capsys):
    cli = pytest.importorskip("importlinter.cli", reason="import-linter is a test dependency (pip install -e .[test])")
    monkeypatch.chdir(ROOT)
    code = cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 broken" in out and "3 kept" in out



def test_lint_rules_hold():
    """pyflakes' checks (unused imports and variables, undefined names) over the package, tests, benchmarks and
    examples, with the rule set of pyproject.toml ([tool.ruff])."""
    pytest.importorskip("ruff", reason="ruff is a test dependency (pip install -e .[test])")
    import subprocess
    import sys
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "energyscope", "tests",
                          "benchmarks", "examples"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_no_cycle_between_the_path_finders_and_the_network():
    """``Path`` lived in network.py, so neb imported the orchestrator that imports it; it has its own module now,
    and results saved with the old type tag still load as Paths."""
    grimp = pytest.importorskip("grimp")
    from energyscope.search.paths import Path as PathClass
    from energyscope.io.codec import saved_class as _package_class
    graph = grimp.build_graph("energyscope", cache_dir=None)
    assert "energyscope.search.network" not in graph.find_modules_directly_imported_by("energyscope.search.neb")
    assert not graph.chain_exists(importer="energyscope.search.neb", imported="energyscope.search.network")
    assert _package_class("energyscope.network:Path") is PathClass
    assert _package_class("energyscope.paths:Path") is PathClass


def test_no_cycle_between_saddles_and_the_path_finders():
    """saddles zooms bands with the string relaxer; that core now lives in bands.py, below both."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("energyscope", cache_dir=None)
    assert not graph.chain_exists(importer="energyscope.search.saddles", imported="energyscope.search.neb")
    assert not graph.chain_exists(importer="energyscope.search.bands", imported="energyscope.search.saddles")


def test_no_import_cycles():
    """No module reaches itself through its imports (type-hint-only imports aside), the package's own
    namespace included."""
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("energyscope", exclude_type_checking_imports=True, cache_dir=None)
    cycles = [graph.find_shortest_chain(importer=b, imported=a) + (b,)
              for a in sorted(graph.modules) for b in sorted(graph.find_modules_directly_imported_by(a))
              if a < b and graph.chain_exists(importer=b, imported=a)]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
