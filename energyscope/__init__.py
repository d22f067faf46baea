"""energyscope: make learned energy landscapes readable.

The pipeline runs one way: checkpoint → :class:`Landscape` → :func:`find_minima` → :func:`connect` →
:func:`disconnectivity` → interpretation → report; :func:`analyze` runs all of it and returns an :class:`Analysis`.

The public names are imported here (not lazily): ``es.neb`` and ``es.disconnectivity`` share their names with their
submodules, and only an explicit ``from .neb import neb`` keeps the package attribute bound to the function.
"""
from __future__ import annotations

from energyscope._version import __version__
from energyscope import _moved
from energyscope.errors import BadArgumentError, EnergyscopeError
from energyscope.landscape import Landscape, LandscapeError, Scales, SignCheck
from energyscope.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from energyscope.search.minima import Coverage, Minima, find_minima, quench
from energyscope.search.network import Path, TransitionNetwork, connect
from energyscope.search.neb import neb
from energyscope.tree.graph import DisconnectivityGraph, disconnectivity
from energyscope.kinetics.api import kinetics
from energyscope.kinetics.model import Kinetics
from energyscope.analysis import Analysis, AnalysisFormatError
from energyscope.pipeline import analyze
from energyscope.tracking import History, Snapshot, track
from energyscope.sweep import Sweep, sweep
from energyscope.settings import (AnalysisSettings, ConnectSettings, InterpretSettings, KineticsSettings,
                                  MassSettings, MinimaSettings, TreeSettings)


__all__ = [
    "Landscape", "LandscapeError", "Scales", "SignCheck",
    "load_checkpoint", "save_checkpoint", "CheckpointError",
    "find_minima", "Minima", "Coverage", "quench",
    "neb", "connect", "TransitionNetwork", "Path",
    "disconnectivity", "DisconnectivityGraph",
    "kinetics", "Kinetics",
    "analyze", "Analysis", "AnalysisFormatError",
    "sweep", "Sweep", "track", "History", "Snapshot",
    "AnalysisSettings", "MinimaSettings", "ConnectSettings", "TreeSettings", "InterpretSettings", "MassSettings",
    "KineticsSettings",
    "EnergyscopeError", "BadArgumentError",
    "__version__",
]

_moved.install()  # energyscope 0.1.0's module paths (energyscope.minima, ...) still import, with a warning
