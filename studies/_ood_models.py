"""Autoencoder recipes for ``studies/ood_benchmark.py``: the conv AE of ``studies/ood_digits.py``
and an MLP AE, seeded, trained with :func:`flowcore_torch.recipes.train_autoencoder` and exported
with :func:`flowcore_torch.export` (the real exporter, parity-checked).

- ``conv``: :func:`flowcore_torch.recipes.conv_autoencoder` (``d = 32``) — Conv2d 1→32→64→128 (3×3, stride 2, ReLU;
  28→14→7→4), Linear → k; mirrored decoder (Linear, 3 ConvTranspose2d, Sigmoid).
- ``mlp``: :func:`flowcore_torch.recipes.mlp_autoencoder` — Flatten, Linear 784→256, ReLU, Linear 256→128, ReLU, Linear 128→k; decoder
  Linear k→128, ReLU, Linear 128→256, ReLU, Linear 256→784, Sigmoid, Unflatten to (1, 28, 28).

Both: :data:`flowcore_torch.recipes.MNIST_RECIPES` — Adam lr 1e-3, batch 64, weight decay 1e-4 (conv)
or 0 (MLP: with 1e-4 it stayed near a mean-digit model, check MSE 0.046 and 2 attractors at k = 32),
MSE, one torch thread; the initial weights
come from ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng` and the batch order
from a seeded generator, so a (kind, k, seed, epochs, data) tuple fixes the model.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["recipe", "build", "train_and_export"]



def recipe(kind: str) -> dict:
    """``width``, ``lr``, ``weight_decay`` and ``batch_size`` of ``kind`` (``MNIST_RECIPES``)."""
    from flowcore_torch.recipes import MNIST_RECIPES  # noqa: PLC0415  (torch: only for training)

    return {key: MNIST_RECIPES[kind][key] for key in ("width", "lr", "weight_decay", "batch_size")}


def build(kind: str, k: int, seed: int):
    """Freshly initialised (encoder, decoder) of ``kind`` ("conv" or "mlp"), weights from ``seed`` only
    (:func:`flowcore_torch.recipes.seeded_autoencoder`)."""
    from flowcore_torch.recipes import seeded_autoencoder  # noqa: PLC0415  (torch: only for training)

    return seeded_autoencoder(kind, k, seed=seed, width=recipe(kind)["width"])


def train_and_export(kind: str, k: int, seed: int, epochs: int, x_train: np.ndarray, x_check: np.ndarray,
                     out: Path):
    """Train a ``kind`` AE with latent size ``k`` on ``x_train`` (N, 1, 28, 28) float32 and export it.

    Returns
    -------
    bundle : flowcore.FlowBundle — exported to ``out`` (parity-checked on ``x_check``)
    info : dict — ``train_mse``, ``check_mse``, ``train_seconds``, ``n_params``
    """
    import torch  # noqa: PLC0415
    import flowcore_torch  # noqa: PLC0415
    from flowcore_torch.recipes import train_autoencoder  # noqa: PLC0415

    enc, dec = build(kind, k, seed)
    t0 = time.perf_counter()
    r = recipe(kind)
    enc, dec, loss = train_autoencoder(enc, dec, x_train, epochs=epochs, batch_size=r["batch_size"], lr=r["lr"],
                                       weight_decay=r["weight_decay"], seed=seed, threads=1)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        xc = torch.from_numpy(np.ascontiguousarray(x_check))
        check = float(((dec(enc(xc)) - xc) ** 2).mean())
    bundle = flowcore_torch.export(enc, dec, x_train[:64], out, overwrite=True, real_inputs=x_check[:256],
                                   preprocessing="MNIST / 255, float32 in [0, 1], shape (N, 1, 28, 28)",
                                   notes=f"studies/ood_benchmark.py {kind} AE, k={k}, seed={seed}, {epochs} epochs")
    n_params = sum(p.numel() for p in list(enc.parameters()) + list(dec.parameters()))
    return bundle, {"train_mse": loss, "check_mse": check, "train_seconds": round(seconds, 1), "n_params": n_params}
