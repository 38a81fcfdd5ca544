"""Framework-free helpers the adapters share: I/O renaming and parity error."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from flowcore.errors import ExportError
from flowcore.bundle.export import relative_error, set_io_names

from _graphs import affine_graph


@pytest.mark.parametrize("names", [("input", "out"), ("input:0", "Identity:0")])  # torch-like, tf2onnx-like
def test_set_io_names_renames_consistently(names):
    model = affine_graph(np.eye(3), np.zeros(3), name="g", inp=names[0], out=names[1], act="Tanh")
    set_io_names(model, "z", "x_hat", "decoder")
    onnx.checker.check_model(model)
    assert [v.name for v in model.graph.input] == ["z"] and [v.name for v in model.graph.output] == ["x_hat"]
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    z = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(s.run(["x_hat"], {"z": z})[0], np.tanh(z), rtol=1e-6)


def test_set_io_names_refuses_taken_name():
    model = affine_graph(np.eye(2), np.zeros(2), name="g", inp="x", out="y")
    with pytest.raises(ExportError, match="already uses the name 'xw'"):
        set_io_names(model, "xw", "y", "encoder")  # "xw" is an internal value of the graph


def test_relative_error():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([1.0, 2.1], [1.0, 2.0]) == pytest.approx(0.05)
    assert relative_error([1.0], [1.0, 2.0]) == float("inf")
    assert relative_error([np.nan, 1.0], [1.0, 1.0]) == float("inf")
    assert relative_error([np.inf, 1.0], [np.inf, 1.0]) == 0.0
