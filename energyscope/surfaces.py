"""Analytic test surfaces with known minima and saddles (see docs/algorithms.md and tests).

Each is a torch callable mapping (N, d) -> (N,), usable directly as ``Landscape(surface, dim=d)``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

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

    ``scale`` multiplies the MLP's output; larger values give more minima.
    """

    def __init__(self, dim: int, hidden: int = 64, depth: int = 2, scale: float = 3.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        layers: list[nn.Module] = []
        width = dim
        for _ in range(depth):
            lin = nn.Linear(width, hidden)
            with torch.no_grad():
                lin.weight.copy_(torch.randn(hidden, width, generator=g) * (2.0 / np.sqrt(width)))
                lin.bias.copy_(torch.randn(hidden, generator=g) * 0.5)
            layers += [lin, nn.Tanh()]
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
