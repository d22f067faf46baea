"""The error every checkpoint problem raises: :class:`CheckpointError`, one message naming what is wrong.

It lives here, below the modules that read, parse, locate and build a checkpoint's parts, so that each of them can
raise it without importing :mod:`energyscope.io.checkpoint` (which imports them all, and re-exports it).
"""
from __future__ import annotations

from energyscope.errors import EnergyscopeError

__all__ = ["CheckpointError"]


class CheckpointError(EnergyscopeError, ValueError):
    """A checkpoint that cannot be saved or loaded; the message names the problem (and the file)."""
