"""Framework-free helpers the adapters share: I/O renaming (bundle layer) and the parity loop
(runtime layer), checked here with NumPy references instead of a framework."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from flowcore.bundle.export import check_opset, clip_line, default_opset, set_io_names, write_staged
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.errors import ExportError
from flowcore.runtime.latent_map import LatentMap
from flowcore.runtime.parity import check_parity, parity_inputs, relative_error, require_parity

from _graphs import affine_graph, linear_pair


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


def test_opset_check_and_clip():
    model = affine_graph(np.eye(2), np.zeros(2), name="g", inp="x", out="y", opset=17)
    assert default_opset(model) == 17
    check_opset(model, 17, what="encoder", made="exported", fix="-")
    with pytest.raises(ExportError, match="the decoder was converted with opset 17, not the requested 18; fix it"):
        check_opset(model, 18, what="decoder", made="converted", fix="fix it")
    assert clip_line("abc", 5) == "abc" and clip_line("abcdefgh", 5) == "abcd…"


# ------------------------------------------------------------------ parity, framework-free
@pytest.fixture()
def affine_bundle(tmp_path):
    """encoder x -> x @ A + c, identity decoder; its NumPy twin is the reference."""
    A = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    c = np.linspace(-1, 1, 4, dtype=np.float32)
    enc, dec = linear_pair(A, c)
    return FlowBundle.write(tmp_path / "b", enc, dec), (lambda x: x @ A + c), (lambda z: np.asarray(z))


def test_parity_inputs_seeded_and_scaled():
    ex = np.random.default_rng(3).normal(2.0, 0.5, (200, 3, 2)).astype(np.float32)
    real = ex[:5].astype(np.float64)
    (n1, r1), (n2, r2) = parity_inputs(ex, real, seed=4)
    assert (n1, n2) == ("random", "real") and r1.shape == (7, 3, 2) and r1.dtype == r2.dtype == np.float32
    np.testing.assert_array_equal(r1, parity_inputs(ex, real, seed=4)[0][1])
    assert not np.array_equal(r1, parity_inputs(ex, real, seed=5)[0][1])
    big = parity_inputs(ex, real, seed=0, n_random=4000)[0][1]
    assert abs(big.mean() - ex.mean()) < 0.05 and abs(big.std() - ex.std()) < 0.05
    np.testing.assert_array_equal(r2, real.astype(np.float32))


def test_latent_map_parity_matches_numpy_reference(affine_bundle):
    bundle, enc, dec = affine_bundle
    lmap = LatentMap(bundle, providers="cpu")
    x = np.random.default_rng(1).standard_normal((37, 4)).astype(np.float32)
    for bs in (5, 1024):  # chunked and whole
        res = lmap.parity(enc, dec, x, batch_size=bs)
        assert res["n"] == 37 and res["encoder"] <= 1e-6 and res["decoder"] <= 1e-6
    # a wrong reference is seen, per graph; decoders get the reference latents
    res = lmap.parity(lambda a: enc(a) * 1.1, dec, x)
    assert res["encoder"] > 0.05 and res["decoder"] <= 1e-6
    res = lmap.parity(enc, lambda z: z + 1.0, x)
    assert res["encoder"] <= 1e-6 and res["decoder"] > 0.1
    nan_first = lmap.parity(lambda a: np.where(np.arange(4) == 0, np.nan, enc(a)), dec, x)
    assert nan_first["encoder"] == float("inf")  # NaN where ONNX has none


@pytest.mark.parametrize("bad", [np.zeros((3, 4)), np.zeros((3, 5), np.float32), np.zeros((0, 4), np.float32)])
def test_latent_map_parity_rejects_bad_inputs(affine_bundle, bad):
    bundle, enc, dec = affine_bundle
    with pytest.raises(ExportError, match=r"parity inputs have shape .* expected \(n >= 1, \*\(4,\)\) float32"):
        LatentMap(bundle, providers="cpu").parity(enc, dec, bad)


def test_check_parity_message():
    check_parity({"n": 3, "encoder": 1e-7, "decoder": 0.0}, which="real", rtol=1e-4, framework="torch", hint="h")
    with pytest.raises(ExportError, match=r"^ONNX/torch parity failed: the decoder on real inputs \(n=3\) has relative "
                       r"error 0\.5 > rtol 0\.0001; the graph does not reproduce the torch model \(why\?\)$"):
        check_parity({"n": 3, "encoder": 0.0, "decoder": 0.5}, which="real", rtol=1e-4, framework="torch", hint="why?")
    with pytest.raises(ExportError, match="the encoder on random"):
        check_parity({"n": 7, "encoder": float("nan"), "decoder": 0.0}, which="random", rtol=1.0, framework="X", hint="")


def test_require_parity_sets_and_explain(affine_bundle, tmp_path):
    bundle, enc, dec = affine_bundle
    lmap = LatentMap(bundle, providers="cpu")
    x = np.random.default_rng(2).standard_normal((9, 4)).astype(np.float32)
    kw = dict(example=x, real=x, rtol=1e-5, framework="NumPy", hint="h")
    res = require_parity(lmap, enc, dec, **kw)
    assert [r["n"] for r in res] == [7, 9]
    with pytest.raises(ExportError, match="the encoder on random inputs"):
        require_parity(lmap, lambda a: enc(a) + 1, dec, **kw)

    def fixed_batch(a):
        if len(a) != 9:
            raise ValueError("only batches of 9")
        return enc(a)

    with pytest.raises(ValueError, match="only batches of 9"):  # no explain: unchanged
        require_parity(lmap, fixed_batch, dec, **kw)
    with pytest.raises(ExportError, match=r"^the parity check on random inputs \(batch 7\) failed: ValueError! ; "
                       "the models must accept any batch size$") as ei:
        require_parity(lmap, fixed_batch, dec, **kw, explain=lambda e: f"{type(e).__name__}! ")
    assert isinstance(ei.value.__cause__, ValueError)
    # write_staged runs such a check in its staging folder and leaves nothing when it refuses
    enc_g, dec_g = linear_pair(np.eye(4), np.zeros(4))
    with pytest.raises(ExportError):
        write_staged(tmp_path / "w", enc_g, dec_g, source={"framework": "numpy"},
                     check=lambda b: require_parity(LatentMap(b, providers="cpu"), enc, dec, **kw))
    assert not (tmp_path / "w").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["b"]
