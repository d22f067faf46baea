"""Checkpoints: the energyscope format, safe loading of what users actually have, and clear errors.

``save_checkpoint`` writes the energyscope format (docs/checkpoint-format.md): a ``torch.save``-d dict of plain data
and tensors that loads with ``weights_only=True``. ``load_checkpoint`` reads it, TorchScript archives, foreign dicts
of state_dicts (``netE``/``netG``, ``E_state_dict``, ...), flat prefixed state_dicts, Lightning checkpoints, a user's
own entry point (``model="pkg.module:fn"``), and — only with ``trust_pickle=True`` — pickled whole modules. Every
failure is one :class:`CheckpointError` whose message names what is wrong.
"""
from __future__ import annotations

import importlib
import importlib.util
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

from ._tensor import resolve_device, to_numpy
from .landscape import Landscape, LandscapeError
from .spec import SpecError, build_module, complete_spec, describe_spec, infer_spec, module_spec

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


class CheckpointError(ValueError):
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

    The modules must be ``nn.Sequential`` stacks of layers :mod:`energyscope.spec` can describe; anything else raises
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


def _strip_wrappers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) anywhere, and a common ``model.``."""
    sd = {".".join(c for c in k.split(".") if c not in ("module", "_orig_mod")): v for k, v in sd.items()}
    while sd and all(k.startswith("model.") for k in sd):
        sd = {k[len("model."):]: v for k, v in sd.items()}
    return sd


def _split_flat(sd: dict[str, torch.Tensor], spec: dict) -> tuple[dict[str, dict], list[str]]:
    """A flat state_dict -> ({role: sub-state_dict}, ignored keys); spec prefixes first, then known prefixes.

    Without any role prefix the whole state_dict is taken as the energy's.
    """
    sd = _strip_wrappers(sd)
    parts: dict[str, dict] = {}
    used: set[str] = set()
    for role in ROLES:
        role_spec = spec.get(role) or {}
        key = role_spec.get("key") or role_spec.get("prefix")
        if key:
            prefix = key.rstrip(".") + "."
            sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
            if not sub:
                raise CheckpointError(f"the spec names key prefix {prefix!r} for the {role}, but no weights start "
                                      f"with it; prefixes seen: {_prefixes(sd)}")
            parts[role] = sub
            used |= {prefix + k for k in sub}
    explicit = set(parts)
    heads: dict[str, str] = {}
    for k, v in sd.items():
        head, _, rest = k.partition(".")
        role = _role_of(head) if rest and k not in used else None
        if role is None or role in explicit or heads.setdefault(role, head) != head:
            continue
        parts.setdefault(role, {})[rest] = v
        used.add(k)
    if not parts:  # a bare state_dict of the energy alone
        parts["energy"] = dict(sd)
        used = set(sd)
    return parts, [k for k in sd if k not in used]


def _prefixes(sd: dict) -> str:
    heads = sorted({k.partition(".")[0] for k in sd})
    return ", ".join(heads[:20]) + (" ..." if len(heads) > 20 else "")


def _find_parts(obj: Any, spec: dict) -> tuple[str, dict[str, Any], list[str]]:
    """Identify the layout of a loaded checkpoint object.

    Returns ``(layout, parts, ignored)``: parts maps role -> state_dict or nn.Module.
    """
    if isinstance(obj, nn.Module):
        return "pickled nn.Module", _module_parts(obj), []
    if not isinstance(obj, dict):
        raise CheckpointError(f"unknown checkpoint layout: the file holds a {type(obj).__name__}, not a dict of "
                              "weights; use --model with your own code")
    if _is_state_dict(obj):
        parts, ignored = _split_flat(obj, spec)
        return "flat state_dict", parts, ignored
    # Lightning and friends: the weights sit under one key
    has_roles = any(_role_of(str(k)) for k, v in obj.items() if _is_state_dict(v) or isinstance(v, nn.Module))
    for key in ("state_dict", "model_state_dict", "model", "net", "weights"):
        if key in obj and _is_state_dict(obj[key]) and not has_roles:
            parts, ignored = _split_flat(obj[key], spec)
            layout = "Lightning checkpoint" if "pytorch-lightning_version" in obj or key == "state_dict" else \
                f"state_dict under {key!r}"
            return layout, parts, ignored + [k for k in obj if k != key]
    parts: dict[str, Any] = {}
    taken: set[str] = set()
    for role in ROLES:
        key = (spec.get(role) or {}).get("key")
        if key:
            if key not in obj:
                raise CheckpointError(f"the spec names key {key!r} for the {role}, but the checkpoint has no such "
                                      f"key; keys seen: {', '.join(map(str, list(obj)[:30]))}")
            parts[role] = obj[key]
            taken.add(key)
    ignored = []
    for k, v in obj.items():
        if k in taken:
            continue
        role = _role_of(str(k))
        if role is not None and role not in parts and (_is_state_dict(v) or isinstance(v, nn.Module)):
            parts[role] = v
        else:
            ignored.append(str(k))
    for role in list(parts):
        if _is_state_dict(parts[role]):
            parts[role] = _strip_wrappers(parts[role])
        elif not isinstance(parts[role], nn.Module):
            raise CheckpointError(f"the {role} entry holds a {type(parts[role]).__name__}, not a state_dict")
    if "energy" not in parts:
        seen = ", ".join(f"{k} ({_kind(v)})" for k, v in list(obj.items())[:30])
        raise CheckpointError(
            f"unknown checkpoint layout: no energy weights found. Keys seen: {seen}. Name the energy's key in a spec "
            "file ({\"energy\": {\"key\": \"...\"}}) or use --model with your own code")
    return "dict of state_dicts", parts, ignored


def _kind(v: Any) -> str:
    if _is_state_dict(v):
        return f"state_dict, {len(v)} tensors"
    if isinstance(v, torch.Tensor):
        return f"tensor {list(v.shape)}"
    if isinstance(v, dict):
        return f"dict, {len(v)} keys"
    return type(v).__name__


def _module_parts(module: nn.Module) -> dict[str, nn.Module]:
    """A whole model: its children named like roles, else the module itself as the energy."""
    parts: dict[str, nn.Module] = {}
    for name, child in module.named_children():
        role = _role_of(name)
        if role is not None and role not in parts:
            parts[role] = child
    if "energy" not in parts:
        return {"energy": module}
    return parts


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


def _build(role: str, sd: dict[str, torch.Tensor], arch: dict | None, role_spec: dict, notes: list[str]) -> nn.Module:
    """An eval-mode module for a role from weights plus a stored spec (energyscope format) or a user spec/inference."""
    _check_finite(sd, role)
    try:
        if arch is not None:
            spec, key_map = complete_spec(arch, sd, role), None
        elif role_spec.get("layers") is not None:
            spec, key_map = complete_spec({"type": "Sequential", "layers": role_spec["layers"]}, sd, role), None
            notes.append(f"{role}: layers from the spec: {describe_spec(spec)}")
        else:
            act = role_spec.get("activation", DEFAULT_ACTIVATION)
            spec, key_map = infer_spec(sd, act, role_spec.get("output_activation"), role)
            assumed = "" if "activation" in role_spec else " (assumed; set 'activation' in a spec file to change it)"
            notes.append(f"{role}: architecture inferred from weight shapes: {describe_spec(spec)}{assumed}")
        module = build_module(spec, role).to(torch.float64)
    except SpecError as exc:
        raise CheckpointError(str(exc)) from None
    _load_into(module, {k: v.to(torch.float64) if v.is_floating_point() else v for k, v in sd.items()}, role,
               key_map)
    module.eval()
    return module


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


def _from_entry_point(path: Path, model: str, trust_pickle: bool, device: Any, dtype: torch.dtype) -> Landscape:
    """The Landscape that the user's ``fn(checkpoint)`` returns; when a device other than the default CPU was asked
    for and the Landscape is elsewhere, it is rebuilt with the same settings on that device."""
    fn = _resolve_entry_point(model)
    if _is_torchscript(path):
        obj = _jit_load(path, trust_pickle)
    else:
        obj, _ = _read_weights_only(path, trust_pickle)
    try:
        land = fn(obj)
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
def _settings(source: dict, spec: dict) -> dict:
    """Landscape settings: the file's, overridden by the spec's."""
    out = {k: source.get(k) for k in _LANDSCAPE_KEYS if source.get(k) is not None}
    out.update({k: spec[k] for k in _LANDSCAPE_KEYS if spec.get(k) is not None})
    return out


def _as_numpy(x: Any) -> np.ndarray | None:
    if x is None:
        return None
    return to_numpy(x) if isinstance(x, torch.Tensor) else np.asarray(x)


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

    extra: dict = {}
    if _is_torchscript(path):
        files = {TORCHSCRIPT_EXTRA: ""}
        try:
            obj = _jit_load(path, trust_pickle, _extra_files=files)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{path} looks like TorchScript but torch.jit.load failed: {exc}") from None
        if files[TORCHSCRIPT_EXTRA]:
            try:
                extra = json.loads(files[TORCHSCRIPT_EXTRA])
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"{path}: {TORCHSCRIPT_EXTRA} inside the archive is not valid JSON: {exc}") \
                    from None
        info["layout"] = "TorchScript"
        parts = _module_parts(obj)
        return _finish(parts, {}, {**extra, **{k: v for k, v in spec.items() if v is not None}}, extra, info,
                       device, dtype)

    obj, pickled = _read_weights_only(path, trust_pickle)
    info["pickled"] = pickled
    if isinstance(obj, dict) and obj.get("format") == FORMAT_NAME:
        return _from_energyscope(obj, spec, info, device, dtype)
    if isinstance(obj, dict):
        info["keys"] = [str(k) for k in obj]
    layout, parts, ignored = _find_parts(obj, spec)
    info["layout"] = layout
    info["ignored"] = ignored
    built = {}
    for role, part in parts.items():
        if isinstance(part, nn.Module):
            built[role] = part
        else:
            built[role] = _build(role, part, None, spec.get(role) or {}, info["notes"])
    assumed = [n for n in info["notes"] if "(assumed" in n]
    if assumed:
        warnings.warn("; ".join(assumed), stacklevel=3)
    return _finish(built, {}, spec, {}, info, device, dtype)


def _from_energyscope(obj: dict, spec: dict, info: dict, device: Any, dtype: torch.dtype) -> tuple[Landscape, dict]:
    version = obj.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"energyscope format version {version!r} is not supported by this energyscope "
                              f"(reads up to {FORMAT_VERSION}); upgrade energyscope")
    info["layout"] = f"energyscope v{version}"
    mods = obj.get("modules")
    if not isinstance(mods, dict) or "energy" not in mods:
        raise CheckpointError("energyscope checkpoint is missing key 'modules.energy'")
    built = {}
    for role, entry in mods.items():
        if role not in ROLES:
            info["ignored"].append(f"modules.{role}")
            continue
        for key in ("spec", "state_dict"):
            if not isinstance(entry, dict) or key not in entry:
                raise CheckpointError(f"energyscope checkpoint is missing key 'modules.{role}.{key}'")
        built[role] = _build(role, entry["state_dict"], entry["spec"], {}, info["notes"])
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


def _finish(parts: dict[str, nn.Module], obj: dict, spec: dict, source: dict, info: dict, device: Any,
            dtype: torch.dtype) -> tuple[Landscape, dict]:
    settings = _settings(source, spec)
    if "dim" not in settings and isinstance(parts["energy"], nn.Module):
        guess = _guess_dim(parts["energy"])
        if guess is not None:
            settings["dim"] = guess
    reference = _as_numpy(obj.get("reference"))
    labels = _as_numpy(obj.get("labels"))
    sampler = dict(source.get("sampler") or obj.get("sampler") or {})
    sampler.update(spec.get("sampler") or {})
    metadata = dict(obj.get("metadata") or source.get("metadata") or {})
    data_shape = spec.get("data_shape", obj.get("data_shape", source.get("data_shape")))
    if data_shape is not None:
        metadata["data_shape"] = [int(s) for s in data_shape]
    info["data_shape"] = metadata.get("data_shape")
    try:
        land = Landscape(parts["energy"], decoder=parts.get("decoder"), encoder=parts.get("encoder"),
                         reference=reference, labels=labels, sampler=sampler, metadata=metadata, device=device,
                         dtype=dtype, **settings)
    except LandscapeError as exc:
        raise CheckpointError(f"{info['path']}: {exc}") from None
    except ValueError as exc:  # e.g. a CUDA device without CUDA
        raise CheckpointError(str(exc)) from None
    return land, info


def load_checkpoint(path: str | os.PathLike, model: str | None = None, trust_pickle: bool = False,
                    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64,
                    spec: str | os.PathLike | dict | None = None) -> Landscape:
    """Load a checkpoint as a :class:`Landscape` (see docs/checkpoint-format.md for every accepted layout).

    Parameters:
        path: the checkpoint file.
        model: ``"pkg.module:fn"`` or ``"path/to/file.py:fn"``: ``fn(checkpoint_object)`` builds the Landscape
            (the object is loaded with ``weights_only=True``; a TorchScript archive is passed as the loaded module).
        trust_pickle: allow loading files that carry code: pickled Python objects (whole pickled modules) and
            TorchScript archives (code that runs when evaluated). Only for files you trust.
        device, dtype: where and in what precision the Landscape evaluates (float64 by default). Tensors in the
            file are read onto the CPU first, so a checkpoint saved on a GPU loads on a CPU-only machine. With
            ``model=``, the entry point's Landscape is moved to ``device`` when one other than ``"cpu"`` is given.
        spec: a dict, or a JSON/YAML file, naming key prefixes, layers or activations per role (``energy``,
            ``decoder``, ``encoder``), conventions (``convention``, ``reduction``, ``temperature``, ``base_prior``,
            ``base_sigma``, ``dim``), ``data_shape`` and ``sampler``; it overrides what the file says.

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
    landscape (:meth:`Landscape.describe`), architectures, data_shape, labels (counts per label), energy (U
    statistics over ``n_samples`` base samples and over the reference latents, in nats) and sign_check.
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
    sc = land.sign_check(n_samples=n_samples, seed=seed, warn=False)
    out["sign_check"] = None if sc is None else {"ok": sc.ok, "mean_U_reference": sc.mean_U_reference,
                                                 "mean_U_base": sc.mean_U_base, "message": sc.message}
    if out["energy"]["base"]["n_nonfinite"]:
        out["notes"].append(f"U is not finite on {out['energy']['base']['n_nonfinite']} of {n_samples} base samples")
    return out
