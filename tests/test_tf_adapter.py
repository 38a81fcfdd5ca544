"""flowcore_tensorflow specifics: Keras model kinds, tf.function traces, converter failures, opsets,
logger hygiene. The checks both adapters share (parity, dynamic batch, output selection, non-flat
latents, failure modes, load_model) are in ``tests/test_adapter_contract.py``.

TensorFlow is imported unconditionally: where it is missing this module fails to collect
(loudly), it is never skipped.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ INFO lines; read when TF loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import flowcore_tensorflow as ftf  # noqa: E402
from flowcore.errors import ExportError  # noqa: E402

from _tf_models import dense, tiny_pair  # noqa: E402

TIGHT = 1e-5


def _session(path):
    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def _run(bundle, part, a):
    entry = bundle.manifest[part]
    return _session(bundle.path / entry["file"]).run([entry["output"]], {entry["input"]: a})[0]


def _tf(model, a):
    out = model(tf.constant(a), training=False) if isinstance(model, keras.layers.Layer) else model(tf.constant(a))
    return out.numpy() if tf.is_tensor(out) else out


def _rel(got, ref):
    return ftf.relative_error(got, ref)


def _x6(n=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 6)).astype(np.float32)


# ------------------------------------------------------------------ small models
class SubclassedEncoder(keras.Model):
    """(N, 6) -> (N, 3); never built before export."""

    def __init__(self):
        super().__init__()
        self.hidden = dense(16, 0, "tanh")
        self.out = dense(3, 1)

    def call(self, x):
        return self.out(self.hidden(x))


# ---------------------------------------------------------------- model kinds
def _functional_pair():
    x = keras.Input((6,))
    z = dense(3, 0)(keras.layers.Activation("tanh")(dense(8, 5)(x)))
    zi = keras.Input((3,))
    return keras.Model(x, z), keras.Model(zi, dense(6, 1)(zi))


def _tf_function_pair():
    rng = np.random.default_rng(0)
    w = tf.constant(rng.standard_normal((6, 3)).astype(np.float32))  # captured constant -> initializer
    v = tf.Variable(rng.standard_normal((3, 6)).astype(np.float32))  # captured variable -> frozen

    @tf.function
    def enc(x):
        return tf.tanh(x @ w)

    @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32)])
    def dec(z):
        return z @ v

    return enc, dec


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed", "tf_function", "plain_callable"])
def test_model_kinds(tmp_path, kind):
    if kind == "sequential":
        enc, dec = tiny_pair()
    elif kind == "functional":
        enc, dec = _functional_pair()
    elif kind == "subclassed":
        enc, dec = SubclassedEncoder(), keras.Sequential([dense(6, 2)])
    elif kind == "tf_function":
        enc, dec = _tf_function_pair()
    else:  # any callable of tensors
        w = tf.constant(np.eye(6, 3, dtype=np.float32))
        enc, dec = (lambda x: tf.nn.relu(x @ w)), (lambda z: z @ tf.transpose(w))
    x = _x6()
    b = ftf.export(enc, dec, x, tmp_path / kind)
    assert b.input_shape == (6,) and b.latent_shape == (3,)
    for part in (b.encoder, b.decoder):
        assert len(part.graph.input) == 1  # captures are initializers, not inputs
    x5 = _x6(5, seed=3)
    z_t = _tf(enc, x5)
    assert _rel(_run(b, "encoder", x5), z_t) <= TIGHT
    assert _rel(_run(b, "decoder", z_t), _tf(dec, z_t)) <= TIGHT


def test_never_called_models_are_built_by_export(tmp_path):
    """Decision: export calls both models eagerly on example_input first, which builds a
    Keras model that was never called; the batch axis still stays dynamic."""
    enc = keras.Sequential([dense(4, 0, "tanh"), dense(3, 1)])  # no Input: unbuilt
    dec = keras.Sequential([dense(6, 2)])
    assert not enc.built and not dec.built
    b = ftf.export(enc, dec, _x6(5), tmp_path / "b")
    assert enc.built and dec.built
    x = _x6(3, seed=4)
    assert _run(b, "encoder", x).shape == (3, 3)
    assert _rel(_run(b, "encoder", x), _tf(enc, x)) <= TIGHT


def test_keras_inference_mode_used(tmp_path):
    enc = keras.Sequential([keras.Input((6,)), dense(3, 0), keras.layers.Dropout(0.5), keras.layers.BatchNormalization()])
    dec = keras.Sequential([keras.Input((3,)), dense(6, 1)])
    b = ftf.export(enc, dec, _x6(), tmp_path / "b")  # training-mode dropout/BN would break parity
    res = ftf.parity(b, enc, dec, _x6(20, seed=5))
    assert res["encoder"] <= TIGHT and res["decoder"] <= TIGHT


# ------------------------------------------------------------ output selection
def test_functional_dict_prefers_mu(tmp_path):
    x = keras.Input((6,))
    h = dense(8, 0, "tanh")(x)
    enc = keras.Model(x, {"log_sigma": dense(3, 1)(h), "mu": dense(3, 2)(h)})
    b = ftf.export(enc, keras.Sequential([keras.Input((3,)), dense(6, 3)]), _x6(), tmp_path / "b")
    assert b.manifest["source"]["encoder_output"] == "mu"
    assert _rel(_run(b, "encoder", _x6()), enc(_x6())["mu"].numpy()) <= TIGHT


# --------------------------------------------------------------- shapes
def test_unknown_static_dims_are_filled_from_the_eager_call(tmp_path):
    """A reshape to (tf.shape(x)[0], -1) leaves tf2onnx with an unknown dim; export pins it."""
    enc = tf.function(lambda x: tf.reshape(x, (tf.shape(x)[0], -1)))
    dec = tf.function(lambda z: tf.reshape(z, (-1, 2, 3)))
    x = _x6().reshape(8, 2, 3)
    b = ftf.export(enc, dec, x, tmp_path / "b")
    assert b.input_shape == (2, 3) and b.latent_shape == (6,)
    assert _run(b, "decoder", _run(b, "encoder", x)).shape == (8, 2, 3)


# ------------------------------------------------------------------ failures
@pytest.mark.parametrize("which", ["py_function", "numpy_function"])
def test_unconvertible_op_is_one_line_export_error(tmp_path, which):
    wrap = tf.py_function if which == "py_function" else tf.numpy_function
    enc = lambda x: wrap(lambda a: a * 2, [x], tf.float32)  # noqa: E731  (tf2onnx has no ONNX op for it)
    with pytest.raises(ExportError, match="could not convert the encoder.*not supported") as ei:
        ftf.export(enc, lambda z: z, _x6(), tmp_path / "b")
    assert "\n" not in str(ei.value)
    assert ei.value.__cause__ is not None
    assert list(tmp_path.iterdir()) == []


def test_model_failure_is_one_line_export_error(tmp_path):
    enc = keras.Sequential([keras.Input((5,)), dense(3, 0)])  # expects 5 features, gets 6
    with pytest.raises(ExportError, match="calling the encoder eagerly failed") as ei:
        ftf.export(enc, dense(6, 1), _x6(), tmp_path / "b")
    assert "\n" not in str(ei.value)
    assert ei.value.__cause__ is not None


def test_fixed_batch_model_is_refused(tmp_path):
    enc = tf.function(lambda x: x[:, :3] * 2.0, input_signature=[tf.TensorSpec((8, 6), tf.float32)])
    with pytest.raises(ExportError, match="must accept any batch size") as ei:
        ftf.export(enc, lambda z: tf.concat([z, z], axis=1), _x6(), tmp_path / "b")
    assert "\n" not in str(ei.value)
    assert list(tmp_path.iterdir()) == []


def test_float16_model_refused(tmp_path):
    enc = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, dtype="float16")])
    with pytest.raises(ExportError, match="float32"):
        ftf.export(enc, dense(6, 1), _x6(), tmp_path / "b")


def test_not_callable_refused(tmp_path):
    with pytest.raises(ExportError, match="callables"):
        ftf.export("encoder.keras", lambda z: z, _x6(), tmp_path / "b")


def test_opset_is_exact(tmp_path):
    enc, dec = tiny_pair()
    b = ftf.export(enc, dec, _x6(), tmp_path / "b", opset=17)
    assert b.manifest["encoder"]["opset"] == b.manifest["decoder"]["opset"] == b.manifest["source"]["opset"] == 17
    try:  # tf2onnx 1.17 stops at 18: either the bundle really is opset 19, or export refuses in one line
        b19 = ftf.export(enc, dec, _x6(), tmp_path / "b19", opset=19)
    except ExportError as exc:
        assert "opset" in str(exc).lower() and "\n" not in str(exc)
        assert not (tmp_path / "b19").exists()
    else:
        assert b19.manifest["encoder"]["opset"] == b19.manifest["decoder"]["opset"] == 19


# ------------------------------------------------------------- side effects
def test_export_restores_loggers_and_prints_nothing(tmp_path, capsys):
    names = ("tf2onnx", "tensorflow", "absl")
    before = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate, list(logging.getLogger(n).handlers))
              for n in names}
    enc, dec = tiny_pair()
    ftf.export(enc, dec, _x6(), tmp_path / "b")
    after = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate, list(logging.getLogger(n).handlers))
             for n in names}
    assert after == before
    out = capsys.readouterr()
    assert out.out == "" and "tf2onnx" not in out.err


def test_import_has_no_side_effects():
    """Importing flowcore_tensorflow (after tensorflow itself) changes no env var, logger or warning filter."""
    code = textwrap.dedent(
        """
        import logging, os, sys, warnings
        import tensorflow, keras, onnx, flowcore  # what a user has loaded already (TF sets env vars)
        def state():
            lg = {n: (l.level, l.propagate, len(l.handlers)) for n, l in logging.root.manager.loggerDict.items()
                  if isinstance(l, logging.Logger)}
            return dict(os.environ), lg, (logging.root.level, len(logging.root.handlers)), list(warnings.filters)
        env0, lg0, root0, filters0 = state()
        import flowcore_tensorflow  # and tf2onnx with it
        assert "tf2onnx" in sys.modules
        env1, lg1, root1, filters1 = state()
        assert env1 == env0, set(env1.items()) ^ set(env0.items())
        assert root1 == root0 and filters1 == filters0
        assert all(lg1[n] == v for n, v in lg0.items()), [n for n, v in lg0.items() if lg1[n] != v]
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"
