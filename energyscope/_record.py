"""Read access by key for the package's typed records (``rec["energy"]``, ``rec.get("barrier")``,
``"mep_frames" in rec``), so code and notebooks written against the dict records of energyscope 0.1.0 keep working;
new code reads attributes (``rec.energy``)."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any


class RecordAccess:
    """Mixin for dataclasses: the fields read like the keys of a read-only dict. A field holding None counts as
    absent for ``in`` (0.1.0's dicts left such keys out), but reads as None."""

    def __getitem__(self, key: str) -> Any:
        if key not in self._field_names():
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, None) if key in self._field_names() else None
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return key in self._field_names() and getattr(self, str(key)) is not None

    def keys(self) -> list[str]:
        return [k for k in self._field_names() if getattr(self, k) is not None]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.keys()]

    @classmethod
    def _field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def from_mapping(cls, d: Any) -> Any:
        """A record from a dict (0.1.0's saved form): keys it does not know are dropped, missing ones default."""
        names = set(cls._field_names())
        return cls(**{k: v for k, v in dict(d).items() if k in names})  # type: ignore[call-arg]
