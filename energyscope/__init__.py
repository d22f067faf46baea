"""energyscope: make learned energy landscapes readable.

The pipeline runs one way: checkpoint → :class:`Landscape` → :func:`find_minima` → :func:`connect` →
:func:`disconnectivity` → interpretation → report; :func:`analyze` runs all of it and returns an :class:`Analysis`.
Names are imported lazily so that ``import energyscope`` stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

from .landscape import Landscape, LandscapeError, Scales, SignCheck

__version__ = "0.1.0"

_LAZY = {
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "CheckpointError": "checkpoint",
    "find_minima": "minima",
    "Minima": "minima",
    "Coverage": "minima",
    "quench": "minima",
    "neb": "neb",
    "connect": "network",
    "TransitionNetwork": "network",
    "Path": "network",
    "disconnectivity": "disconnectivity",
    "DisconnectivityGraph": "disconnectivity",
    "analyze": "analysis",
    "Analysis": "analysis",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'energyscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["Landscape", "LandscapeError", "Scales", "SignCheck", "__version__", *_LAZY]
