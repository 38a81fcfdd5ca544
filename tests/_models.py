"""Small torch autoencoders and their training recipe, for tests (imports torch).

The digits AE is the model that ``tests/conftest.py::torch_digits_ae`` trains and that
``tools/make_demo_bundle.py`` re-implements (self-contained) for the shipped demo bundle:

    encoder  (N, 1, 8, 8) -> Flatten -> Linear(64, 64) -> Tanh -> Linear(64, k)      -> (N, k)
    decoder  (N, k) -> Linear(k, 64) -> Tanh -> Linear(64, 64) -> Unflatten -> Sigmoid -> (N, 1, 8, 8)

Keep the two copies in step when changing the recipe. The data come from the ``digits``
fixture (``tests/conftest.py``), which does not need torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = [
    "DigitsEncoder",
    "DigitsDecoder",
    "train_digits_ae",
    "iterate_torch",
]


class DigitsEncoder(nn.Sequential):
    """(N, 1, 8, 8) float32 -> (N, k) float32."""

    def __init__(self, k: int = 8, hidden: int = 64):
        super().__init__(nn.Flatten(), nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, k))


class DigitsDecoder(nn.Sequential):
    """(N, k) float32 -> (N, 1, 8, 8) float32 in (0, 1)."""

    def __init__(self, k: int = 8, hidden: int = 64):
        super().__init__(
            nn.Linear(k, hidden), nn.Tanh(), nn.Linear(hidden, 64), nn.Unflatten(1, (1, 8, 8)), nn.Sigmoid()
        )


def train_digits_ae(
    x_train: np.ndarray,
    *,
    k: int = 8,
    hidden: int = 64,
    epochs: int = 150,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    threads: int = 1,
) -> tuple[nn.Module, nn.Module]:
    """Train the digits MLP autoencoder with Adam on MSE; deterministic for a given seed.

    Parameters
    ----------
    x_train : ndarray of shape (n, 1, 8, 8), float32
        Training images in [0, 1].
    k : int
        Latent size.
    seed : int
        Seeds weight init and batch order (``torch.Generator``; global RNG is seeded too,
        because ``nn.Linear`` init draws from it).

    Returns
    -------
    (encoder, decoder) : tuple of nn.Module, in eval mode
    """
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        enc, dec = DigitsEncoder(k, hidden), DigitsDecoder(k, hidden)
        params = list(enc.parameters()) + list(dec.parameters())
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        x = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
        gen = torch.Generator().manual_seed(seed)
        enc.train()
        dec.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch_size):
                xb = x[perm[i : i + batch_size]]
                loss = torch.mean((dec(enc(xb)) - xb) ** 2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(prev_threads)
    return enc.eval(), dec.eval()


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
