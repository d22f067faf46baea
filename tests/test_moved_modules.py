"""energyscope 0.1.0's module paths still import (with a DeprecationWarning naming the new one)."""
import importlib
import sys

import pytest

import energyscope as es
from energyscope._moved import MOVED


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_old_module_paths_give_the_new_modules(old, new, monkeypatch):
    monkeypatch.delitem(sys.modules, f"energyscope.{old}", raising=False)
    with pytest.warns(DeprecationWarning, match=f"energyscope.{old} is now energyscope.{new}"):
        mod = importlib.import_module(f"energyscope.{old}")
    assert mod is importlib.import_module(f"energyscope.{new}")


def test_public_functions_keep_their_names():
    sys.modules.pop("energyscope.network", None)
    with pytest.warns(DeprecationWarning):
        from energyscope.network import connect  # the old path, as 0.1.0 notebooks wrote it
    assert es.connect is connect
    assert callable(es.neb) and callable(es.disconnectivity)  # not replaced by modules of the same name
