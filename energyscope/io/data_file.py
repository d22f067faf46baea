"""Reference data for a checkpoint from an ``.npz`` file: ``x`` (N, ...) and optional labels ``y`` (N,).

Used by ``energyscope analyze --data`` and by sweeps (every checkpoint of a sweep gets the same data). Every problem
with the file is one :class:`DataFileError` that names it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from energyscope.errors import EnergyscopeError

if TYPE_CHECKING:
    from energyscope.landscape import Landscape


class DataFileError(EnergyscopeError, ValueError):
    """A ``--data`` file that cannot be used; the message names the problem."""


def _read_data_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` (N, ...) as float64 and optional ``y`` (N,) from an npz; one clear error for every problem."""
    if not path.is_file():
        raise DataFileError(f"--data file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise DataFileError(f"--data {path} is not a readable .npz file: {' '.join(str(exc).split()) or type(exc).__name__}") from None
    if "x" not in arrays:
        raise DataFileError(f"--data {path} has no array 'x' (arrays: {', '.join(arrays) or 'none'})")
    x, y = arrays["x"], arrays.get("y")
    if x.dtype.kind not in "biuf":
        raise DataFileError(f"--data x must hold numbers, got dtype {x.dtype} (strings or other values cannot be data)")
    if x.ndim < 2 or len(x) == 0:
        raise DataFileError(f"--data x must be (N, ...) with N ≥ 1, got shape {x.shape}")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise DataFileError(f"--data x has NaN or inf in {int(bad.sum())} of {len(x)} rows (first: row "
                       f"{int(np.flatnonzero(bad)[0])})")
    if y is not None and len(y) != len(x):
        raise DataFileError(f"--data y has {len(y)} entries but x has {len(x)} rows")
    if y is not None and y.ndim != 1:
        raise DataFileError(f"--data y must be one label per row of x, got shape {y.shape}")
    return x, y


def _fits_dtype(land: Landscape, a: np.ndarray, what: str) -> None:
    """Values that overflow the model's floating type would turn into inf inside the model: refuse them here."""
    import torch
    big = float(torch.finfo(land.dtype).max)
    top = float(np.abs(a).max(initial=0.0))
    if top >= big:
        raise DataFileError(f"--data {what} has values up to {top:.3g}, beyond the model's {str(land.dtype).replace('torch.', '')} "
                       f"range ({big:.3g})")


def attach_data(land: Landscape, path: str | os.PathLike, space: str = "auto") -> None:
    """Reference latents (and labels) from an npz file with ``x`` (N, ...) and optional ``y`` (N,).

    ``space``: ``"data"`` encodes ``x`` through the checkpoint's encoder; ``"latent"`` takes ``x`` (N, d) as points
    in the energy's own input space, as they are (input-space models: JEM, flows, the UvA-tutorial EBM);
    ``"auto"`` encodes when there is an encoder, else takes ``x`` as latents when its shape is (N, d).
    """
    from energyscope.landscape import LandscapeError
    x, y = _read_data_file(Path(path))
    if space == "auto":
        space = "data" if land.has_encoder else "latent"
    if space == "latent":
        z = x.reshape(len(x), -1) if x.ndim > 2 and int(np.prod(x.shape[1:])) == land.dim else x
        if z.ndim != 2 or z.shape[1] != land.dim:
            hint = "" if land.has_encoder else " (this checkpoint has no encoder to map data into the latent space)"
            raise DataFileError(f"--data x of shape {x.shape} are not points of the energy's {land.dim}-dimensional "
                           f"input space{hint}")
        _fits_dtype(land, z, "x")
    elif space == "data":
        if not land.has_encoder:
            raise DataFileError("--data-space data needs an encoder to turn x into latents, and this checkpoint has none "
                           "(for a model whose energy takes the data itself, use --data-space latent)")
        _fits_dtype(land, x, "x")
        try:
            z = land.encode(x)
        except LandscapeError as exc:
            if x.ndim <= 2:
                raise DataFileError(f"--data x of shape {x.shape} does not fit the encoder: {exc}") from None
            try:
                z = land.encode(x.reshape(len(x), -1))
            except LandscapeError:
                raise DataFileError(f"--data x of shape {x.shape} does not fit the encoder: {exc}") from None
        if not np.isfinite(z).all():
            raise DataFileError("the encoder returned non-finite latents for --data x")
    else:
        raise DataFileError(f"--data-space must be auto, data or latent, got {space!r}")
    land.reference = np.asarray(z, dtype=np.float64)
    land.labels = None if y is None else np.asarray(y)
    land._scales = None  # scales follow the new reference latents


__all__ = ["DataFileError", "attach_data"]
