"""A cooperative time limit for the stages after the minima search (``analyze(time_limit=)``).

:func:`time_limit` sets a deadline for the code run inside it; the package's iterative loops (L-BFGS, FIRE,
non-smooth BFGS, NEB and string relaxation, saddle refinement, MALA chains) call :func:`expired` once per iteration
and stop where they are when it returns True, so their rows end unconverged and are reported as such (unresolved
mass, failed connection attempts) instead of running on. Outside a :func:`time_limit` block nothing is limited.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator


@dataclass
class Budget:
    """A deadline (``time.perf_counter()`` seconds, or None for none) and whether any loop stopped at it."""

    end: float | None
    hit: bool = False


_BUDGET: ContextVar[Budget | None] = ContextVar("energyscope_budget", default=None)


@contextmanager
def time_limit(seconds: float | None) -> Iterator[Budget]:
    """Limit the loops run inside this block to ``seconds`` of wall time from now (None: no limit)."""
    budget = Budget(None if seconds is None else time.perf_counter() + float(seconds))
    token = _BUDGET.set(budget)
    try:
        yield budget
    finally:
        _BUDGET.reset(token)


def expired() -> bool:
    """True once the innermost :func:`time_limit` deadline has passed (and records that a loop stopped at it)."""
    budget = _BUDGET.get()
    if budget is None or budget.end is None:
        return False
    if time.perf_counter() >= budget.end:
        budget.hit = True
        return True
    return False
