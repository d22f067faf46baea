"""Train the digits example: a VAE with a latent energy-based prior (Pang et al. 2020 form) on scikit-learn's digits.

    python examples/digits/train.py --latent-dim 10 --seed 0 --out examples/digits/digits.pt
    python examples/digits/train.py --latent-dim 2 --seed 0 --lr-energy 1e-3 --energy-l2 1e-2 \
        --out examples/digits/digits2d.pt
    python examples/digits/train.py --latent-dim 2 --seed 0 --lr-energy 1e-3 --energy-l2 1e-2 \
        --energy-activation lrelu --out examples/digits/digits2d_lrelu.pt

Objective (per data point x, maximised): the ELBO with the learned prior p_alpha(z) ∝ exp(-E(z)) N(z; 0, I),

    ELBO = E_q[log p(x|z)] - KL(q(z|x) || N(0, I)) - E_q[E(z)] - log Z_alpha.

log Z_alpha depends only on the prior's parameters and its gradient is -E_{p_alpha}[∇E]; it is estimated with
short-run Langevin prior samples z⁻, which gives the loss

    loss = -log p(x|z) + KL(q || N(0, I)) + mean E(z_post) - mean E(z⁻)     (z_post ~ q by reparameterisation)

(z⁻ carries no gradient), plus energy_l2 * (E(z_post)² + E(z⁻)²) to keep the energy net stable. -log p(x|z) is
||x - decoder(z)||² / (2 sigma_x²) for the default Gaussian likelihood (sigma_x = 0.1), or the binary cross-entropy. The same seed and thread count give the same checkpoint bit for bit.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import (IMAGE_SHAPE, langevin_prior, make_decoder, make_encoder,  # noqa: E402
                   make_energy)


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint's metadata).

    Attributes:
        latent_dim: d, the latent dimension.
        seed: seeds initialisation, mini-batch order, reparameterisation noise and the Langevin chains.
        epochs: passes over the 1797 images.
        batch_size: images per step.
        lr: Adam learning rate of encoder and decoder.
        lr_energy: Adam learning rate of the energy net.
        hidden: width of the two hidden layers of encoder and decoder.
        energy_hidden: width of the two hidden layers of the energy net.
        energy_activation: ``"silu"`` (smooth) or ``"lrelu"`` (LeakyReLU(0.2), as the Pang et al. code's option).
        langevin_steps, langevin_step_size: the prior's short-run sampler (z <- z - s²/2 ∇U + s ε).
        energy_l2: weight of a small penalty on E² at positive and negative samples (keeps E's offset from drifting).
        likelihood: ``"gaussian"`` (N(x; decoder(z), sigma_x² I)) or ``"bernoulli"`` (continuous targets in [0, 1]).
        sigma_x: the Gaussian likelihood's pixel noise (intensity units); ignored for Bernoulli.
        threads: torch intra-op threads (bitwise reproducibility needs the same count).
    """

    latent_dim: int = 10
    seed: int = 0
    epochs: int = 400
    batch_size: int = 128
    lr: float = 1e-3
    lr_energy: float = 3e-4
    hidden: int = 128
    energy_hidden: int = 200
    energy_activation: str = "silu"
    langevin_steps: int = 60
    langevin_step_size: float = 0.4
    energy_l2: float = 3e-2
    likelihood: str = "gaussian"
    sigma_x: float = 0.1
    threads: int = 1


@dataclass
class TrainedModel:
    """The result of :func:`train`.

    Attributes:
        energy, decoder, encoder: the trained ``nn.Sequential`` modules (eval mode, float32).
        reference: (N, d) encoder means of all images.
        labels: (N,) digit labels 0..9.
        config: the :class:`TrainConfig` used.
        train_seconds: wall-clock training time.
        history: per-epoch means of ``recon``, ``kl``, ``e_pos``, ``e_neg``.
    """

    energy: nn.Sequential
    decoder: nn.Sequential
    encoder: nn.Sequential
    reference: np.ndarray
    labels: np.ndarray
    config: TrainConfig
    train_seconds: float
    history: dict = field(default_factory=dict)

    @property
    def sampler(self) -> dict:
        return {"steps": self.config.langevin_steps, "step_size": self.config.langevin_step_size, "noise": True}


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (shipped with the package; nothing downloads).

    Returns:
        images (1797, 1, 8, 8) float32 in [0, 1] (raw 0..16 divided by 16), labels (1797,) int64.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (np.asarray(d.data, dtype=np.float32) / 16.0).reshape(-1, *IMAGE_SHAPE)
    return x, np.asarray(d.target, dtype=np.int64)


def _neg_log_likelihood(mean: torch.Tensor, x: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """-log p(x|z) summed over the batch (nats, up to a constant), for decoder means and images (B, 1, 8, 8)."""
    if cfg.likelihood == "bernoulli":
        return F.binary_cross_entropy(mean, x, reduction="sum")
    return 0.5 * (mean - x).pow(2).sum() / cfg.sigma_x**2


def _finished(energy: nn.Sequential, decoder: nn.Sequential, encoder: nn.Sequential, x_all: torch.Tensor,
              labels: np.ndarray, cfg: TrainConfig, seconds: float, history: dict) -> TrainedModel:
    """The model as it is now, as a :class:`TrainedModel` of frozen copies (training can go on with the originals)."""
    import copy
    frozen = []
    for m in (energy, decoder, encoder):
        m = copy.deepcopy(m).eval()
        for p in m.parameters():
            p.requires_grad_(False)
        frozen.append(m)
    with torch.no_grad():
        reference = frozen[2](x_all)[:, :cfg.latent_dim].numpy().astype(np.float64)
    return TrainedModel(*frozen, reference, np.asarray(labels), cfg, seconds,
                        {k: list(v) for k, v in history.items()})


def checkpoint_path(directory: str | Path, epoch: int) -> Path:
    """Where the checkpoint of ``epoch`` goes: ``ckpt_{epoch:06d}.pt``, as the Pang et al. code names them."""
    return Path(directory) / f"ckpt_{epoch:06d}.pt"


def train(config: TrainConfig | None = None, images: np.ndarray | None = None, labels: np.ndarray | None = None,
          quiet: bool = False, checkpoint_every: int = 0, checkpoint_dir: str | Path | None = None) -> TrainedModel:
    """Train encoder, decoder and latent energy prior jointly (see the module docstring for the loss).

    Args:
        config: hyper-parameters; defaults to :class:`TrainConfig`'s.
        images: optional (N, 1, 8, 8) data in [0, 1] (default: all of scikit-learn's digits).
        labels: (N,) labels matching ``images`` (required when ``images`` is given).
        quiet: no progress bar.
        checkpoint_every: with ``checkpoint_dir``, also save the model every this many epochs (after epochs
            k, 2k, ...) as ``checkpoint_dir/ckpt_{epoch:06d}.pt`` (the series ``energyscope sweep`` analyses).
    """
    cfg = config or TrainConfig()
    if cfg.latent_dim < 1:
        raise ValueError(f"latent_dim must be at least 1, got {cfg.latent_dim}")
    if cfg.likelihood not in ("gaussian", "bernoulli"):
        raise ValueError(f"likelihood must be 'gaussian' or 'bernoulli', got {cfg.likelihood!r}")
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {cfg.epochs}")
    if checkpoint_every < 0 or (checkpoint_every and checkpoint_dir is None):
        raise ValueError("checkpoint_every needs a checkpoint_dir, and must be >= 0")
    if images is None:
        images, labels = load_digits_images()
    elif labels is None or len(labels) != len(images):
        raise ValueError("labels must be given with images, one per image")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"images must have shape (N, 1, 8, 8), got {images.shape}")
    if images.min() < 0 or images.max() > 1:
        raise ValueError("images must lie in [0, 1]")

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    d = cfg.latent_dim
    energy = make_energy(d, cfg.energy_hidden, cfg.energy_activation)
    decoder, encoder = make_decoder(d, cfg.hidden), make_encoder(d, cfg.hidden)
    opt_vae = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=cfg.lr)
    opt_e = torch.optim.Adam(energy.parameters(), lr=cfg.lr_energy, betas=(0.5, 0.999))

    x_all = torch.from_numpy(images)
    n = len(x_all)
    history = {"recon": [], "kl": [], "e_pos": [], "e_neg": []}
    t0 = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc=f"train d={d}", disable=quiet, unit="epoch")
    for epoch in bar:
        sums = dict.fromkeys(history, 0.0)
        perm = torch.randperm(n, generator=gen)
        n_batches = 0
        for start in range(0, n, cfg.batch_size):
            x = x_all[perm[start:start + cfg.batch_size]]
            b = len(x)
            mu, logvar = encoder(x).chunk(2, dim=1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
            recon = _neg_log_likelihood(decoder(z), x, cfg) / b
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum() / b
            z_neg = langevin_prior(energy, b, d, cfg.langevin_steps, cfg.langevin_step_size, generator=gen)
            e_pos = energy(z).mean()
            e_neg = energy(z_neg).mean()
            reg = cfg.energy_l2 * (energy(z.detach()).pow(2).mean() + energy(z_neg).pow(2).mean())
            loss = recon + kl + e_pos - e_neg + reg
            opt_vae.zero_grad()
            opt_e.zero_grad()
            loss.backward()
            opt_vae.step()
            opt_e.step()
            for k, v in zip(history, (recon, kl, e_pos, e_neg)):
                sums[k] += float(v.detach())
            n_batches += 1
        for k in history:
            history[k].append(sums[k] / n_batches)
        bar.set_postfix(recon=f"{history['recon'][-1]:.2f}", kl=f"{history['kl'][-1]:.2f}",
                        dE=f"{history['e_pos'][-1] - history['e_neg'][-1]:.2f}")
        if checkpoint_every and (epoch + 1) % checkpoint_every == 0:
            now = _finished(energy, decoder, encoder, x_all, labels, cfg, time.perf_counter() - t0, history)
            save(now, checkpoint_path(checkpoint_dir, epoch + 1), epoch=epoch + 1)
    return _finished(energy, decoder, encoder, x_all, labels, cfg, time.perf_counter() - t0, history)


def save(result: TrainedModel, path: str | Path, epoch: int | None = None) -> Path:
    """Write the energyscope checkpoint (weights-only loadable, declarative architecture) to ``path``; ``epoch``:
    the epoch it was saved at, for a checkpoint saved during training (default: the last)."""
    from energyscope.io.checkpoint import save_checkpoint

    cfg = result.config
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        path, energy=result.energy, decoder=result.decoder, encoder=result.encoder, dim=cfg.latent_dim,
        convention="energy", base_prior="standard_normal", reference=result.reference, labels=result.labels,
        sampler=result.sampler, data_shape=IMAGE_SHAPE,
        metadata={"name": "digits VAE with latent EBM prior", "dataset": "sklearn digits", "seed": cfg.seed,
                  "train_seconds": round(result.train_seconds, 1),
                  "epochs": cfg.epochs if epoch is None else int(epoch),
                  "posterior": "amortised Gaussian encoder q(z|x), reparameterised",
                  "likelihood": (f"Gaussian, sigmoid mean, sigma_x={cfg.sigma_x:g}" if cfg.likelihood == "gaussian"
                                 else "Bernoulli, sigmoid mean"),
                  "config": asdict(cfg)})
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--latent-dim", type=int, default=10, help="latent dimension d (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--lr-energy", type=float, default=TrainConfig.lr_energy,
                   help=f"Adam learning rate of the energy net (default {TrainConfig.lr_energy:g})")
    p.add_argument("--energy-l2", type=float, default=TrainConfig.energy_l2,
                   help=f"weight of the E² penalty (default {TrainConfig.energy_l2:g})")
    p.add_argument("--energy-activation", choices=("silu", "lrelu"), default="silu",
                   help="the energy net's activation: silu (smooth, default) or lrelu (LeakyReLU(0.2))")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; same count -> same bits)")
    p.add_argument("--out", default="examples/digits/digits.pt", help="checkpoint path")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="K",
                   help="also save ckpt_{epoch:06d}.pt every K epochs into --checkpoint-dir (a series to sweep)")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="folder of the checkpoints saved along the way")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    cfg = TrainConfig(latent_dim=a.latent_dim, seed=a.seed, epochs=a.epochs, threads=a.threads,
                      lr_energy=a.lr_energy, energy_l2=a.energy_l2, energy_activation=a.energy_activation)
    result = train(cfg, quiet=a.quiet, checkpoint_every=a.checkpoint_every, checkpoint_dir=a.checkpoint_dir)
    path = save(result, a.out)
    size = path.stat().st_size
    print(f"trained d={cfg.latent_dim} for {cfg.epochs} epochs in {result.train_seconds:.1f} s "
          f"({cfg.threads} thread{'s' if cfg.threads != 1 else ''}); wrote {path} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
