"""``LatentMap.from_graph`` on a real "encoder + surrogate decoder" graph (the paper's App. B.8 pattern).

A frozen encoder (tanh of a linear map onto the top-8 principal directions of the digits) and a
surrogate decoder fitted here by least squares from those latents back to the real digits are
written as two ONNX graphs, composed into one graph of f(z) = E(D(z)) with ``onnx.compose``, loaded
with :meth:`flowcore.LatentMap.from_graph`, iterated, and checked against composing the two pieces
by hand in NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is needed to build the graphs")
sklearn_datasets = pytest.importorskip("sklearn.datasets", reason="scikit-learn provides the real digits")

from onnx import TensorProto, compose, helper, numpy_helper  # noqa: E402

import flowcore  # noqa: E402

K = 8


def _affine(name: str, w: np.ndarray, b: np.ndarray, d_in: int, d_out: int, inp: str, out: str, tanh: bool):
    """ONNX graph (N, d_in) → (N, d_out): x @ w + b, optionally tanh."""
    nodes = [helper.make_node("MatMul", [inp, f"{name}_w"], [f"{name}_mm"]),
             helper.make_node("Add", [f"{name}_mm", f"{name}_b"], [f"{name}_lin" if tanh else out])]
    if tanh:
        nodes.append(helper.make_node("Tanh", [f"{name}_lin"], [out]))
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info(inp, TensorProto.FLOAT, ["N", d_in])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", d_out])],
        [numpy_helper.from_array(w.astype(np.float32), f"{name}_w"), numpy_helper.from_array(b.astype(np.float32), f"{name}_b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


@pytest.fixture(scope="module")
def pieces():
    x = sklearn_datasets.load_digits().data.astype(np.float32) / 16.0  # (1797, 64) real 8×8 digits in [0, 1]
    mu = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    w_e = (vt[:K].T / 3.0).astype(np.float32)  # frozen encoder: z = tanh((x − mu) @ w_e)
    b_e = (-mu @ w_e).astype(np.float32)
    z = np.tanh(x @ w_e + b_e)
    design = np.hstack([z, np.ones((len(z), 1), np.float32)])
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)  # surrogate decoder fitted on real data
    w_d, b_d = coef[:K].astype(np.float32), coef[K].astype(np.float32)
    return x, (w_e, b_e), (w_d, b_d)


def _f_graph(pieces):
    _, (w_e, b_e), (w_d, b_d) = pieces
    dec = _affine("dec", w_d, b_d, K, 64, "z", "x_hat", tanh=False)
    enc = _affine("enc", w_e, b_e, 64, K, "x", "z_next", tanh=True)
    return compose.merge_models(dec, enc, io_map=[("x_hat", "x")])  # f = E ∘ D: (N, 8) → (N, 8)


def test_surrogate_decoder_fits_real_digits(pieces):
    x, (w_e, b_e), (w_d, b_d) = pieces
    x_hat = np.tanh(x @ w_e + b_e) @ w_d + b_d
    rel = np.linalg.norm(x_hat - x) / np.linalg.norm(x - x.mean(axis=0))
    assert rel < 0.8, rel  # 8 latents explain a good part of the digits' variance (not a random decoder)


def test_from_graph_matches_hand_composition(pieces, tmp_path):
    x, (w_e, b_e), (w_d, b_d) = pieces
    path = tmp_path / "f.onnx"
    onnx.save(_f_graph(pieces), path)
    lmap = flowcore.LatentMap.from_graph(path, providers="cpu")
    assert lmap.latent_shape == (K,) and lmap.input_shape is None
    z0 = np.tanh(x[:50] @ w_e + b_e).astype(np.float32)

    def f(z):
        return np.tanh((z @ w_d + b_d) @ w_e + b_e)

    one = flowcore.iterate(lmap, z0, max_steps=1, tol=1e-12).final
    assert np.allclose(one, f(z0), atol=1e-5)
    traj = flowcore.iterate(lmap, z0, max_steps=200, tol=1e-8)
    finals = np.empty_like(z0)
    for i in range(len(z0)):
        zi = z0[i:i + 1]
        for _ in range(int(traj.steps[i])):
            zi = f(zi)
        finals[i] = zi[0]
    assert np.isfinite(traj.final).all() and (traj.status != 2).all()
    assert np.allclose(traj.final, finals, atol=1e-4)


def test_from_graph_accepts_a_model_proto_and_refuses_a_non_map(pieces):
    lmap = flowcore.LatentMap.from_graph(_f_graph(pieces), providers="cpu")
    assert lmap.latent_shape == (K,)
    _, (w_e, b_e), _ = pieces
    with pytest.raises(flowcore.BundleError, match="differs"):
        flowcore.LatentMap.from_graph(_affine("enc", w_e, b_e, 64, K, "x", "z", tanh=True), providers="cpu")
