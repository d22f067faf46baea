"""Analytic test surfaces with known minima and saddles (see docs/algorithms.md and tests).

Each is a torch callable mapping (N, d) -> (N,), usable directly as ``Landscape(surface, dim=d)``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from energyscope.errors import BadArgumentError
from energyscope._tensor import to_numpy

# Müller & Brown, Theor. Chim. Acta 53, 75 (1979), Table 1.
_MB_A = (-200.0, -100.0, -170.0, 15.0)
_MB_a = (-1.0, -1.0, -6.5, 0.7)
_MB_b = (0.0, 0.0, 11.0, 0.6)
_MB_c = (-10.0, -10.0, -6.5, 0.7)
_MB_x0 = (1.0, 0.0, -0.5, -1.0)
_MB_y0 = (0.0, 0.5, 1.5, 1.0)

MULLER_BROWN_MINIMA = np.array([
    [-0.558223634633024, 1.441725841804669],
    [0.623499404930877, 0.028037758528686],
    [-0.050010822998206, 0.466694104871972],
])
MULLER_BROWN_MINIMA_ENERGY = np.array([-146.699517209954014, -108.166724116852355, -80.767818129659028])
MULLER_BROWN_SADDLES = np.array([
    [-0.822001558732732, 0.624312802814871],   # S1: MA-MC
    [0.212486582000662, 0.292988325107368],    # S2: MC-MB
])
MULLER_BROWN_SADDLES_ENERGY = np.array([-40.664843508657404, -72.248940112325212])


class MullerBrown(nn.Module):
    """The Müller–Brown potential V(x, y) on (N, 2) -> (N,)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x, y = z[:, 0], z[:, 1]
        v = torch.zeros_like(x)
        for A, a, b, c, x0, y0 in zip(_MB_A, _MB_a, _MB_b, _MB_c, _MB_x0, _MB_y0):
            dx, dy = x - x0, y - y0
            v = v + A * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)
        return v


class TripleWell(nn.Module):
    """The three-well potential of Metzner, Schütte & Vanden-Eijnden (J. Chem. Phys. 125, 084110 (2006)) on (N, 2) ->
    (N,): two deep minima near (±1.05, −0.04) (U ≈ −3.995), a shallow one at (0, 1.54) (U ≈ −2.172), two upper
    saddles near (±0.62, 1.10) (U ≈ −1.647) and a lower one at (0, −0.32) (U ≈ −1.385). The standard test of
    transition-path and rate methods: the deep wells are joined by two channels, one through the shallow minimum.

    V(x, y) = 3 exp(−x² − (y − 1/3)²) − 3 exp(−x² − (y − 5/3)²) − 5 exp(−(x − 1)² − y²) − 5 exp(−(x + 1)² − y²)
    + 0.2 x⁴ + 0.2 (y − 1/3)⁴.
    """

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x, y = z[:, 0], z[:, 1]
        return (3 * torch.exp(-x**2 - (y - 1 / 3)**2) - 3 * torch.exp(-x**2 - (y - 5 / 3)**2)
                - 5 * torch.exp(-(x - 1)**2 - y**2) - 5 * torch.exp(-(x + 1)**2 - y**2)
                + 0.2 * x**4 + 0.2 * (y - 1 / 3)**4)


# Styblinski–Tang: f(x) = 1/2 sum(x^4 - 16 x^2 + 5 x); exact 1-D critical points (REFERENCE.md).
ST_T_MINUS = -2.903534027771177095
ST_T_ZERO = 0.156731256780340103
ST_T_PLUS = 2.746802770990836992
ST_G_MINUS = -39.166165703771415464
ST_G_ZERO = 0.195612359055358071
ST_G_PLUS = -25.029446655283942607


class StyblinskiTang(nn.Module):
    """The separable Styblinski–Tang function on (N, d) -> (N,): 2^d minima, d 2^(d-1) index-1 saddles."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return 0.5 * (z**4 - 16 * z**2 + 5 * z).sum(dim=1)


def styblinski_tang_minima(d: int) -> tuple[np.ndarray, np.ndarray]:
    """All 2^d minima (2^d, d) and their exact energies (2^d,), ordered by the binary code of t+ coordinates."""
    codes = (np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1
    z = np.where(codes == 1, ST_T_PLUS, ST_T_MINUS)
    e = codes.sum(1) * ST_G_PLUS + (d - codes.sum(1)) * ST_G_MINUS
    return z, e


class RandomMLPPrior(nn.Module):
    """E(z) = -MLP(z) + ½||z||², a random rugged prior in the Pang et al. form (benchmarks and stress tests).

    ``scale`` multiplies the MLP's output; larger values give more minima. ``activation`` is ``"tanh"`` (smooth) or
    ``"leaky_relu"`` (LeakyReLU(0.2), the ``lrelu`` option of the Pang et al. latent-EBM code: piecewise linear, so
    most minima sit on kinks).
    """

    def __init__(self, dim: int, hidden: int = 64, depth: int = 2, scale: float = 3.0, seed: int = 0,
                 activation: str = "tanh"):
        super().__init__()
        if activation not in ("tanh", "leaky_relu"):
            raise BadArgumentError(f"unknown activation {activation!r}; use 'tanh' or 'leaky_relu'")
        g = torch.Generator().manual_seed(seed)
        layers: list[nn.Module] = []
        width = dim
        for _ in range(depth):
            lin = nn.Linear(width, hidden)
            with torch.no_grad():
                lin.weight.copy_(torch.randn(hidden, width, generator=g) * (2.0 / np.sqrt(width)))
                lin.bias.copy_(torch.randn(hidden, generator=g) * 0.5)
            layers += [lin, nn.Tanh() if activation == "tanh" else nn.LeakyReLU(0.2)]
            width = hidden
        out = nn.Linear(width, 1)
        with torch.no_grad():
            out.weight.copy_(torch.randn(1, width, generator=g) / np.sqrt(width))
            out.bias.zero_()
        layers.append(out)
        self.net = nn.Sequential(*layers)
        self.scale = float(scale)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return -self.scale * self.net(z)[:, 0] + 0.5 * (z * z).sum(dim=1)


# Kink product: a rotated separable sum of piecewise-quadratic 1-D terms whose minima and saddles sit on kinks.
#   h(t)  = ½t² + 2|t-1| + 2|t+1| - 3|t| + 0.3t : kink minima at t = -1 (h = 1.2) and t = +1 (h = 1.8),
#           a kink maximum at t = 0 (h = 4); h' = t-0.7, t+3.3, t-2.7, t+1.3 on the four intervals.
#   h2(t) = ½t² - 2|t| + 0.2t                   : smooth minima at t = -2.2 (h2 = -2.42) and t = 1.8 (h2 = -1.62),
#           a kink maximum at t = 0 (h2 = 0).
KINK_T = (-1.0, 1.0)
KINK_G = (1.2, 1.8)
KINK_TOP = 4.0
SMOOTH_T = (-2.2, 1.8)
SMOOTH_G = (-2.42, -1.62)
SMOOTH_TOP = 0.0


def _kink_h(t: torch.Tensor) -> torch.Tensor:
    return 0.5 * t * t + 2 * (t - 1).abs() + 2 * (t + 1).abs() - 3 * t.abs() + 0.3 * t


def _smooth_h(t: torch.Tensor) -> torch.Tensor:
    return 0.5 * t * t - 2 * t.abs() + 0.2 * t


def random_rotation(d: int, seed: int) -> np.ndarray:
    """A random orthogonal (d, d) matrix (QR of a Gaussian matrix, signs fixed), reproducible from ``seed``."""
    a = np.random.default_rng(seed).standard_normal((d, d))
    q, r = np.linalg.qr(a)
    return q * np.sign(np.diag(r))[None, :]


class KinkProduct(nn.Module):
    """U(z) = Σᵢ hᵢ((Q z)ᵢ) on (N, d) -> (N,): a non-smooth landscape whose critical points are all known exactly.

    The first ``d - n_smooth`` coordinates of x = Qz use ``h`` (two kink minima, a kink maximum), the others ``h2``
    (two smooth minima, a kink maximum); Q is a random rotation (``rotation_seed``; None: the identity), so no kink
    is axis-aligned. There are 2^d minima (each x-coordinate at one of its two minima) and d 2^(d-1) index-1 saddles
    (one coordinate at its maximum t = 0, a ridge: U falls like -|x| across it), each joining the two minima that
    differ in that coordinate. See :func:`kink_product_minima` and :func:`kink_product_saddles`.
    """

    def __init__(self, dim: int, n_smooth: int = 0, rotation_seed: int | None = 0):
        super().__init__()
        if not 0 <= n_smooth <= dim:
            raise BadArgumentError(f"n_smooth must be between 0 and dim={dim}, got {n_smooth}")
        self.dim, self.n_smooth = int(dim), int(n_smooth)
        q = np.eye(dim) if rotation_seed is None else random_rotation(dim, rotation_seed)
        self.register_buffer("Q", torch.as_tensor(q, dtype=torch.float64, device="cpu"))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z @ self.Q.to(z.dtype).T
        k = self.dim - self.n_smooth
        return _kink_h(x[:, :k]).sum(dim=1) + _smooth_h(x[:, k:]).sum(dim=1)

    def _tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = self.dim - self.n_smooth
        t = np.array([KINK_T] * k + [SMOOTH_T] * self.n_smooth)           # (d, 2)
        g = np.array([KINK_G] * k + [SMOOTH_G] * self.n_smooth)
        top = np.array([KINK_TOP] * k + [SMOOTH_TOP] * self.n_smooth)
        return t, g, top


def kink_product_minima(surface: KinkProduct) -> tuple[np.ndarray, np.ndarray]:
    """All 2^d minima (2^d, d) in z and their exact energies, ordered by the binary code of the x-coordinates."""
    d = surface.dim
    t, g, _ = surface._tables()
    codes = (np.arange(2**d)[:, None] >> np.arange(d)[None, :]) & 1
    x = np.where(codes == 1, t[:, 1], t[:, 0])
    e = np.where(codes == 1, g[:, 1], g[:, 0]).sum(axis=1)
    return x @ to_numpy(surface.Q), e


def kink_product_saddles(surface: KinkProduct) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All d 2^(d-1) index-1 saddles: positions (S, d), exact energies (S,) and the pair of minima (S, 2) each joins
    (indices into :func:`kink_product_minima`)."""
    d = surface.dim
    t, g, top = surface._tables()
    Q = to_numpy(surface.Q)
    zs, es, pairs = [], [], []
    for i in range(d):
        for code in range(2**d):
            if code >> i & 1:
                continue
            bits = (code >> np.arange(d)) & 1
            x = np.where(bits == 1, t[:, 1], t[:, 0])
            x[i] = 0.0
            e = np.where(bits == 1, g[:, 1], g[:, 0]).sum() - g[i, 0] + top[i]
            zs.append(x @ Q)
            es.append(e)
            pairs.append((code, code | (1 << i)))
    return np.array(zs), np.array(es), np.array(pairs)


class RotatedProduct(nn.Module):
    """A smooth landscape with many minima whose critical points are all known exactly, in any dimension.

    U(z) = Σ_{i<m} sᵢ g((Qz)ᵢ) + Σ_{i≥m} ½ cᵢ (Qz)ᵢ², on (N, d) -> (N,), where g(t) = ½(t⁴ − 16t² + 5t) is the
    1-D Styblinski–Tang function (exact critical points t₋, t₀, t₊ in ``ST_T_*``), the sᵢ > 0 scale the m bimodal
    directions (distinct, so every minimum and saddle energy is distinct), the cᵢ > 0 are the curvatures of the
    d − m quadratic ones, and Q is a random rotation (nothing is axis-aligned). There are 2^m minima (each bimodal
    coordinate at t₋ or t₊, the others at 0) and m 2^(m−1) index-1 saddles (one bimodal coordinate at t₀), each
    joining the two minima that differ in that coordinate: see :func:`rotated_product_minima` and
    :func:`rotated_product_saddles`. Since U is a sum over coordinates, all of this is exact, and so is the merge
    tree built from all saddles (``DisconnectivityGraph(energies, edges)``).

    Args:
        dim: d; n_bimodal: m (≤ 20: 2^m minima are listed).
        scale: (lo, hi) range of the sᵢ (geometrically spaced, then ±3 % jitter from ``seed``); barrier heights out
            of the deep minimum of direction i are 25.22 sᵢ nats (t₊ side: 25.22, t₋ side: 39.36 sᵢ).
        curvature: (lo, hi) range of the cᵢ.
        rotation_seed: the rotation's seed (None: the identity); seed: the jitter's.
    """

    def __init__(self, dim: int = 128, n_bimodal: int = 10, scale: tuple[float, float] = (0.05, 0.15),
                 curvature: tuple[float, float] = (0.5, 2.0), rotation_seed: int | None = 0, seed: int = 0):
        super().__init__()
        if not 1 <= n_bimodal <= min(dim, 20):
            raise BadArgumentError(f"n_bimodal must be between 1 and min(dim, 20), got {n_bimodal}")
        if not (0 < scale[0] <= scale[1] and 0 < curvature[0] <= curvature[1]):
            raise BadArgumentError(f"scale and curvature must be (lo, hi) ranges of positive numbers, got {scale}, "
                                   f"{curvature}")
        rng = np.random.default_rng(seed)
        self.dim, self.n_bimodal = int(dim), int(n_bimodal)
        s = np.geomspace(scale[0], scale[1], n_bimodal) * (1 + 0.03 * rng.uniform(-1, 1, n_bimodal))
        c = np.geomspace(curvature[0], curvature[1], max(dim - n_bimodal, 1))[:dim - n_bimodal]
        q = np.eye(dim) if rotation_seed is None else random_rotation(dim, rotation_seed)
        for name, value in (("Q", q), ("s", s), ("c", c)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float64, device="cpu"))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z @ self.Q.to(z.dtype).T
        m = self.n_bimodal
        t = x[:, :m]
        return (self.s.to(z.dtype) * 0.5 * (t**4 - 16 * t**2 + 5 * t)).sum(dim=1) \
            + (0.5 * self.c.to(z.dtype) * x[:, m:] ** 2).sum(dim=1)


def rotated_product_minima(surface: RotatedProduct) -> tuple[np.ndarray, np.ndarray]:
    """All 2^m minima (2^m, d) in z and their exact energies, ordered by the binary code of the bimodal coordinates
    (bit i set: coordinate i at t₊)."""
    m, d = surface.n_bimodal, surface.dim
    s = to_numpy(surface.s)
    codes = (np.arange(2**m)[:, None] >> np.arange(m)[None, :]) & 1
    x = np.zeros((2**m, d))
    x[:, :m] = np.where(codes == 1, ST_T_PLUS, ST_T_MINUS)
    e = (s[None, :] * np.where(codes == 1, ST_G_PLUS, ST_G_MINUS)).sum(axis=1)
    return x @ to_numpy(surface.Q), e


def rotated_product_saddles(surface: RotatedProduct) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All m 2^(m−1) index-1 saddles: positions (S, d), exact energies (S,), and the pair of minima (S, 2) each joins
    (indices into :func:`rotated_product_minima`), ordered by direction, then by the code of the other bits."""
    m, d = surface.n_bimodal, surface.dim
    s, Q = to_numpy(surface.s), to_numpy(surface.Q)
    codes = np.arange(2**m)
    zs, es, pairs = [], [], []
    for i in range(m):
        low = codes[(codes >> i & 1) == 0]
        bits = (low[:, None] >> np.arange(m)[None, :]) & 1
        x = np.zeros((len(low), d))
        x[:, :m] = np.where(bits == 1, ST_T_PLUS, ST_T_MINUS)
        x[:, i] = ST_T_ZERO
        g = np.where(bits == 1, ST_G_PLUS, ST_G_MINUS)
        g[:, i] = ST_G_ZERO
        zs.append(x @ Q)
        es.append((s[None, :] * g).sum(axis=1))
        pairs.append(np.column_stack([low, low | (1 << i)]))
    return np.concatenate(zs), np.concatenate(es), np.concatenate(pairs)
