"""Small digits autoencoders trained in the test (seconds), written to a FlowBundle by hand.

The weights are the real trained ones (``flowcore_torch.recipes.train_digits_autoencoder``, the
demo recipe with fewer epochs); only the export differs: the MLP (Linear, Tanh, Linear [,
Sigmoid]) is written as ONNX MatMul/Add nodes directly, which takes milliseconds where the torch
exporter takes tens of seconds on a shared machine. Inputs are the digits flattened to (N, 64).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import helper

from flowcore.bundle.flowbundle import FlowBundle

from _graphs import _model


def _mlp_graph(layers, act_out: str | None, *, name: str, inp: str, out: str, k_in: int, k_out: int):
    """(N, k_in) -> (N, k_out): Linear, Tanh, Linear[, act_out] from (W of shape (in, out), b) pairs."""
    (w1, b1), (w2, b2) = layers
    nodes = [helper.make_node("MatMul", [inp, "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Tanh", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
             helper.make_node("Add", ["h3", "b2"], [out if act_out is None else "h4"])]
    if act_out is not None:
        nodes.append(helper.make_node(act_out, ["h4"], [out]))
    return _model(nodes, {"w1": w1, "b1": b1, "w2": w2, "b2": b2}, k_in, k_out, name, inp=inp, out=out)


def trained_digits_bundle(x_train: np.ndarray, path: Path, *, k: int, epochs: int, seed: int = 0) -> FlowBundle:
    """Train the digits MLP AE (k latents, ``epochs`` epochs) on ``x_train`` (n, 1, 8, 8) and write its bundle.

    Returns
    -------
    FlowBundle
        Input shape (64,) float32 (flatten the images), latent shape (k,).
    """
    from torch import nn  # noqa: PLC0415  (torch: the tests' own models)

    from _models import train_digits_ae  # noqa: PLC0415

    enc, dec = train_digits_ae(x_train, k=k, seed=seed, epochs=epochs)

    def linears(module):
        return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
                for m in module.modules() if isinstance(m, nn.Linear)]

    e = _mlp_graph(linears(enc), None, name="enc", inp="x", out="z", k_in=64, k_out=k)
    d = _mlp_graph(linears(dec), "Sigmoid", name="dec", inp="z", out="x_hat", k_in=k, k_out=64)
    return FlowBundle.write(path, e, d, notes=f"digits MLP AE k={k}, {epochs} epochs, seed {seed} (tests/_trained.py)")
