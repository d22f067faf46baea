"""Building modules from located weights: each role's eval-mode float64 module, checked as it is built.

:func:`build_stored` builds a module of the energyscope format from its weights and the architecture spec stored next
to them. :func:`build_role` builds a role from the weight pieces :mod:`energyscope.io.layouts` found: one stack per
piece (the spec's ``layers``, completed from the weight shapes, or a plain MLP inferred from them), chained in order
and checked to fit; a trunk with parallel heads is one error writing the spec for each choice, except an encoder or
decoder's mean head beside spread heads. Strict loading names each missing or unexpected key, shape mismatch and
non-finite tensor.
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from energyscope.io.errors import CheckpointError
from energyscope.io.spec import (WEIGHTED, ParallelHeads, SpecError, build_module, canonical_type, check_chain,
                                 complete_spec, describe_spec, feature_sizes, find_parallel_heads, infer_spec)

if TYPE_CHECKING:
    from energyscope.io.layouts import Piece

__all__ = ["build_stored", "build_role"]


def _check_finite(sd: dict[str, torch.Tensor], role: str) -> None:
    for k, v in sd.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            n = int((~torch.isfinite(v)).sum())
            raise CheckpointError(f"the {role}'s tensor '{k}' has {n} non-finite value(s) (NaN or inf); the "
                                  "checkpoint is corrupt or training diverged")


def _load_into(module: nn.Module, sd: dict[str, torch.Tensor], role: str,
               key_map: dict[str, str] | None = None) -> None:
    """Strict load with one clear message per problem (missing key, unexpected key, shape mismatch)."""
    want = module.state_dict()
    key_map = key_map or {k: k for k in want}
    missing = [key_map.get(k, k) for k in want if key_map.get(k, k) not in sd]
    if missing:
        raise CheckpointError(f"the {role} weights are missing key(s) {', '.join(missing[:8])}"
                              f"{' ...' if len(missing) > 8 else ''}; keys present: "
                              f"{', '.join(list(sd)[:12])}{' ...' if len(sd) > 12 else ''}")
    mapped = {key_map.get(k, k) for k in want}
    extra = [k for k in sd if k not in mapped]
    if extra:
        raise CheckpointError(f"the {role} weights have key(s) the architecture does not use: {', '.join(extra[:8])}"
                              f"{' ...' if len(extra) > 8 else ''}")
    new = {}
    for k, target in want.items():
        src = sd[key_map.get(k, k)]
        if tuple(src.shape) != tuple(target.shape):
            raise CheckpointError(f"shape mismatch in the {role}: '{key_map.get(k, k)}' has shape {list(src.shape)} "
                                  f"but the architecture expects {list(target.shape)}")
        new[k] = src
    module.load_state_dict(new, strict=True)


def _module_from(spec: dict, sd: dict[str, torch.Tensor], name: str, key_map: dict[str, str] | None) -> nn.Module:
    """An eval-mode float64 module built from a complete spec and loaded with ``sd``."""
    try:
        module = build_module(spec, name).to(torch.float64)
    except SpecError as exc:
        raise CheckpointError(str(exc)) from None
    _load_into(module, {k: v.to(torch.float64) if v.is_floating_point() else v for k, v in sd.items()}, name,
               key_map)
    return module.eval()


def build_stored(role: str, sd: dict[str, torch.Tensor], arch: dict) -> nn.Module:
    """A module from the energyscope format: weights plus the architecture spec stored next to them."""
    _check_finite(sd, role)
    try:
        spec = complete_spec(arch, sd, role)
    except SpecError as exc:
        raise CheckpointError(str(exc)) from None
    return _module_from(spec, sd, role, None)


def _part_spec(name: str, sd: dict[str, torch.Tensor], part: dict) -> tuple[dict, dict | None, str, bool]:
    """``(spec, key_map, how, assumed)`` for one part: its spec's layers completed from the weights, or a plain MLP
    inferred from them (``assumed``: an activation was not given and the default was used)."""
    if part["layers"] is not None:
        spec = complete_spec({"type": "Sequential", "layers": part["layers"]}, sd, name)
        check_chain(spec, name)
        return spec, None, "layers from the spec", False
    spec, key_map = infer_spec(sd, part["activation"], part["output_activation"], name)
    weighted = sum(canonical_type(layer["type"]) in WEIGHTED for layer in spec["layers"])
    between = len(spec["layers"]) - weighted - (part["output_activation"] is not None)
    assumed = (between > 0 and not part["activation_given"]) or not part["output_given"]
    return spec, key_map, "architecture inferred from weight shapes", assumed


def _heads_error(role: str, where: str, found: ParallelHeads) -> CheckpointError:
    """One error for a trunk with parallel heads: names them and writes the spec for each choice."""
    full = (lambda n: f"{where}.{n}") if where else (lambda n: n)
    s = found.sizes
    trunk = [full(t) for t in found.trunk]
    heads = ", ".join(f"'{full(h)}' ({s[h][0]}→{s[h][1]})" for h in found.heads)
    hints = []
    for h in found.heads:
        spec: dict[str, Any] = {role: {"prefix": trunk + [full(h)]}}
        if role == "energy" and s[h][1] > 1:
            spec["convention"] = "logits"
        hints.append(json.dumps(spec))
    msg = (f"the {role} weights{f' under {where!r}' if where else ''} hold a trunk "
           f"{', '.join(repr(t) for t in trunk)} ({s[found.trunk[0]][0]}→{found.width}) and {len(found.heads)} "
           f"parallel heads that each take its {found.width} outputs: {heads}. energyscope does not guess which forms "
           f"the {role}, and chaining them would be wrong. Name the parts in a spec (--spec), trunk first, e.g. "
           + " or ".join(hints) + " (and the trunk's 'activation', which the weights do not record)")
    if role == "energy" and any(s[h][1] > 1 for h in found.heads):
        msg += "; with \"convention\": \"logits\" a head of K class logits gives U = −logsumexp(logits)"
    names = {h.lower() for h in found.heads}
    if role == "energy" and {"energy_output", "class_output"} <= names:
        msg += (". This is JEM's layout: its default (class-conditional) model uses −logsumexp(class_output) and "
                "leaves energy_output untrained; its unconditional model's energy_output returns a log-density "
                "(add \"convention\": \"log_density\")")
    return CheckpointError(msg)


_MEAN_WORDS = {"mu", "mean", "means", "loc"}
_SPREAD_WORDS = {"logvar", "var", "lv", "variance", "logvariance", "sigma", "logsigma", "std", "logstd", "scale"}


def _words(name: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", name.lower())) - {""}


def _resolve_heads(role: str, piece: Piece, part: dict, notes: list[str]) -> tuple[list[Piece], list[dict]]:
    """A single piece whose weights are a trunk with parallel heads: for a decoder/encoder with exactly one mean
    head and only spread heads besides (``fc_mu`` / ``fc_logvar``), the trunk plus the mean head; else one error."""
    where, sd = piece
    found = find_parallel_heads(sd)
    if found is None:
        return [piece], [part]
    means = [h for h in found.heads if _words(h) & _MEAN_WORDS]
    spreads = [h for h in found.heads if h not in means and _words(h) & _SPREAD_WORDS]
    if role == "energy" or len(means) != 1 or len(means) + len(spreads) != len(found.heads):
        raise _heads_error(role, where, found)
    full = (lambda n: f"{where}.{n}") if where else (lambda n: n)
    head = means[0]
    trunk_sd = {k: v for k, v in sd.items() if k.partition(".")[0] in found.trunk}
    head_sd = {k: v for k, v in sd.items() if k.partition(".")[0] == head}
    notes.append(f"{role}: trunk {', '.join(repr(full(t)) for t in found.trunk)} + mean head {head!r} (its "
                 f"{role} mean; left out: {', '.join(repr(h) for h in spreads)})")
    trunk_part = dict(part, output_activation=part["activation"], output_given=part["activation_given"])
    return ([(", ".join(full(t) for t in found.trunk), trunk_sd), (full(head), head_sd)], [trunk_part, part])


def build_role(role: str, pieces: list[Piece], entry: dict, notes: list[str]) -> nn.Module:
    """An eval-mode module for a role from its weight pieces: one stack per piece (spec layers or an inferred MLP),
    chained in order, each checked to fit the next."""
    parts = entry["parts"]
    if len(pieces) == 1 and parts[0]["layers"] is None:
        pieces, parts = _resolve_heads(role, pieces[0], parts[0], notes)
    names = [role if len(pieces) == 1 else f"{role} part '{w}'" for w, _ in pieces]
    built = []
    try:
        for (where, sd), part, name in zip(pieces, parts, names):
            _check_finite(sd, name)
            built.append(_part_spec(name, sd, part))
    except SpecError as exc:
        at = f" ({role} weights under {where!r})" if where else ""
        hint = f"; or leave the {role} out with {{\"{role}\": null}} in the spec" if role != "energy" else ""
        raise CheckpointError(f"{exc}{at}{hint}") from None
    for (w0, _), (w1, _), (s0, *_), (s1, *_) in zip(pieces, pieces[1:], built, built[1:]):
        gives, takes = feature_sizes(s0)[1], feature_sizes(s1)[0]
        if gives is not None and takes is not None and gives != takes:
            raise CheckpointError(f"the {role}'s parts do not chain: '{w0}' gives {gives} features but '{w1}' "
                                  f"after it takes {takes}; list the parts in forward order, trunk first")
    modules = [_module_from(spec, sd, name, key_map)
               for (_, sd), (spec, key_map, _, _), name in zip(pieces, built, names)]
    assumed = " (assumed; set 'activation' in a spec file to change it)" if any(b[3] for b in built) else ""
    if len(modules) == 1:
        where = pieces[0][0]
        notes.append(f"{role}: {built[0][2]}{f' under {where!r}' if where else ''}: "
                     f"{describe_spec(built[0][0])}{assumed}")
        return modules[0]
    chained = " → ".join(repr(w) for w, _ in pieces)
    notes.append(f"{role}: parts {chained} chained: "
                 + " | ".join(describe_spec(b[0]) for b in built) + assumed)
    return nn.Sequential(*modules).eval()
