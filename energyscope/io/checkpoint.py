"""Checkpoints: the energyscope format, safe loading of what users actually have, and clear errors.

``save_checkpoint`` writes the energyscope format (docs/checkpoint-format.md): a ``torch.save``-d dict of plain data
and tensors that loads with ``weights_only=True``. ``load_checkpoint`` reads it, TorchScript archives, foreign dicts
of state_dicts (``netE``/``netG``, ``E_state_dict``, ...), flat prefixed state_dicts, Lightning checkpoints, a user's
own entry point (``model="pkg.module:fn"``), and — only with ``trust_pickle=True`` — pickled whole modules. A spec
names each role's weights by key prefix at any depth (``"netG.gen"``), chains parts (``["f", "energy_output"]``) or
leaves a role out (``null``). Detection is conservative: ambiguous weights (two candidates for a role, a trunk with
parallel heads) are one error listing the candidates and the spec line for each. Every failure is one
:class:`CheckpointError` whose message names what is wrong.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import pickle
import re
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from energyscope.errors import EnergyscopeError
from energyscope.settings import checked_keywords
from energyscope._tensor import resolve_device, to_numpy
from energyscope.landscape import Landscape, LandscapeError
from energyscope.io.spec import (WEIGHTED, ParallelHeads, SpecError, build_module, canonical_type, check_chain, complete_spec,
                   describe_spec, feature_sizes, find_parallel_heads, infer_spec, module_spec)

FORMAT_NAME = "energyscope"
FORMAT_VERSION = 1
ROLES = ("energy", "decoder", "encoder")
TORCHSCRIPT_EXTRA = "energyscope.json"  # optional settings file inside a TorchScript archive
DEFAULT_ACTIVATION = {"type": "LeakyReLU", "slope": 0.2}  # Pang et al. 2020's latent EBM and generator

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
_LANDSCAPE_KEYS = ("dim", "convention", "reduction", "temperature", "base_prior", "base_sigma")


class CheckpointError(EnergyscopeError, ValueError):
    """A checkpoint that cannot be saved or loaded; the message names the problem (and the file)."""


# ---------------------------------------------------------------------------------------------- saving
def _plain(x: Any, where: str) -> Any:
    """``x`` as data that ``torch.load(weights_only=True)`` accepts (dict/list/str/number/bool/None/tensor)."""
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if isinstance(x, float):
        return x
    if isinstance(x, (np.integer, np.floating, np.bool_)):
        return x.item()
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().clone()
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "biuf":
            return torch.from_numpy(np.ascontiguousarray(x)).clone()
        return _plain(x.tolist(), where)
    if isinstance(x, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(x)]
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if not isinstance(k, str):
                raise CheckpointError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    raise CheckpointError(f"{where} holds a {type(x).__name__}, which the energyscope format cannot store "
                          "(use str, numbers, bools, lists, dicts, numpy arrays or tensors)")


def _module_entry(module: Any, role: str) -> dict:
    if not isinstance(module, nn.Module):
        raise CheckpointError(f"the {role} must be an nn.Module to be saved, got {type(module).__name__}")
    try:
        spec = module_spec(module, role)
    except SpecError as exc:
        raise CheckpointError(str(exc)) from None
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    if not isinstance(module, nn.Sequential):  # a single layer, stored as a one-layer Sequential
        state = {f"0.{k}": v for k, v in state.items()}
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"the {role}'s tensor '{k}' has non-finite values; refusing to save it")
    return {"spec": spec, "state_dict": state}


@checked_keywords()
def save_checkpoint(path: str | os.PathLike, energy: nn.Module | Landscape, decoder: nn.Module | None = None,
                    encoder: nn.Module | None = None, *, dim: int | None = None, convention: str = "energy",
                    reduction: str | None = None, temperature: float = 1.0, base_prior: str | None = None,
                    base_sigma: float = 1.0, reference: Any = None, labels: Any = None, sampler: dict | None = None,
                    data_shape: tuple[int, ...] | None = None, metadata: dict | None = None) -> None:
    """Write an energyscope-format checkpoint (loads with ``torch.load(path, weights_only=True)``).

    Parameters:
        path: file to write (parent folders are created; written atomically).
        energy: the energy ``nn.Sequential`` (or a :class:`Landscape`, whose modules and settings are used unless
            given here).
        decoder, encoder: optional ``nn.Sequential`` stacks (decoder: latents (N, d) -> data; encoder: data -> (N, d)
            means or (N, 2d) [mean, log-variance]).
        dim: latent dimension d (inferred when omitted).
        convention, reduction, temperature, base_prior, base_sigma: how the module output becomes U(z) in nats
            (see :class:`Landscape`).
        reference: (N, d) reference latents, e.g. encoder means of the data set; labels: (N,) their labels.
        sampler: the model's own prior sampler, e.g. ``{"steps": 60, "step_size": 0.4, "noise": True}``.
        data_shape: shape of one decoded sample, e.g. ``(1, 8, 8)``; inferred from the decoder when omitted.
        metadata: free-form JSON-like description (str, numbers, lists, dicts).

    The modules must be ``nn.Sequential`` stacks of layers :mod:`energyscope.io.spec` can describe; anything else raises
    CheckpointError (save it as TorchScript, or load it with an entry point instead). The settings are validated by
    building the Landscape before anything is written.
    """
    if isinstance(energy, Landscape):
        land = energy
        decoder = land.decoder_module if decoder is None else decoder
        encoder = land.encoder_module if encoder is None else encoder
        dim = land.dim if dim is None else dim
        defaults = {"convention": "energy", "reduction": None, "temperature": 1.0, "base_prior": None,
                    "base_sigma": 1.0}
        given = {"convention": convention, "reduction": reduction, "temperature": temperature,
                 "base_prior": base_prior, "base_sigma": base_sigma}
        settings = {k: (getattr(land, k) if given[k] == defaults[k] else given[k]) for k in defaults}
        convention, reduction, temperature = settings["convention"], settings["reduction"], settings["temperature"]
        base_prior, base_sigma = settings["base_prior"], settings["base_sigma"]
        if reference is None:
            reference, labels = land.reference, land.labels if labels is None else labels
        sampler = land.sampler if sampler is None else sampler
        metadata = land.metadata if metadata is None else metadata
        energy = land.energy_module
    modules = {"energy": _module_entry(energy, "energy")}
    if decoder is not None:
        modules["decoder"] = _module_entry(decoder, "decoder")
    if encoder is not None:
        modules["encoder"] = _module_entry(encoder, "encoder")
    try:  # validate the settings and shapes the way a loader will see them
        land = Landscape(energy, decoder=decoder, encoder=encoder, dim=dim, convention=convention,
                         reduction=reduction, temperature=temperature, base_prior=base_prior, base_sigma=base_sigma,
                         reference=reference, labels=labels, sampler=sampler)
    except LandscapeError as exc:
        raise CheckpointError(f"cannot save: {exc}") from None
    if data_shape is None and land.has_decoder:
        data_shape = land.decode(np.zeros((1, land.dim))).shape[1:]
    ckpt = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "modules": modules,
        "landscape": {"dim": land.dim, "convention": land.convention, "reduction": land.reduction,
                      "temperature": land.temperature, "base_prior": land.base_prior, "base_sigma": land.base_sigma},
        "data_shape": None if data_shape is None else [int(s) for s in data_shape],
        "reference": None if land.reference is None else torch.from_numpy(land.reference.copy()),
        "labels": None if land.labels is None else _plain(land.labels, "labels"),
        "sampler": _plain(dict(sampler or {}), "sampler"),
        "metadata": _plain(dict(metadata or {}), "metadata"),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- reading files
def _jit_load(path: Path, trust: bool, **kw: Any) -> Any:
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


def _is_torchscript(path: Path) -> bool:
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


def _read_weights_only(path: Path, trust_pickle: bool) -> tuple[Any, bool]:
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


# ---------------------------------------------------------------------------------------------- role specs
_ROLE_SPEC_KEYS = ("key", "prefix", "parts", "layers", "activation", "output_activation")
_PART_SPEC_KEYS = ("key", "prefix", "layers", "activation", "output_activation")
Piece = tuple[str, dict[str, torch.Tensor]]  # (where the weights sit, e.g. "netG.gen"; their state_dict)


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


def _role_entries(spec: dict) -> dict[str, dict | None]:
    """Every role's spec entry in normal form (see :func:`_role_entry`); roles the spec does not mention are found
    automatically."""
    return {role: _role_entry(role, spec[role]) if role in spec else
            {"parts": [_part({}, {}, f"the {role}", last=True)], "explicit": False} for role in ROLES}


# ---------------------------------------------------------------------------------------------- layouts
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


def _find_parts(obj: Any, roles: dict[str, dict | None]) -> tuple[str, dict[str, Any], list[str]]:
    """Identify the layout of a loaded checkpoint object and the weights of each role.

    Returns ``(layout, parts, ignored)``: parts maps role -> nn.Module, or a list of ``(where, state_dict)``
    pieces in forward order (several when the spec names several prefixes for a role).
    """
    if isinstance(obj, nn.Module):
        return "pickled nn.Module", _module_parts(obj, roles), []
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


def _module_parts(module: nn.Module, roles: dict[str, dict | None] | None = None) -> dict[str, nn.Module]:
    """A whole model: sub-modules the spec names by dotted path, children named like roles, else the module itself
    as the energy. Roles the spec leaves out are dropped."""
    roles = roles if roles is not None else _role_entries({})
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


def _layout_guess(parts: dict[str, Any]) -> dict | None:
    """Conventions a recognised layout implies: the official Pang et al. latent-EBM code (netE holding ``ebm``)
    trains netE(z) as an energy, p(z) ∝ exp(−netE(z)) N(z; 0, I): its Langevin step descends netE(z) + ‖z‖²/2."""
    energy = parts.get("energy")
    if isinstance(energy, list) and len(energy) == 1 and energy[0][0].split(".")[-2:] == ["netE", "ebm"]:
        return {"name": "Pang et al. latent EBM (netE.ebm)",
                "settings": {"convention": "energy", "base_prior": "standard_normal"}}
    return None


# ---------------------------------------------------------------------------------------------- building modules
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


def _build_stored(role: str, sd: dict[str, torch.Tensor], arch: dict) -> nn.Module:
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


def _build_role(role: str, pieces: list[Piece], entry: dict, notes: list[str]) -> nn.Module:
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


# ---------------------------------------------------------------------------------------------- entry points
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


def _from_entry_point(path: Path, model: str, trust_pickle: bool, device: Any, dtype: torch.dtype) -> Landscape:
    """The Landscape that the user's ``fn(checkpoint)`` (or ``fn(checkpoint, checkpoint_path=path)``) returns; when a
    device other than the default CPU was asked for and the Landscape is elsewhere, it is rebuilt with the same
    settings on that device."""
    fn = _resolve_entry_point(model)
    if _is_torchscript(path):
        obj = _jit_load(path, trust_pickle)
    else:
        obj, _ = _read_weights_only(path, trust_pickle)
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


# ---------------------------------------------------------------------------------------------- loading
NOT_STATED = "not stated in the checkpoint (energyscope's default)"


_NULLABLE = ("base_prior", "reduction")  # settings whose null in a spec means "none", not "not given"


def _settings(source: dict, spec: dict, implied: dict | None = None) -> dict:
    """Landscape settings: the file's, else what a recognised layout implies, overridden by the spec's (where a
    spec's ``"base_prior": null`` or ``"reduction": null`` says "none")."""
    out = {k: source.get(k) for k in _LANDSCAPE_KEYS if source.get(k) is not None}
    for k, v in (implied or {}).items():
        out.setdefault(k, v)
    out.update({k: spec[k] for k in _LANDSCAPE_KEYS if spec.get(k) is not None or (k in _NULLABLE and k in spec)})
    return out


def _as_numpy(x: Any) -> np.ndarray | None:
    if x is None:
        return None
    return to_numpy(x) if isinstance(x, torch.Tensor) else np.asarray(x)


def _merge_spec(extra: dict, spec: dict) -> dict:
    """A TorchScript archive's settings file, overridden by the spec (a spec's null leaves a role out but does not
    erase a setting)."""
    merged = dict(extra)
    merged.update({k: v for k, v in spec.items() if v is not None or k in ROLES or k in _NULLABLE})
    return merged


def _load_torchscript(path: Path, spec: dict, info: dict, trust_pickle: bool, device: Any,
                      dtype: torch.dtype) -> tuple[Landscape, dict]:
    files = {TORCHSCRIPT_EXTRA: ""}
    try:
        obj = _jit_load(path, trust_pickle, _extra_files=files)
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path} looks like TorchScript but torch.jit.load failed: {exc}") from None
    extra: dict = {}
    if files[TORCHSCRIPT_EXTRA]:
        try:
            extra = json.loads(files[TORCHSCRIPT_EXTRA])
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: {TORCHSCRIPT_EXTRA} inside the archive is not valid JSON: {exc}") \
                from None
        if not isinstance(extra, dict):
            raise CheckpointError(f"{path}: {TORCHSCRIPT_EXTRA} inside the archive must hold a JSON object")
    info["layout"] = "TorchScript"
    merged = _merge_spec(extra, spec)
    parts = _module_parts(obj, _role_entries(merged))
    guess = None if extra.get("convention") is not None else NOT_STATED
    return _finish(parts, {}, merged, extra, info, device, dtype, guess=guess)


def _load_foreign(obj: Any, spec: dict, info: dict, device: Any, dtype: torch.dtype) -> tuple[Landscape, dict]:
    """Foreign layouts: find each role's weights, build the modules, and guess what the layout implies."""
    roles = _role_entries(spec)
    if isinstance(obj, dict):
        info["keys"] = [str(k) for k in obj]
    layout, parts, ignored = _find_parts(obj, roles)
    info["layout"] = layout
    info["ignored"] = ignored
    info["notes"] += [f"{role}: left out by the spec" for role, entry in roles.items() if entry is None]
    built = {role: part if isinstance(part, nn.Module) else _build_role(role, part, roles[role], info["notes"])
             for role, part in parts.items()}
    assumed = [n for n in info["notes"] if "(assumed" in n]
    if assumed:
        warnings.warn("; ".join(assumed), stacklevel=4)
    implied = _layout_guess(parts)
    if implied is not None:
        info["notes"].append(f"layout recognised as {implied['name']}: convention 'energy' with a standard_normal "
                             "base prior unless the spec says otherwise")
    guess = f"guessed from the layout ({implied['name']})" if implied else NOT_STATED
    return _finish(built, {}, spec, {}, info, device, dtype, implied=implied and implied["settings"], guess=guess,
                   from_weights=isinstance(parts["energy"], list), probe_decoder=isinstance(parts.get("decoder"), list))


def _load(path: str | os.PathLike, model: str | None = None, trust_pickle: bool = False, device: Any = "cpu",
          dtype: torch.dtype = torch.float64, spec: Any = None) -> tuple[Landscape, dict]:
    """Load a checkpoint; returns the Landscape and what was found (layout, keys, notes) for ``inspect``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    spec = read_spec(spec)
    info: dict[str, Any] = {"path": str(path), "size_bytes": path.stat().st_size, "notes": [], "ignored": []}
    if model is not None:
        land = _from_entry_point(path, model, trust_pickle, device, dtype)
        info["layout"] = f"entry point {model}"
        return land, info
    if _is_torchscript(path):
        return _load_torchscript(path, spec, info, trust_pickle, device, dtype)
    obj, pickled = _read_weights_only(path, trust_pickle)
    info["pickled"] = pickled
    if isinstance(obj, dict) and obj.get("format") == FORMAT_NAME:
        return _from_energyscope(obj, spec, info, device, dtype)
    return _load_foreign(obj, spec, info, device, dtype)


def _from_energyscope(obj: dict, spec: dict, info: dict, device: Any, dtype: torch.dtype) -> tuple[Landscape, dict]:
    version = obj.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"energyscope format version {version!r} is not supported by this energyscope "
                              f"(reads up to {FORMAT_VERSION}); upgrade energyscope")
    info["layout"] = f"energyscope v{version}"
    roles = _role_entries(spec)
    mods = obj.get("modules")
    if not isinstance(mods, dict) or "energy" not in mods:
        raise CheckpointError("energyscope checkpoint is missing key 'modules.energy'")
    built = {}
    for role, entry in mods.items():
        if role not in ROLES:
            info["ignored"].append(f"modules.{role}")
            continue
        if roles[role] is None:
            info["notes"].append(f"{role}: left out by the spec")
            continue
        for key in ("spec", "state_dict"):
            if not isinstance(entry, dict) or key not in entry:
                raise CheckpointError(f"energyscope checkpoint is missing key 'modules.{role}.{key}'")
        built[role] = _build_stored(role, entry["state_dict"], entry["spec"])
    return _finish(built, obj, spec, obj.get("landscape") or {}, info, device, dtype)


def _guess_dim(module: nn.Module) -> int | None:
    """The latent dimension from the first weight matrix (TorchScript modules hide their layer types)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            return int(m.in_features)
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            return int(m.in_channels)
    for name, p in module.named_parameters():
        if name.endswith("weight") and p.ndim in (2, 4):
            return int(p.shape[1])
    return None


def _describe_conventions(settings: dict) -> str:
    base = settings.get("base_prior")
    return f"convention {settings.get('convention', 'energy')!r}, " + (f"base prior {base}" if base else
                                                                        "no base prior")


def _probe_decoder(land: Landscape, path: str) -> None:
    """Decode one latent, so that a decoder built from a guessed or hand-written architecture that cannot run
    fails now, with the fix, instead of in the middle of an analysis."""
    try:
        land.decode(np.zeros((1, land.dim)))
    except LandscapeError as exc:
        raise CheckpointError(f"{path}: the decoder does not run on latents: {exc}; check its 'layers' in the spec "
                              "(strides, paddings, Unflatten sizes), or leave it out with {\"decoder\": null}") \
            from None


def _check_built_energy(energy: nn.Module, settings: dict, path: str) -> None:
    """An energy stack built from foreign weights, checked against the settings before it is run: the latent
    dimension a spec gives, and several outputs per latent without a way to make them one value."""
    linears = [m for m in energy.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return
    if settings.get("dim") is not None:
        try:
            dim = int(settings["dim"])
        except (TypeError, ValueError):
            raise CheckpointError(f"{path}: the spec's dim must be an integer, got {settings['dim']!r}") from None
        if dim != linears[0].in_features:
            raise CheckpointError(f"{path}: the spec says dim={dim} but the energy's first layer takes "
                                  f"{linears[0].in_features} inputs; fix or drop 'dim' in the spec")
    k = linears[-1].out_features
    if k > 1 and settings.get("reduction") is None and settings.get("convention") != "logits":
        raise CheckpointError(f"{path}: the energy's last layer gives {k} values per latent; say in the spec how they "
                              "become one: {\"convention\": \"logits\"} for class logits (U = −logsumexp, JEM's "
                              "convention), or {\"reduction\": \"sum\"}; or name the head that gives the energy "
                              "({\"energy\": {\"prefix\": [\"trunk\", \"head\"]}})")


def _finish(parts: dict[str, nn.Module], obj: dict, spec: dict, source: dict, info: dict, device: Any,
            dtype: torch.dtype, implied: dict | None = None, guess: str | None = None,
            from_weights: bool = False, probe_decoder: bool = False) -> tuple[Landscape, dict]:
    """The Landscape from built modules and settings (file, layout, spec). ``guess`` says why the convention was
    not read from the file; unless the spec states one, it is recorded as ``metadata["convention_guess"]``.
    ``from_weights``: the energy was built from foreign weights (checked before it runs); ``probe_decoder``: so was
    the decoder (decoded once)."""
    settings = _settings(source, spec, implied)
    if from_weights:
        _check_built_energy(parts["energy"], settings, info["path"])
    if "dim" not in settings and isinstance(parts["energy"], nn.Module):
        dim = _guess_dim(parts["energy"])
        if dim is not None:
            settings["dim"] = dim
    reference = _as_numpy(obj.get("reference"))
    labels = _as_numpy(obj.get("labels"))
    sampler = dict(source.get("sampler") or obj.get("sampler") or {})
    sampler.update(spec.get("sampler") or {})
    metadata = dict(obj.get("metadata") or source.get("metadata") or {})
    data_shape = spec.get("data_shape", obj.get("data_shape", source.get("data_shape")))
    if data_shape is not None:
        metadata["data_shape"] = [int(s) for s in data_shape]
    if guess is not None and spec.get("convention") is None:
        metadata["convention_guess"] = info["convention_guess"] = f"{guess}: {_describe_conventions(settings)}"
    info["data_shape"] = metadata.get("data_shape")
    try:
        land = Landscape(parts["energy"], decoder=parts.get("decoder"), encoder=parts.get("encoder"),
                         reference=reference, labels=labels, sampler=sampler, metadata=metadata, device=device,
                         dtype=dtype, **settings)
    except LandscapeError as exc:
        raise CheckpointError(f"{info['path']}: {exc}") from None
    except ValueError as exc:  # e.g. a CUDA device without CUDA
        raise CheckpointError(str(exc)) from None
    if probe_decoder and land.has_decoder:
        _probe_decoder(land, info["path"])
    return land, info


def convention_caution(land: Landscape, has_reference: bool | None = None) -> str | None:
    """A short caution when the landscape's convention was guessed (from a recognised layout, or energyscope's
    default because the checkpoint does not say) and no reference latents can confirm it; None otherwise.

    Parameters:
        land: a Landscape from :func:`load_checkpoint` (the guess is recorded in ``land.metadata["convention_guess"]``).
        has_reference: whether reference latents are available (e.g. ``--data`` will encode some); by default,
            whether ``land.reference`` is set.
    """
    guess = (land.metadata or {}).get("convention_guess")
    if not guess:
        return None
    if has_reference is None:
        has_reference = land.reference is not None
    if has_reference:
        return None
    return (f"the convention was {guess}; the sign check cannot confirm the convention without reference latents; "
            "pass --data")


@checked_keywords()
def load_checkpoint(path: str | os.PathLike, model: str | None = None, trust_pickle: bool = False,
                    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64,
                    spec: str | os.PathLike | dict | None = None) -> Landscape:
    """Load a checkpoint as a :class:`Landscape` (see docs/checkpoint-format.md for every accepted layout).

    Parameters:
        path: the checkpoint file.
        model: ``"pkg.module:fn"`` or ``"path/to/file.py:fn"``: ``fn(checkpoint_object)`` builds the Landscape
            (the object is loaded with ``weights_only=True``; a TorchScript archive is passed as the loaded module);
            a function that accepts a ``checkpoint_path`` keyword (or ``**kwargs``) also gets the file's path, as a
            ``pathlib.Path``, to find side files next to it.
        trust_pickle: allow loading files that carry code: pickled Python objects (whole pickled modules) and
            TorchScript archives (code that runs when evaluated). Only for files you trust.
        device, dtype: where and in what precision the Landscape evaluates (float64 by default). Tensors in the
            file are read onto the CPU first, so a checkpoint saved on a GPU loads on a CPU-only machine. With
            ``model=``, the entry point's Landscape is moved to ``device`` when one other than ``"cpu"`` is given.
        spec: a dict, or a JSON/YAML file, naming per role (``energy``, ``decoder``, ``encoder``) the key prefix
            of its weights (any depth, dotted; a list chains parts, trunk first), layers or activations, or ``null``
            to leave the role out; conventions (``convention``, ``reduction``, ``temperature``, ``base_prior``,
            ``base_sigma``, ``dim``), ``data_shape`` and ``sampler``; it overrides what the file says.

    A convention the file does not state (energyscope's default, or one implied by a recognised layout such as the
    Pang et al. latent EBM: ``energy`` with a ``standard_normal`` base) is recorded in
    ``land.metadata["convention_guess"]``; :func:`convention_caution` turns it into a caution.

    Reference latents and labels stored in the file become ``land.reference`` / ``land.labels``; sampler settings go
    to ``land.sampler``; metadata (with ``data_shape``) to ``land.metadata``. Raises CheckpointError.
    """
    land, _ = _load(path, model=model, trust_pickle=trust_pickle, device=device, dtype=dtype, spec=spec)
    return land


# ---------------------------------------------------------------------------------------------- describing
def _stats(u: np.ndarray) -> dict:
    finite = u[np.isfinite(u)]
    out = {"n": int(len(u)), "n_nonfinite": int(len(u) - len(finite))}
    if len(finite):
        out.update(mean=float(finite.mean()), std=float(finite.std()), min=float(finite.min()),
                   max=float(finite.max()))
    return out


def describe_checkpoint(path: str | os.PathLike, model: str | None = None, trust_pickle: bool = False,
                        device: str | torch.device = "cpu", spec: Any = None, n_samples: int = 2048,
                        seed: int = 0) -> dict:
    """Load a checkpoint and describe it as JSON-able data (what ``energyscope inspect`` prints).

    Keys: path, size_bytes, layout, keys/ignored (foreign layouts), notes (e.g. an inferred architecture),
    convention_guess (when the convention was not read from the file), landscape (:meth:`Landscape.describe`),
    architectures, data_shape, labels (counts per label), energy (U statistics over ``n_samples`` base samples and
    over the reference latents, in nats), convention_caution (:func:`convention_caution`) and sign_check.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes are reported in the description instead
        land, info = _load(path, model=model, trust_pickle=trust_pickle, device=device, spec=spec)
    out = dict(info)
    out["landscape"] = land.describe()
    out["architectures"] = {}
    for role, mod in (("energy", land.energy_module), ("decoder", land.decoder_module),
                      ("encoder", land.encoder_module)):
        if mod is None:
            continue
        try:
            out["architectures"][role] = describe_spec(module_spec(mod, role))
        except SpecError:
            out["architectures"][role] = type(mod).__name__
    out["data_shape"] = land.metadata.get("data_shape")
    if out["data_shape"] is None and land.has_decoder:
        try:
            out["data_shape"] = list(land.decode(np.zeros((1, land.dim))).shape[1:])
        except LandscapeError as exc:
            out["notes"].append(f"decoding failed: {exc}")
    if land.labels is not None:
        values, counts = np.unique(land.labels, return_counts=True)
        out["labels"] = {str(v): int(c) for v, c in zip(values, counts)}
    else:
        out["labels"] = None
    u_base = to_numpy(land.energy(land.base_samples(n_samples, seed)))
    out["energy"] = {"base": _stats(u_base)}
    if land.reference is not None:
        out["energy"]["reference"] = _stats(to_numpy(land.energy(land.reference)))
    out["convention_caution"] = convention_caution(land)
    sc = land.sign_check(n_samples=n_samples, seed=seed, warn=False)
    out["sign_check"] = None if sc is None else {"ok": sc.ok, "mean_U_reference": sc.mean_U_reference,
                                                 "mean_U_base": sc.mean_U_base, "message": sc.message}
    if out["energy"]["base"]["n_nonfinite"]:
        out["notes"].append(f"U is not finite on {out['energy']['base']['n_nonfinite']} of {n_samples} base samples")
    return out
