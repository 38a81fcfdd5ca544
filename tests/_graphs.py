"""Hand-built ONNX graphs with known dynamics, for tests (no framework needed).

All graphs take (N, k) float32 with a dynamic batch axis named ``batch``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18


def affine_graph(W: np.ndarray, b: np.ndarray, *, name: str, inp: str, out: str, act: str | None = None,
                 opset: int = OPSET, ir_version: int = 10) -> onnx.ModelProto:
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
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


def _model(nodes, inits, k_in, k_out, name, inp="x", out="z", in_shape=None, out_shape=None):
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(inp, TensorProto.FLOAT, ["batch", *(in_shape or [k_in])])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", *(out_shape or [k_out])])],
        initializer=[numpy_helper.from_array(np.asarray(v, np.float32 if np.asarray(v).dtype.kind == "f" else np.int64), n) for n, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def identity_decoder(k: int, shape=None) -> onnx.ModelProto:
    """D(z) = z for latents of shape ``shape`` (default (k,))."""
    return _model([helper.make_node("Identity", ["z"], ["x_hat"])], {}, k, k, "dec", inp="z", out="x_hat",
                  in_shape=shape, out_shape=shape)


def two_attractors(a: np.ndarray, b: np.ndarray, u: np.ndarray, rho: float = 0.5):
    """f(z) = rho z + (1 − rho) t(z), t(z) = a if z·u > 0 else b.

    Two stable fixed points ``a`` (half-plane z·u > 0) and ``b`` (z·u ≤ 0) when a·u > 0 ≥ b·u;
    the basins are the two half-planes, the Jacobian is rho·I at both.
    """
    a, b, u = (np.asarray(v, np.float32) for v in (a, b, u))
    k = len(a)
    nodes = [
        helper.make_node("MatMul", ["x", "u"], ["s"]),
        helper.make_node("Greater", ["s", "zero"], ["side"]),
        helper.make_node("Where", ["side", "a", "b"], ["t"]),
        helper.make_node("Mul", ["x", "rho"], ["rx"]),
        helper.make_node("Mul", ["t", "one_m_rho"], ["rt"]),
        helper.make_node("Add", ["rx", "rt"], ["z"]),
    ]
    inits = {"u": u.reshape(k, 1), "zero": np.zeros(1, np.float32), "a": a.reshape(1, k), "b": b.reshape(1, k),
             "rho": np.array([rho], np.float32), "one_m_rho": np.array([1 - rho], np.float32)}
    return _model(nodes, inits, k, k, "enc"), identity_decoder(k)


def repeller(a: np.ndarray, gain: float = 1.5):
    """f(z) = a + gain (z − a): one unstable fixed point (|λ| = gain > 1)."""
    a = np.asarray(a, np.float32)
    k = len(a)
    return linear_pair(gain * np.eye(k), (1 - gain) * a)


def rotation(theta: float = 0.3):
    """f(z) = R(θ) z in 2-D: |λ| = 1, never converges (ends at max_steps)."""
    c, s = np.cos(theta), np.sin(theta)
    return linear_pair(np.array([[c, s], [-s, c]]), np.zeros(2))


def nan_map(k: int = 2):
    """f(z) = sqrt(z − 10): NaN for every start below 10 (diverged)."""
    nodes = [helper.make_node("Sub", ["x", "ten"], ["d"]), helper.make_node("Sqrt", ["d"], ["z"])]
    return _model(nodes, {"ten": np.array([10.0], np.float32)}, k, k, "enc"), identity_decoder(k)


def scaled_tensor_map(shape=(2, 3), rho: float = 0.5):
    """Non-flat latents: f(z) = rho z on latents of shape ``shape``."""
    nodes = [helper.make_node("Mul", ["x", "rho"], ["z"])]
    enc = _model(nodes, {"rho": np.array([rho], np.float32)}, None, None, "enc", in_shape=list(shape), out_shape=list(shape))
    return enc, identity_decoder(None, shape=list(shape))
