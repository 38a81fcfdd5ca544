"""Autoencoder recipes for ``examples/ood_benchmark.py``: the conv AE of ``examples/ood_digits.py``
and an MLP AE, seeded, trained with :func:`flowcore_torch.recipes.train_autoencoder` and exported
with :func:`flowcore_torch.export` (the real exporter, parity-checked).

- ``conv``: ``ood_digits.build_model(k, d=32)`` — Conv2d 1→32→64→128 (3×3, stride 2, ReLU;
  28→14→7→4), Linear → k; mirrored decoder (Linear, 3 ConvTranspose2d, Sigmoid).
- ``mlp``: Flatten, Linear 784→256, ReLU, Linear 256→128, ReLU, Linear 128→k; decoder
  Linear k→128, ReLU, Linear 128→256, ReLU, Linear 256→784, Sigmoid, Unflatten to (1, 28, 28).

Both: Adam lr 1e-3, weight decay 1e-4, batch 64, MSE, one torch thread; the initial weights
come from ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng` and the batch order
from a seeded generator, so a (kind, k, seed, epochs, data) tuple fixes the model.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ood_digits import build_model as build_conv

__all__ = ["RECIPE", "build_mlp", "build", "train_and_export"]

RECIPE = {"lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64, "conv_width": 32, "mlp_hidden": (256, 128)}


def build_mlp(k: int, hidden: tuple[int, int] = RECIPE["mlp_hidden"]):
    """MLP AE, (N, 1, 28, 28) -> (N, k) -> (N, 1, 28, 28): (encoder, decoder) ``nn.Sequential``."""
    from torch import nn  # noqa: PLC0415

    h1, h2 = hidden
    enc = nn.Sequential(nn.Flatten(), nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, k))
    dec = nn.Sequential(nn.Linear(k, h2), nn.ReLU(), nn.Linear(h2, h1), nn.ReLU(), nn.Linear(h1, 784), nn.Sigmoid(),
                        nn.Unflatten(1, (1, 28, 28)))
    return enc, dec


def build(kind: str, k: int, seed: int):
    """Freshly initialised (encoder, decoder) of ``kind`` ("conv" or "mlp"), weights from ``seed`` only."""
    import torch  # noqa: PLC0415

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "conv":
            return build_conv(k, RECIPE["conv_width"])
        if kind == "mlp":
            return build_mlp(k)
    raise ValueError(f"unknown model kind {kind!r}; choose conv or mlp")


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
    enc, dec, loss = train_autoencoder(enc, dec, x_train, epochs=epochs, batch_size=RECIPE["batch_size"],
                                       lr=RECIPE["lr"], weight_decay=RECIPE["weight_decay"], seed=seed, threads=1)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        xc = torch.from_numpy(np.ascontiguousarray(x_check))
        check = float(((dec(enc(xc)) - xc) ** 2).mean())
    bundle = flowcore_torch.export(enc, dec, x_train[:64], out, overwrite=True, real_inputs=x_check[:256],
                                   preprocessing="MNIST / 255, float32 in [0, 1], shape (N, 1, 28, 28)",
                                   notes=f"examples/ood_benchmark.py {kind} AE, k={k}, seed={seed}, {epochs} epochs")
    n_params = sum(p.numel() for p in list(enc.parameters()) + list(dec.parameters()))
    return bundle, {"train_mse": loss, "check_mse": check, "train_seconds": round(seconds, 1), "n_params": n_params}
