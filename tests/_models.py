"""Small torch models for tests (imports torch): the digits AE of the shipped demo, the small
models the adapter tests export, and a torch reference of the iteration.

The digits AE and its training recipe live in ``flowcore_torch.recipes`` (the demo bundle, the
benchmark and these tests use that one copy); :func:`train_digits_ae` is the tests' name for it.
The data come from the ``digits`` fixture (``tests/conftest.py``), which does not need torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from flowcore_torch.recipes import train_digits_autoencoder

__all__ = [
    "train_digits_ae",
    "iterate_torch",
    "VAEEncoder",
    "ConvEncoder",
    "ConvDecoder",
    "DriftingDecoder",
    "DataDependent",
    "tiny_pair",
]


def train_digits_ae(x_train: np.ndarray, *, k: int = 8, seed: int = 0, **recipe) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) in eval mode: ``flowcore_torch.recipes.train_digits_autoencoder``, loss dropped."""
    enc, dec, _ = train_digits_autoencoder(x_train, k=k, seed=seed, **recipe)
    return enc, dec


# ----------------------------------------------------------------- small models
class VAEEncoder(nn.Module):
    """(N, 6) -> (mean, logvar) each (N, 3), as a tuple or a dict."""

    def __init__(self, as_dict: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.Tanh())
        self.mean, self.logvar = nn.Linear(16, 3), nn.Linear(16, 3)
        self.as_dict = as_dict

    def forward(self, x):
        h = self.body(x)
        m, lv = self.mean(h), self.logvar(h)
        return {"logvar": lv, "mean": m} if self.as_dict else (m, lv)


class ConvEncoder(nn.Sequential):
    """(N, 1, 8, 8) -> (N, 4, 2, 2)."""

    def __init__(self):
        super().__init__(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1))


class ConvDecoder(nn.Sequential):
    """(N, 4, 2, 2) -> (N, 1, 8, 8)."""

    def __init__(self):
        super().__init__(
            nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(4, 1, 4, stride=2, padding=1), nn.Sigmoid(),
        )


class DriftingDecoder(nn.Module):
    """Adds a Python-side call counter: the exported graph freezes the value seen at trace time,
    while any two eager calls differ, so ONNX and torch genuinely disagree on at least one of
    the two parity sets (random, real) that export checks."""

    def __init__(self, k: int = 3, n: int = 6):
        super().__init__()
        self.lin = nn.Linear(k, n)
        self.calls = 0

    def forward(self, z):
        self.calls += 1
        return self.lin(z) + float(self.calls)


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent Python control flow: torch.export refuses it
            return x * 2
        return x


def tiny_pair(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(N, 6) -> (N, 3) -> (N, 6): Linear encoder, Linear + Tanh decoder, seeded."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 3)), nn.Sequential(nn.Linear(3, 6), nn.Tanh())


def iterate_torch(
    encoder: nn.Module, decoder: nn.Module, z0: np.ndarray, *, tol: float = 1e-6, max_steps: int = 3000, threads: int = 1
):
    """Iterate z <- E(D(z)) in torch; per row, stop when ||z_{t+1} - z_t||^2 < tol.

    Runs on ``threads`` torch threads (default 1: thousands of tiny steps are ~100x slower
    with 2 OpenMP threads on a busy 2-core machine).

    Returns
    -------
    z : ndarray of shape (n, *latent_shape), float32
        Final latents.
    steps : ndarray of shape (n,), int64
        Steps taken per row (``max_steps`` for rows that did not converge).
    converged : ndarray of shape (n,), bool
    """
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            return _iterate(encoder, decoder, z0, tol, max_steps)
    finally:
        torch.set_num_threads(prev)


def _iterate(encoder, decoder, z0, tol, max_steps):
    z = torch.from_numpy(np.array(z0, dtype=np.float32))
    n = len(z)
    steps = np.full(n, max_steps, np.int64)
    done = np.zeros(n, bool)
    active = torch.arange(n)
    for t in range(1, max_steps + 1):
        za = z[active]
        zn = encoder(decoder(za))
        d2 = ((zn - za) ** 2).flatten(1).sum(1)
        z[active] = zn
        hit = (d2 < tol).numpy()
        if hit.any():
            idx = active.numpy()[hit]
            steps[idx] = t
            done[idx] = True
            active = active[torch.from_numpy(~hit)]
            if len(active) == 0:
                break
    return z.numpy(), steps, done
