"""Hand-built ONNX graphs with known dynamics, for tests (no framework needed).

All graphs take (N, k) float32 with a dynamic batch axis named ``batch``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18


def affine_graph(W: np.ndarray, b: np.ndarray, *, name: str, inp: str, out: str, act: str | None = None) -> onnx.ModelProto:
    """y = act(x @ W + b): (N, m) -> (N, n)."""
    W = np.asarray(W, np.float32)
    b = np.asarray(b, np.float32)
    nodes = [helper.make_node("MatMul", [inp, "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], [out if act is None else "pre"])]
    if act is not None:
        nodes.append(helper.make_node(act, ["pre"], [out]))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(inp, TensorProto.FLOAT, ["batch", W.shape[0]])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", W.shape[1]])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def linear_pair(A: np.ndarray, c: np.ndarray):
    """Encoder x -> x @ A + c and identity decoder, so f(z) = z @ A + c."""
    k = A.shape[0]
    enc = affine_graph(A, c, name="enc", inp="x", out="z")
    dec = affine_graph(np.eye(k), np.zeros(k), name="dec", inp="z", out="x_hat")
    return enc, dec


def contraction_to(a: np.ndarray, rho: float):
    """f(z) = a + rho (z − a): one fixed point ``a``, contraction rate ``rho`` (|rho| < 1)."""
    a = np.asarray(a, np.float32)
    k = len(a)
    return linear_pair(rho * np.eye(k), (1 - rho) * a)
