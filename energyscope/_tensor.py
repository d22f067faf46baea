"""The one place that converts between numpy, torch and JSON-able values, and picks devices and dtypes."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from energyscope.errors import BadArgumentError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn a user's device argument into a ``torch.device``, with a clear error for CUDA without CUDA."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise BadArgumentError(f"unknown device {str(device)!r}; use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BadArgumentError(f"device {str(device)!r} was requested but CUDA is not available on this machine")
    return dev


def as_tensor(x: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Any array-like as a detached tensor on ``device`` with ``dtype`` (no copy when already there)."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(x), device=device, dtype=dtype)


def to_numpy(x: Any) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def set_threads(n: int | None) -> None:
    """Set torch's intra-op thread count (``None`` leaves it as ``OMP_NUM_THREADS`` / torch chose)."""
    if n is not None and n > 0:
        torch.set_num_threads(int(n))


def jsonable(obj: Any) -> Any:
    """A nested structure with numpy scalars/arrays turned into Python numbers/lists and dict keys into str."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
