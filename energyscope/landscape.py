"""The Landscape: one total potential U(z) in nats over R^d, batched, with exact gradients and Hessians.

Whatever the user's model returns (an energy, a log-density, classifier logits; with or without a standard-normal
base), energyscope analyses a single function

    U(z) = s * f(z) / T  [+ ||z||^2 / (2 sigma_base^2)]

with ``s = +1`` for ``convention="energy"`` and ``s = -1`` for ``"log_density"`` and ``"logits"`` (logits reduced over
the last axis with ``logsumexp`` by default, as in JEM), so that p(z) is proportional to exp(-U(z)).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from energyscope.errors import EnergyscopeError, warn as warn_user
from energyscope._tensor import as_tensor, resolve_device, to_numpy
from energyscope.smoothness import Smoothness

CONVENTIONS = ("energy", "log_density", "logits")
REDUCTIONS = (None, "none", "sum", "logsumexp")
BASE_PRIORS = (None, "standard_normal")



#: memory for one chunk of Hessians and their autograd work space (bytes; ~4 d² doubles per row)
HESSIAN_BYTES = 2**29

class LandscapeError(EnergyscopeError, ValueError):
    """A model or input that a Landscape cannot work with; the message names the problem."""


@dataclass(frozen=True)
class Scales:
    """Natural scales that make tolerances unit-free.

    Attributes:
        sigma_z: (d,) per-dimension spread of latents (reference latents, else base-prior samples), in latent units.
        sigma_E: robust spread of U over the same latents, in nats: 1.4826 × the median absolute deviation (the
            standard deviation for normal values, but not dominated by the few samples that land on a steep wall,
            as on Müller–Brown); the standard deviation when the MAD is 0, and 1 when both are.
        source: where they came from: ``"reference"``, ``"base_prior"`` or ``"box"``.
    """

    sigma_z: np.ndarray
    sigma_E: float
    source: str

    @property
    def length(self) -> float:
        """One overall length scale: the root-mean-square of ``sigma_z``."""
        return float(np.sqrt(np.mean(self.sigma_z**2)))


@dataclass(frozen=True)
class SignCheck:
    """Mean U over reference (data) latents versus over base samples; data should sit lower (more probable)."""

    mean_U_reference: float
    mean_U_base: float
    ok: bool
    message: str


def robust_spread(u: np.ndarray) -> float:
    """1.4826 × median absolute deviation of finite values u (normal-consistent), else their std, else 1."""
    u = np.asarray(u, dtype=float)
    u = u[np.isfinite(u)]
    if len(u) < 2:
        return 1.0
    mad = 1.4826 * float(np.median(np.abs(u - np.median(u))))
    if mad > 0:
        return mad
    sd = float(np.std(u))
    return sd if sd > 0 else 1.0


def _isolate_module(module: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """A private eval-mode, gradient-free copy of ``module`` on device/dtype (the user's module is not touched)."""
    if not isinstance(module, nn.Module):
        return module
    try:
        with torch.no_grad():  # a TorchScript module copied with grad mode on gets non-leaf parameters
            mod = copy.deepcopy(module)
    except Exception:  # some scripted/exotic modules cannot be copied; use them as they are
        mod = module
    mod = mod.to(device=device, dtype=dtype)
    mod.eval()
    for p in mod.parameters():
        p.requires_grad_(False)
    return mod


class _ShapeAdapter:
    """Calls a module with latents as (N, d) or, if the module wants it, (N, d, 1, 1); returns its tensor output.

    While ``pad_single`` is set, a single row is evaluated as two copies of itself and the first result is kept: a
    module that ``.squeeze()``-s its output turns a batch of one into a scalar, or (1, K, 1, 1) into (K,), which no
    later reshape can undo. Rows do not interact in an eval-mode module, so the copy changes nothing, and gradients
    reach the latent through the kept copy only. This also covers ``torch.func.vmap``, which calls the potential with
    one (batched) row. :meth:`probe_single_rows` turns the padding off for modules that need none (most), since
    padding inside ``vmap`` costs several times the work.
    """

    def __init__(self, fn: Callable, what: str, unwrap_tuple: bool = False):
        self.fn = fn
        self.what = what
        self.unwrap_tuple = unwrap_tuple  # decoders may return (mean, ...): the first entry is the mean
        self.layout: str | None = None  # "flat" or "conv"
        self.pad_single = True
        # TorchScript's optimising executor specialises a graph on the first calls it profiles; once it has seen
        # gradient-mode calls, later graphs lose their double-backward (Hessians came back as exact zeros, and
        # torch.func silently so). The plain interpreter keeps the graph as written.
        self.scripted = isinstance(fn, (torch.jit.ScriptModule, torch.jit.ScriptFunction))

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        if self.pad_single and z.shape[0] == 1:
            return _first_of_pair(self._run(torch.cat([z, z])))
        return self._run(z)

    def probe_single_rows(self, z: torch.Tensor) -> bool:
        """Turn padding off when the module gives each row of z (N >= 2) alone the shape and values it gives that row
        within the batch; returns whether padding stays on."""
        try:
            with torch.no_grad():
                both = self._run(z)
                alone = [self._run(z[i:i + 1]) for i in range(z.shape[0])]
            same = both.ndim > 0 and both.shape[0] == z.shape[0] and all(
                a.shape == both[i:i + 1].shape and torch.allclose(a, both[i:i + 1], rtol=1e-6, atol=1e-8,
                                                                  equal_nan=True)
                for i, a in enumerate(alone))
        except Exception:  # fails on one row, or outputs that cannot be compared: keep padding
            same = False
        self.pad_single = not same
        return self.pad_single

    def _run(self, z: torch.Tensor) -> torch.Tensor:
        if self.scripted:
            with torch.jit.optimized_execution(False):
                return self._call(z)
        return self._call(z)

    def _call(self, z: torch.Tensor) -> torch.Tensor:
        if self.layout is None:
            errors = []
            for layout in ("flat", "conv"):
                try:
                    out = self.fn(z if layout == "flat" else z[:, :, None, None])
                except Exception as exc:  # try the other layout before giving up
                    errors.append(f"as {'(N, d)' if layout == 'flat' else '(N, d, 1, 1)'}: "
                                  f"{type(exc).__name__}: {exc}")
                    continue
                out = self._tensor(out)
                self.layout = layout
                return out
            raise LandscapeError(f"the {self.what} failed on latents of shape {tuple(z.shape)}: " + "; ".join(errors))
        return self._tensor(self.fn(z if self.layout == "flat" else z[:, :, None, None]))

    def _tensor(self, out: Any) -> torch.Tensor:
        """The module's output as a tensor (the first entry of a tuple for a decoder), else a clear error."""
        if self.unwrap_tuple and isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise LandscapeError(f"the {self.what} returned {type(out).__name__}, expected a torch.Tensor")
        return out


def _first_of_pair(out: torch.Tensor) -> torch.Tensor:
    """The first row of an output for a duplicated single row; anything but two rows is passed on unchanged, so the
    row-count checks downstream name the problem."""
    if out.ndim == 0 or out.shape[0] != 2:
        return out
    return out[:1]


class Landscape:
    """A differentiable potential over R^d, with optional decoder and encoder.

    Parameters:
        energy: ``nn.Module`` or callable mapping latents (N, d) (or (N, d, 1, 1)) to (N,), (N, 1), (N, 1, 1, 1) or,
            with a ``reduction``, (N, K).
        decoder: optional module/callable mapping latents (N, d) to data (N, ...); its output is the decoder's mean.
        encoder: optional module/callable mapping data (N, ...) to latent means (N, d), or to a tuple whose first entry
            is the mean, or to (N, 2d) [mean, log-variance].
        dim: latent dimension d; inferred from ``reference`` or the first Linear layer when omitted.
        convention: ``"energy"`` (p ∝ exp(-f)), ``"log_density"`` (p ∝ exp(f)) or ``"logits"`` (p ∝ sum exp(f_k)).
        reduction: how (N, K) outputs become one value: ``"sum"`` or ``"logsumexp"`` (default for logits).
        temperature: T; U is divided by it.
        base_prior: ``None`` or ``"standard_normal"`` (adds ||z||²/(2 base_sigma²), the Pang et al. 2020 form).
        base_sigma: standard deviation of the normal base.
        reference: (N, d) reference latents (e.g. encoder means of the data set).
        labels: (N,) labels for the reference latents.
        sampler: the model's own short-run sampler settings, e.g. ``{"steps": 60, "step_size": 0.4}``.
        device, dtype: where and in what precision everything is evaluated (float64 by default).
        batch_size: the most rows evaluated in one call (larger batches are chunked).
        hessian_method: ``"auto"`` (double-backward on CPU, where it measured 2-10x faster for d ≤ 64; ``torch.func``
            on CUDA), ``"func"`` (vmap of jacfwd∘jacrev, falling back to double-backward where the model does not
            support torch.func) or ``"autograd"`` (d double-backward passes over the batch).
        metadata: free-form description carried into reports.
    """

    def __init__(
        self,
        energy: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        decoder: nn.Module | Callable | None = None,
        encoder: nn.Module | Callable | None = None,
        dim: int | None = None,
        convention: str = "energy",
        reduction: str | None = None,
        temperature: float = 1.0,
        base_prior: str | None = None,
        base_sigma: float = 1.0,
        reference: Any = None,
        labels: Any = None,
        sampler: dict | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        batch_size: int = 65536,
        metadata: dict | None = None,
        hessian_method: str = "auto",
        smoothness: str = "auto",
    ) -> None:
        if not callable(energy):
            raise LandscapeError(f"energy must be an nn.Module or a callable, got {type(energy).__name__}")
        if convention not in CONVENTIONS:
            raise LandscapeError(f"unknown convention {convention!r}; use one of {', '.join(CONVENTIONS)}")
        if reduction not in REDUCTIONS:
            raise LandscapeError(f"unknown reduction {reduction!r}; use 'sum' or 'logsumexp'")
        if base_prior not in BASE_PRIORS:
            raise LandscapeError(f"unknown base_prior {base_prior!r}; use None or 'standard_normal'")
        if not (temperature > 0):
            raise LandscapeError(f"temperature must be positive, got {temperature}")
        if not (base_sigma > 0):
            raise LandscapeError(f"base_sigma must be positive, got {base_sigma}")
        if hessian_method not in ("auto", "func", "autograd"):
            raise LandscapeError(f"unknown hessian_method {hessian_method!r}; use 'auto', 'func' or 'autograd'")
        if smoothness not in ("auto", "smooth", "piecewise"):
            raise LandscapeError(f"unknown smoothness {smoothness!r}; use 'auto', 'smooth' or 'piecewise'")
        self.device = resolve_device(device)
        self.smoothness_setting = smoothness
        self.hessian_method = hessian_method
        self.dtype = dtype
        self.convention = convention
        self.reduction = None if reduction == "none" else reduction
        if convention == "logits" and self.reduction is None:
            self.reduction = "logsumexp"
        self.temperature = float(temperature)
        self.base_prior = base_prior
        self.base_sigma = float(base_sigma)
        self.batch_size = int(batch_size)
        self.sampler = dict(sampler or {})
        self.metadata = dict(metadata or {})

        self.energy_module = _isolate_module(energy, self.device, dtype)
        self.decoder_module = _isolate_module(decoder, self.device, dtype) if decoder is not None else None
        self.encoder_module = _isolate_module(encoder, self.device, dtype) if encoder is not None else None
        self._energy_fn = _ShapeAdapter(self.energy_module, "energy")
        self._decoder_fn = _ShapeAdapter(self.decoder_module, "decoder", unwrap_tuple=True) \
            if decoder is not None else None

        self.reference = None if reference is None else np.asarray(to_numpy(reference), dtype=np.float64)
        if self.reference is not None and self.reference.ndim != 2:
            raise LandscapeError(f"reference latents must be (N, d), got shape {self.reference.shape}")
        if self.reference is not None and not np.isfinite(self.reference).all():
            bad = np.flatnonzero(~np.isfinite(self.reference).all(axis=1))
            raise LandscapeError(f"reference latents contain NaN or inf in {len(bad)} of {len(self.reference)} rows "
                                 f"(first: row {int(bad[0])}); drop or fix those rows")
        self.labels = None if labels is None else np.asarray(to_numpy(labels))
        if self.labels is not None:
            if self.reference is None:
                raise LandscapeError("labels were given without reference latents")
            if len(self.labels) != len(self.reference):
                raise LandscapeError(
                    f"labels has {len(self.labels)} entries but reference has {len(self.reference)} rows")

        self.dim = self._infer_dim(dim)
        if self.dim < 1:
            raise LandscapeError(f"latent dimension must be at least 1, got {self.dim}")
        if self.reference is not None and self.reference.shape[1] != self.dim:
            raise LandscapeError(f"reference latents have {self.reference.shape[1]} columns but dim is {self.dim}")
        self._scales: Scales | None = None
        self._smoothness: Smoothness | None = None
        self.n_energy_rows = 0  # rows evaluated so far (energy or energy+grad), for benchmarks and diagnostics
        self.n_energy_calls = 0
        self._check_output()

    # ------------------------------------------------------------------ set-up
    def _infer_dim(self, dim: int | None) -> int:
        if dim is not None:
            return int(dim)
        if self.reference is not None:
            return int(self.reference.shape[1])
        if isinstance(self.energy_module, nn.Module):
            for m in self.energy_module.modules():
                if isinstance(m, nn.Linear):
                    return int(m.in_features)
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    return int(m.in_channels)
        raise LandscapeError("cannot infer the latent dimension: pass dim=, or reference latents")

    def _check_output(self) -> None:
        """Evaluate two points once, so that a wrong-shaped, non-tensor, integer-valued or z-independent output fails
        now with a clear message; then learn whether single rows need padding (see :class:`_ShapeAdapter`)."""
        z = torch.zeros(2, self.dim, device=self.device, dtype=self.dtype)
        z[1] = 0.1
        with torch.enable_grad():
            zc = z.requires_grad_(True)
            raw = self._energy_fn(zc)
            if isinstance(raw, torch.Tensor) and not (raw.is_floating_point() or raw.is_complex()):
                raise LandscapeError(f"the energy returned {str(raw.dtype).replace('torch.', '')} values; it must return "
                                     "floating-point values that depend differentiably on z")
            if isinstance(raw, torch.Tensor) and raw.is_floating_point():
                self._output_eps = float(torch.finfo(raw.dtype).eps)
                if self._output_eps > torch.finfo(torch.float32).eps:
                    raise LandscapeError(
                        f"the energy returns {str(raw.dtype).replace('torch.', '')} values (relative rounding "
                        f"{self._output_eps:.1g}): too coarse to tell minima apart or validate them; evaluate it in "
                        "float32 or float64 (no half-precision casts or autocast in its forward)")
            u = self.potential(zc)
            if not u.requires_grad and self.base_prior is None:
                raise LandscapeError("the energy does not depend on z (its output has no gradient with respect to "
                                     "the latents: a constant, or computed outside autograd); there is no landscape "
                                     "to analyse")
        self._energy_fn.probe_single_rows(z.detach())

    @property
    def eps(self) -> float:
        """Relative rounding of U: machine epsilon of the coarsest floating type it is computed in (``dtype``, or
        the energy's own output type when coarser: a callable that computes in float32 inside a float64 landscape)."""
        return max(float(torch.finfo(self.dtype).eps), getattr(self, "_output_eps", 0.0))

    def resolvable(self, rel: float, factor: float = 1e3, root: bool = False) -> float:
        """A relative tolerance ``rel`` (chosen for float64) raised to what this landscape's rounding can resolve:
        ``max(rel, factor · eps)`` (``factor · sqrt(eps)`` with ``root``, for positions, which are determined only
        to about sqrt(eps) at a minimum). Unchanged in float64 for every tolerance the package uses."""
        floor = factor * (self.eps ** 0.5 if root else self.eps)
        return max(float(rel), floor)

    # ------------------------------------------------------------------ core evaluation
    def as_tensor(self, z: Any) -> torch.Tensor:
        """Latents as a (N, d) tensor on this landscape's device and dtype; (d,) becomes (1, d)."""
        t = as_tensor(z, self.device, self.dtype)
        if t.ndim == 1:
            t = t[None, :]
        if t.ndim == 4 and t.shape[2:] == (1, 1):
            t = t[:, :, 0, 0]
        if t.ndim != 2 or t.shape[1] != self.dim:
            raise LandscapeError(f"latents must have shape (N, {self.dim}), got {tuple(t.shape)}")
        return t

    def _reduce(self, out: torch.Tensor, n: int) -> torch.Tensor:
        """The energy module's output for n latents as (n,): one value per row, K values reduced."""
        if out.ndim == 0:
            raise LandscapeError(f"the energy returned a single value (shape ()) for {n} latents; it must return one "
                                 "value per latent (N,), e.g. not a sum or mean over the batch")
        if out.shape[0] != n:
            raise LandscapeError(f"the energy returned {out.shape[0]} rows for {n} latents (shape {tuple(out.shape)})")
        out = out.reshape(n, -1)
        if out.shape[1] != 1:
            if self.reduction == "sum":
                out = out.sum(dim=1, keepdim=True)
            elif self.reduction == "logsumexp":
                out = torch.logsumexp(out, dim=1, keepdim=True)
            else:
                raise LandscapeError(
                    f"the energy returned shape {tuple(out.shape)} per batch (K={out.shape[1]} values per latent); "
                    "pass reduction='sum' or 'logsumexp' (or convention='logits') to make it one value")
        return out[:, 0]

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        """U(z) for a (N, d) tensor, differentiable in z (no chunking, no conversion): (N,) nats."""
        raw = self._reduce(self._energy_fn(z), z.shape[0]).to(self.dtype)
        u = raw / self.temperature if self.convention == "energy" else -raw / self.temperature
        if self.base_prior == "standard_normal":
            u = u + 0.5 * (z * z).sum(dim=1) / self.base_sigma**2
        return u

    def _chunks(self, n: int):
        for start in range(0, n, self.batch_size):
            yield slice(start, min(n, start + self.batch_size))

    def energy(self, z: Any) -> torch.Tensor:
        """U at latents z (N, d) -> (N,) tensor in nats (non-finite values are returned as they are)."""
        z = self.as_tensor(z)
        self.n_energy_calls += 1
        self.n_energy_rows += z.shape[0]
        with torch.no_grad():
            return torch.cat([self.potential(z[s]) for s in self._chunks(z.shape[0])]) if z.shape[0] else \
                torch.zeros(0, device=self.device, dtype=self.dtype)

    def energy_and_grad(self, z: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """U and ∇U at latents z (N, d) -> ((N,), (N, d)); one forward and one backward per chunk."""
        z = self.as_tensor(z)
        self.n_energy_calls += 1
        self.n_energy_rows += z.shape[0]
        es, gs = [], []
        for s in self._chunks(z.shape[0]):
            with torch.enable_grad():
                zc = z[s].detach().requires_grad_(True)
                u = self.potential(zc)
                if not u.requires_grad:
                    raise LandscapeError("the energy does not depend on z (its output has no gradient with respect "
                                         "to the latents: a constant, or computed outside autograd); there is no "
                                         "landscape to analyse")
                (g,) = torch.autograd.grad(u.sum(), zc)
            es.append(u.detach())
            gs.append(g.detach())
        if not es:
            return (torch.zeros(0, device=self.device, dtype=self.dtype),
                    torch.zeros(0, self.dim, device=self.device, dtype=self.dtype))
        return torch.cat(es), torch.cat(gs)

    def hessian(self, z: Any, chunk: int | None = None) -> torch.Tensor:
        """Exact Hessians of U at latents z (N, d) -> (N, d, d), symmetrised.

        ``hessian_method`` picks ``torch.func`` (vmap of jacfwd∘jacrev, where the model supports it) or d
        double-backward passes over the batch (works for any autograd-able model, TorchScript included). Rows are
        taken ``chunk`` at a time; the default fits a chunk's Hessians and their autograd work space in
        :data:`HESSIAN_BYTES` (1024 rows at d = 128, 64 at d = 512), so that thousands of Hessians cost few passes
        and bounded memory.
        """
        z = self.as_tensor(z)
        if chunk is None:
            chunk = int(min(4096, max(1, HESSIAN_BYTES // (4 * 8 * max(1, self.dim) ** 2))))
        out = []
        for start in range(0, z.shape[0], chunk):
            zc = z[start:start + chunk]
            out.append(self._hessian_chunk(zc))
        if not out:
            return torch.zeros(0, self.dim, self.dim, device=self.device, dtype=self.dtype)
        h = torch.cat(out)
        return 0.5 * (h + h.transpose(1, 2))

    def _hessian_chunk(self, z: torch.Tensor) -> torch.Tensor:
        method = self.hessian_method
        if method == "auto":
            method = "func" if self.device.type == "cuda" else "autograd"
        if method == "func" and getattr(self, "_func_ok", True):
            try:
                def single(x):
                    return self.potential(x[None, :])[0]
                with torch.enable_grad():
                    h = torch.func.vmap(torch.func.jacfwd(torch.func.jacrev(single)))(z).detach()
                if not getattr(self, "_func_checked", False) and len(z):
                    # torch.func can be silently wrong (a TorchScript module once run with gradients gives H = 0):
                    # the first time, compare one row with the double-backward Hessian
                    ref = self._autograd_hessian(z[:1])
                    self._func_ok = bool(torch.allclose(h[:1], ref, rtol=1e-5, atol=1e-8 * float(ref.abs().max()) + 1e-300))
                    self._func_checked = True
                    if not self._func_ok:
                        return self._autograd_hessian(z)
                return h
            except Exception:
                self._func_ok = False
        return self._autograd_hessian(z)

    def _autograd_hessian(self, z: torch.Tensor) -> torch.Tensor:
        """Hessians (N, d, d) by d double-backward passes over the batch."""
        with torch.enable_grad():
            zc = z.detach().requires_grad_(True)
            u = self.potential(zc)
            (g,) = torch.autograd.grad(u.sum(), zc, create_graph=True)
            if not g.requires_grad:   # autograd: the gradient is locally constant (a piecewise-linear U): H = 0
                return torch.zeros(zc.shape[0], self.dim, self.dim, device=zc.device, dtype=zc.dtype)
            rows = []
            for i in range(self.dim):
                (hi,) = torch.autograd.grad(g[:, i].sum(), zc, retain_graph=i < self.dim - 1, allow_unused=True)
                rows.append(torch.zeros_like(zc) if hi is None else hi)
        return torch.stack(rows, dim=1).detach()

    def hessian_eigh(self, z: Any) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (N, d) ascending and eigenvectors (N, d, d) (columns) of the Hessian at z, as numpy."""
        h = self.hessian(z)
        vals, vecs = torch.linalg.eigh(h)
        return to_numpy(vals), to_numpy(vecs)

    # ------------------------------------------------------------------ decoder / encoder
    @property
    def has_decoder(self) -> bool:
        return self._decoder_fn is not None

    @property
    def has_encoder(self) -> bool:
        return self.encoder_module is not None

    def decode(self, z: Any) -> np.ndarray:
        """Decoder means at latents z (N, d) -> numpy (N, ...).

        Raises LandscapeError without a decoder, and when the decoder raises, returns a non-float tensor, returns
        another number of rows than it was given latents, or returns NaN/inf (naming how many rows, and the first).
        """
        if self._decoder_fn is None:
            raise LandscapeError("this landscape has no decoder")
        z = self.as_tensor(z)
        with torch.no_grad():
            outs = [self._decode_chunk(z[s]) for s in self._chunks(z.shape[0])]
        x = np.concatenate(outs) if outs else np.zeros((0,))
        _check_decoded_finite(x)
        return x

    def _decode_chunk(self, z: torch.Tensor) -> np.ndarray:
        """One chunk through the decoder, checked for row count and dtype."""
        n = z.shape[0]
        try:
            out = self._decoder_fn(z)
        except LandscapeError:
            raise
        except Exception as exc:
            raise LandscapeError(f"the decoder raised {type(exc).__name__} on {n} latents: {exc}") from exc
        rows = 0 if out.ndim == 0 else out.shape[0]
        if out.ndim == 0 or rows != n:
            raise LandscapeError(f"the decoder returned {rows} rows for {n} latents (output shape "
                                 f"{tuple(out.shape)}); it must return one row per latent")
        if not out.is_floating_point():
            raise LandscapeError(f"the decoder returned {str(out.dtype).replace('torch.', '')} values; it must "
                                 "return floating-point values (its mean)")
        return to_numpy(out)

    def encode(self, x: Any, batch_size: int = 4096) -> np.ndarray:
        """Encoder means for data x (N, ...) -> numpy (N, d). Raises LandscapeError without an encoder."""
        if self.encoder_module is None:
            raise LandscapeError("this landscape has no encoder")
        x = as_tensor(x, self.device, self.dtype)
        outs = []
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                try:
                    out = self.encoder_module(x[start:start + batch_size])
                except Exception as exc:
                    raise LandscapeError(
                        f"the encoder raised {type(exc).__name__} on data of shape {tuple(x.shape)}: {exc}") from exc
                if isinstance(out, (tuple, list)):
                    out = out[0]
                out = out.reshape(out.shape[0], -1)
                if out.shape[1] == 2 * self.dim:
                    out = out[:, : self.dim]
                if out.shape[1] != self.dim:
                    raise LandscapeError(f"the encoder returned {out.shape[1]} values per row; expected {self.dim}")
                outs.append(to_numpy(out))
        return np.concatenate(outs)

    # ------------------------------------------------------------------ sampling and scales
    def base_samples(self, n: int, seed: int = 0) -> np.ndarray:
        """n samples (n, d) from the base N(0, base_sigma² I) (also used as a generic cloud when there is no base)."""
        rng = np.random.default_rng(seed)
        return rng.standard_normal((n, self.dim)) * self.base_sigma

    def scales(self, n_samples: int = 2048, seed: int = 0) -> Scales:
        """σ_z (d,) and σ_E from reference latents when present, else from base samples (cached)."""
        if self._scales is not None:
            return self._scales
        if self.reference is not None and len(self.reference) >= 2:
            z, source = self.reference, "reference"
        else:
            z, source = self.base_samples(n_samples, seed), "base_prior" if self.base_prior else "box"
        sigma_z = np.std(z, axis=0)
        sigma_z = np.where(sigma_z > 0, sigma_z, max(float(sigma_z.max(initial=0.0)), 1.0))
        u = to_numpy(self.energy(z))
        u = u[np.isfinite(u)]
        sigma_E = robust_spread(u)
        self._scales = Scales(sigma_z=sigma_z, sigma_E=sigma_E, source=source)
        return self._scales

    def sign_check(self, n_samples: int = 2048, seed: int = 0, warn: bool = True) -> SignCheck | None:
        """Compare mean U on reference latents with mean U on base samples; warn if data sits *higher*.

        Returns None when there are no reference latents.
        """
        if self.reference is None:
            return None
        u_ref = to_numpy(self.energy(self.reference))
        u_base = to_numpy(self.energy(self.base_samples(n_samples, seed)))
        m_ref = float(np.nanmean(np.where(np.isfinite(u_ref), u_ref, np.nan)))
        m_base = float(np.nanmean(np.where(np.isfinite(u_base), u_base, np.nan)))
        ok = m_ref < m_base
        if ok:
            msg = f"sign check passed: mean U on reference latents {m_ref:.4g} < on base samples {m_base:.4g}"
        else:
            other = "log_density" if self.convention == "energy" else "energy"
            msg = (f"sign check FAILED: mean U on reference latents ({m_ref:.4g}) is not below mean U on base samples "
                   f"({m_base:.4g}); the data sits on high energy, so the sign is probably flipped: "
                   f"try convention={other!r}")
            if warn:
                warn_user(msg)
        return SignCheck(mean_U_reference=m_ref, mean_U_base=m_base, ok=ok, message=msg)

    # ------------------------------------------------------------------ smoothness
    @property
    def smoothness(self) -> Smoothness:
        """Whether U is smooth, piecewise-smooth or unknown (:class:`~energyscope.smoothness.Smoothness`; detected
        once, on first use, unless given to the constructor)."""
        if self._smoothness is None:
            from energyscope import smoothness as _sm
            self._smoothness = _sm.given(self.smoothness_setting) if self.smoothness_setting != "auto" \
                else _sm.detect(self)
        return self._smoothness

    @property
    def is_smooth(self) -> bool:
        """True when U is known to be smooth (gradient-norm convergence and Hessian validation apply)."""
        return self.smoothness.kind == "smooth"

    # ------------------------------------------------------------------ description
    def describe(self) -> dict:
        """A JSON-able description: dims, conventions, which parts exist, settings."""
        def n_params(m):
            return int(sum(p.numel() for p in m.parameters())) if isinstance(m, nn.Module) else None
        return {
            "dim": self.dim,
            "convention": self.convention,
            "reduction": self.reduction,
            "temperature": self.temperature,
            "base_prior": self.base_prior,
            "base_sigma": self.base_sigma,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "energy_parameters": n_params(self.energy_module),
            "decoder_parameters": n_params(self.decoder_module) if self.decoder_module is not None else None,
            "encoder_parameters": n_params(self.encoder_module) if self.encoder_module is not None else None,
            "n_reference": None if self.reference is None else int(len(self.reference)),
            "has_labels": self.labels is not None,
            "sampler": self.sampler,
            "smoothness": self.smoothness.to_dict(),
            "metadata": self.metadata,
        }

    def __repr__(self) -> str:
        parts = [f"dim={self.dim}", f"convention={self.convention!r}"]
        if self.base_prior:
            parts.append(f"base_prior={self.base_prior!r}")
        if self.has_decoder:
            parts.append("decoder")
        if self.reference is not None:
            parts.append(f"reference={len(self.reference)}")
        return f"Landscape({', '.join(parts)})"


def _check_decoded_finite(x: np.ndarray) -> None:
    """A LandscapeError naming how many decoded rows hold NaN or inf, and the first such row."""
    if x.size == 0:
        return
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise LandscapeError(f"the decoder returned NaN or inf for {int(bad.sum())} of {len(x)} latents "
                             f"(first: row {first})")


def as_landscape(obj: Any, dim: int | None = None, **kwargs) -> Landscape:
    """A Landscape as it is, or one built around a module/callable."""
    if isinstance(obj, Landscape):
        return obj
    return Landscape(obj, dim=dim, **kwargs)

