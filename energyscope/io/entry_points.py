"""The user's own entry point (``--model pkg.module:fn`` or ``--model path/to/file.py:fn``, ``model=``).

:func:`landscape_from_entry_point` resolves the function (importing the module, or executing the file), reads the
checkpoint safely (:mod:`energyscope.io.safe_load`: weights-only, or the TorchScript module with the trust flag),
calls ``fn(checkpoint)`` — or ``fn(checkpoint, checkpoint_path=path)`` when it takes that keyword — and checks that it
returned a :class:`Landscape`, moving it to the device asked for. Every failure is one :class:`CheckpointError`.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from energyscope._tensor import resolve_device
from energyscope.landscape import Landscape, LandscapeError
from energyscope.io.errors import CheckpointError
from energyscope.io.safe_load import is_torchscript, jit_load, read_weights_only

__all__ = ["landscape_from_entry_point"]


def _resolve_entry_point(model: str) -> Callable:
    target, sep, fn_name = model.rpartition(":")
    if not sep or not target or not fn_name or (len(target) == 1 and target.isalpha()):
        raise CheckpointError(f"--model must look like 'pkg.module:fn' or 'path/to/file.py:fn', got {model!r}")
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise CheckpointError(f"entry point file not found: {path}")
        name = f"_energyscope_entry_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise CheckpointError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise CheckpointError(f"cannot import {target!r} for the entry point {model!r}: {exc}") from None
    fn = getattr(module, fn_name, None)
    if fn is None or not callable(fn):
        raise CheckpointError(f"entry point {model!r}: {target} has no callable {fn_name!r}")
    return fn


def _takes_keyword(fn: Callable, name: str) -> bool:
    """Whether ``fn`` accepts the keyword argument ``name`` (by that name, or through ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return False
    return any(p.kind is p.VAR_KEYWORD or (p.name == name and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
               for p in params)


def _call_entry(fn: Callable, obj: Any, path: Path) -> Any:
    """``fn(checkpoint)``, or ``fn(checkpoint, checkpoint_path=path)`` when ``fn`` accepts that keyword, so that it
    can read side files next to the checkpoint (a config, a vocabulary, reference latents)."""
    if _takes_keyword(fn, "checkpoint_path"):
        return fn(obj, checkpoint_path=path)
    return fn(obj)


def landscape_from_entry_point(path: Path, model: str, trust_pickle: bool, device: Any,
                               dtype: torch.dtype) -> Landscape:
    """The Landscape that the user's ``fn(checkpoint)`` (or ``fn(checkpoint, checkpoint_path=path)``) returns; when a
    device other than the default CPU was asked for and the Landscape is elsewhere, it is rebuilt with the same
    settings on that device."""
    fn = _resolve_entry_point(model)
    if is_torchscript(path):
        obj = jit_load(path, trust_pickle)
    else:
        obj, _ = read_weights_only(path, trust_pickle)
    try:
        land = _call_entry(fn, obj, path)
    except (CheckpointError, LandscapeError):
        raise
    except Exception as exc:
        raise CheckpointError(f"the entry point {model!r} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(land, Landscape):
        raise CheckpointError(f"the entry point {model!r} returned {type(land).__name__}; it must return an "
                              "energyscope.Landscape")
    try:
        want = resolve_device(device)
    except ValueError as exc:  # e.g. a CUDA device without CUDA
        raise CheckpointError(str(exc)) from None
    if want != land.device and want != torch.device("cpu"):
        # a device other than the default was asked for (--device cuda): the same Landscape, moved there
        try:
            land = Landscape(land.energy_module, decoder=land.decoder_module, encoder=land.encoder_module,
                             dim=land.dim, convention=land.convention, reduction=land.reduction,
                             temperature=land.temperature, base_prior=land.base_prior, base_sigma=land.base_sigma,
                             reference=land.reference, labels=land.labels, sampler=land.sampler, device=want,
                             dtype=land.dtype, batch_size=land.batch_size, metadata=land.metadata,
                             hessian_method=land.hessian_method, smoothness=land.smoothness_setting)
        except LandscapeError as exc:
            raise CheckpointError(f"the Landscape from entry point {model!r} could not be moved to {want}: {exc} "
                                  f"(build it with device= in the entry point)") from None
    return land
