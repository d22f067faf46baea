"""energyscope: make learned energy landscapes readable.

The pipeline runs one way: checkpoint → :class:`Landscape` → :func:`find_minima` → :func:`connect` →
:func:`disconnectivity` → interpretation → report; :func:`analyze` runs all of it and returns an :class:`Analysis`.

The public names are imported here (not lazily): ``es.neb`` and ``es.disconnectivity`` share their names with their
submodules, and only an explicit ``from .neb import neb`` keeps the package attribute bound to the function.
"""
from __future__ import annotations

from .errors import BadArgumentError, EnergyscopeError
from .landscape import Landscape, LandscapeError, Scales, SignCheck
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .minima import Coverage, Minima, find_minima, quench
from .network import Path, TransitionNetwork, connect
from .neb import neb
from .disconnectivity import DisconnectivityGraph, disconnectivity
from .analysis import Analysis, AnalysisFormatError, analyze

__version__ = "0.1.0"

__all__ = [
    "Landscape", "LandscapeError", "Scales", "SignCheck",
    "load_checkpoint", "save_checkpoint", "CheckpointError",
    "find_minima", "Minima", "Coverage", "quench",
    "neb", "connect", "TransitionNetwork", "Path",
    "disconnectivity", "DisconnectivityGraph",
    "analyze", "Analysis", "AnalysisFormatError",
    "EnergyscopeError", "BadArgumentError",
    "__version__",
]
