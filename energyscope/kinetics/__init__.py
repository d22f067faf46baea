"""Kinetics on the transition network: how long the prior's own Langevin sampler takes to cross between basins.

- :mod:`~energyscope.kinetics.rates`: basin weights and transition-state fluxes (harmonic TST as PATHSAMPLE / PyGT;
  Kramers–Langer for overdamped Langevin), in log space, detailed balance by construction;
- :mod:`~energyscope.kinetics.paths`: the correction beyond harmonic (Smoluchowski flux along each steepest-descent
  path with its transverse harmonic free energy);
- :mod:`~energyscope.kinetics.markov`: mean first-passage times and committors by graph transformation, relaxation
  times;
- :mod:`~energyscope.kinetics.model`: :class:`Kinetics`, what a user reads;
- :mod:`~energyscope.kinetics.free_energy`: the free-energy disconnectivity graph at T (Carr & Wales regrouping);
- :mod:`~energyscope.kinetics.simulate`: batched Langevin first-passage times on the true U (the check);
- :mod:`~energyscope.kinetics.api`: :func:`kinetics` (``es.kinetics``), which builds a :class:`Kinetics` from a
  network, an Analysis or PATHSAMPLE data.

``energyscope.kinetics`` (the attribute of the top-level package) is the function; this package is reached as
``energyscope.kinetics.model`` etc., or ``from energyscope.kinetics import Kinetics``.
"""
from energyscope.kinetics.api import kinetics
from energyscope.kinetics.free_energy import FreeEnergyGraph, free_energy_graph
from energyscope.kinetics.model import APPROXIMATIONS, Kinetics
from energyscope.kinetics.rates import KineticsError, RateNetwork
from energyscope.kinetics.simulate import FirstPassage, first_passage_times

__all__ = ["kinetics", "Kinetics", "KineticsError", "RateNetwork", "FreeEnergyGraph", "free_energy_graph",
           "FirstPassage", "first_passage_times", "APPROXIMATIONS"]
