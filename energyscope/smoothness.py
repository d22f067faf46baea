"""Is U smooth? Detection of piecewise-smooth energies (ReLU, LeakyReLU, hardtanh, max-pool, |x|, ...).

Minima and saddles of a piecewise-smooth U usually sit on *kinks*, where the gradient jumps and never vanishes, so
gradient-norm convergence and Hessian validation are the wrong tools there (:mod:`energyscope.search.nonsmooth` has the right
ones). Two independent pieces of evidence decide which tools a landscape gets:

1. **Operation scan.** One forward pass of U runs under a ``TorchDispatchMode`` that records every ATen operation
   reached, whatever the model is (an ``nn.Module``, a plain callable using ``torch.nn.functional``, TorchScript).
   Operations whose derivative jumps (``relu``, ``leaky_relu``, ``hardtanh``, ``abs``, ``maximum``, ``clamp``,
   ``max_pool2d``, an ``elu`` whose two slopes differ, ...) are listed; comparisons and ``where`` are listed as
   conditional (they make U piecewise when their condition depends on z).
2. **Numerical probe.** Along short random segments through typical latents, the gradient is compared with the
   trapezoidal integral of Hessian-vector products: on a smooth U they agree to O(Δt³) and the mismatch shrinks
   512-fold per 8-fold refinement; across a kink the mismatch is the gradient jump and does not shrink. Refined
   intervals whose mismatch persists are counted as gradient jumps. The probe also records whether the Hessian equals
   the base prior's curvature (0 without a base) at every probe point — the signature of a piecewise-*linear* energy
   network, whose own Hessian vanishes almost everywhere.

The verdict, :attr:`Smoothness.kind`:

* ``"piecewise"`` — a non-smooth operation was found, or the probe found a gradient jump;
* ``"smooth"`` — the scan ran over the whole forward pass and found none, and the probe found no jump;
* ``"unknown"`` — the scan could not run (or found only conditional operations) and the probe found no jump.

Only ``"smooth"`` landscapes use plain gradient-norm convergence and Hessian validation; ``"piecewise"`` and
``"unknown"`` ones get the non-smooth methods, which reduce to the smooth ones where U happens to be smooth.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from energyscope.errors import BadArgumentError
from energyscope._tensor import to_numpy

if TYPE_CHECKING:  # pragma: no cover
    from energyscope.landscape import Landscape

KINDS = ("smooth", "piecewise", "unknown")

#: ATen operations whose derivative jumps somewhere (names without the ``aten::`` prefix).
NONSMOOTH_OPS = frozenset({
    "relu", "relu_", "leaky_relu", "leaky_relu_", "prelu", "_prelu_kernel", "rrelu", "rrelu_with_noise",
    "hardtanh", "hardtanh_", "hardsigmoid", "hardsigmoid_", "hardswish", "hardswish_", "threshold", "threshold_",
    "abs", "abs_", "absolute", "sign", "sgn", "maximum", "minimum", "fmax", "fmin", "clamp", "clamp_", "clamp_min",
    "clamp_max", "clip", "max", "min", "amax", "amin", "aminmax", "cummax", "cummin", "max_pool1d", "max_pool2d",
    "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "fractional_max_pool2d",
    "fractional_max_pool3d", "topk", "sort", "msort", "median", "nanmedian", "kthvalue", "floor", "ceil", "round",
    "trunc", "frac", "heaviside", "hardshrink", "softshrink", "remainder", "fmod", "nan_to_num",
})
#: Operations that make U piecewise when their condition depends on z.
CONDITIONAL_OPS = frozenset({"where", "gt", "lt", "ge", "le", "eq", "ne", "masked_fill", "masked_fill_",
                             "masked_scatter", "masked_select", "argmax", "argmin", "logical_and", "logical_or"})


@dataclass(frozen=True)
class Smoothness:
    """What is known about the smoothness of a landscape's U.

    Attributes:
        kind: ``"smooth"``, ``"piecewise"`` or ``"unknown"`` (see the module docstring).
        source: ``"detected"`` or ``"given"`` (the user passed ``smoothness=`` to the Landscape).
        ops: non-smooth operations found by the scan (e.g. ``("leaky_relu",)``).
        conditional_ops: comparison / ``where``-type operations found by the scan.
        scanned: whether the operation scan ran over a whole forward pass.
        probe_segments: random segments probed; probe_jumps: how many of them have a confirmed gradient jump.
        largest_jump: the largest confirmed gradient jump, nats per latent unit (0 when none).
        piecewise_linear: the Hessian was one and the same matrix at every probe point while the gradient varied
            (a piecewise-linear energy network, plus a fixed quadratic such as the base prior); None when the probe
            did not run.
        hessian: that matrix (d, d) when ``piecewise_linear``, else None (not saved with the results).
        message: one line for reports and ``energyscope inspect``.
    """

    kind: str
    source: str = "detected"
    ops: tuple = ()
    conditional_ops: tuple = ()
    scanned: bool = False
    probe_segments: int = 0
    probe_jumps: int = 0
    largest_jump: float = 0.0
    piecewise_linear: bool | None = None
    message: str = ""
    hessian: Any = field(default=None, repr=False, compare=False)
    details: dict = field(default_factory=dict)

    @property
    def is_smooth(self) -> bool:
        return self.kind == "smooth"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "source": self.source, "ops": list(self.ops),
                "conditional_ops": list(self.conditional_ops), "scanned": bool(self.scanned),
                "probe_segments": int(self.probe_segments), "probe_jumps": int(self.probe_jumps),
                "largest_jump": float(self.largest_jump),
                "piecewise_linear": None if self.piecewise_linear is None else bool(self.piecewise_linear),
                "message": self.message}

    @classmethod
    def from_dict(cls, d: dict) -> "Smoothness":
        return cls(kind=str(d.get("kind", "unknown")), source=str(d.get("source", "detected")),
                   ops=tuple(d.get("ops") or ()), conditional_ops=tuple(d.get("conditional_ops") or ()),
                   scanned=bool(d.get("scanned", False)), probe_segments=int(d.get("probe_segments", 0)),
                   probe_jumps=int(d.get("probe_jumps", 0)), largest_jump=float(d.get("largest_jump", 0.0)),
                   piecewise_linear=d.get("piecewise_linear"), message=str(d.get("message", "")))


# ---------------------------------------------------------------------------------------------------------- op scan
def _elu_has_kink(args: tuple, kwargs: dict) -> bool:
    """aten::elu(x, alpha=1, scale=1, input_scale=1): slopes ``scale`` (x>0) and ``scale·alpha·input_scale`` (x<0)."""
    vals = list(args[1:]) + [None] * 3
    alpha = kwargs.get("alpha", vals[0] if vals[0] is not None else 1.0)
    input_scale = kwargs.get("input_scale", vals[2] if vals[2] is not None else 1.0)
    return abs(float(alpha) * float(input_scale) - 1.0) > 1e-12


def scan_operations(fn: Any, z: torch.Tensor) -> tuple[set[str], set[str]]:
    """ATen operations one call ``fn(z)`` reaches: (non-smooth ones, conditional ones), names without ``aten::``.

    Runs under ``torch.no_grad()`` and a recording ``TorchDispatchMode``, so it sees functional calls and TorchScript
    as well as modules. Raises whatever ``fn`` raises.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    nonsmooth: set[str] = set()
    conditional: set[str] = set()

    class _Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = func._schema.name.split("::")[-1]
            if name in NONSMOOTH_OPS:
                nonsmooth.add(name)
            elif name == "elu" and _elu_has_kink(args, kwargs):
                nonsmooth.add("elu (slopes differ at 0)")
            elif name in CONDITIONAL_OPS:
                conditional.add(name)
            return func(*args, **kwargs)

    with torch.no_grad(), _Recorder():
        fn(z)
    return nonsmooth, conditional


# ---------------------------------------------------------------------------------------------------------- probe
def _grad_and_hvp(land: "Landscape", z: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """∇U (N, d) and the Hessian-vector products H v (N, d) at z (N, d) with directions v (N, d)."""
    with torch.enable_grad():
        zc = z.detach().requires_grad_(True)
        u = land.potential(zc)
        (g,) = torch.autograd.grad(u.sum(), zc, create_graph=True)
        if not g.requires_grad:   # the gradient does not depend on z (a piecewise-linear U): H v = 0
            return g.detach(), torch.zeros_like(zc)
        (hv,) = torch.autograd.grad((g * v).sum(), zc, allow_unused=True)
    hv = torch.zeros_like(zc) if hv is None else hv
    return g.detach(), hv.detach()


def _mismatch(g: torch.Tensor, hv: torch.Tensor, dt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per interval of sampled segments (S, n, d): ‖Δg − ½(Hv₀ + Hv₁)Δt‖ and ‖Δg‖, each (S, n-1)."""
    dg = g[:, 1:] - g[:, :-1]
    pred = 0.5 * (hv[:, 1:] + hv[:, :-1]) * dt[:, None, None]
    return (dg - pred).norm(dim=-1), dg.norm(dim=-1)


def probe(land: "Landscape", n_segments: int = 24, n_points: int = 33, half_length: float = 0.5,
          levels: int = 3, seed: int = 0) -> dict:
    """Look for gradient jumps along ``n_segments`` random segments through typical latents.

    Segments are centred on reference latents (else base samples), with random unit directions and half-length
    ``half_length`` × the latent length scale, each sampled at ``n_points`` points. An interval whose trapezoidal
    mismatch (see the module docstring) exceeds a quarter of its gradient change, and is above round-off, is refined
    ``levels`` times 8-fold; it is a jump when the mismatch of its worst sub-interval stays above a quarter of the
    parent's at every level (a smooth U loses a factor ~512 per level).

    Returns:
        dict with ``segments``, ``jumps`` (segments with a confirmed jump), ``largest_jump`` (nats per latent unit) and
        ``piecewise_linear`` (the same Hessian at every point while the gradient varies: a piecewise-linear
        energy plus a fixed quadratic such as the base prior) and that ``hessian`` (d, d) (None otherwise).
    """
    rng = np.random.default_rng([seed, 7])   # not the stream of base_samples(seed): directions must not be radial
    sc = land.scales()
    d = land.dim
    if land.reference is not None and len(land.reference):
        centres = land.reference[rng.choice(len(land.reference), size=n_segments,
                                            replace=len(land.reference) < n_segments)]
    else:
        centres = land.base_samples(n_segments, seed=seed)
    dirs = rng.standard_normal((n_segments, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    h = half_length * sc.length
    t = np.linspace(-h, h, n_points)
    pts = centres[:, None, :] + t[None, :, None] * dirs[:, None, :]
    Z = land.as_tensor(pts.reshape(-1, d))
    V = land.as_tensor(np.repeat(dirs, n_points, axis=0))
    g, hv = _grad_and_hvp(land, Z, V)
    finite = torch.isfinite(g).all(1) & torch.isfinite(hv).all(1)
    g = torch.where(finite[:, None], g, torch.zeros_like(g)).reshape(n_segments, n_points, d)
    hv = torch.where(finite[:, None], hv, torch.zeros_like(hv)).reshape(n_segments, n_points, d)
    seg_ok = finite.reshape(n_segments, n_points).all(1)
    # piecewise linear plus one quadratic: the same Hessian at every point (checked at the segment centres, and
    # along every segment through its Hessian-vector products)
    g_scale = float(g.norm(dim=-1).median()) + sc.sigma_E / sc.length
    curv_unit = sc.sigma_E / sc.length**2
    varies = float((g - g[:, :1]).norm(dim=-1).max()) > 1e-6 * g_scale
    H_c = land.hessian(land.as_tensor(centres))
    H0 = H_c[0]
    scale = float(H0.abs().max()) + curv_unit
    same = bool(torch.isfinite(H_c).all()) and float((H_c - H0).abs().max()) <= 1e-9 * scale
    hv_dev = (hv - (V @ H0.T).reshape(n_segments, n_points, d)).norm(dim=-1)
    pl = bool(bool(seg_ok.any()) and varies and same and float(hv_dev[seg_ok].max()) <= 1e-9 * scale * np.sqrt(d))
    # candidate intervals
    dt = torch.full((n_segments,), float(t[1] - t[0]), dtype=g.dtype, device=g.device)
    mis, dgn = _mismatch(g, hv, dt)
    floor = 1e-7 * g_scale
    cand = (mis > 0.25 * dgn) & (mis > floor) & seg_ok[:, None]
    idx = torch.nonzero(cand)
    jumps, largest = 0, 0.0
    if len(idx):
        seg_i, int_i = to_numpy(idx[:, 0]), to_numpy(idx[:, 1])
        a = t[int_i]
        b = t[int_i + 1]
        parent = to_numpy(mis[idx[:, 0], idx[:, 1]])
        alive = np.ones(len(a), dtype=bool)
        for _ in range(levels):
            k = 9
            u = np.linspace(0.0, 1.0, k)
            sub_t = a[:, None] + (b - a)[:, None] * u[None, :]                 # (C, k)
            sp = centres[seg_i][:, None, :] + sub_t[:, :, None] * dirs[seg_i][:, None, :]
            Zs = land.as_tensor(sp.reshape(-1, d))
            Vs = land.as_tensor(np.repeat(dirs[seg_i], k, axis=0))
            gs, hs = _grad_and_hvp(land, Zs, Vs)
            gs, hs = gs.reshape(len(a), k, d), hs.reshape(len(a), k, d)
            ms, _ = _mismatch(gs, hs, torch.as_tensor((b - a) / (k - 1), dtype=gs.dtype, device=gs.device))
            ms = to_numpy(ms)
            ms = np.where(np.isfinite(ms), ms, 0.0)
            worst = ms.argmax(axis=1)
            best = ms[np.arange(len(a)), worst]
            alive &= best > 0.25 * parent
            a, b = sub_t[np.arange(len(a)), worst], sub_t[np.arange(len(a)), worst + 1]
            parent = best
        jumps = int(len(np.unique(seg_i[alive])))      # segments with at least one confirmed jump
        largest = float(parent[alive].max()) if alive.any() else 0.0
    return {"segments": int(seg_ok.sum()), "jumps": jumps, "largest_jump": largest, "piecewise_linear": pl,
            "hessian": to_numpy(H0) if pl else None}


# ---------------------------------------------------------------------------------------------------------- verdict
def detect(land: "Landscape", seed: int = 0) -> Smoothness:
    """Scan and probe ``land`` and return the verdict (see the module docstring)."""
    z = land.base_samples(4, seed=seed)
    if land.reference is not None and len(land.reference):
        z = np.vstack([z, land.reference[:4]])
    scanned, ops, cond, scan_error = True, set(), set(), ""
    try:
        ops, cond = scan_operations(land.potential, land.as_tensor(z))
    except Exception as exc:  # a model that the recording mode cannot run: the probe decides alone
        scanned, scan_error = False, f"{type(exc).__name__}: {exc}"
    try:
        pr = probe(land, seed=seed)
    except Exception as exc:
        pr = {"segments": 0, "jumps": 0, "largest_jump": 0.0, "piecewise_linear": None, "error": str(exc)}
    if ops or pr["jumps"] or pr["piecewise_linear"]:
        kind = "piecewise"
    elif scanned and not cond and pr["segments"] > 0:
        kind = "smooth"
    else:
        kind = "unknown"
    parts = []
    if ops:
        parts.append("non-smooth operations " + ", ".join(sorted(ops)))
    if cond:
        parts.append("conditional operations " + ", ".join(sorted(cond)))
    if not scanned:
        parts.append(f"operation scan not possible ({scan_error})")
    parts.append(f"gradient jumps on {pr['jumps']} of {pr['segments']} probe segments"
                 + (f" (largest {pr['largest_jump']:.3g})" if pr["jumps"] else ""))
    if pr["piecewise_linear"]:
        parts.append("the Hessian is one constant matrix wherever it exists (piecewise-linear energy)")
    head = {"piecewise": "piecewise-smooth: minima and saddles may sit on kinks",
            "smooth": "smooth", "unknown": "smoothness unknown: non-smooth methods used"}[kind]
    return Smoothness(kind=kind, source="detected", ops=tuple(sorted(ops)), conditional_ops=tuple(sorted(cond)),
                      scanned=scanned, probe_segments=pr["segments"], probe_jumps=pr["jumps"],
                      largest_jump=pr["largest_jump"], piecewise_linear=pr["piecewise_linear"],
                      hessian=pr.get("hessian"),
                      message=f"{head} ({'; '.join(parts)})", details={"scan_error": scan_error} if scan_error else {})


def given(kind: str) -> Smoothness:
    """The verdict the user gave (``Landscape(..., smoothness=kind)``)."""
    if kind not in ("smooth", "piecewise"):
        raise BadArgumentError(f"unknown smoothness {kind!r}; use 'auto', 'smooth' or 'piecewise'")
    return Smoothness(kind=kind, source="given", message=f"{kind} (given by the user)")


__all__ = ["Smoothness", "detect", "given", "probe", "scan_operations", "NONSMOOTH_OPS", "CONDITIONAL_OPS", "KINDS"]
