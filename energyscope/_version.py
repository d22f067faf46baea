"""The version of energyscope (one place; the package, saved results and the CLI read it)."""
__version__ = "0.2.0"
