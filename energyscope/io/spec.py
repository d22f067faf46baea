"""Declarative architecture specs: describe an ``nn.Sequential`` stack as plain data, and build it back.

A spec is JSON-able data (so a checkpoint that holds it loads with ``weights_only=True`` and a person can write one by
hand)::

    {"type": "Sequential", "layers": [
        {"type": "Linear", "in": 8, "out": 200},
        {"type": "LeakyReLU", "slope": 0.2},
        {"type": "Linear", "in": 200, "out": 1}]}

Layer types: Linear, Conv2d, ConvTranspose2d, Flatten, Unflatten, BatchNorm1d, BatchNorm2d, Dropout, Identity, nested
Sequential, and the activations ReLU, LeakyReLU (``slope``), ELU (``alpha``), GELU (``approximate``), SiLU, Tanh,
Sigmoid, Softplus (``beta``, ``threshold``). Layer sizes are recorded, and where a hand-written spec leaves them out
they are inferred from the weight shapes (:func:`complete_spec`). :func:`infer_spec` guesses a whole plain MLP stack
from a state_dict alone; :func:`check_chain` says where consecutive layers' sizes do not fit, and
:func:`find_parallel_heads` recognises a trunk with several heads on its output (which must not be chained).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
from torch import nn
from energyscope.errors import EnergyscopeError


class SpecError(EnergyscopeError, ValueError):
    """A module that cannot be described declaratively, or a spec that does not fit its weights."""


# canonical type name -> accepted spellings (compared lower-case, without '_' and '-')
_ALIASES = {
    "Linear": ("linear", "dense"),
    "Conv2d": ("conv2d", "conv"),
    "ConvTranspose2d": ("convtranspose2d", "deconv2d", "deconv", "convtranspose"),
    "Flatten": ("flatten",),
    "Unflatten": ("unflatten", "reshape"),
    "BatchNorm1d": ("batchnorm1d", "bn1d"),
    "BatchNorm2d": ("batchnorm2d", "bn2d"),
    "Dropout": ("dropout",),
    "Identity": ("identity", "none", "linearactivation"),
    "Sequential": ("sequential",),
    "ReLU": ("relu",),
    "LeakyReLU": ("leakyrelu", "lrelu"),
    "ELU": ("elu",),
    "GELU": ("gelu",),
    "SiLU": ("silu", "swish"),
    "Tanh": ("tanh",),
    "Sigmoid": ("sigmoid",),
    "Softplus": ("softplus",),
}
_CANONICAL = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}
ACTIVATIONS = ("ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Tanh", "Sigmoid", "Softplus", "Identity")
WEIGHTED = ("Linear", "Conv2d", "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d")


def canonical_type(name: Any) -> str:
    """The canonical layer type for a user's spelling (``"leaky_relu"`` -> ``"LeakyReLU"``)."""
    key = re.sub(r"[_\-\s]", "", str(name)).lower()
    if key not in _CANONICAL:
        raise SpecError(f"unknown layer type {name!r}; known: {', '.join(_ALIASES)}")
    return _CANONICAL[key]


def activation_spec(act: Any) -> dict:
    """An activation spec from a name (``"relu"``, ``"leaky_relu"``), a dict, or ``None`` (Identity)."""
    if act is None:
        return {"type": "Identity"}
    if isinstance(act, dict):
        spec = dict(act)
        spec["type"] = canonical_type(spec.get("type"))
    else:
        spec = {"type": canonical_type(act)}
    if spec["type"] not in ACTIVATIONS:
        raise SpecError(f"{spec['type']} is not an activation; use one of {', '.join(ACTIVATIONS)}")
    if spec["type"] == "LeakyReLU":
        spec.setdefault("slope", 0.2)
    return spec


# ---------------------------------------------------------------------------------------------- module -> spec
def _pair(v: Any) -> list[int]:
    return [int(x) for x in v] if isinstance(v, (tuple, list)) else [int(v), int(v)]


def _layer_spec(m: nn.Module, where: str) -> dict:
    if isinstance(m, nn.Sequential):
        return {"type": "Sequential", "layers": [_layer_spec(c, f"{where}.{i}") for i, c in enumerate(m)]}
    if isinstance(m, nn.Linear):
        return {"type": "Linear", "in": m.in_features, "out": m.out_features, "bias": m.bias is not None}
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        if m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise SpecError(f"{where}: {type(m).__name__} with padding={m.padding!r}, padding_mode="
                            f"{m.padding_mode!r} cannot be described (only numeric zero padding)")
        spec = {"type": type(m).__name__, "in": m.in_channels, "out": m.out_channels,
                "kernel": _pair(m.kernel_size), "stride": _pair(m.stride), "padding": _pair(m.padding),
                "dilation": _pair(m.dilation), "groups": m.groups, "bias": m.bias is not None}
        if isinstance(m, nn.ConvTranspose2d):
            spec["output_padding"] = _pair(m.output_padding)
        return spec
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return {"type": type(m).__name__, "features": m.num_features, "eps": m.eps, "momentum": m.momentum,
                "affine": m.affine, "track_running_stats": m.track_running_stats}
    if isinstance(m, nn.Flatten):
        return {"type": "Flatten", "start_dim": m.start_dim, "end_dim": m.end_dim}
    if isinstance(m, nn.Unflatten):
        return {"type": "Unflatten", "dim": int(m.dim), "sizes": [int(s) for s in m.unflattened_size]}
    if isinstance(m, nn.LeakyReLU):
        return {"type": "LeakyReLU", "slope": float(m.negative_slope)}
    if isinstance(m, nn.ELU):
        return {"type": "ELU", "alpha": float(m.alpha)}
    if isinstance(m, nn.GELU):
        return {"type": "GELU", "approximate": m.approximate}
    if isinstance(m, nn.Softplus):
        return {"type": "Softplus", "beta": float(m.beta), "threshold": float(m.threshold)}
    if isinstance(m, nn.Dropout):
        return {"type": "Dropout", "p": float(m.p)}
    for cls in (nn.ReLU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Identity):
        if type(m) is cls:
            return {"type": cls.__name__}
    raise SpecError(
        f"{where} is a {type(m).__name__}, which the declarative spec cannot describe (it covers nn.Sequential stacks "
        f"of Linear, Conv2d, ConvTranspose2d, Flatten, Unflatten, BatchNorm, Dropout and common activations); "
        f"save it as TorchScript, or load it with your own entry point (--model pkg.module:fn)")


def module_spec(module: nn.Module, name: str = "module") -> dict:
    """The declarative spec of ``module`` (an ``nn.Sequential`` stack, or a single supported layer).

    Raises SpecError, naming the offending sub-module, for anything else (custom ``forward`` code).
    """
    spec = _layer_spec(module, name)
    if spec["type"] != "Sequential":
        spec = {"type": "Sequential", "layers": [spec]}
        _check_single(module, name)
    return spec


def _check_single(module: nn.Module, name: str) -> None:
    # a single layer is wrapped in a Sequential: its state_dict keys gain a "0." prefix, handled by the caller
    if list(module.children()):
        raise SpecError(f"{name} ({type(module).__name__}) has sub-modules and custom code; use an nn.Sequential")


# ---------------------------------------------------------------------------------------------- spec -> module
def _get(spec: dict, *names: str, default: Any = None, required: bool = False, where: str = "") -> Any:
    for n in names:
        if n in spec and spec[n] is not None:
            return spec[n]
    if required:
        raise SpecError(f"{where}: {spec.get('type')} layer needs {names[0]!r}")
    return default


def _build_layer(spec: dict, where: str) -> nn.Module:
    if not isinstance(spec, dict) or "type" not in spec:
        raise SpecError(f"{where}: each layer must be a dict with a 'type', got {spec!r}")
    kind = canonical_type(spec["type"])
    g = lambda *n, **kw: _get(spec, *n, where=where, **kw)  # noqa: E731
    if kind == "Sequential":
        layers = spec.get("layers")
        if not isinstance(layers, list):
            raise SpecError(f"{where}: a Sequential spec needs a list of 'layers'")
        return nn.Sequential(*[_build_layer(s, f"{where}.{i}") for i, s in enumerate(layers)])
    if kind == "Linear":
        return nn.Linear(int(g("in", "in_features", required=True)), int(g("out", "out_features", required=True)),
                         bias=bool(g("bias", default=True)))
    if kind in ("Conv2d", "ConvTranspose2d"):
        args = dict(in_channels=int(g("in", "in_channels", required=True)),
                    out_channels=int(g("out", "out_channels", required=True)),
                    kernel_size=tuple(_pair(g("kernel", "kernel_size", required=True))),
                    stride=tuple(_pair(g("stride", default=1))), padding=tuple(_pair(g("padding", default=0))),
                    dilation=tuple(_pair(g("dilation", default=1))), groups=int(g("groups", default=1)),
                    bias=bool(g("bias", default=True)))
        if kind == "Conv2d":
            return nn.Conv2d(**args)
        return nn.ConvTranspose2d(output_padding=tuple(_pair(g("output_padding", default=0))), **args)
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        cls = nn.BatchNorm1d if kind == "BatchNorm1d" else nn.BatchNorm2d
        return cls(int(g("features", "num_features", required=True)), eps=float(g("eps", default=1e-5)),
                   momentum=g("momentum", default=0.1), affine=bool(g("affine", default=True)),
                   track_running_stats=bool(g("track_running_stats", default=True)))
    if kind == "Flatten":
        return nn.Flatten(int(g("start_dim", default=1)), int(g("end_dim", default=-1)))
    if kind == "Unflatten":
        return nn.Unflatten(int(g("dim", default=1)), tuple(int(s) for s in g("sizes", "shape", required=True)))
    if kind == "LeakyReLU":
        return nn.LeakyReLU(float(g("slope", "negative_slope", default=0.01)))
    if kind == "ELU":
        return nn.ELU(float(g("alpha", default=1.0)))
    if kind == "GELU":
        return nn.GELU(approximate=str(g("approximate", default="none")))
    if kind == "Softplus":
        return nn.Softplus(beta=float(g("beta", default=1.0)), threshold=float(g("threshold", default=20.0)))
    if kind == "Dropout":
        return nn.Dropout(float(g("p", default=0.0)))
    return {"ReLU": nn.ReLU, "SiLU": nn.SiLU, "Tanh": nn.Tanh, "Sigmoid": nn.Sigmoid, "Identity": nn.Identity}[kind]()


def build_module(spec: dict, name: str = "module") -> nn.Sequential:
    """An ``nn.Sequential`` built from a (complete) spec; parameters are freshly initialised."""
    if not isinstance(spec, dict):
        raise SpecError(f"{name}: a spec must be a dict, got {type(spec).__name__}")
    if canonical_type(spec.get("type", "Sequential")) != "Sequential":
        spec = {"type": "Sequential", "layers": [spec]}
    try:
        return _build_layer({**spec, "type": "Sequential"}, name)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError(f"{name}: bad spec: {exc}") from exc


def describe_spec(spec: dict) -> str:
    """A one-line human description: ``Linear(8→200) · LeakyReLU(0.2) · Linear(200→1)``."""
    parts = []
    for layer in spec.get("layers", []):
        kind = canonical_type(layer["type"])
        if kind == "Sequential":
            parts.append(f"[{describe_spec(layer)}]")
        elif kind in ("Linear", "Conv2d", "ConvTranspose2d"):
            extra = f", k{_pair(layer.get('kernel', '?'))[0]}" if kind != "Linear" and "kernel" in layer else ""
            parts.append(f"{kind}({layer.get('in', '?')}→{layer.get('out', '?')}{extra})")
        elif kind == "LeakyReLU":
            parts.append(f"LeakyReLU({layer.get('slope', 0.01)})")
        elif kind in ("BatchNorm1d", "BatchNorm2d"):
            parts.append(f"{kind}({layer.get('features', '?')})")
        elif kind == "Unflatten":
            parts.append(f"Unflatten({tuple(layer.get('sizes', ()))})")
        else:
            parts.append(kind)
    return " · ".join(parts)


# ---------------------------------------------------------------------------------------------- weights -> spec
def _flatten_layers(spec: dict, prefix: str = "") -> list[tuple[str, dict]]:
    """(state_dict prefix, layer spec) for every leaf layer, in order."""
    out = []
    for i, layer in enumerate(spec.get("layers", [])):
        if canonical_type(layer.get("type")) == "Sequential":
            out += _flatten_layers(layer, f"{prefix}{i}.")
        else:
            out.append((f"{prefix}{i}.", layer))
    return out


def complete_spec(spec: dict, state_dict: dict[str, torch.Tensor], name: str = "module") -> dict:
    """Fill in layer sizes a hand-written spec leaves out, from the weight shapes; check the ones it gives.

    ``state_dict`` keys are those of the Sequential the spec describes (``"0.weight"``, ``"2.bias"``, ...).
    """
    if canonical_type(spec.get("type", "Sequential")) != "Sequential":
        spec = {"type": "Sequential", "layers": [spec]}
    spec = _deep_copy(spec)
    spec["type"] = "Sequential"
    for prefix, layer in _flatten_layers(spec):
        kind = canonical_type(layer.get("type"))
        layer["type"] = kind
        w = state_dict.get(prefix + "weight")
        if kind in ("BatchNorm1d", "BatchNorm2d") and w is None:
            w = state_dict.get(prefix + "running_mean")
        if kind not in WEIGHTED:
            continue
        if w is None:
            at = sorted({k.rpartition(".")[0] for k in state_dict if k.endswith((".weight", ".running_mean"))},
                        key=_natural_key)
            raise SpecError(f"{name}: the spec has a {kind} at position {prefix[:-1]} but the weights have no "
                            f"'{prefix}weight' (positions count every layer, activations and Identity included; "
                            f"the weights have layers at {', '.join(at) or 'no position'})")
        shape = tuple(w.shape)
        if kind == "Linear":
            inferred = {"in": shape[1], "out": shape[0]} if len(shape) == 2 else None
        elif kind == "Conv2d":
            groups = int(layer.get("groups", 1))
            inferred = {"in": shape[1] * groups, "out": shape[0], "kernel": [shape[2], shape[3]]} \
                if len(shape) == 4 else None
        elif kind == "ConvTranspose2d":
            groups = int(layer.get("groups", 1))
            inferred = {"in": shape[0], "out": shape[1] * groups, "kernel": [shape[2], shape[3]]} \
                if len(shape) == 4 else None
        else:
            inferred = {"features": shape[0]} if len(shape) == 1 else None
        if inferred is None:
            raise SpecError(f"{name}: '{prefix}weight' has shape {list(shape)}, which does not fit a {kind} layer")
        for key, value in inferred.items():
            given = layer.get(key)
            if given is None:
                layer[key] = value
            elif (_pair(given) if key == "kernel" else int(given)) != value:
                raise SpecError(f"{name}: shape mismatch with the spec at '{prefix}weight': the spec says "
                                f"{key}={given} but the weight has shape {list(shape)} ({key}={value})")
        if kind in ("Linear", "Conv2d", "ConvTranspose2d") and "bias" not in layer:
            layer["bias"] = prefix + "bias" in state_dict
        if kind in ("BatchNorm1d", "BatchNorm2d"):
            layer.setdefault("affine", prefix + "weight" in state_dict)
            layer.setdefault("track_running_stats", prefix + "running_mean" in state_dict)
    return spec


def _deep_copy(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _deep_copy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_deep_copy(v) for v in x]
    return x


def _natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def infer_spec(state_dict: dict[str, torch.Tensor], activation: Any = "leaky_relu",
               output_activation: Any = None, name: str = "module") -> tuple[dict, dict[str, str]]:
    """Guess a plain MLP stack from weights alone: Linear layers (with optional BatchNorm1d after them) in state_dict
    order, ``activation`` between them, ``output_activation`` after the last.

    Returns ``(spec, key_map)`` with ``key_map[new_key] = original_key`` mapping the built Sequential's state_dict keys
    to the given ones. Raises SpecError for what cannot be inferred (convolutions, weight/spectral norm, unknown
    parameter names); a spec file with explicit ``layers`` handles those.
    """
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        prefix, _, leaf = key.rpartition(".")
        groups.setdefault(prefix, {})[leaf] = value
    if not groups:
        raise SpecError(f"{name}: the state_dict is empty")
    prefixes = list(groups)
    positional = all(p.rpartition(".")[2].isdigit() for p in prefixes)
    if positional:  # a Sequential: order by position, not by key order
        prefixes.sort(key=_natural_key)
    act = activation_spec(activation)
    layers: list[dict] = []
    key_map: dict[str, str] = {}
    last_weighted = None
    last_pos: int | None = None
    for p in prefixes:
        params = groups[p]
        leaves = set(params)
        if leaves & {"weight_orig", "weight_u", "weight_g", "weight_v", "original0", "original1"}:
            raise SpecError(f"{name}: '{p}' uses a weight/spectral-norm parametrisation ({', '.join(sorted(leaves))}), "
                            "which cannot be inferred; use --model with your own code")
        w = params.get("weight")
        if "running_mean" in leaves:
            kind = "BatchNorm1d"
            spec = {"type": kind, "features": int(params["running_mean"].shape[0])}
        elif w is not None and w.ndim == 2 and leaves <= {"weight", "bias"}:
            kind = "Linear"
            spec = {"type": kind, "in": int(w.shape[1]), "out": int(w.shape[0]), "bias": "bias" in leaves}
        elif w is not None and w.ndim == 4:
            raise SpecError(f"{name}: '{p}.weight' has shape {list(w.shape)} (a convolution); convolutional stacks "
                            "cannot be inferred from weights alone: give the layers in a spec file (--spec) or use "
                            "--model with your own code")
        else:
            desc = ", ".join(f"{k}{list(v.shape)}" for k, v in params.items())
            raise SpecError(f"{name}: cannot infer a layer from '{p}' ({desc}); give a spec file (--spec) or use "
                            "--model with your own code")
        adjacent = positional and last_pos is not None and int(p.rpartition(".")[2]) == last_pos + 1
        if kind == "Linear" and last_weighted is not None and not adjacent:
            layers.append(dict(act))  # Sequential positions with nothing between them have no activation
        idx = len(layers)
        layers.append(spec)
        for leaf in params:
            key_map[f"{idx}.{leaf}"] = f"{p}.{leaf}" if p else leaf
        last_weighted = kind
        last_pos = int(p.rpartition(".")[2]) if positional else None
    if output_activation is not None:
        layers.append(activation_spec(output_activation))
    if not any(layer["type"] == "Linear" for layer in layers):
        raise SpecError(f"{name}: no Linear layer found in the weights")
    spec = {"type": "Sequential", "layers": layers}
    _check_inferred_chain(spec, key_map, name)
    return spec, key_map


def _check_inferred_chain(spec: dict, key_map: dict[str, str], name: str) -> None:
    """An inferred stack whose sizes do not chain: name the original weights and say how to give the order."""
    bad = _first_mismatch(spec)
    if bad is None:
        return
    (pos, need), (prev_pos, width) = bad
    here = key_map.get(f"{pos}weight", key_map.get(f"{pos}running_mean", pos))
    before = key_map.get(f"{prev_pos}weight", key_map.get(f"{prev_pos}running_mean", prev_pos)).rpartition(".")[0]
    raise SpecError(f"{name}: the weights do not chain in the order they are stored: '{here}' takes {need} inputs "
                    f"but '{before}' before it gives {width}. If they are parallel heads, or the layers run in "
                    "another order, name the parts in forward order in a spec (--spec), e.g. "
                    f'{{"{name}": {{"prefix": ["trunk", "head"]}}}}, or give its \'layers\'')


# ---------------------------------------------------------------------------------------------- sizes along a stack
_SPACE = {"Linear": "features", "BatchNorm1d": "features", "Conv2d": "channels", "ConvTranspose2d": "channels",
          "BatchNorm2d": "channels"}
_RESETS = ("Flatten", "Unflatten")


def _sizes(layer: dict) -> tuple[Any, Any]:
    """(size taken, size given) of a weighted layer: features for Linear/BatchNorm1d, channels for the others."""
    kind = canonical_type(layer.get("type"))
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        n = _get(layer, "features", "num_features")
        return n, n
    return _get(layer, "in", "in_features", "in_channels"), _get(layer, "out", "out_features", "out_channels")


def _first_mismatch(spec: dict) -> tuple[tuple[str, int], tuple[str, int]] | None:
    """The first layer whose input size differs from what the weighted layer before it gives (in the same space:
    features or channels; Flatten/Unflatten start afresh): ``((prefix, needs), (prefix before, gives))``."""
    width: tuple[str, str, int] | None = None  # (prefix, space, size)
    for prefix, layer in _flatten_layers(spec):
        kind = canonical_type(layer.get("type"))
        if kind in _RESETS:
            width = None
            continue
        if kind not in _SPACE:
            continue
        need, give = _sizes(layer)
        space = _SPACE[kind]
        if width is not None and need is not None and width[1] == space and int(need) != width[2]:
            return (prefix, int(need)), (width[0], width[2])
        width = None if give is None else (prefix, space, int(give))
    return None


def check_chain(spec: dict, name: str = "module") -> None:
    """Raise SpecError when a layer of a (completed) spec takes another number of features/channels than the
    weighted layer before it gives, instead of letting the forward pass fail with a matrix-shape error."""
    bad = _first_mismatch(spec)
    if bad is None:
        return
    (pos, need), (prev_pos, width) = bad
    raise SpecError(f"{name}: the spec's layers do not chain: the layer at position {pos[:-1]} takes {need} but the "
                    f"one at position {prev_pos[:-1]} before it gives {width}; check the order of the 'layers' (a "
                    "missing Flatten/Unflatten?)")


def feature_sizes(spec: dict) -> tuple[int | None, int | None]:
    """(features the first Linear takes, features the last Linear gives) of a spec; None where there is none."""
    linears = [layer for _, layer in _flatten_layers(spec) if canonical_type(layer.get("type")) == "Linear"]
    if not linears:
        return None, None
    first, last = _sizes(linears[0])[0], _sizes(linears[-1])[1]
    return (None if first is None else int(first)), (None if last is None else int(last))


# ---------------------------------------------------------------------------------------------- parallel heads
@dataclass(frozen=True)
class ParallelHeads:
    """A trunk and several heads that all take the trunk's output (JEM: ``f``, ``energy_output``, ``class_output``).

    Attributes:
        trunk: the top-level names forming the trunk, in forward order.
        heads: the heads' top-level names, in state_dict order.
        width: the trunk's output size, which every head takes.
        sizes: ``name -> (in, out)`` of each top-level name's Linear chain.
    """

    trunk: tuple[str, ...]
    heads: tuple[str, ...]
    width: int
    sizes: dict[str, tuple[int, int]]


def _top_level_sizes(state_dict: dict[str, torch.Tensor]) -> dict[str, tuple[int, int]] | None:
    """``name -> (in, out)`` for each top-level name whose weights are Linear matrices; None when a top-level name
    has no such weight (then the stack is not a plain set of MLP pieces)."""
    mats: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for key, value in state_dict.items():
        top, _, rest = key.partition(".")
        if not rest:
            return None
        mats.setdefault(top, [])
        if rest.rpartition(".")[2] == "weight" and value.ndim == 2:
            mats[top].append((rest, value))
    if any(not m for m in mats.values()):
        return None
    out = {}
    for top, items in mats.items():
        if all(r.rpartition(".")[0].rpartition(".")[2].isdigit() for r, _ in items if "." in r):
            items = sorted(items, key=lambda kv: _natural_key(kv[0]))
        out[top] = (int(items[0][1].shape[1]), int(items[-1][1].shape[0]))
    return out


def find_parallel_heads(state_dict: dict[str, torch.Tensor]) -> ParallelHeads | None:
    """A trunk plus two or more heads on its output, recognised from the weight shapes; None if the top-level names
    chain in the order they are stored (a plain stack) or the shapes show no such structure.

    The heads are the top-level names whose first layer takes what another name gives, when at least two do; the
    trunk is everything else, which must itself chain and end with that output. Chaining the heads one after the
    other would be wrong (and fail on shapes), so the caller must choose.
    """
    sizes = _top_level_sizes(state_dict)
    if sizes is None or len(sizes) < 3:
        return None
    names = list(sizes)
    if all(sizes[b][0] == sizes[a][1] for a, b in pairwise(names)):
        return None
    for t in names:
        heads = [h for h in names if h != t and sizes[h][0] == sizes[t][1]]
        if len(heads) < 2:
            continue
        trunk = [n for n in names if n not in heads]
        if trunk[-1] != t or any(sizes[b][0] != sizes[a][1] for a, b in pairwise(trunk)):
            continue
        return ParallelHeads(tuple(trunk), tuple(heads), sizes[t][1], dict(sizes))
    return None
