"""``flowcore export`` of a flat Keras autoencoder (one Sequential, no encoder/decoder parts).

A small Keras ``Sequential`` AE is trained for a few epochs on digits (channels-last) and saved
as one ``.keras`` file, as a new user brings it: without ``--split-at`` the export names the flag,
the layers and the bottleneck; with it, the bundle passes parity and ``flowcore info`` reads it.
``--quiet`` leaves stderr empty, even where TensorFlow was loaded (its C++ log armed) before.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ INFO lines; read when TF loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from flowcore.bundle.flowbundle import FlowBundle  # noqa: E402
from flowcore.cli.app import main  # noqa: E402
from flowcore.io import save_npz  # noqa: E402
from flowcore.runtime.latent_map import LatentMap  # noqa: E402

import _tf_models as km  # noqa: E402


@pytest.fixture(scope="module")
def flat(digits, tmp_path_factory):
    """A flat Keras AE (Sequential, and the same layers as a functional chain) trained 5 epochs on digits."""
    x_train = np.ascontiguousarray(digits["x_train"].transpose(0, 2, 3, 1))
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(name="flat"),
                              km.dense(32, 0, "tanh", name="enc_h"), km.dense(8, 1, name="code"),
                              km.dense(32, 2, "tanh", name="dec_h"), km.dense(64, 3, "sigmoid", name="dec_out"),
                              keras.layers.Reshape((8, 8, 1), name="img")], name="flat_ae")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(x_train, x_train, epochs=5, batch_size=64, shuffle=False, verbose=0)
    root = tmp_path_factory.mktemp("keras_flat")
    model.save(root / "flat.keras")
    inp = keras.Input((8, 8, 1))
    h = inp
    for layer in model.layers:
        h = layer(h)
    keras.Model(inp, h, name="flat_fn").save(root / "flat_fn.keras")
    x = np.ascontiguousarray(digits["x_test"][:64].transpose(0, 2, 3, 1))
    save_npz(root / "x.npz", x=x)
    return root, model, x


def _one_line(code, err):
    assert code == 3, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name", ["flat.keras", "flat_fn.keras"])
def test_flat_model_names_split_at_and_the_layers(flat, tmp_path, capsys, name):
    root, _, _ = flat
    code = main(["export", "--autoencoder", str(root / name), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    _one_line(code, err)
    assert "--split-at LAYER" in err, err
    assert ("0 flat (Flatten), 1 enc_h (Dense), 2 code (Dense), 3 dec_h (Dense), 4 dec_out (Dense), "
            "5 img (Reshape)") in err
    assert "narrowest inner layer is code (8 features)" in err, err
    code = main(["export", "--autoencoder", str(root / name), "--split-at", "img", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    _one_line(code, err)
    assert "not an inner layer" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("name, at", [("flat.keras", "code"), ("flat_fn.keras", "2")])
def test_split_at_exports_a_checked_bundle(flat, tmp_path, capsys, name, at):
    root, model, x = flat
    code = main(["export", "--autoencoder", str(root / name), "--split-at", at, "--example", str(root / "x.npz"),
                 "--out", str(tmp_path / "b")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "parity checked" in out
    b = FlowBundle.load(tmp_path / "b")
    assert b.input_shape == (8, 8, 1) and b.latent_shape == (8,)
    # the encoder is the layers up to and including "code"; decode(encode(x)) is the saved model
    z_ref = x
    for layer in model.layers[:3]:
        z_ref = layer(z_ref)
    lm = LatentMap(b, providers="cpu")
    z = lm.encode(x)
    np.testing.assert_allclose(z, np.asarray(z_ref), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lm.decode(z), np.asarray(model(x, training=False)), rtol=1e-4, atol=1e-5)
    assert main(["info", str(tmp_path / "b")]) == 0
    assert "latent shape (8,)" in capsys.readouterr().out


def test_quiet_keras_export_is_silent(flat, tmp_path):
    """``--quiet`` in a fresh process: the result line on stdout, nothing at all on stderr."""
    root, _, _ = flat
    proc = subprocess.run([sys.executable, "-m", "flowcore", "export", "--autoencoder", str(root / "flat.keras"),
                           "--split-at", "code", "--out", str(tmp_path / "b"), "--quiet"],
                          capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("exported tensorflow model") and len(proc.stdout.splitlines()) == 1, proc.stdout


def test_quiet_holds_tensorflow_native_log_loaded_earlier(flat, tmp_path):
    """TensorFlow loaded before the command (its C++ log at INFO): the export's C++ lines stay off stderr."""
    root, _, _ = flat
    code = textwrap.dedent(
        f"""
        import os, sys
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        import tensorflow  # what a notebook or a batch script has loaded already
        sys.stderr.write("--- main ---\\n"); sys.stderr.flush()
        from flowcore.cli import main
        raise SystemExit(main(["export", "--autoencoder", r"{root / 'flat.keras'}", "--split-at", "code",
                               "--out", r"{tmp_path / 'b'}", "--quiet"]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.split("--- main ---\n", 1)[1] == ""
    assert proc.stdout.startswith("exported tensorflow model") and len(proc.stdout.splitlines()) == 1, proc.stdout
