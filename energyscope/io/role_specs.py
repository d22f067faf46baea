"""The loader spec (``--spec FILE``, ``spec=``): reading the spec file, and each role's entry in normal form.

:func:`read_spec` reads a spec from a dict, a JSON file or a YAML file. :func:`role_entries` puts the entry of each
role (``energy``, ``decoder``, ``encoder``) in normal form — ``{"parts": [...], "explicit": bool}``, or None for a role
the spec leaves out — checking its keys: a prefix string, a list of prefixes chained trunk first, ``parts`` with
their own ``layers`` / ``activation`` / ``output_activation``, or ``null``. See docs/checkpoint-format.md, § 4.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from energyscope.io.errors import CheckpointError

__all__ = ["ROLES", "DEFAULT_ACTIVATION", "read_spec", "role_entries"]

ROLES = ("energy", "decoder", "encoder")
DEFAULT_ACTIVATION = {"type": "LeakyReLU", "slope": 0.2}  # Pang et al. 2020's latent EBM and generator


def read_spec(spec: Any) -> dict:
    """A loader spec from a dict, a JSON file, or a YAML file (YAML needs pyyaml)."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return dict(spec)
    p = Path(spec)
    if not p.is_file():
        raise CheckpointError(f"spec file not found: {p}")
    text = p.read_text()
    if p.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise CheckpointError(f"{p} is YAML but pyyaml is not installed; pip install pyyaml or write the "
                                  "spec as JSON") from None
        try:
            out = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CheckpointError(f"spec file {p} is not valid YAML: {exc}") from None
    else:
        try:
            out = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"spec file {p} is not valid JSON: {exc}") from None
    if not isinstance(out, dict):
        raise CheckpointError(f"spec file {p} must hold a mapping (JSON object), got {type(out).__name__}")
    return out


_ROLE_SPEC_KEYS = ("key", "prefix", "parts", "layers", "activation", "output_activation")
_PART_SPEC_KEYS = ("key", "prefix", "layers", "activation", "output_activation")


def _check_keys(entry: dict, allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in entry if k not in allowed]
    if unknown:
        raise CheckpointError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                              f"{', '.join(repr(k) for k in unknown)}; known: {', '.join(allowed)}")


def _spec_prefix(entry: dict, where: str) -> tuple[Any, str]:
    """The entry's prefix (``prefix``, or its older spelling ``key``) and which word the user wrote."""
    key, prefix = entry.get("key"), entry.get("prefix")
    if key is not None and prefix is not None and key != prefix:
        raise CheckpointError(f"{where} gives both 'key' and 'prefix' ({key!r}, {prefix!r}); give one ('prefix')")
    return (prefix, "prefix") if prefix is not None else (key, "key")


def _clean_prefix(prefix: Any, where: str) -> str:
    if not isinstance(prefix, str) or not prefix.strip().strip("."):
        raise CheckpointError(f"{where}: a prefix must be a non-empty string such as \"netG.gen\", got {prefix!r}")
    return prefix.strip().strip(".")


def _check_layers(layers: Any, where: str) -> list | None:
    if layers is None:
        return None
    if not isinstance(layers, list) or not all(isinstance(x, dict) and "type" in x for x in layers):
        raise CheckpointError(f"{where}: 'layers' must be a list of layers such as {{\"type\": \"linear\"}}, got "
                              f"{str(layers)[:80]}")
    return layers


def _part(item: dict, role_entry: dict, where: str, last: bool) -> dict:
    """One part of a role in normal form: its prefix, layers, activation and the activation after it.

    The activation is the part's, else the role's, else the default (then marked as assumed). After the last part
    comes the role's ``output_activation`` (none by default); after any other part, the activation, unless the part
    sets ``output_activation``: the parts of a role form one stack, joined like its layers.
    """
    prefix, word = _spec_prefix(item, where)
    if "activation" in item:
        act, act_given = item["activation"], True
    else:
        act, act_given = role_entry.get("activation", DEFAULT_ACTIVATION), "activation" in role_entry
    if "output_activation" in item:
        out, out_given = item["output_activation"], True
    elif last:
        out, out_given = role_entry.get("output_activation"), True
    else:
        out, out_given = act, act_given
    return {"prefix": None if prefix is None else _clean_prefix(prefix, where), "word": word,
            "layers": _check_layers(item.get("layers"), where), "activation": act, "activation_given": act_given,
            "output_activation": out, "output_given": out_given}


def _part_items(raw: dict, where: str) -> list:
    """The raw parts of a role's entry: its ``parts``, or one per prefix of a list, or the entry itself."""
    prefix, word = _spec_prefix(raw, where)
    layers = _check_layers(raw.get("layers"), where)
    several = "parts" in raw or (isinstance(prefix, list) and len(prefix) > 1)
    if several and layers is not None:
        raise CheckpointError(f"{where}: with several parts, give 'layers' per part: "
                              "{\"parts\": [{\"prefix\": \"trunk\", \"layers\": [...]}, {\"prefix\": \"head\"}]}")
    if "parts" in raw:
        if prefix is not None:
            raise CheckpointError(f"{where} gives both {word!r} and 'parts'; give the prefixes in 'parts' only")
        if not isinstance(raw["parts"], list) or not raw["parts"]:
            raise CheckpointError(f"{where}: 'parts' must be a non-empty list of parts such as "
                                  "{\"prefix\": \"f\", \"activation\": \"relu\"}")
        return raw["parts"]
    prefixes = prefix if isinstance(prefix, list) else [prefix]
    if not prefixes:
        raise CheckpointError(f"{where}: the list of prefixes is empty")
    items = [{word: p} if p is not None else {} for p in prefixes]
    if layers is not None:
        items[0]["layers"] = layers
    return items


def _role_entry(role: str, raw: Any) -> dict | None:
    """A role's spec entry in normal form ``{"parts": [...], "explicit": bool}``; None when the spec leaves the role
    out (``null`` or ``false``). A string is a prefix, a list of strings the prefixes of parts chained in order."""
    where = f"the spec's {role!r} entry"
    if raw is None or raw is False:
        if role == "energy":
            raise CheckpointError("the spec cannot leave out the energy ('energy': null): it is what energyscope "
                                  "analyses; name its weights ({\"energy\": {\"prefix\": \"...\"}}) or drop the entry")
        return None
    if isinstance(raw, (str, list)):
        raw = {"prefix": raw}
    if not isinstance(raw, dict):
        raise CheckpointError(f"{where} must be a mapping such as {{\"prefix\": \"netE\"}}, a prefix string, a list of "
                              f"prefixes, or null to leave the {role} out; got {type(raw).__name__} {raw!r}")
    _check_keys(raw, _ROLE_SPEC_KEYS, where)
    items = _part_items(raw, where)
    parts = []
    for i, item in enumerate(items):
        at = f"{where}, part {i + 1}" if len(items) > 1 else where
        item = {"prefix": item} if isinstance(item, str) else item
        if not isinstance(item, dict):
            raise CheckpointError(f"{at} must be a prefix string or a mapping such as {{\"prefix\": \"f\"}}, got "
                                  f"{item!r}")
        _check_keys(item, _PART_SPEC_KEYS, at)
        part = _part(item, raw, at, last=i == len(items) - 1)
        if part["prefix"] is None and len(items) > 1:
            raise CheckpointError(f"{at} needs a 'prefix': with several parts each names its weights")
        parts.append(part)
    return {"parts": parts, "explicit": parts[0]["prefix"] is not None}


def role_entries(spec: dict) -> dict[str, dict | None]:
    """Every role's spec entry in normal form (see :func:`_role_entry`); roles the spec does not mention are found
    automatically."""
    return {role: _role_entry(role, spec[role]) if role in spec else
            {"parts": [_part({}, {}, f"the {role}", last=True)], "explicit": False} for role in ROLES}
