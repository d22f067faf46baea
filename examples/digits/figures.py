"""Pictures of the shipped digits models, drawn from the checkpoints through energyscope's loader.

    python examples/digits/figures.py            # writes docs/images/digits_samples.png, docs/images/digits2d_contour.png

* ``digits_samples.png``: decoded short-run Langevin prior samples (the model's own sampler, settings read from the
  checkpoint) beside data images and their reconstructions decoder(encoder mean).
* ``digits2d_contour.png``: the 2-D model's U(z) = E(z) + ||z||²/2 on a grid, with the encoded data coloured by label.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from model import langevin_prior  # noqa: E402
from train import load_digits_images  # noqa: E402

from energyscope import Landscape, load_checkpoint  # noqa: E402


def prior_samples(land: Landscape, n: int, seed: int = 0) -> np.ndarray:
    """n short-run Langevin prior samples (n, d) with the sampler settings stored in the checkpoint."""
    s = land.sampler
    gen = torch.Generator().manual_seed(seed)
    z = langevin_prior(land.energy_module, n, land.dim, steps=int(s.get("steps", 60)),
                       step_size=float(s.get("step_size", 0.4)), noise=bool(s.get("noise", True)), generator=gen)
    return z.numpy()


def _tile(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows*cols, 1, 8, 8) images -> one (rows*9-1, cols*9-1) canvas with 1-pixel gaps."""
    canvas = np.zeros((rows * 9 - 1, cols * 9 - 1))
    for k, img in enumerate(images[: rows * cols]):
        r, c = divmod(k, cols)
        canvas[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = img.reshape(8, 8)
    return canvas


def samples_figure(land: Landscape, out: Path, n_rows: int = 10, seed: int = 0) -> None:
    """Decoded prior samples (left) and data | reconstruction pairs (right)."""
    z = prior_samples(land, n_rows * 10, seed)
    samples = land.decode(z)
    x, y = load_digits_images()
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == k), n_rows // 2 if n_rows > 1 else 1, replace=False)
                          for k in range(10)])[: n_rows * 5]
    recon = land.decode(land.encode(x[idx]))
    pairs = np.stack([x[idx], recon], axis=1).reshape(-1, 1, 8, 8)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
    axes[0].imshow(_tile(samples, n_rows, 10), cmap="gray_r", vmin=0, vmax=1)
    s = land.sampler
    axes[0].set_title(f"prior samples: short-run Langevin ({s.get('steps')} steps, s={s.get('step_size')}), decoded",
                      fontsize=9)
    axes[1].imshow(_tile(pairs, n_rows, 10), cmap="gray_r", vmin=0, vmax=1)
    axes[1].set_title("data | reconstruction (decoder of encoder mean), pairs", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(f"digits VAE with a latent EBM prior, d = {land.dim}", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def contour_figure(land: Landscape, out: Path, n_grid: int = 240) -> None:
    """Filled contours of U over a box around the encoded data, data coloured by digit label (2-D models only)."""
    if land.dim != 2:
        raise ValueError(f"a contour plot needs a 2-D latent space, this model has d = {land.dim}")
    ref, labels = land.reference, land.labels
    lo, hi = ref.min(axis=0), ref.max(axis=0)
    pad = 0.15 * (hi - lo)
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], n_grid)
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], n_grid)
    xx, yy = np.meshgrid(gx, gy)
    u = land.energy(np.column_stack([xx.ravel(), yy.ravel()])).numpy().reshape(xx.shape)
    fig, ax = plt.subplots(figsize=(7.5, 6.2))
    u_ref = land.energy(ref).numpy()
    levels = np.linspace(u.min(), np.quantile(u_ref, 0.98), 28)  # resolve the wells the data sits in
    cs = ax.contourf(xx, yy, u, levels=levels, cmap="Greys", extend="max")
    ax.contour(xx, yy, u, levels=levels, colors="k", linewidths=0.3, alpha=0.4)
    fig.colorbar(cs, ax=ax, label="U(z) = E(z) + ||z||²/2  [nats]; light = low")
    sc = ax.scatter(ref[:, 0], ref[:, 1], c=labels, cmap="tab10", s=5, vmin=-0.5, vmax=9.5, alpha=0.8)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit label")
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    ax.set_title("2-D digits model: U(z) with the encoded data (encoder means)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Draw the digits models' figures into docs/images/.")
    p.add_argument("--checkpoint", default=str(HERE / "digits.pt"))
    p.add_argument("--checkpoint-2d", default=str(HERE / "digits2d.pt"))
    p.add_argument("--out-dir", default=str(HERE.parent.parent / "docs" / "images"))
    a = p.parse_args(argv)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples_figure(load_checkpoint(a.checkpoint), out / "digits_samples.png")
    contour_figure(load_checkpoint(a.checkpoint_2d), out / "digits2d_contour.png")
    print(f"wrote {out / 'digits_samples.png'} and {out / 'digits2d_contour.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
