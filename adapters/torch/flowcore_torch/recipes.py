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

The MNIST (28×28) autoencoders of the studies (``studies/ood_digits.py``,
``studies/ood_benchmark.py``, ``studies/reproduce_digits.py``) live here too, in one place:
:func:`conv_autoencoder` (the paper's Table 4 conv AE scaled down), :func:`mlp_autoencoder`, and
:func:`seeded_autoencoder` which draws either from a seed alone. Training: :func:`train_autoencoder`
(one torch thread, ``torch.use_deterministic_algorithms(True)``, seeded batch order; an
``on_epoch`` callback sees the test MSE of every epoch and may stop the run).
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
    "conv_autoencoder",
    "mlp_autoencoder",
    "seeded_autoencoder",
    "MNIST_RECIPES",
    "reconstruction_mse",
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


MNIST_RECIPES = {
    "conv": {"width": 32, "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64,
             "layers": "Conv2d 1->d->2d->4d (3x3, stride 2, pad 1, ReLU; 28->14->7->4), Flatten, Linear -> k; "
                       "decoder Linear, ReLU, Unflatten, 3 ConvTranspose2d (ReLU), Sigmoid"},
    "mlp": {"width": (256, 128), "lr": 1e-3, "weight_decay": 0.0, "batch_size": 64,
            "layers": "Flatten, Linear 784->256, ReLU, Linear 256->128, ReLU, Linear 128->k; decoder Linear k->128, "
                      "ReLU, Linear 128->256, ReLU, Linear 256->784, Sigmoid, Unflatten (1, 28, 28)"},
}
"""The MNIST autoencoders of the studies: default width and training settings per kind.

The MLP trains without weight decay: Adam's coupled L2 at 1e-4 holds it near a mean-digit model
(test MSE 0.038 after 40 epochs on 4,000 MNIST digits, k = 32, seed 0, against 0.0156 without; 0.013
at its plateau near epoch 100). The conv AE trains well with it (test MSE 0.013 after 20 epochs).
"""


def conv_autoencoder(k: int, d: int = 32) -> tuple[nn.Sequential, nn.Sequential]:
    """Conv AE, (N, 1, 28, 28) float32 -> (N, k) -> (N, 1, 28, 28) float32 in (0, 1).

    The paper's Table 4 scaled down to 28×28 and three stride-2 layers (width d → 2d → 4d); the
    weights come from torch's global RNG (see :func:`seeded_autoencoder` for seeded ones).
    """
    enc = nn.Sequential(
        nn.Conv2d(1, d, 3, 2, 1), nn.ReLU(),            # 28 -> 14
        nn.Conv2d(d, 2 * d, 3, 2, 1), nn.ReLU(),        # 14 -> 7
        nn.Conv2d(2 * d, 4 * d, 3, 2, 1), nn.ReLU(),    # 7 -> 4
        nn.Flatten(), nn.Linear(4 * d * 16, k),
    )
    dec = nn.Sequential(
        nn.Linear(k, 4 * d * 16), nn.ReLU(), nn.Unflatten(1, (4 * d, 4, 4)),
        nn.ConvTranspose2d(4 * d, 2 * d, 3, 2, 1, output_padding=0), nn.ReLU(),  # 4 -> 7
        nn.ConvTranspose2d(2 * d, d, 3, 2, 1, output_padding=1), nn.ReLU(),      # 7 -> 14
        nn.ConvTranspose2d(d, 1, 3, 2, 1, output_padding=1), nn.Sigmoid(),       # 14 -> 28
    )
    return enc, dec


def mlp_autoencoder(k: int, hidden: tuple[int, int] = (256, 128)) -> tuple[nn.Sequential, nn.Sequential]:
    """MLP AE, (N, 1, 28, 28) float32 -> (N, k) -> (N, 1, 28, 28) float32 in (0, 1) (global RNG)."""
    h1, h2 = hidden
    enc = nn.Sequential(nn.Flatten(), nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, k))
    dec = nn.Sequential(nn.Linear(k, h2), nn.ReLU(), nn.Linear(h2, h1), nn.ReLU(), nn.Linear(h1, 784), nn.Sigmoid(),
                        nn.Unflatten(1, (1, 28, 28)))
    return enc, dec


def seeded_autoencoder(kind: str, k: int, *, seed: int, width=None) -> tuple[nn.Module, nn.Module]:
    """A freshly initialised (encoder, decoder) of ``kind`` ("conv" or "mlp"), weights from ``seed`` only.

    ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng`, encoder first; ``width`` is
    the conv width d or the MLP's two hidden sizes (default: :data:`MNIST_RECIPES`).

    Raises
    ------
    ValueError
        An unknown ``kind``.
    """
    if kind not in MNIST_RECIPES:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {sorted(MNIST_RECIPES)}")
    w = MNIST_RECIPES[kind]["width"] if width is None else width
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return conv_autoencoder(k, int(w)) if kind == "conv" else mlp_autoencoder(k, tuple(w))


def reconstruction_mse(encoder: nn.Module, decoder: nn.Module, x: np.ndarray) -> float:
    """Mean squared error of ``decoder(encoder(x))`` against ``x`` (N, ...) float32, no gradients."""
    with torch.no_grad():
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return float(((decoder(encoder(xt)) - xt) ** 2).mean())


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
    x_test: np.ndarray | None = None,
    on_epoch=None,
    deterministic: bool = True,
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
    x_test : ndarray of shape (n_test, *input_shape), float32, optional
        Held-out inputs: their MSE is computed after every epoch (eval mode, no gradients; it
        touches no RNG, so the trained weights do not depend on it) and passed to ``on_epoch``.
    on_epoch : callable, optional
        ``on_epoch(epoch, encoder, decoder, train_mse, test_mse) -> bool`` after every epoch
        (``epoch`` counts from 1, the modules are in eval mode, ``test_mse`` is None without
        ``x_test``); a true return stops training there.
    deterministic : bool, default True
        ``torch.use_deterministic_algorithms(True)`` while training (the previous setting is
        restored).

    Returns
    -------
    encoder, decoder : nn.Module
        The same modules, in eval mode.
    loss : float
        Mean MSE over the last epoch.
    """
    prev, prev_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(bool(deterministic) or prev_det)
    try:
        opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=lr,
                               weight_decay=weight_decay)
        x = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
        gen = torch.Generator().manual_seed(seed)
        encoder.train()
        decoder.train()
        last = float("nan")
        for epoch in range(1, epochs + 1):
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
            if on_epoch is not None:
                encoder.train(False)  # inference mode for the test MSE and the callback
                decoder.train(False)
                test = None if x_test is None else reconstruction_mse(encoder, decoder, x_test)
                if on_epoch(epoch, encoder, decoder, last, test):
                    break
                encoder.train()
                decoder.train()
    finally:
        torch.set_num_threads(prev)
        torch.use_deterministic_algorithms(prev_det)
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
