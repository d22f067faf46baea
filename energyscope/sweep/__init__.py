"""Sweeps: many checkpoints analysed as one task each (on Dask, any executor, or this process), their basins tracked
across training, and one report over them all (:func:`sweep`, :class:`Sweep`)."""
from energyscope.sweep.api import sweep
from energyscope.sweep.result import Sweep

__all__ = ["Sweep", "sweep"]
