"""Rows in flight from activation memory: the per-row liveness peak of a graph and the cap it sets.

A real image autoencoder (TAEF2 at 256²: ~50 MB of live tensors per row) cannot run the default
4,096 rows at once; ``LatentMap`` lowers every batch to ``max_rows`` and the results do not change.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import flowcore
from flowcore.errors import ParameterError
from flowcore.runtime.activation_memory import CUDA_BUDGET, DEFAULT_BUDGET, MARGIN, default_budget, max_rows, row_bytes


def _mlp(widths=(10, 100, 5)) -> onnx.ModelProto:
    """x (N, 10) -> MatMul -> h (N, 100) -> Relu -> r (N, 100) -> MatMul -> y (N, 5)."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=widths[:2]).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=widths[1:]).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", widths[0]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", widths[2]])], [w1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_row_bytes_is_the_liveness_peak():
    # node 0: x (10) and h (100) alive; node 1: h and r (100 + 100), x freed; node 2: r and y (105)
    assert row_bytes(_mlp()) == 4 * 200
    assert row_bytes(_mlp((300, 20, 5))) == 4 * 320  # the input dominates: x and h at node 0


def test_row_bytes_copies_no_weights_and_reads_local_functions():
    m = _mlp()
    big = m.graph.initializer[0]
    before = bytes(big.raw_data)
    assert row_bytes(m) == 4 * 200 and bytes(m.graph.initializer[0].raw_data) == before  # the model is untouched
    # the same MLP with its middle as a model-local function: the function's tensors count
    f = helper.make_function("local", "Mid", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                             [helper.make_opsetid("", 18)])
    m.graph.node[1].CopyFrom(helper.make_node("Mid", ["h"], ["r"], domain="local"))
    m.functions.append(f)
    m.opset_import.append(helper.make_opsetid("local", 1))
    assert row_bytes(m) == 4 * 200


def test_row_bytes_unknown_shapes_give_no_estimate():
    m = _mlp()
    m.graph.node[1].op_type = "NoSuchOp"  # inference cannot type r (nor y)
    m.graph.node[1].domain = "custom.domain"
    m.opset_import.append(helper.make_opsetid("custom.domain", 1))
    assert row_bytes(m) is None


def test_max_rows_and_budget():
    assert max_rows(1000, 10_000) == int(10_000 // (1000 * MARGIN))
    assert max_rows(10**9, 10) == 1  # never fewer than one row
    assert max_rows(None, 10_000) is None and max_rows(1000, None) is None
    assert default_budget(None) == default_budget(["CPUExecutionProvider"]) == DEFAULT_BUDGET
    assert default_budget(["CUDAExecutionProvider", "CPUExecutionProvider"]) == CUDA_BUDGET


def test_latent_map_caps_rows_and_results_do_not_change(digits_bundle):
    free = flowcore.LatentMap(digits_bundle, providers="cpu", activation_budget=None)
    per_row = row_bytes(free.fused_model)
    assert per_row and per_row > 0 and free.max_rows() is None
    capped = flowcore.LatentMap(digits_bundle, providers="cpu", activation_budget=int(7 * per_row * MARGIN) + 1)
    assert capped.max_rows() == 7 and capped.rows_in_flight(4096) == 7 and capped.rows_in_flight(3) == 3
    z0 = np.random.default_rng(0).normal(size=(50, *free.latent_shape)).astype(np.float32)
    a = flowcore.iterate(free, z0, tol=1e-6, max_steps=60, batch_size=4096)
    b = flowcore.iterate(capped, z0, tol=1e-6, max_steps=60, batch_size=4096)
    for name in ("final", "steps", "status", "last_step_sq"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.settings["batch_size"] == 4096 and "batch_size_asked" not in a.settings
    assert b.settings["batch_size"] == 7 and b.settings["batch_size_asked"] == 4096
    np.testing.assert_array_equal(free(z0), capped(z0))
    np.testing.assert_array_equal(free.decode(z0), capped.decode(z0))


def test_default_budget_leaves_small_models_alone(digits_bundle):
    lmap = flowcore.LatentMap(digits_bundle, providers="cpu")
    assert lmap.max_rows() is None or lmap.max_rows() > 4096


def test_rows_in_flight_checks_its_arguments(digits_bundle):
    lmap = flowcore.LatentMap(digits_bundle, providers="cpu")
    with pytest.raises(TypeError):
        lmap.rows_in_flight(2.5)
    with pytest.raises(ParameterError, match="batch_size"):
        lmap.rows_in_flight(0)
    with pytest.raises(flowcore.BackendError, match="no 'nope' graph"):
        lmap.max_rows("nope")


@pytest.mark.parametrize("bad", [0, -5, 1.5, "big", True])
def test_bad_budget_is_one_error(digits_bundle, bad):
    with pytest.raises(ParameterError, match="activation_budget"):
        flowcore.LatentMap(digits_bundle, providers="cpu", activation_budget=bad)
