"""A CPU stand-in for an accelerator, to find device mixing without a GPU.

:class:`DeviceGuard` is a ``TorchFunctionMode`` that treats the device ``cpu:0`` as if it were a separate accelerator
(the way CUDA is separate from the CPU) and plain ``cpu`` as the host. Tensors get a tag saying where they "live":

* created with ``device=cpu:0`` (e.g. ``device=land.device`` on a ``Landscape(device="cpu:0")``), moved there with
  ``.to(...)``, or computed from such tensors: on the accelerator;
* created without ``device=`` (or with ``device="cpu"``), ``from_numpy``, or brought back by ``.cpu()``: on the host.

It then raises :class:`DeviceMixError` wherever CUDA would raise:

* an operation that combines accelerator tensors with host tensors of one or more dimensions (host 0-dim tensors are
  allowed, as CUDA allows CPU scalars), including in-place writes;
* indexing a host tensor with an accelerator index (the reverse, an accelerator tensor indexed by a host index, is
  allowed, as on CUDA), and advanced-index writes of host values into an accelerator tensor or vice versa;
* ``.numpy()`` / ``np.asarray`` on an accelerator tensor;
* drawing random numbers on the accelerator with a host ``torch.Generator``.

and, with ``check_dtype`` (default), where floating tensors of different precision (each with one or more
dimensions) meet in one operation — the sign of a bookkeeping tensor created without ``dtype=``.

``x.device`` reports ``cpu:0`` for accelerator tensors, so code that creates tensors with ``device=x.device`` is
followed faithfully. Parameters and buffers are tagged when a module is moved with ``.to(device=...)``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode

ACCEL = torch.device("cpu", 0)
HOST = torch.device("cpu")
_TAG = "_energyscope_on_accel"

# operations that move no data between devices or only inspect metadata: no mixing check
_NO_CHECK = {"_has_compatible_shallow_copy_type", "copy_", "set_", "is_floating_point", "is_complex", "size", "dim",
             "__len__", "numel", "type", "__set__", "__get__", "stride", "storage_offset", "data_ptr", "__repr__",
             "__format__", "__reduce_ex__", "__deepcopy__", "_parse_to", "grad"}


class DeviceMixError(RuntimeError):
    """Device (or precision) mixing that would fail (or silently lose precision) on CUDA."""


def on_accel(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and bool(getattr(t, _TAG, False))


def _tensors(obj: Any) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            out.append(x)
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.values())
    return out


def _set(obj: Any, flag: bool) -> None:
    for t in _tensors(obj):
        try:
            setattr(t, _TAG, flag)
        except (AttributeError, RuntimeError):  # e.g. tensors without a __dict__
            pass


def _is_accel_device(dev: Any) -> bool:
    if dev is None:
        return False
    dev = torch.device(dev) if not isinstance(dev, torch.device) else dev
    return dev.type == "cpu" and dev.index == 0


def _name(func: Any) -> str:
    return getattr(func, "__name__", str(func))


def _advanced(idx: Any) -> bool:
    items = idx if isinstance(idx, tuple) else (idx,)
    return any(isinstance(i, (torch.Tensor, list)) or hasattr(i, "__array__") for i in items)


class DeviceGuard(TorchFunctionMode):
    """Raise :class:`DeviceMixError` on host/accelerator mixing (see the module docstring). ``calls`` counts the
    operations seen; ``accel_ops`` those that ran on the accelerator (to show the guard was really exercised)."""

    def __init__(self, check_dtype: bool = True):
        super().__init__()
        self.check_dtype = check_dtype
        self.calls = 0
        self.accel_ops = 0

    def _fail(self, msg: str) -> None:
        raise DeviceMixError(msg)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.calls += 1
        name = _name(func)
        owner = getattr(func, "__self__", None)

        # x.device: the accelerator for tagged tensors
        if name == "__get__" and owner is torch.Tensor.device:
            return ACCEL if on_accel(args[0]) else HOST
        if name == "__set__":  # e.g. param.data = moved: the parameter now lives where the new data lives
            out = func(*args, **kwargs)
            if len(args) == 2 and isinstance(args[1], torch.Tensor):
                _set(args[0], on_accel(args[1]))
            return out
        if name in ("_parse_to", "device"):  # argument parsing / the torch.device constructor: nothing to follow
            return func(*args, **kwargs)
        if name in ("numpy", "__array__") and on_accel(args[0]):
            self._fail("numpy() on a tensor that lives on the accelerator (use energyscope._tensor.to_numpy / .cpu())")

        if name in ("cpu", "to", "cuda"):
            src = args[0]
            if name == "cpu":
                dest = False
            elif name == "cuda":
                dest = True
            else:
                other = args[1] if len(args) > 1 and isinstance(args[1], torch.Tensor) else kwargs.get("other")
                if isinstance(other, torch.Tensor):
                    dest = on_accel(other)
                else:
                    dev = torch._C._nn._parse_to(*args[1:], **kwargs)[0]
                    dest = on_accel(src) if dev is None else _is_accel_device(dev)
            if name == "cuda":
                out = src
            else:
                fixed_kwargs = dict(kwargs)
                if "device" in fixed_kwargs and fixed_kwargs["device"] is not None:
                    fixed_kwargs["device"] = HOST
                fixed_args = tuple(HOST if isinstance(a, (torch.device, str)) and not isinstance(a, torch.dtype)
                                   and _looks_like_device(a) else a for a in args[1:])
                out = func(src, *fixed_args, **fixed_kwargs)
            if dest != on_accel(src) and out is src:
                out = out.view_as(out)  # a new tensor object, as a real move would give
            _set(out, dest)
            if dest:
                self.accel_ops += 1
            return out

        # factories with an explicit device
        if "device" in kwargs and kwargs["device"] is not None:
            dest = _is_accel_device(kwargs["device"])
            if dest and isinstance(kwargs.get("generator"), torch.Generator) \
                    and kwargs["generator"].device.type == "cpu":
                self._fail(f"{name}: a CPU torch.Generator used to draw directly on the accelerator")
            out = func(*args, **{**kwargs, "device": HOST})
            _set(out, dest)
            return out

        if name == "__getitem__":
            src, idx = args[0], args[1]
            if not on_accel(src) and any(on_accel(t) for t in _tensors(idx)):
                self._fail("indexing a host tensor with an index that lives on the accelerator")
            out = func(*args, **kwargs)
            _set(out, on_accel(src))
            if on_accel(src):
                self.accel_ops += 1
            return out

        if name == "__setitem__":
            dst, idx, val = args[0], args[1], args[2]
            idx_t = _tensors(idx)
            if on_accel(dst):
                if isinstance(val, torch.Tensor) and not on_accel(val) and val.dim() > 0 and _advanced(idx):
                    self._fail("advanced-index write of host values into a tensor on the accelerator")
                self.accel_ops += 1
            else:
                if any(on_accel(t) for t in idx_t):
                    self._fail("writing into a host tensor at an index that lives on the accelerator")
                if on_accel(val) and _advanced(idx):
                    self._fail("advanced-index write of accelerator values into a host tensor")
            self._check_dtype_write(dst, val)
            return func(*args, **kwargs)

        if name == "grad" and func is torch.autograd.grad:
            out = func(*args, **kwargs)
            inputs = kwargs.get("inputs", args[1] if len(args) > 1 else ())
            inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
            for g, x in zip(out, inputs):
                if g is not None:
                    _set(g, on_accel(x))
            return out

        ts = _tensors(args) + _tensors(kwargs)
        accel = any(on_accel(t) for t in ts)
        if name not in _NO_CHECK:
            if accel:
                host = [t for t in ts if not on_accel(t) and t.dim() > 0]
                if host:
                    self._fail(f"{name}: combines tensors on the accelerator with host tensor(s) of shape "
                               f"{[tuple(t.shape) for t in host]}")
            if self.check_dtype:
                fl = {t.dtype for t in ts if t.is_floating_point() and t.dim() > 0}
                if len(fl) > 1:
                    self._fail(f"{name}: mixes floating dtypes {sorted(str(d) for d in fl)}")
        out = func(*args, **kwargs)
        if accel:
            _set(out, True)
            self.accel_ops += 1
        return out

    def _check_dtype_write(self, dst: Any, val: Any) -> None:
        if self.check_dtype and isinstance(dst, torch.Tensor) and isinstance(val, torch.Tensor) \
                and dst.is_floating_point() and val.is_floating_point() and val.dim() > 0 and dst.dtype != val.dtype:
            self._fail(f"writing {val.dtype} values into a {dst.dtype} tensor")


def _looks_like_device(a: Any) -> bool:
    if isinstance(a, torch.device):
        return True
    if isinstance(a, str):
        try:
            torch.device(a)
            return True
        except (RuntimeError, ValueError):
            return False
    return False
