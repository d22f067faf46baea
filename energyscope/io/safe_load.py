"""Reading checkpoint files safely: ``torch.load(..., weights_only=True)`` first, and the trust rule.

A file is read with ``weights_only=True``, which cannot run code from it. Files that carry code — pickled Python
objects (e.g. a whole ``nn.Module``) and TorchScript archives (code that runs when the model is evaluated, and can
read or write files) — load only with ``trust_pickle=True`` (CLI ``--trust-pickle``); without it the error says so.
Holds :func:`read_weights_only`, :func:`is_torchscript` and :func:`jit_load`.
"""
from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from energyscope.io.errors import CheckpointError

__all__ = ["jit_load", "is_torchscript", "read_weights_only"]


def jit_load(path: Path, trust: bool, **kw: Any) -> Any:
    """Load a TorchScript archive. It is code (TorchScript can read and write files when it runs), so only with
    ``trust`` (``trust_pickle=True``, CLI ``--trust-pickle``)."""
    if not trust:
        raise CheckpointError(
            f"{path} is a TorchScript archive: it contains code that runs when it is loaded and evaluated (and can "
            "read or write files). Pass trust_pickle=True (CLI: --trust-pickle) only for files you trust, or save the "
            "weights as a state dict and load them with a spec (--spec) or your own entry point (--model)")
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; users still have such files
        warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated", category=DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu", **kw)


def is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _unpickle_reason(text: str) -> str:
    for line in text.splitlines():
        if "Unsupported" in line or "invalid load key" in line:
            return line.strip()[:200]
    return text.splitlines()[0][:200] if text else "empty"


def read_weights_only(path: Path, trust_pickle: bool) -> tuple[Any, bool]:
    """The file's object loaded safely; ``(obj, pickled)`` where pickled says a full unpickle was needed."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True), False
    except pickle.UnpicklingError as exc:
        text = str(exc)
        with open(path, "rb") as fh:
            head = fh.read(2)
        looks_torch = head == b"PK" or head[:1] == b"\x80"  # a torch zip archive, or a pickle (legacy torch.save)
        if "weights" not in text.lower() or not looks_torch:
            raise CheckpointError(f"{path} is not a torch checkpoint file (unpickling failed: "
                                  f"{_unpickle_reason(text)})") from None
        if not trust_pickle:
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" ({found.group(1)})" if found else ""
            raise CheckpointError(
                f"{path} contains pickled Python objects{what}, e.g. a whole nn.Module; loading it would run code "
                "from the file. Pass trust_pickle=True (CLI: --trust-pickle) only for files you trust, or re-save "
                "the weights with energyscope.save_checkpoint") from None
        try:
            return torch.load(path, map_location="cpu", weights_only=False), True
        except Exception as exc2:
            raise CheckpointError(f"{path}: unpickling failed even with trust_pickle=True: "
                                  f"{type(exc2).__name__}: {exc2}") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path} is not a torch checkpoint file ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else 'empty or truncated'})") from None
