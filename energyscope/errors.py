"""The errors energyscope raises for problems with what it was given.

Every error about the user's input, files, settings or model derives from :class:`EnergyscopeError`; the command
line reports those in one line as bad input (exit status 2). Anything else reaching the command line is a bug in
energyscope (or in the user's own model code) and is reported as an internal error (exit status 1, "please
report", the traceback with ``ENERGYSCOPE_DEBUG=1``).

The subclasses keep their historical bases (``ValueError``, ``RuntimeError``) so that ``except ValueError`` in
user code goes on working.
"""

from __future__ import annotations


class EnergyscopeError(Exception):
    """Base of every error energyscope raises about its input (arguments, settings, files, models)."""


class BadArgumentError(EnergyscopeError, ValueError):
    """An argument or setting with a value energyscope cannot use (the message names it and what is accepted)."""


class UnknownSettingError(BadArgumentError, TypeError):
    """A keyword or settings key that does not exist (also a ``TypeError``, as Python's own error for an unexpected
    keyword argument is); the message names the closest accepted one and the list."""


__all__ = ["EnergyscopeError", "BadArgumentError", "UnknownSettingError"]
