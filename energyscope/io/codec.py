"""The JSON + npz form of results, and the registry of the result types a save may name.

:class:`Encoder` splits a nested value into a JSON-able tree and a flat dict of numpy arrays; :class:`Decoder`
inverts it. Arrays go to the npz under a key (``{"__array__": "a0"}``); non-finite floats, tuples, sets and dicts
with non-string keys are tagged; the package's result classes are tagged by a **stable name**, their class name
(``{"__type__": "Minima", "fields": {...}}`` for dataclasses, ``{"__type__": "TransitionNetwork", "data": ...}``
for classes with ``to_dict``/``from_dict``). A class may move between modules without old saves noticing.

Format versions (``analysis.json``'s ``"version"``):

* **2** (this energyscope): stable names, as above.
* **1** (energyscope 0.1.0): tags were ``"module:qualname"`` (``{"__dataclass__": "energyscope.minima:Minima"}``,
  ``{"__object__": ...}``) and the network had its own ``{"__network__": ...}`` form. Both are still read: a tag's
  class name is looked up in the same registry (:data:`RENAMED` maps names that changed).

Safety: a name read from a file is only ever looked up in :func:`registry`, built from the fixed modules of
:data:`SAVED_TYPE_MODULES`; nothing named by a file is imported (a tampered tag such as ``os:system`` would otherwise
run code during ``energyscope report``). An unknown name decodes to the plain data it carries.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from energyscope.errors import EnergyscopeError, warn as warn_user
from energyscope._tensor import to_numpy

FORMAT_NAME = "energyscope-analysis"
#: Version written; :class:`Decoder` reads this and every earlier one (see the module docstring).
FORMAT_VERSION = 2
JSON_NAME = "analysis.json"
ARRAYS_NAME = "arrays.npz"
#: Deepest nesting of JSON objects/lists accepted (real saves nest about a dozen levels).
MAX_JSON_DEPTH = 100

#: The modules whose classes saved results may name (a test checks that every saveable class of the package is
#: in one of them, and that no two share a name).
SAVED_TYPE_MODULES = (
    "energyscope.landscape", "energyscope.smoothness",
    "energyscope.search.minima", "energyscope.search.nonsmooth", "energyscope.search.saddles",
    "energyscope.search.bands", "energyscope.search.paths", "energyscope.search.neb", "energyscope.search.network",
    "energyscope.tree.graph",
    "energyscope.interpret.masses", "energyscope.interpret.labels", "energyscope.interpret.stage",
    "energyscope.interpret.records", "energyscope.io.pathsample",
    "energyscope.kinetics.rates", "energyscope.kinetics.model", "energyscope.kinetics.simulate",
)
#: Stable names that changed: old name -> current name (none yet; add one when a saved class is renamed).
RENAMED: dict[str, str] = {}


class AnalysisFormatError(EnergyscopeError, ValueError):
    """Saved results that cannot be read back; the message names the problem."""


_REGISTRY: dict[str, type] = {}


def _saveable(obj: Any, module: str) -> bool:
    return isinstance(obj, type) and obj.__module__ == module and (
        dataclasses.is_dataclass(obj) or callable(getattr(obj, "from_dict", None)))


def registry() -> dict[str, type]:
    """``{stable name: class}`` for every dataclass or ``from_dict`` class of :data:`SAVED_TYPE_MODULES`."""
    if not _REGISTRY:
        found: dict[str, type] = {}
        for name in SAVED_TYPE_MODULES:
            mod = importlib.import_module(name)
            for obj in vars(mod).values():
                if _saveable(obj, mod.__name__):
                    other = found.setdefault(obj.__qualname__, obj)
                    if other is not obj:  # a programming error, caught by the test suite
                        raise RuntimeError(f"two saved classes are named {obj.__qualname__!r}: "
                                           f"{other.__module__} and {obj.__module__}")
        _REGISTRY.update(found)
    return _REGISTRY


def stable_name(cls: type) -> str | None:
    """The name saves use for ``cls``, or None when it is not a registered result class."""
    return cls.__qualname__ if registry().get(cls.__qualname__) is cls else None


def saved_class(tag: str) -> type | None:
    """The class a saved type tag names (a stable name, or a version-1 ``module:qualname``), else None."""
    tag = str(tag)
    if ":" in tag:  # version 1: "energyscope.<module>:<qualname>"
        module, _, tag = tag.partition(":")
        if module != "energyscope" and not module.startswith("energyscope."):
            return None
    return registry().get(RENAMED.get(tag, tag))


def _nesting_depth(obj: Any, limit: int) -> int:
    """How deeply lists/dicts nest in ``obj`` (a scalar is 0), counted without recursion; stops past ``limit``."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        x, depth = stack.pop()
        children = x.values() if isinstance(x, dict) else x if isinstance(x, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def check_depth(obj: Any, what: str) -> None:
    """Refuse a structure nested deeper than :data:`MAX_JSON_DEPTH` (decoding recurses once per level)."""
    if _nesting_depth(obj, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise AnalysisFormatError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep; energyscope never "
                                  "writes that (a damaged or crafted file)")


class Encoder:
    """Splits a nested structure into a JSON-able tree and a flat dict of numpy arrays (keys "a0", "a1", ...)."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, x: Any) -> dict:
        arr = np.asarray(to_numpy(x))
        if arr.dtype == object:
            return {"__list__": self.encode(arr.tolist())}
        key = f"a{len(self.arrays)}"
        self.arrays[key] = np.ascontiguousarray(arr)
        return {"__array__": key}

    def encode(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
            return int(obj)
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, (float, np.floating)):
            f = float(obj)
            return f if np.isfinite(f) else {"__float__": repr(f)}
        if isinstance(obj, np.ndarray) or type(obj).__module__.startswith("torch"):
            return self.array(obj)
        if isinstance(obj, dict):
            if all(isinstance(k, str) for k in obj):
                return {"__dict__": {k: self.encode(v) for k, v in obj.items()}} if any(
                    k.startswith("__") for k in obj) else {k: self.encode(v) for k, v in obj.items()}
            return {"__items__": [[self.encode(k), self.encode(v)] for k, v in obj.items()]}
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v) for v in obj]}
        if isinstance(obj, list):
            return [self.encode(v) for v in obj]
        if isinstance(obj, (set, frozenset)):
            return {"__set__": [self.encode(v) for v in sorted(obj, key=repr)]}
        name = stable_name(type(obj))
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            fields = {f.name: self.encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
            return {"__type__": name, "fields": fields} if name else fields
        if callable(getattr(obj, "to_dict", None)):
            data = self.encode(obj.to_dict())
            return {"__type__": name, "data": data} if name else data
        return {"__unsaved__": type(obj).__name__}


class Decoder:
    """Inverse of :class:`Encoder` given the arrays (any mapping ``key -> array``; read on first use)."""

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.arrays = arrays

    def decode(self, obj: Any) -> Any:
        """Decode one encoded value; too deep a structure is an :class:`AnalysisFormatError`, not a RecursionError."""
        check_depth(obj, JSON_NAME)
        try:
            return self._decode(obj)
        except RecursionError:
            raise AnalysisFormatError(f"{JSON_NAME} is nested too deeply to decode") from None

    def _decode(self, obj: Any) -> Any:
        if isinstance(obj, list):
            return [self._decode(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        if "__array__" in obj:
            key = obj["__array__"]
            if not isinstance(key, str) or key not in self.arrays:
                raise AnalysisFormatError(f"{ARRAYS_NAME} has no array {key!r} that {JSON_NAME} refers to")
            return self.arrays[key]
        if "__unsaved__" in obj:
            return None
        if "__float__" in obj:
            return float(obj["__float__"])
        if "__list__" in obj:
            return self._decode(obj["__list__"])
        if "__dict__" in obj:
            return {k: self._decode(v) for k, v in obj["__dict__"].items()}
        if "__items__" in obj:
            return {_hashable(self._decode(k)): self._decode(v) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(self._decode(v) for v in obj["__tuple__"])
        if "__set__" in obj:
            return {_hashable(self._decode(v)) for v in obj["__set__"]}
        if "__type__" in obj:  # version 2
            return self._revive(obj["__type__"], obj)
        if "__dataclass__" in obj or "__object__" in obj:  # version 1
            return self._revive(obj.get("__dataclass__") or obj.get("__object__"), obj)
        if "__network__" in obj:  # version 1's own network form
            return self._network_v1(obj["__network__"])
        return {k: self._decode(v) for k, v in obj.items()}

    def _revive(self, tag: Any, obj: dict) -> Any:
        """The registered class ``tag`` names, rebuilt from its fields or data. When that fails (an older or newer
        layout), the plain data is kept rather than failing the whole load, and a warning says so."""
        cls = saved_class(tag)
        if "fields" in obj:
            fields = {k: self._decode(v) for k, v in obj["fields"].items()}
            if cls is None or not dataclasses.is_dataclass(cls):
                return _kept_plain(tag, fields, None if cls is not None else "no such saved type")
            names = {f.name for f in dataclasses.fields(cls) if f.init}
            try:
                return cls(**{k: v for k, v in fields.items() if k in names})
            except TypeError as exc:
                return _kept_plain(tag, fields, f"{type(exc).__name__}: {exc}")
        data = self._decode(obj.get("data"))
        if cls is not None and callable(getattr(cls, "from_dict", None)):
            try:
                return cls.from_dict(data)
            except Exception as exc:
                return _kept_plain(tag, data, f"{type(exc).__name__}: {exc}")
        return _kept_plain(tag, data, "no such saved type")

    def _network_v1(self, d: dict) -> Any:
        from energyscope.search.network import TransitionNetwork
        net = TransitionNetwork(self._decode(d["minima"]), attempts=list(self._decode(d["attempts"])))
        if "info" in d:
            net.info = self._decode(d["info"])
        for e in d["edges"]:
            net.graph.add_edge(int(e["i"]), int(e["j"]), **self._decode(e["attrs"]))
        return net


def _kept_plain(tag: Any, data: Any, why: str | None) -> Any:
    """``data`` as loaded, with a warning that the saved ``tag`` could not be rebuilt (``why``; None: quietly)."""
    if why is not None:
        warn_user(f"{JSON_NAME}: a saved {str(tag)[:80]!r} could not be rebuilt ({why}); it is kept as plain data")
    return data


def _hashable(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


def _json_default(obj: Any) -> Any:
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def json_bytes(doc: dict) -> bytes:
    """``doc`` as strict UTF-8 JSON (no NaN/Infinity)."""
    return json.dumps(doc, indent=1, sort_keys=False, allow_nan=False, default=_json_default).encode("utf-8")


def round_trip(doc: dict, arrays: Mapping[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """What a save then a load would hand back for this payload, in memory: the JSON re-parsed, the arrays copied."""
    return json.loads(json.dumps(doc, allow_nan=False, default=_json_default)), {
        k: np.array(v, copy=True) for k, v in arrays.items()}
