"""energyscope: make learned energy landscapes readable.

See DESIGN (docs/) for the pipeline: checkpoint → Landscape → minima → network → tree → interpretation → report.
"""
from .landscape import Landscape, LandscapeError, Scales, SignCheck

__version__ = "0.1.0"

__all__ = ["Landscape", "LandscapeError", "Scales", "SignCheck", "__version__"]
