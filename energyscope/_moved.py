"""Module paths of energyscope 0.1.0, kept importable: ``import energyscope.minima`` gives
:mod:`energyscope.search.minima` with a DeprecationWarning saying where it lives now.

(``energyscope.neb`` and ``energyscope.disconnectivity`` are not aliased: those names are the functions ``es.neb``
and ``es.disconnectivity``, which importing a module of that name would replace.)
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: old module (under energyscope.) -> where it lives now
MOVED = {
    "starts": "search.starts", "minima": "search.minima", "nonsmooth": "search.nonsmooth", "saddles": "search.saddles",
    "bands": "search.bands", "paths": "search.paths", "network": "search.network",
    "disconnectivity_plot": "tree.plot", "masses": "interpret.masses", "labels": "interpret.labels",
    "checkpoint": "io.checkpoint", "spec": "io.spec", "pathsample": "io.pathsample", "store": "io.results",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``energyscope.<old>`` and hands back the module at its new path."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        pkg, _, name = fullname.partition(".")
        if pkg != "energyscope" or name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = "energyscope." + MOVED[spec.name.partition(".")[2]]
        warnings.warn(f"{spec.name} is now {new} (energyscope 0.2); import it from there, or use the names in the "
                      "energyscope namespace", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:  # the module is the new one, already executed
        pass


def install() -> None:
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
