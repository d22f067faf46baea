"""The digits example model: a VAE whose prior is a latent energy-based model (Pang et al. 2020 form).

    p_alpha(z) ∝ exp(-E_alpha(z)) N(z; 0, I),      so the potential energyscope analyses is U(z) = E_alpha(z) + ||z||²/2
    p_beta(x | z) = N(x; decoder(z), 0.1² I)        (pixel intensities in [0, 1]; the decoder's mean is a sigmoid;
                                                     train.py also offers a Bernoulli likelihood)
    q_phi(z | x)  = N(z; mu(x), diag exp(logvar(x))) (amortised encoder, reparameterised)

Every network is a plain ``nn.Sequential`` of layers that energyscope's checkpoint format stores declaratively.
Shapes: latents (N, d); images (N, 1, 8, 8) with values in [0, 1]; the energy net maps (N, d) -> (N, 1); the encoder
maps images (N, 1, 8, 8) (or flat (N, 64)) -> (N, 2d) = [mean, log-variance].
"""
from __future__ import annotations

import torch
from torch import nn

IMAGE_SHAPE = (1, 8, 8)
N_PIXELS = 64


ENERGY_ACTIVATIONS = ("silu", "lrelu")


def make_energy(dim: int, hidden: int = 200, activation: str = "silu") -> nn.Sequential:
    """The prior's energy net E_alpha: (N, dim) -> (N, 1), two hidden layers of ``hidden`` units.

    ``activation="silu"`` (default) keeps U twice differentiable; ``"lrelu"`` is LeakyReLU(0.2), the ``lrelu``
    option of the Pang et al. latent-EBM code, which makes U piecewise smooth (minima and saddles on kinks).
    """
    if activation not in ENERGY_ACTIVATIONS:
        raise ValueError(f"unknown energy activation {activation!r}; use one of {ENERGY_ACTIVATIONS}")

    def act() -> nn.Module:
        return nn.SiLU() if activation == "silu" else nn.LeakyReLU(0.2)
    return nn.Sequential(
        nn.Linear(dim, hidden), act(),
        nn.Linear(hidden, hidden), act(),
        nn.Linear(hidden, 1),
    )


def make_decoder(dim: int, hidden: int = 128) -> nn.Sequential:
    """The generator p(x|z): (N, dim) -> pixel means (N, 1, 8, 8) in (0, 1)."""
    return nn.Sequential(
        nn.Linear(dim, hidden), nn.SiLU(),
        nn.Linear(hidden, hidden), nn.SiLU(),
        nn.Linear(hidden, N_PIXELS), nn.Sigmoid(),
        nn.Unflatten(1, IMAGE_SHAPE),
    )


def make_encoder(dim: int, hidden: int = 128) -> nn.Sequential:
    """The amortised posterior q(z|x): images (N, 1, 8, 8) or (N, 64) -> (N, 2*dim) = [mean, log-variance]."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(N_PIXELS, hidden), nn.SiLU(),
        nn.Linear(hidden, hidden), nn.SiLU(),
        nn.Linear(hidden, 2 * dim),
    )


def potential(energy: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """U(z) = E(z) + ||z||²/2 for latents (N, d) -> (N,), nats (the negative log prior up to a constant)."""
    return energy(z).reshape(z.shape[0]) + 0.5 * (z * z).sum(dim=1)


def langevin_prior(energy: nn.Module, n: int, dim: int, steps: int = 60, step_size: float = 0.4,
                   noise: bool = True, generator: torch.Generator | None = None,
                   z0: torch.Tensor | None = None) -> torch.Tensor:
    """Short-run Langevin samples from the prior, started from the base N(0, I) (Pang et al. 2020).

    Update, ``steps`` times:  z <- z - (s²/2) ∇U(z) + s ε,  ε ~ N(0, I),  s = ``step_size``, U = E + ||z||²/2.
    The chain is deliberately short and non-convergent; training matches the energy to *this* sampler.

    Args:
        energy: E_alpha, (N, dim) -> (N, 1). Its parameters receive no gradient from this call.
        n: number of chains.
        dim: latent dimension d.
        steps, step_size, noise: the sampler settings (``noise=False`` gives plain gradient descent on U).
        generator: torch random generator for the start and the noise (seeded -> reproducible).
        z0: optional (n, dim) starting points instead of base samples.

    Returns:
        (n, dim) detached latents in the dtype of the energy net's parameters.
    """
    dtype = next(energy.parameters()).dtype
    z = torch.randn(n, dim, generator=generator, dtype=dtype) if z0 is None else z0.detach().to(dtype).clone()
    was_training = energy.training
    energy.eval()
    req = [p.requires_grad for p in energy.parameters()]
    for p in energy.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            z.requires_grad_(True)
            (g,) = torch.autograd.grad(potential(energy, z).sum(), z)
            with torch.no_grad():
                z = z - 0.5 * step_size**2 * g
                if noise:
                    z = z + step_size * torch.randn(z.shape, generator=generator, dtype=dtype)
    finally:
        for p, r in zip(energy.parameters(), req):
            p.requires_grad_(r)
        energy.train(was_training)
    return z.detach()
