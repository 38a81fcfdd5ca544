"""FlowBundle: write, load, and every way validation must refuse a bundle."""

import json

import numpy as np
import onnx
import pytest

from flowcore.bundle.flowbundle import MANIFEST, FlowBundle
from flowcore.errors import BundleError
from flowcore.io import sha256_file

from _graphs import affine_graph, contraction_to, scaled_tensor_map


@pytest.fixture
def bundle(tmp_path):
    enc, dec = contraction_to(np.array([1.0, -1.0, 0.5]), 0.5)
    return FlowBundle.write(tmp_path / "b", enc, dec, source={"framework": "hand-built"})


def _rehash(path, fname):
    m = json.loads((path / MANIFEST).read_text())
    part = fname.split(".")[0]
    m[part]["sha256"] = sha256_file(path / fname)
    m[part]["size"] = (path / fname).stat().st_size  # format_version 2 records sizes too
    (path / MANIFEST).write_text(json.dumps(m))


def test_round_trip(bundle):
    b = FlowBundle.load(bundle.path)
    assert b.input_shape == (3,) and b.latent_shape == (3,) and b.latent_dim == 3
    assert b.manifest["encoder"]["opset"] == 18
    assert b.manifest["source"]["framework"] == "hand-built"
    assert b.sha256 == bundle.sha256 and len(b.sha256) == 64


def test_non_flat_latent(tmp_path):
    enc, dec = scaled_tensor_map((2, 3))
    b = FlowBundle.write(tmp_path / "b", enc, dec)
    assert b.latent_shape == (2, 3) and b.latent_dim == 6


def test_refuses_existing_path(bundle):
    with pytest.raises(BundleError, match="already exists"):
        FlowBundle.write(bundle.path, bundle.encoder, bundle.decoder)


def test_missing_manifest_and_folder(tmp_path, bundle):
    with pytest.raises(BundleError, match="no bundle folder"):
        FlowBundle.load(tmp_path / "nope")
    (bundle.path / MANIFEST).unlink()
    with pytest.raises(BundleError, match="not a FlowBundle"):
        FlowBundle.load(bundle.path)


def test_missing_graph_file(bundle):
    (bundle.path / "decoder.onnx").unlink()
    with pytest.raises(BundleError, match="missing decoder.onnx"):
        FlowBundle.load(bundle.path)


def test_tampered_hash(bundle):
    p = bundle.path / "encoder.onnx"
    data = bytearray(p.read_bytes())
    data[-5] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        FlowBundle.load(bundle.path)


def test_truncated_onnx(bundle):
    p = bundle.path / "encoder.onnx"
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    _rehash(bundle.path, "encoder.onnx")  # hash matches: the parser/checker must catch it
    with pytest.raises(BundleError, match="not a readable ONNX model|ONNX checker"):
        FlowBundle.load(bundle.path)


def test_bad_json(bundle):
    (bundle.path / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        FlowBundle.load(bundle.path)


def test_shape_mismatch(tmp_path):
    enc = affine_graph(np.eye(3, 4), np.zeros(4), name="e", inp="x", out="z")  # 3 -> 4
    dec = affine_graph(np.eye(3), np.zeros(3), name="d", inp="z", out="x_hat")  # 3 -> 3
    with pytest.raises(BundleError, match="encoder output shape .4,. does not match decoder input shape .3,."):
        FlowBundle.write(tmp_path / "b", enc, dec)
    assert not (tmp_path / "b").exists()
    assert not [p for p in tmp_path.iterdir()], "nothing half-written"


def test_fixed_batch_refused(tmp_path):
    enc, dec = contraction_to(np.zeros(2), 0.5)
    enc.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    with pytest.raises(BundleError, match="fixed batch axis"):
        FlowBundle.write(tmp_path / "b", enc, dec)


def test_dynamic_feature_dim_refused(tmp_path):
    enc, dec = contraction_to(np.zeros(2), 0.5)
    enc.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "features"
    with pytest.raises(BundleError, match="dynamic non-batch"):
        FlowBundle.write(tmp_path / "b", enc, dec)


def test_path_traversal_file_name(bundle):
    m = json.loads((bundle.path / MANIFEST).read_text())
    m["encoder"]["file"] = "../encoder.onnx"
    (bundle.path / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match="plain file name"):
        FlowBundle.load(bundle.path)


def test_external_data_outside_folder(bundle, tmp_path):
    model = onnx.load(str(bundle.path / "encoder.onnx"))
    w = model.graph.initializer[0]
    w.data_location = onnx.TensorProto.EXTERNAL
    w.ClearField("raw_data")
    del w.float_data[:]
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    (bundle.path / "encoder.onnx").write_bytes(model.SerializeToString())
    _rehash(bundle.path, "encoder.onnx")
    with pytest.raises(BundleError, match="outside the bundle"):
        FlowBundle.load(bundle.path)
