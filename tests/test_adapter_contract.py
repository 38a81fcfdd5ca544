"""The adapter contract: the same checks over ``flowcore_torch`` and ``flowcore_tensorflow``.

Each adapter gets a :class:`Kit` (its module, its small models, how to call a model, how to save
one); every test below runs once per adapter. Framework-specific behaviour (TorchScript, Keras
model kinds, logger hygiene, opsets) stays in ``tests/test_torch_adapter.py`` and
``tests/test_tf_adapter.py``. Both frameworks are imported unconditionally: where one is
missing this module fails to collect (loudly), it is never skipped.
"""

from __future__ import annotations

import inspect
import os
import shutil
from dataclasses import dataclass
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ INFO lines; read when TF loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import _models as tm  # noqa: E402
import _tf_models as km  # noqa: E402
import flowcore  # noqa: E402
import flowcore_tensorflow  # noqa: E402
import flowcore_torch  # noqa: E402
from flowcore.bundle.flowbundle import MANIFEST, FlowBundle  # noqa: E402
from flowcore.errors import BundleError, ExportError  # noqa: E402
from flowcore.runtime.parity import relative_error  # noqa: E402

TIGHT = 1e-5
SURFACE = ["export", "load_model", "load_split", "SUFFIXES", "parity", "relative_error", "EXPORTER", "INPUT_NAME",
           "LATENT_NAME", "OUTPUT_NAME"]


@dataclass(frozen=True)
class Kit:
    """One adapter and the framework pieces the contract needs."""

    name: str
    mod: Any
    call: Callable[[Any, np.ndarray], Any]  # model, ndarray -> raw output (tensor, tuple/list or dict)
    layout: Callable[[np.ndarray], np.ndarray]  # (N, 1, 8, 8) digits -> the framework's layout
    tiny_pair: Callable[[int], tuple[Any, Any]]  # (N, 6) -> (N, 3) -> (N, 6), seeded
    vae_encoder: Callable[[bool], Any]  # (N, 6) -> (mean, logvar) as a sequence or a dict
    linear: Callable[[int, int], Any]  # (N, 3) -> (N, n), seeded
    conv_pair: Callable[[], tuple[Any, Any]]  # digits -> (N, 4 x 2 x 2 in the framework's layout) -> digits
    drifting_decoder: Callable[[], Any]
    iterate: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]  # framework reference of flowcore.iterate
    save: Callable[[Any, Any, Any], str]  # model, example ndarray, folder -> saved file for load_model
    digits: str  # the session fixture holding (encoder, decoder, bundle) of the trained digits AE


@torch.no_grad()
def _torch_call(model, a):
    return model(torch.from_numpy(np.ascontiguousarray(a)))


def _keras_call(model, a):
    return model(tf.constant(a), training=False) if isinstance(model, keras.layers.Layer) else model(tf.constant(a))


def _torch_linear(n, seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, n))


def _torch_vae(as_dict):
    torch.manual_seed(0)
    return tm.VAEEncoder(as_dict).eval()


def _torch_conv_pair():
    torch.manual_seed(0)
    return tm.ConvEncoder(), tm.ConvDecoder()


def _torch_save(model, example, folder):
    path = os.path.join(folder, f"m{len(os.listdir(folder))}.pt2")
    program = torch.export.export(model.eval(), (torch.from_numpy(example),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, path)
    return path


def _keras_save(model, example, folder):
    path = os.path.join(folder, f"m{len(os.listdir(folder))}.keras")
    model.save(path)
    return path


KITS = {
    "torch": Kit("torch", flowcore_torch, _torch_call, lambda x: x, tm.tiny_pair, _torch_vae, _torch_linear,
                 _torch_conv_pair, tm.DriftingDecoder, tm.iterate_torch, _torch_save, "torch_digits"),
    "tensorflow": Kit("tensorflow", flowcore_tensorflow, _keras_call,
                      lambda x: np.ascontiguousarray(x.transpose(0, 2, 3, 1)), km.tiny_pair, km.VAEEncoder,
                      lambda n, seed: keras.Sequential([keras.Input((3,)), km.dense(n, seed)]), km.conv_pair,
                      km.DriftingDecoder, km.iterate_keras, _keras_save, "keras_digits"),
}


@pytest.fixture(params=list(KITS), scope="module")
def kit(request) -> Kit:
    return KITS[request.param]


@pytest.fixture(scope="session")
def torch_digits(torch_digits_ae, digits_bundle):
    return (*torch_digits_ae, digits_bundle)


@pytest.fixture(scope="session")
def keras_digits(digits, tmp_path_factory):
    """The Keras digits AE (``tests/_tf_models.py::train_digits_ae``, k=8, ~2 s) and its bundle."""
    x_train, x_test = (KITS["tensorflow"].layout(digits[k]) for k in ("x_train", "x_test"))
    enc, dec = km.train_digits_ae(x_train, k=8, seed=0)
    bundle = flowcore_tensorflow.export(
        enc, dec, x_train[:64], tmp_path_factory.mktemp("tf_digits_bundle") / "bundle", real_inputs=x_test,
        preprocessing="8x8 scikit-learn digits / 16, float32 in [0, 1], shape (N, 8, 8, 1)",
        notes="tests/test_adapter_contract.py Keras digits MLP autoencoder, k=8",
    )
    return enc, dec, bundle


@pytest.fixture()
def trained(kit, request, digits):
    """(encoder, decoder, bundle, x_test in the kit's layout) of the kit's digits AE."""
    enc, dec, bundle = request.getfixturevalue(kit.digits)
    return enc, dec, bundle, kit.layout(digits["x_test"])


def _np(t) -> np.ndarray:
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def _run(bundle, part, a):
    entry = bundle.manifest[part]
    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(bundle.path / entry["file"]), sess_options=so, providers=["CPUExecutionProvider"])
    return sess.run([entry["output"]], {entry["input"]: a})[0]


_rel = relative_error


def _x6(n=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 6)).astype(np.float32)


# ------------------------------------------------------------------ the surface
def test_identical_public_surface(kit):
    mod = kit.mod
    assert all(name in mod.__all__ and hasattr(mod, name) for name in SURFACE)
    assert (mod.INPUT_NAME, mod.LATENT_NAME, mod.OUTPUT_NAME) == ("x", "z", "x_hat")
    assert mod.relative_error is relative_error  # one parity measure, in the core
    for fn in ("export", "parity", "load_model", "load_split"):
        ref = inspect.signature(getattr(flowcore_torch, fn)).parameters
        got = inspect.signature(getattr(mod, fn)).parameters
        assert [(p.name, p.kind, p.default) for p in got.values()] == [(p.name, p.kind, p.default) for p in ref.values()]


# ------------------------------------------------------------- the digits AE
def test_digits_bundle_manifest(kit, trained):
    enc, dec, b, x = trained
    m = b.manifest
    assert b.input_shape == x.shape[1:] and b.latent_shape == (8,)
    assert (m["encoder"]["input"], m["encoder"]["output"]) == ("x", "z")
    assert (m["decoder"]["input"], m["decoder"]["output"]) == ("z", "x_hat")
    assert m["encoder"]["opset"] == m["decoder"]["opset"] == m["source"]["opset"] == 18
    assert m["source"]["framework"] == kit.name and m["source"]["exporter"] == kit.mod.EXPORTER
    assert m["source"]["version"] == (torch.__version__ if kit.name == "torch" else tf.__version__)
    assert m["encoder"]["ir_version"] == m["decoder"]["ir_version"]
    assert "encoder_output" not in m["source"] and m["preprocessing"].startswith("8x8") and "k=8" in m["notes"]
    if kit.name == "tensorflow":
        assert m["source"]["exporter"] == "tf2onnx.convert.from_function"
        assert m["source"]["keras"] == keras.__version__ and m["source"]["tf2onnx"]
    for part in (b.encoder, b.decoder):
        (vin,), (vout,) = part.graph.input, part.graph.output
        assert vin.type.tensor_type.shape.dim[0].dim_param == "batch"  # symbolic, one name for in and out
        assert vout.type.tensor_type.shape.dim[0].dim_param == "batch"


def test_digits_parity_random_and_real(kit, trained):
    enc, dec, b, x_real = trained
    x_rand = (np.random.default_rng(1).standard_normal((50, *x_real.shape[1:])) * x_real.std()
              + x_real.mean()).astype(np.float32)
    for x in (x_real, x_rand):
        z_t = _np(kit.call(enc, x))
        assert _rel(_run(b, "encoder", x), z_t) <= TIGHT
        assert _rel(_run(b, "decoder", z_t), _np(kit.call(dec, z_t))) <= TIGHT
        for bs in (16, 1024):  # chunked and whole
            res = kit.mod.parity(b, enc, dec, x, batch_size=bs)
            assert res["n"] == len(x) and res["encoder"] <= TIGHT and res["decoder"] <= TIGHT


@pytest.mark.parametrize("n", [1, 3, 257])
def test_dynamic_batch(kit, trained, n):
    enc, dec, b, x_test = trained
    x = np.resize(x_test, (n, *x_test.shape[1:])).astype(np.float32)
    z = _run(b, "encoder", x)
    x_hat = _run(b, "decoder", z)
    assert z.shape == (n, 8) and x_hat.shape == (n, *x_test.shape[1:])
    assert _rel(z, _np(kit.call(enc, x))) <= TIGHT
    assert _rel(x_hat, _np(kit.call(dec, z))) <= TIGHT


def test_digits_latent_map_iterates_like_the_framework(kit, trained):
    """LatentMap fuses the exported graphs; flowcore.iterate and the framework's own iteration
    converge from most test latents (the trajectory tests rely on it) and end at the same points."""
    enc, dec, b, x = trained
    lmap = flowcore.LatentMap(b, providers="cpu")
    z0 = lmap.encode(x)
    assert _rel(z0, _np(kit.call(enc, x))) <= TIGHT
    assert _rel(lmap(z0), _np(kit.call(enc, _np(kit.call(dec, z0))))) <= TIGHT
    traj = flowcore.iterate(lmap, z0, tol=1e-6, max_steps=3000)
    assert traj.converged.mean() >= 0.95
    assert np.median(traj.steps[traj.converged]) < 1000
    z_fw, steps, done = kit.iterate(enc, dec, z0, tol=1e-6, max_steps=3000)
    assert done.mean() >= 0.95 and np.median(steps[done]) < 1000
    both = traj.converged & done
    assert both.mean() >= 0.9
    np.testing.assert_allclose(traj.final[both], z_fw[both], atol=5e-3)


def test_parity_rejects_bad_inputs(kit, trained):
    enc, dec, b, x = trained
    with pytest.raises(ExportError, match="float32"):
        kit.mod.parity(b, enc, dec, x.astype(np.float64))
    with pytest.raises(ExportError, match="expected"):
        kit.mod.parity(b, enc, dec, x.reshape(-1, 64))


def test_tampered_graph_fails_sha256(trained, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(trained[2].path, copy)
    f = copy / "encoder.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        FlowBundle.load(copy)
    assert (copy / MANIFEST).is_file()


# ------------------------------------------------------------ output selection
@pytest.mark.parametrize("as_dict", [False, True], ids=["sequence", "dict"])
@pytest.mark.parametrize("choice", [None, "other"])
def test_structured_encoder_output(kit, tmp_path, as_dict, choice):
    enc, dec = kit.vae_encoder(as_dict), kit.linear(6, 4)
    pick = None if choice is None else ("logvar" if as_dict else 1)
    x = _x6()
    b = kit.mod.export(enc, dec, x, tmp_path / "b", encoder_output=pick)
    out = kit.call(enc, x)
    if as_dict:
        want, other = ("mean", "logvar") if pick is None else ("logvar", "mean")
    else:
        want, other = (0, 1) if pick is None else (1, 0)
    assert b.latent_shape == (3,)
    assert b.manifest["source"]["encoder_output"] == want
    assert [v.name for v in b.encoder.graph.output] == ["z"]
    z = _run(b, "encoder", x)
    assert _rel(z, _np(out[want])) <= TIGHT
    assert _rel(z, _np(out[other])) > 1e-3  # it really is the chosen one
    res = kit.mod.parity(b, enc, dec, x, encoder_output=pick)
    assert res["encoder"] <= TIGHT and res["decoder"] <= TIGHT


@pytest.mark.parametrize(
    "as_dict, pick, match",
    [(False, 2, "does not index"), (False, "mean", "does not index"), (True, "sigma", "not a key"), (True, 0, "not a key")],
)
def test_bad_encoder_output(kit, tmp_path, as_dict, pick, match):
    with pytest.raises(ExportError, match=match):
        kit.mod.export(kit.vae_encoder(as_dict), kit.linear(6, 0), _x6(), tmp_path / "b", encoder_output=pick)
    assert not (tmp_path / "b").exists()


def test_tensor_encoder_rejects_encoder_output(kit, tmp_path):
    enc, dec = kit.tiny_pair(0)
    with pytest.raises(ExportError, match="single tensor"):
        kit.mod.export(enc, dec, _x6(), tmp_path / "b", encoder_output=0)


# --------------------------------------------------------------- shapes, batch
def test_nonflat_latent(kit, tmp_path, digits):
    enc, dec = kit.conv_pair()
    x, x_test = kit.layout(digits["x_train"][:16]), kit.layout(digits["x_test"])
    b = kit.mod.export(enc, dec, x, tmp_path / "conv", real_inputs=x_test)
    latent = (4, 2, 2) if kit.name == "torch" else (2, 2, 4)
    assert b.input_shape == x.shape[1:] and b.latent_shape == latent and b.latent_dim == 16
    assert b.manifest["input_shape"] == list(x.shape[1:]) and b.manifest["latent_shape"] == list(latent)
    res = kit.mod.parity(b, enc, dec, x_test)
    assert res["encoder"] <= TIGHT and res["decoder"] <= TIGHT
    assert _run(b, "encoder", x_test[:5]).shape == (5, *latent)
    lmap = flowcore.LatentMap(b, providers="cpu")
    z = lmap.encode(x_test[:20])
    assert z.shape == (20, *latent)
    assert _rel(lmap(z), _np(kit.call(enc, _np(kit.call(dec, z))))) <= TIGHT


def test_example_batch_of_one_stays_dynamic(kit, tmp_path):
    enc, dec = kit.tiny_pair(0)
    b = kit.mod.export(enc, dec, _x6(1), tmp_path / "b")
    for part in (b.encoder, b.decoder):
        for vi in (part.graph.input[0], part.graph.output[0]):
            assert vi.type.tensor_type.shape.dim[0].dim_param == "batch"
    x = _x6(5, seed=2)
    assert _run(b, "encoder", x).shape == (5, 3)
    assert _rel(_run(b, "encoder", x), _np(kit.call(enc, x))) <= TIGHT


# ------------------------------------------------------------------ failures
def test_broken_parity_raises_and_leaves_nothing(kit, tmp_path):
    enc, dec = kit.tiny_pair(0)[0], kit.drifting_decoder()
    with pytest.raises(ExportError, match=r"parity failed: the decoder on (random|real) inputs .* relative error") as ei:
        kit.mod.export(enc, dec, _x6(), tmp_path / "b")
    assert "\n" not in str(ei.value)
    assert list(tmp_path.iterdir()) == []  # no bundle, no staging folder
    # without the check the export succeeds, and parity() sees the drift: the graph holds one
    # frozen counter value, two successive eager calls hold two different ones
    b = kit.mod.export(enc, dec, _x6(), tmp_path / "b", check=False)
    errs = [kit.mod.parity(b, enc, dec, _x6())["decoder"] for _ in range(2)]
    assert max(errs) > 1e-2


def test_decoder_shape_mismatch(kit, tmp_path):
    enc = kit.tiny_pair(0)[0]
    with pytest.raises(ExportError, match="input shape") as ei:
        kit.mod.export(enc, kit.linear(5, 1), _x6(), tmp_path / "b")
    assert "\n" not in str(ei.value)
    assert list(tmp_path.iterdir()) == []


def test_float64_input_refused(kit, tmp_path):
    enc, dec = kit.tiny_pair(0)
    with pytest.raises(ExportError, match="float32"):
        kit.mod.export(enc, dec, _x6().astype(np.float64), tmp_path / "b")


def test_existing_path_needs_overwrite(kit, tmp_path):
    enc, dec = kit.tiny_pair(0)
    b = kit.mod.export(enc, dec, _x6(), tmp_path / "b")
    with pytest.raises(BundleError, match="already exists"):
        kit.mod.export(enc, dec, _x6(), tmp_path / "b")
    enc2, dec2 = kit.tiny_pair(7)
    b2 = kit.mod.export(enc2, dec2, _x6(), tmp_path / "b", overwrite=True)
    assert b2.sha256 != b.sha256 and FlowBundle.load(tmp_path / "b").sha256 == b2.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("user data")
    with pytest.raises(BundleError, match="not a FlowBundle"):
        kit.mod.export(enc, dec, _x6(), tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "keep.txt").is_file()


def test_failed_overwrite_keeps_old_bundle(kit, tmp_path):
    enc, dec = kit.tiny_pair(0)
    b = kit.mod.export(enc, dec, _x6(), tmp_path / "b")
    with pytest.raises(ExportError):
        kit.mod.export(enc, kit.drifting_decoder(), _x6(), tmp_path / "b", overwrite=True)
    assert FlowBundle.load(tmp_path / "b").sha256 == b.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


# ------------------------------------------------------------------ load_model
def test_load_model_round_trip(kit, trained, tmp_path):
    """Saved halves -> load_model -> export: the same latent map as the live models' bundle."""
    enc, dec, b, x = trained
    folder = tmp_path / "saved"
    folder.mkdir()
    z = _np(kit.call(enc, x[:4]))
    enc_l = kit.mod.load_model(kit.save(enc, x[:4], str(folder)))
    dec_l = kit.mod.load_model(kit.save(dec, z, str(folder)))
    b2 = kit.mod.export(enc_l, dec_l, x[:64], tmp_path / "b2", real_inputs=x)
    assert b2.input_shape == b.input_shape and b2.latent_shape == b.latent_shape
    res = kit.mod.parity(b2, enc, dec, x)  # the loaded halves compute what the live ones do
    assert res["encoder"] <= TIGHT and res["decoder"] <= TIGHT
    la, lb = flowcore.LatentMap(b, providers="cpu"), flowcore.LatentMap(b2, providers="cpu")
    z0 = la.encode(x)
    np.testing.assert_allclose(lb.encode(x), z0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lb(z0), la(z0), rtol=1e-5, atol=1e-6)


def test_load_model_refuses_in_one_line(kit, tmp_path):
    suffix = sorted(kit.mod.SUFFIXES)[0]
    with pytest.raises(ExportError, match="no such model file"):
        kit.mod.load_model(tmp_path / f"missing{suffix}")
    (tmp_path / f"junk{suffix}").write_bytes(b"nope")
    with pytest.raises(ExportError) as ei:
        kit.mod.load_model(tmp_path / f"junk{suffix}")
    assert "\n" not in str(ei.value)
    (tmp_path / "m.unknown").write_bytes(b"nope")
    with pytest.raises(ExportError, match="unknown"):
        kit.mod.load_model(tmp_path / "m.unknown")
