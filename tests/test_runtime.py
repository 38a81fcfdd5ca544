"""LatentMap: fused graph = E then D, step outputs, providers, shapes."""

import numpy as np
import pytest

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.errors import BackendError, DataError
from flowcore.runtime.latent_map import LatentMap, fuse

from _graphs import contraction_to, linear_pair, scaled_tensor_map


@pytest.fixture
def lin_bundle(tmp_path):
    rng = np.random.default_rng(1)
    A = rng.normal(size=(4, 4)).astype(np.float32) * 0.3
    c = rng.normal(size=4).astype(np.float32)
    enc, dec = linear_pair(A, c)
    return FlowBundle.write(tmp_path / "lin", enc, dec), A, c


def test_fused_equals_encode_after_decode(lin_bundle):
    bundle, A, c = lin_bundle
    lmap = LatentMap(bundle, providers="cpu")
    z = np.random.default_rng(0).normal(size=(33, 4)).astype(np.float32)
    fz = lmap(z)
    np.testing.assert_allclose(fz, lmap.encode(lmap.decode(z)), rtol=0, atol=1e-6)
    np.testing.assert_allclose(fz, z @ A + c, rtol=1e-5, atol=1e-5)
    z_next, step_sq, norm_sq = lmap.step(z)
    np.testing.assert_array_equal(z_next, fz)
    np.testing.assert_allclose(step_sq, ((fz - z) ** 2).sum(1), rtol=1e-5)
    np.testing.assert_allclose(norm_sq, (fz**2).sum(1), rtol=1e-5)
    np.testing.assert_allclose(lmap.field(z), fz - z, atol=1e-6)


def test_digits_fused_equals_e_then_d(digits_bundle, digits):
    lmap = LatentMap(digits_bundle, providers="cpu")
    z = lmap.encode(digits["x_test"])
    np.testing.assert_allclose(lmap(z), lmap.encode(lmap.decode(z)), rtol=1e-5, atol=1e-6)


def test_sessions_created_once(lin_bundle):
    lmap = LatentMap(lin_bundle[0], providers="cpu")
    s = lmap._session("fused")
    lmap(np.zeros((2, 4), np.float32))
    assert lmap._session("fused") is s
    assert lmap.providers == ["CPUExecutionProvider"]


def test_every_session_comes_from_the_one_session_module(lin_bundle):
    """Encoder, decoder, fused map and the iobinding engine's compaction graph: same threads, DAZ and
    no spinning, and no runtime module but ``_sessions.py`` calls ``InferenceSession`` itself."""
    from pathlib import Path  # noqa: PLC0415

    import flowcore.runtime as runtime  # noqa: PLC0415
    from flowcore.runtime.binding import BoundMap  # noqa: PLC0415

    lmap = LatentMap(lin_bundle[0], providers="cpu", intra_op_num_threads=1)
    z = np.zeros((2, 4), np.float32)
    lmap.decode(z), lmap.encode(lmap.decode(z)), lmap(z)
    bound = BoundMap(lmap, 4)
    sessions = [*lmap._sessions.values(), bound._rows]
    assert sorted(lmap._sessions) == ["decoder", "encoder", "fused"]
    for sess in sessions:
        so = sess.get_session_options()
        assert so.intra_op_num_threads == 1
        assert so.get_session_config_entry("session.set_denormal_as_zero") == "1"
        assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert sess.get_providers() == ["CPUExecutionProvider"]
    folder = Path(runtime.__file__).parent
    makers = sorted(p.name for p in folder.glob("*.py") if "InferenceSession(" in p.read_text(encoding="utf-8"))
    assert makers == ["_sessions.py"]


def test_provider_selection(lin_bundle):
    import onnxruntime as ort

    lmap = LatentMap(lin_bundle[0], providers="auto")
    expect = "CUDAExecutionProvider" if "CUDAExecutionProvider" in ort.get_available_providers() else "CPUExecutionProvider"
    assert lmap.providers[0] == expect
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BackendError, match="cuda"):
            LatentMap(lin_bundle[0], providers="cuda")
    with pytest.raises(BackendError, match="unknown device"):
        LatentMap(lin_bundle[0], providers="tpu")


def test_non_flat_latents(tmp_path):
    enc, dec = scaled_tensor_map((2, 3), rho=0.5)
    lmap = LatentMap(FlowBundle.write(tmp_path / "t", enc, dec), providers="cpu")
    z = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    z_next, step_sq, norm_sq = lmap.step(z)
    assert z_next.shape == (2, 2, 3)
    np.testing.assert_allclose(step_sq, ((0.5 * z - z) ** 2).reshape(2, -1).sum(1))
    np.testing.assert_allclose(lmap(z.reshape(2, 6)), 0.5 * z)  # flat (N, k) accepted


def test_wrong_shapes_refused(lin_bundle):
    lmap = LatentMap(lin_bundle[0], providers="cpu")
    with pytest.raises(DataError, match=r"expected \(N, 4\)"):
        lmap(np.zeros((3, 5), np.float32))
    with pytest.raises(DataError, match="numeric"):
        lmap.encode(np.array([["a"] * 4]))


def test_from_graph(tmp_path):
    enc, _ = contraction_to(np.array([1.0, 2.0]), 0.25)
    lmap = LatentMap.from_graph(enc, providers="cpu")
    z = np.zeros((3, 2), np.float32)
    np.testing.assert_allclose(lmap(z), np.tile([0.75, 1.5], (3, 1)), rtol=1e-6)
    with pytest.raises(BackendError, match="no decoder"):
        lmap.decode(z)


def test_fuse_checker_ok(lin_bundle):
    model = fuse(lin_bundle[0])
    assert [o.name for o in model.graph.output] == ["z_next", "step_sq", "norm_sq"]
    assert [i.name for i in model.graph.input] == ["z"]


@pytest.mark.parametrize("opsets", [(13, 13), (15, 18), (17, 17)])
def test_older_and_mixed_opsets_fuse(tmp_path, opsets):
    """tf2onnx writes IR 8 / opset ≤ 18, torch IR 10 / opset 18+: fusing normalises both."""
    from _graphs import affine_graph

    A = np.array([[0.5, 0.1], [0.0, 0.4]], np.float32)
    enc = affine_graph(A, np.ones(2), name="e", inp="x", out="z", opset=opsets[0], ir_version=8)
    dec = affine_graph(np.eye(2), np.zeros(2), name="d", inp="z", out="x_hat", opset=opsets[1], ir_version=10)
    lmap = LatentMap(FlowBundle.write(tmp_path / "b", enc, dec), providers="cpu")
    z = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32)
    z_next, step_sq, norm_sq = lmap.step(z)
    np.testing.assert_allclose(z_next, z @ A + 1, rtol=1e-6)
    np.testing.assert_allclose(step_sq, ((z @ A + 1 - z) ** 2).sum(1), rtol=1e-5)
    lg = LatentMap.from_graph(enc, providers="cpu")
    np.testing.assert_allclose(lg.step(z)[1], step_sq, rtol=1e-5)
