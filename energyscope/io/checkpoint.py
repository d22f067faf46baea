"""Checkpoints: the energyscope format, safe loading of what users actually have, and clear errors.

``save_checkpoint`` writes the energyscope format (docs/checkpoint-format.md): a ``torch.save``-d dict of plain data
and tensors that loads with ``weights_only=True``. ``load_checkpoint`` reads it, TorchScript archives, foreign dicts
of state_dicts (``netE``/``netG``, ``E_state_dict``, ...), flat prefixed state_dicts, Lightning checkpoints, a user's
own entry point (``model="pkg.module:fn"``), and — only with ``trust_pickle=True`` — pickled whole modules. A spec
names each role's weights by key prefix at any depth (``"netG.gen"``), chains parts (``["f", "energy_output"]``) or
leaves a role out (``null``). Detection is conservative: ambiguous weights (two candidates for a role, a trunk with
parallel heads) are one error listing the candidates and the spec line for each. Every failure is one
:class:`CheckpointError` whose message names what is wrong.

Where the parts live: :mod:`.safe_load` reads files (weights-only, TorchScript, the trust rule), :mod:`.role_specs`
reads a spec and each role's entry, :mod:`.layouts` finds each role's weights in foreign layouts, :mod:`.assemble`
builds the modules from them, :mod:`.entry_points` calls a user's ``pkg.module:fn``; :mod:`.errors` holds
:class:`CheckpointError`. This module holds the public entry points, the energyscope format and the loading flow.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from energyscope.errors import warn as warn_user
from energyscope.settings import checked_keywords
from energyscope._tensor import to_numpy
from energyscope.landscape import Landscape, LandscapeError
from energyscope.io.spec import SpecError, describe_spec, module_spec
from energyscope.io.errors import CheckpointError as CheckpointError
from energyscope.io.safe_load import is_torchscript, jit_load, read_weights_only
from energyscope.io.role_specs import DEFAULT_ACTIVATION as DEFAULT_ACTIVATION, ROLES, read_spec, role_entries
from energyscope.io.layouts import Piece as Piece, find_parts, layout_guess, module_parts
from energyscope.io.assemble import build_role, build_stored
from energyscope.io.entry_points import landscape_from_entry_point

FORMAT_NAME = "energyscope"
FORMAT_VERSION = 1
TORCHSCRIPT_EXTRA = "energyscope.json"  # optional settings file inside a TorchScript archive
_LANDSCAPE_KEYS = ("dim", "convention", "reduction", "temperature", "base_prior", "base_sigma")


# ---------------------------------------------------------------------------------------------- saving
def _storable(x: Any, where: str) -> Any:
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
        return _storable(x.tolist(), where)
    if isinstance(x, (list, tuple)):
        return [_storable(v, f"{where}[{i}]") for i, v in enumerate(x)]
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if not isinstance(k, str):
                raise CheckpointError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _storable(v, f"{where}.{k}")
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
        "labels": None if land.labels is None else _storable(land.labels, "labels"),
        "sampler": _storable(dict(sampler or {}), "sampler"),
        "metadata": _storable(dict(metadata or {}), "metadata"),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)


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
        obj = jit_load(path, trust_pickle, _extra_files=files)
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
    parts = module_parts(obj, role_entries(merged))
    guess = None if extra.get("convention") is not None else NOT_STATED
    return _finish(parts, {}, merged, extra, info, device, dtype, guess=guess)


def _load_foreign(obj: Any, spec: dict, info: dict, device: Any, dtype: torch.dtype) -> tuple[Landscape, dict]:
    """Foreign layouts: find each role's weights, build the modules, and guess what the layout implies."""
    roles = role_entries(spec)
    if isinstance(obj, dict):
        info["keys"] = [str(k) for k in obj]
    layout, parts, ignored = find_parts(obj, roles)
    info["layout"] = layout
    info["ignored"] = ignored
    info["notes"] += [f"{role}: left out by the spec" for role, entry in roles.items() if entry is None]
    built = {role: part if isinstance(part, nn.Module) else build_role(role, part, roles[role], info["notes"])
             for role, part in parts.items()}
    assumed = [n for n in info["notes"] if "(assumed" in n]
    if assumed:
        warn_user("; ".join(assumed))
    implied = layout_guess(parts)
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
        land = landscape_from_entry_point(path, model, trust_pickle, device, dtype)
        info["layout"] = f"entry point {model}"
        return land, info
    if is_torchscript(path):
        return _load_torchscript(path, spec, info, trust_pickle, device, dtype)
    obj, pickled = read_weights_only(path, trust_pickle)
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
    roles = role_entries(spec)
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
        built[role] = build_stored(role, entry["state_dict"], entry["spec"])
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
