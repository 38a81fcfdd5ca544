"""The digits demo autoencoder and its training recipe, in one place (imports torch).

The shipped demo bundle (``flowcore/data/demo/``, written by ``tools/make_demo_bundle.py``), the
tests' ``torch_digits_ae`` fixture and the benchmark's demo architecture
(``tools/bench_engines.py``) all come from here::

    encoder  (N, 1, 8, 8) -> Flatten -> Linear(64, 64) -> Tanh -> Linear(64, k)      -> (N, k)
    decoder  (N, k) -> Linear(k, 64) -> Tanh -> Linear(64, 64) -> Unflatten -> Sigmoid -> (N, 1, 8, 8)

trained with Adam (lr 2e-3, weight decay 1e-4) on MSE, 150 epochs, batch 64, one torch thread,
on scikit-learn's digits / 16 split by a seeded permutation (the last 360 are the test split).
Deterministic for a seed: the initial weights come from ``torch.manual_seed(seed)`` inside
:func:`torch.random.fork_rng` (the caller's global RNG is left as it was) and the batch order
from a seeded ``torch.Generator``.

>>> from flowcore_torch.recipes import digits_split, train_digits_autoencoder   # doctest: +SKIP
>>> data = digits_split(seed=0)                                                 # doctest: +SKIP
>>> enc, dec, loss = train_digits_autoencoder(data["x_train"], seed=0)          # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = [
    "digits_encoder",
    "digits_decoder",
    "digits_autoencoder",
    "digits_split",
    "train_autoencoder",
    "train_digits_autoencoder",
    "DIGITS_RECIPE",
]

DIGITS_RECIPE = {"k": 8, "hidden": 64, "epochs": 150, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4}
"""The demo bundle's settings (what :func:`train_digits_autoencoder` uses by default)."""


def digits_encoder(k: int = 8, hidden: int = 64) -> nn.Sequential:
    """(N, 1, 8, 8) float32 -> (N, k) float32 (weights drawn from torch's global RNG; see
    :func:`digits_autoencoder` for seeded ones).

    A plain ``nn.Sequential`` (no subclass): the torch exporter records module classes in the
    ONNX node metadata, so the demo bundle's graphs stay those of the original recipe.
    """
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, k))


def digits_decoder(k: int = 8, hidden: int = 64) -> nn.Sequential:
    """(N, k) float32 -> (N, 1, 8, 8) float32 in (0, 1) (a plain ``nn.Sequential``, as :func:`digits_encoder`)."""
    return nn.Sequential(
        nn.Linear(k, hidden), nn.Tanh(), nn.Linear(hidden, 64), nn.Unflatten(1, (1, 8, 8)), nn.Sigmoid()
    )


def digits_autoencoder(k: int = 8, hidden: int = 64, *, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """A freshly initialised (encoder, decoder) of the digits architecture, in train mode.

    The weights are drawn after ``torch.manual_seed(seed)`` (encoder first) inside
    :func:`torch.random.fork_rng`, so they depend on ``seed`` only and the global RNG is untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return digits_encoder(k, hidden), digits_decoder(k, hidden)


def digits_split(seed: int = 0, n_test: int = 360) -> dict[str, np.ndarray]:
    """scikit-learn digits / 16 as (N, 1, 8, 8) float32 in [0, 1]; the last ``n_test`` of a permutation
    seeded with ``seed`` are the test split (needs scikit-learn).

    Returns
    -------
    dict
        ``x_train`` (1797 - n_test, 1, 8, 8) float32, ``x_test`` (n_test, 1, 8, 8) float32,
        ``y_train``, ``y_test`` int64 labels.
    """
    from sklearn.datasets import load_digits  # noqa: PLC0415  (scikit-learn: only for the data)

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    tr, te = perm[:-n_test], perm[-n_test:]
    return {"x_train": x[tr], "x_test": x[te], "y_train": y[tr], "y_test": y[te]}


def train_autoencoder(
    encoder: nn.Module,
    decoder: nn.Module,
    x_train: np.ndarray,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    threads: int = 1,
) -> tuple[nn.Module, nn.Module, float]:
    """Train ``decoder(encoder(x)) ≈ x`` with Adam on MSE, batch order from a seeded generator.

    Parameters
    ----------
    encoder, decoder : nn.Module
        Trained in place (build them seeded, e.g. with :func:`digits_autoencoder`).
    x_train : ndarray of shape (n, *input_shape), float32
        Training inputs.
    epochs, batch_size, lr, weight_decay : int, int, float, float
        The recipe (``torch.optim.Adam(lr=lr, weight_decay=weight_decay)``).
    seed : int, default 0
        Seeds the batch order (``torch.Generator``).
    threads : int, default 1
        torch threads while training (small models on shared cores train fastest and steadiest
        on one); the previous number is restored.

    Returns
    -------
    encoder, decoder : nn.Module
        The same modules, in eval mode.
    loss : float
        Mean MSE over the last epoch.
    """
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=lr,
                               weight_decay=weight_decay)
        x = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
        gen = torch.Generator().manual_seed(seed)
        encoder.train()
        decoder.train()
        last = float("nan")
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            total = 0.0
            for i in range(0, len(x), batch_size):
                xb = x[perm[i : i + batch_size]]
                loss = torch.mean((decoder(encoder(xb)) - xb) ** 2)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(xb)
            last = total / len(x)
    finally:
        torch.set_num_threads(prev)
    return encoder.train(False), decoder.train(False), last  # inference mode


def train_digits_autoencoder(
    x_train: np.ndarray,
    *,
    k: int = DIGITS_RECIPE["k"],
    hidden: int = DIGITS_RECIPE["hidden"],
    epochs: int = DIGITS_RECIPE["epochs"],
    batch_size: int = DIGITS_RECIPE["batch_size"],
    lr: float = DIGITS_RECIPE["lr"],
    weight_decay: float = DIGITS_RECIPE["weight_decay"],
    seed: int = 0,
    threads: int = 1,
) -> tuple[nn.Module, nn.Module, float]:
    """The demo model: :func:`digits_autoencoder` trained with :func:`train_autoencoder`.

    Parameters
    ----------
    x_train : ndarray of shape (n, 1, 8, 8), float32
        Training images in [0, 1] (``digits_split()["x_train"]``).
    k : int, default 8
        Latent size.
    seed : int, default 0
        Seeds the initial weights and the batch order.

    Returns
    -------
    (encoder, decoder, loss) : nn.Module, nn.Module, float
        Modules in eval mode; loss is the last epoch's mean MSE.
    """
    enc, dec = digits_autoencoder(k, hidden, seed=seed)
    return train_autoencoder(enc, dec, x_train, epochs=epochs, batch_size=batch_size, lr=lr,
                             weight_decay=weight_decay, seed=seed, threads=threads)
