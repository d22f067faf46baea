"""Foreign layouts: finding the energy, decoder and encoder weights in checkpoints laid out the way public projects
save them.

:func:`find_parts` identifies the layout of a loaded checkpoint object — a flat state_dict with role prefixes
(``ebm.``, ``decoder.``), a dict of state_dicts (``netE``/``netG``, ``E_state_dict``), Lightning's ``state_dict``
container, a trusted pickled module — strips wrappers (``module.``, ``_orig_mod.``, a common ``model.``), reads a
role held as one named child through it (``netE.ebm``), follows a spec's prefixes to any depth, and refuses to guess:
two candidates for a role, or no energy at all, is one error listing what the file holds. :func:`module_parts` does
the same for a whole module (TorchScript or pickled); :func:`layout_guess` says which conventions a recognised layout
implies. Weights come out as pieces (:data:`Piece`), which :mod:`energyscope.io.assemble` builds into modules.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from energyscope.io.errors import CheckpointError
from energyscope.io.role_specs import role_entries

__all__ = ["Piece", "find_parts", "module_parts", "layout_guess"]

# names (lower-case, state_dict suffixes removed) that identify each role in foreign checkpoints
_ROLE_NAMES = {
    "energy": {"nete", "e", "ebm", "energy", "prior", "energynet", "ebmnet", "enet", "energymodel", "ebmmodel",
               "netebm", "energyfn"},
    "decoder": {"netg", "g", "generator", "decoder", "gen", "dec", "gnet", "decodernet", "generatornet"},
    "encoder": {"neti", "i", "inference", "encoder", "enc", "netq", "q", "inet", "encodernet", "inferencenet"},
}
_IGNORED_PREFIXES = ("opt", "sched", "lr_sched", "scaler", "ema", "epoch", "step", "global_step", "iter", "loss",
                     "args", "config", "cfg", "hparams", "hyper_parameters", "pytorch-lightning_version", "callbacks",
                     "loops", "seed", "rng", "torch_rng", "numpy_rng", "best", "history", "log")
_WRAPPERS = ("module.", "_orig_mod.", "model.")  # prefixes stripped when every key carries them

Piece = tuple[str, dict[str, torch.Tensor]]  # (where the weights sit, e.g. "netG.gen"; their state_dict)


def _role_of(name: str) -> str | None:
    key = name.lower()
    for suffix in ("_state_dict", "state_dict", "_statedict", "_sd", "_dict", "_weights", "_params"):
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
            break
    key = key.replace("_", "").replace("-", "")
    for role, names in _ROLE_NAMES.items():
        if key in names:
            return role
    return None


def _is_state_dict(x: Any) -> bool:
    return isinstance(x, dict) and len(x) > 0 and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                      for k, v in x.items())


def _ignored(name: str) -> bool:
    return name.lower().startswith(_IGNORED_PREFIXES)


def _drop_wrapper_names(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) components anywhere in the keys."""
    return {".".join(c for c in k.split(".") if c not in ("module", "_orig_mod")): v for k, v in sd.items()}


def _strip_wrappers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) anywhere, and a common ``model.``."""
    sd = _drop_wrapper_names(sd)
    while sd and all(k.startswith("model.") for k in sd):
        sd = {k[len("model."):]: v for k, v in sd.items()}
    return sd


def _flatten_tensors(obj: Any, prefix: str = "", depth: int = 0) -> dict[str, torch.Tensor]:
    """Every tensor in a loaded checkpoint object under a dotted key (dict keys and list positions joined by '.'),
    so that a spec prefix can reach any depth (``"models.prior.net"``)."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj} if prefix else {}
    if depth > 16:
        return {}
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return {}
    out: dict[str, torch.Tensor] = {}
    for k, v in items:
        out.update(_flatten_tensors(v, f"{prefix}.{k}" if prefix else str(k), depth + 1))
    return out


def _strip_names(where: str, sd: dict[str, torch.Tensor]) -> Piece:
    """A module held as one named child (Pang et al.'s ``netG.gen``, ``netE.ebm``): the child's state_dict, with
    its name added to ``where``. Position indices (``0.``) and a layer's own parameters are never stripped."""
    while sd:
        heads = {k.partition(".")[0] for k in sd}
        head = next(iter(heads))
        if len(heads) != 1 or head.isdigit() or not all("." in k.partition(".")[2] for k in sd):
            break
        sd = {k[len(head) + 1:]: v for k, v in sd.items()}
        where = f"{where}.{head}" if where else head
    return where, sd


def _candidate_prefixes(keys: Any, limit: int = 24) -> str:
    """The named (non-positional) prefixes of weight keys, up to three deep: what a spec's ``prefix`` can say."""
    seen: list[str] = []
    for key in keys:
        comps = key.split(".")[:-1]
        for i, c in enumerate(comps[:3]):
            if c.isdigit():
                break
            p = ".".join(comps[: i + 1])
            if p not in seen:
                seen.append(p)
    return ", ".join(seen[:limit]) + (" ..." if len(seen) > limit else "") if seen else "none"


def _container(obj: dict) -> tuple[str, dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
    """``(layout, weights, raw weights, ignored keys)``: the flat dotted state_dict in which roles are looked for
    (wrapper prefixes stripped), the same without the common ``model.`` stripped, and the top-level keys left out."""
    if _is_state_dict(obj):
        return "flat state_dict", _strip_wrappers(obj), _drop_wrapper_names(obj), []
    # Lightning and friends: the weights sit under one key
    has_roles = any(_role_of(str(k)) for k, v in obj.items() if _is_state_dict(v) or isinstance(v, nn.Module))
    for key in ("state_dict", "model_state_dict", "model", "net", "weights"):
        if key in obj and _is_state_dict(obj[key]) and not has_roles:
            layout = "Lightning checkpoint" if "pytorch-lightning_version" in obj or key == "state_dict" else \
                f"state_dict under {key!r}"
            return layout, _strip_wrappers(obj[key]), _drop_wrapper_names(obj[key]), [str(k) for k in obj if k != key]
    weights = {f"{k}.{sk}": t for k, v in obj.items() if _is_state_dict(v) for sk, t in _strip_wrappers(v).items()}
    return "dict of state_dicts", weights, weights, []


def _module_at(obj: Any, prefix: str) -> nn.Module | None:
    """A (trusted, unpickled) module a prefix names: a dict entry, or a sub-module of one by dotted name."""
    if isinstance(obj, nn.Module):
        root, rest = obj, prefix
    elif isinstance(obj.get(prefix), nn.Module):
        root, rest = obj[prefix], ""
    else:
        head, _, rest = prefix.partition(".")
        root = obj.get(head)
    for name in rest.split(".") if rest else []:  # by hand: ScriptModules have no get_submodule
        if not isinstance(root, nn.Module):
            return None
        root = dict(root.named_children()).get(name)
    return root if isinstance(root, nn.Module) else None


def _select(obj: dict, weights: dict, raw: dict, part: dict, role: str, used: set[str]) -> Piece:
    """The weights under a spec's prefix: looked for among the located weights, then anywhere in the file."""
    prefix = ".".join(c for c in part["prefix"].split(".") if c not in ("module", "_orig_mod")) or part["prefix"]
    start = prefix + "."
    for source in (weights, raw, _drop_wrapper_names(_flatten_tensors(obj))):
        sub = {k[len(start):]: v for k, v in source.items() if k.startswith(start)}
        if sub:
            ids = {id(v) for v in sub.values()}  # the same tensors, seen through another view of the file
            used.update(k for k, v in weights.items() if id(v) in ids)
            used.update(start + k for k in sub)
            return _strip_names(prefix, sub)
    keys = "" if _is_state_dict(obj) else f"keys seen: {', '.join(map(str, list(obj)[:30]))}; "
    everything = _drop_wrapper_names(_flatten_tensors({k: v for k, v in obj.items() if not _ignored(str(k))}))
    raise CheckpointError(f"the spec names {part['word']} {prefix!r} for the {role}, but no weights start with it; "
                          f"{keys}weight prefixes: {_candidate_prefixes(everything)}")


def _explicit_parts(obj: dict, weights: dict, raw: dict, role: str, entry: dict,
                    used: set[str]) -> nn.Module | list[Piece]:
    pieces = []
    for part in entry["parts"]:
        module = _module_at(obj, part["prefix"])
        if module is not None:
            if len(entry["parts"]) > 1:
                raise CheckpointError(f"the spec's {role!r} parts: {part['prefix']!r} is a whole (unpickled) module; "
                                      "several parts can only be state_dict weights")
            return module
        pieces.append(_select(obj, weights, raw, part, role, used))
    return pieces


def _auto_parts(obj: dict, weights: dict, roles: list[str], used: set[str], bare_ok: bool) -> dict[str, Any]:
    """Roles found by name: the first component of the weights' keys (``netE.``, ``decoder.``) or a dict entry
    holding a module. Two candidates for one role are refused; without any, a bare state_dict is the energy's."""
    found: dict[str, list[str]] = {}
    for k in weights:
        head, _, rest = k.partition(".")
        role = _role_of(head) if rest and k not in used else None
        if role in roles and head not in found.setdefault(role, []):
            found[role].append(head)
    modules = {str(k): v for k, v in obj.items() if isinstance(v, nn.Module) and _role_of(str(k)) in roles}
    for name in modules:
        found.setdefault(_role_of(name), []).append(name)
    parts: dict[str, Any] = {}
    for role, heads in found.items():
        if len(heads) > 1:
            raise CheckpointError(
                f"both {heads[0]!r} and {heads[1]!r} could be the {role} (names: {', '.join(heads)}); energyscope "
                "does not guess which: name it in a spec (--spec), e.g. "
                f"{{\"{role}\": {{\"prefix\": \"{heads[0]}\"}}}}")
        if not heads:
            continue
        head = heads[0]
        if head in modules:
            parts[role] = modules[head]
            continue
        start = head + "."
        sub = {k[len(start):]: v for k, v in weights.items() if k.startswith(start) and k not in used}
        used.update(start + k for k in sub)
        parts[role] = [_strip_names(head, sub)]
    if bare_ok and "energy" in roles and not parts and not used and weights:
        used.update(weights)  # a bare state_dict of the energy alone
        parts["energy"] = [_strip_names("", dict(weights))]
    return parts


def _no_energy(obj: dict, layout: str, weights: dict, used: set[str]) -> CheckpointError:
    """No energy found: list what the file holds and write the spec line that names it."""
    left = [k for k in weights if k not in used]
    if layout == "dict of state_dicts":
        seen = ", ".join(f"{k} ({_kind(v)})" for k, v in list(obj.items())[:30])
    else:
        seen = f"weights under {_candidate_prefixes(left)}" if left else "no weights left"
    example = _candidate_prefixes(left, 1).removesuffix(" ...") if left else "..."
    return CheckpointError(
        f"unknown checkpoint layout: no energy weights found. Keys seen: {seen}. Name the energy's prefix in a spec "
        f"file ({{\"energy\": {{\"prefix\": \"{example}\"}}}}) or use --model with your own code")


def find_parts(obj: Any, roles: dict[str, dict | None]) -> tuple[str, dict[str, Any], list[str]]:
    """Identify the layout of a loaded checkpoint object and the weights of each role.

    Returns ``(layout, parts, ignored)``: parts maps role -> nn.Module, or a list of ``(where, state_dict)``
    pieces in forward order (several when the spec names several prefixes for a role).
    """
    if isinstance(obj, nn.Module):
        return "pickled nn.Module", module_parts(obj, roles), []
    if not isinstance(obj, dict):
        raise CheckpointError(f"unknown checkpoint layout: the file holds a {type(obj).__name__}, not a dict of "
                              "weights; use --model with your own code")
    layout, weights, raw, ignored = _container(obj)
    parts: dict[str, Any] = {}
    used: set[str] = set()
    for role, entry in roles.items():
        if entry is not None and entry["explicit"]:
            parts[role] = _explicit_parts(obj, weights, raw, role, entry, used)
    auto = [r for r, entry in roles.items() if entry is not None and not entry["explicit"]]
    parts.update(_auto_parts(obj, weights, auto, used, bare_ok=layout != "dict of state_dicts" and not parts))
    if "energy" not in parts:
        raise _no_energy(obj, layout, weights, used)
    if layout == "dict of state_dicts":
        taken = {k.partition(".")[0] for k in used} | {str(k) for k, v in obj.items() if any(p is v for p in
                                                                                            parts.values())}
        ignored = [str(k) for k in obj if str(k) not in taken]
    else:
        ignored += [k for k in weights if k not in used]
    return layout, parts, ignored


def _kind(v: Any) -> str:
    if _is_state_dict(v):
        return f"state_dict, {len(v)} tensors"
    if isinstance(v, torch.Tensor):
        return f"tensor {list(v.shape)}"
    if isinstance(v, dict):
        return f"dict, {len(v)} keys"
    return type(v).__name__


def module_parts(module: nn.Module, roles: dict[str, dict | None] | None = None) -> dict[str, nn.Module]:
    """A whole model: sub-modules the spec names by dotted path, children named like roles, else the module itself
    as the energy. Roles the spec leaves out are dropped."""
    roles = roles if roles is not None else role_entries({})
    parts: dict[str, nn.Module] = {}
    for role, entry in roles.items():
        if entry is None or not entry["explicit"]:
            continue
        if len(entry["parts"]) > 1:
            raise CheckpointError(f"the spec's {role!r} entry names several parts, but the checkpoint is a whole "
                                  "module: name one sub-module")
        prefix = entry["parts"][0]["prefix"]
        sub = _module_at(module, prefix)
        if sub is None:
            children = ", ".join(n for n, _ in module.named_children()) or "none"
            raise CheckpointError(f"the spec names {prefix!r} for the {role}, but the module has no such sub-module; "
                                  f"its children: {children}")
        parts[role] = sub
    for name, child in module.named_children():
        role = _role_of(name)
        if role is not None and role not in parts and roles.get(role) is not None:
            parts[role] = child
    if "energy" not in parts:
        return {"energy": module}
    return parts


def layout_guess(parts: dict[str, Any]) -> dict | None:
    """Conventions a recognised layout implies: the official Pang et al. latent-EBM code (netE holding ``ebm``)
    trains netE(z) as an energy, p(z) ∝ exp(−netE(z)) N(z; 0, I): its Langevin step descends netE(z) + ‖z‖²/2."""
    energy = parts.get("energy")
    if isinstance(energy, list) and len(energy) == 1 and energy[0][0].split(".")[-2:] == ["netE", "ebm"]:
        return {"name": "Pang et al. latent EBM (netE.ebm)",
                "settings": {"convention": "energy", "base_prior": "standard_normal"}}
    return None
