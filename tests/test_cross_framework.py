"""One autoencoder in PyTorch and in Keras with the same weights: the same latent map and the
same attractors; and ``flowcore export`` on saved Keras / SavedModel files."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import flowcore_tensorflow  # noqa: E402
import flowcore_torch  # noqa: E402
from flowcore.dynamics.attractors import find_attractors  # noqa: E402
from flowcore.bundle.flowbundle import FlowBundle  # noqa: E402
from flowcore.cli.app import main  # noqa: E402
from flowcore.io import save_npz  # noqa: E402
from flowcore.runtime.latent_map import LatentMap  # noqa: E402
from flowcore.dynamics.trajectories import iterate  # noqa: E402


def keras_twin(torch_enc, torch_dec, k: int = 8):
    """The torch digits AE (tests/_models.py) rebuilt in Keras with the torch weights copied across."""
    lin = [m for m in torch_enc.modules() if hasattr(m, "weight")] + [m for m in torch_dec.modules() if hasattr(m, "weight")]
    w = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in lin]  # Dense kernel = Linear weightᵀ
    enc = keras.Sequential([keras.Input((1, 8, 8)), keras.layers.Flatten(), keras.layers.Dense(64, activation="tanh"),
                            keras.layers.Dense(k)], name="encoder")
    dec = keras.Sequential([keras.Input((k,)), keras.layers.Dense(64, activation="tanh"), keras.layers.Dense(64),
                            keras.layers.Activation("sigmoid"), keras.layers.Reshape((1, 8, 8))], name="decoder")
    dense = [layer for layer in enc.layers + dec.layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) == len(w) == 4
    for layer, (kernel, bias) in zip(dense, w):
        layer.set_weights([kernel, bias])
    return enc, dec


@pytest.fixture(scope="module")
def twins(torch_digits_ae, digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("twins")
    t_enc, t_dec = torch_digits_ae
    k_enc, k_dec = keras_twin(t_enc, t_dec)
    x = digits["x_test"][:32]
    tb = flowcore_torch.export(t_enc, t_dec, x, root / "torch")
    kb = flowcore_tensorflow.export(k_enc, k_dec, x, root / "keras")
    return tb, kb, k_enc, k_dec, root


def test_same_latent_map_and_attractors(twins, digits):
    tb, kb = twins[0], twins[1]
    assert tb.manifest["source"]["framework"] == "torch" and kb.manifest["source"]["framework"] == "tensorflow"
    lt, lk = LatentMap(tb, providers="cpu"), LatentMap(kb, providers="cpu")
    z = lt.encode(digits["x_test"])
    np.testing.assert_allclose(lk.encode(digits["x_test"]), z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lk(z), lt(z), rtol=1e-5, atol=1e-5)
    zn = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
    np.testing.assert_allclose(lk(zn), lt(zn), rtol=1e-5, atol=1e-5)
    at = find_attractors(iterate(lt, z))
    ak = find_attractors(iterate(lk, z))
    assert at.n_attractors == ak.n_attractors
    np.testing.assert_array_equal(at.counts, ak.counts)
    np.testing.assert_array_equal(at.labels, ak.labels)
    np.testing.assert_allclose(ak.centres, at.centres, atol=1e-3)


def test_export_cli_keras_and_savedmodel(twins, digits, tmp_path, capsys):
    _, kb, k_enc, k_dec, _ = twins
    k_enc.save(tmp_path / "enc.keras")
    k_dec.save(tmp_path / "dec.keras")
    inp = keras.Input((1, 8, 8))
    ae = keras.Model(inp, k_dec(k_enc(inp)), name="ae")
    ae.save(tmp_path / "ae.keras")
    save_npz(tmp_path / "x.npz", x=digits["x_test"][:16])
    z = LatentMap(kb, providers="cpu").encode(digits["x_test"])
    ref = LatentMap(kb, providers="cpu")(z)
    runs = {
        "files": ["--encoder", str(tmp_path / "enc.keras"), "--decoder", str(tmp_path / "dec.keras")],
        "whole": ["--autoencoder", str(tmp_path / "ae.keras")],  # halves by layer name
        "no-example": ["--encoder", str(tmp_path / "enc.keras"), "--decoder", str(tmp_path / "dec.keras")],
    }
    for name, args in runs.items():
        example = [] if name == "no-example" else ["--example", str(tmp_path / "x.npz")]
        code = main(["export", *args, *example, "--out", str(tmp_path / name)])
        _, err = capsys.readouterr()
        assert code == 0, err
        np.testing.assert_allclose(LatentMap(tmp_path / name, providers="cpu")(z), ref, rtol=1e-5, atol=1e-6)
    # SavedModel folders for each half (served through their signatures)
    for part, model in (("enc_sm", k_enc), ("dec_sm", k_dec)):
        model.export(str(tmp_path / part), verbose=False)
    code = main(["export", "--encoder", str(tmp_path / "enc_sm"), "--decoder", str(tmp_path / "dec_sm"),
                 "--example", str(tmp_path / "x.npz"), "--out", str(tmp_path / "sm")])
    _, err = capsys.readouterr()
    assert code == 0, err
    np.testing.assert_allclose(LatentMap(tmp_path / "sm", providers="cpu")(z), ref, rtol=1e-5, atol=1e-6)
    assert FlowBundle.load(tmp_path / "sm").manifest["source"]["framework"] == "tensorflow"


def test_export_cli_bad_keras_inputs(tmp_path, capsys):
    # dynamic non-batch dimensions and no --example: cannot be resolved
    inp = keras.Input((None, None, 1))
    enc = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp)))
    dec = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16), keras.layers.Reshape((4, 4, 1))])
    enc.save(tmp_path / "enc.keras")
    dec.save(tmp_path / "dec.keras")
    code = main(["export", "--encoder", str(tmp_path / "enc.keras"), "--decoder", str(tmp_path / "dec.keras"),
                 "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 3 and err.startswith("error:") and len(err.strip().splitlines()) == 1 and "dynamic" in err
    # a file that is not a model
    (tmp_path / "junk.keras").write_bytes(b"nope")
    code = main(["export", "--encoder", str(tmp_path / "junk.keras"), "--decoder", str(tmp_path / "dec.keras"),
                 "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 3 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    # decoder output (4, 4, 1) does not match the encoder input (8, 8, 1)
    save_npz(tmp_path / "x.npz", x=np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32))
    code = main(["export", "--encoder", str(tmp_path / "enc.keras"), "--decoder", str(tmp_path / "dec.keras"),
                 "--example", str(tmp_path / "x.npz"), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 3 and err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()
    assert tf.__version__
