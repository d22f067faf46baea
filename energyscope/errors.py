"""The errors energyscope raises for problems with what it was given.

Every error about the user's input, files, settings or model derives from :class:`EnergyscopeError`; the command
line reports those in one line as bad input (exit status 2). Anything else reaching the command line is a bug in
energyscope (or in the user's own model code) and is reported as an internal error (exit status 1, "please
report", the traceback with ``ENERGYSCOPE_DEBUG=1``).

The subclasses keep their historical bases (``ValueError``, ``RuntimeError``) so that ``except ValueError`` in
user code goes on working.
"""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class EnergyscopeError(Exception):
    """Base of every error energyscope raises about its input (arguments, settings, files, models)."""


class BadArgumentError(EnergyscopeError, ValueError):
    """An argument or setting with a value energyscope cannot use (the message names it and what is accepted)."""


class UnknownSettingError(BadArgumentError, TypeError):
    """A keyword or settings key that does not exist (also a ``TypeError``, as Python's own error for an unexpected
    keyword argument is); the message names the closest accepted one and the list."""


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn the user, attributing the warning to the first caller outside energyscope (their script or notebook
    cell), however deep inside the package it is raised (what Python 3.12's ``skip_file_prefixes`` does)."""
    frame, level = sys._getframe(0), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


__all__ = ["EnergyscopeError", "BadArgumentError", "UnknownSettingError", "warn"]
