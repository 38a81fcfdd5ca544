"""flowcore_torch.export: parity, dynamic batch, output selection, failure modes."""

from __future__ import annotations

import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import flowcore_torch  # noqa: E402
from flowcore.bundle.flowbundle import MANIFEST, FlowBundle  # noqa: E402
from flowcore.errors import BundleError, ExportError  # noqa: E402

from _models import iterate_torch  # noqa: E402

TIGHT = 1e-5


def _session(path):
    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def _run(bundle, part, a):
    entry = bundle.manifest[part]
    return _session(bundle.path / entry["file"]).run([entry["output"]], {entry["input"]: a})[0]


@torch.no_grad()
def _torch(module, a):
    return module(torch.from_numpy(a))


def _rel(got, ref):
    return flowcore_torch.relative_error(got, ref)


# ----------------------------------------------------------------- small models
class VAEEncoder(nn.Module):
    """(N, 6) -> (mean, logvar) each (N, 3), as a tuple or a dict."""

    def __init__(self, as_dict: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.Tanh())
        self.mean, self.logvar = nn.Linear(16, 3), nn.Linear(16, 3)
        self.as_dict = as_dict

    def forward(self, x):
        h = self.body(x)
        m, lv = self.mean(h), self.logvar(h)
        return {"logvar": lv, "mean": m} if self.as_dict else (m, lv)


class ConvEncoder(nn.Sequential):
    """(N, 1, 8, 8) -> (N, 4, 2, 2)."""

    def __init__(self):
        super().__init__(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1))


class ConvDecoder(nn.Sequential):
    """(N, 4, 2, 2) -> (N, 1, 8, 8)."""

    def __init__(self):
        super().__init__(
            nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(4, 1, 4, stride=2, padding=1), nn.Sigmoid(),
        )


class DriftingDecoder(nn.Module):
    """Adds a Python-side call counter: the exported graph freezes the value seen at trace time,
    while any two eager calls differ, so ONNX and torch genuinely disagree on at least one of
    the two parity sets (random, real) that export checks."""

    def __init__(self, k: int = 3, n: int = 6):
        super().__init__()
        self.lin = nn.Linear(k, n)
        self.calls = 0

    def forward(self, z):
        self.calls += 1
        return self.lin(z) + float(self.calls)


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent Python control flow: torch.export refuses it
            return x * 2
        return x


def _tiny_pair(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 3)), nn.Sequential(nn.Linear(3, 6), nn.Tanh())


def _x6(n=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 6)).astype(np.float32)


# ------------------------------------------------------------- the digits AE
def test_digits_bundle_manifest(digits_bundle):
    m = digits_bundle.manifest
    assert digits_bundle.input_shape == (1, 8, 8) and digits_bundle.latent_shape == (8,)
    assert (m["encoder"]["input"], m["encoder"]["output"]) == ("x", "z")
    assert (m["decoder"]["input"], m["decoder"]["output"]) == ("z", "x_hat")
    assert m["encoder"]["opset"] == m["decoder"]["opset"] == 18
    assert m["source"]["framework"] == "torch" and m["source"]["exporter"] == flowcore_torch.EXPORTER
    assert m["source"]["version"] == torch.__version__
    for part in (digits_bundle.encoder, digits_bundle.decoder):
        assert part.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch


def test_digits_parity_random_and_real(digits_bundle, torch_digits_ae, digits):
    enc, dec = torch_digits_ae
    x_real = digits["x_test"]
    x_rand = (np.random.default_rng(1).standard_normal((50, 1, 8, 8)) * x_real.std() + x_real.mean()).astype(np.float32)
    for x in (x_real, x_rand):
        z_t = _torch(enc, x).numpy()
        assert _rel(_run(digits_bundle, "encoder", x), z_t) <= TIGHT
        assert _rel(_run(digits_bundle, "decoder", z_t), _torch(dec, z_t).numpy()) <= TIGHT
        res = flowcore_torch.parity(digits_bundle, enc, dec, x)
        assert res["n"] == len(x) and res["encoder"] <= TIGHT and res["decoder"] <= TIGHT


@pytest.mark.parametrize("n", [1, 3, 257])
def test_dynamic_batch(digits_bundle, torch_digits_ae, digits, n):
    enc, dec = torch_digits_ae
    x = np.resize(digits["x_test"], (n, 1, 8, 8)).astype(np.float32)
    z = _run(digits_bundle, "encoder", x)
    x_hat = _run(digits_bundle, "decoder", z)
    assert z.shape == (n, 8) and x_hat.shape == (n, 1, 8, 8)
    assert _rel(z, _torch(enc, x).numpy()) <= TIGHT
    assert _rel(x_hat, _torch(dec, z).numpy()) <= TIGHT


def test_digits_dynamics_converge(torch_digits_ae, digits):
    """Trajectory/attractor tests rely on this model's f = E∘D settling from real latents."""
    enc, dec = torch_digits_ae
    z0 = _torch(enc, digits["x_test"]).numpy()
    _, steps, done = iterate_torch(enc, dec, z0, tol=1e-6, max_steps=3000)
    assert done.mean() >= 0.95
    assert np.median(steps[done]) < 1000


# ------------------------------------------------------------ output selection
@pytest.mark.parametrize("as_dict", [False, True], ids=["tuple", "dict"])
@pytest.mark.parametrize("choice", [None, "other"])
def test_structured_encoder_output(tmp_path, as_dict, choice):
    torch.manual_seed(0)
    enc = VAEEncoder(as_dict).eval()
    dec = nn.Sequential(nn.Linear(3, 6))
    pick = None if choice is None else ("logvar" if as_dict else 1)
    x = _x6()
    b = flowcore_torch.export(enc, dec, x, tmp_path / "b", encoder_output=pick)
    out = _torch(enc, x)
    if as_dict:
        want, other = ("mean", "logvar") if pick is None else ("logvar", "mean")
    else:
        want, other = (0, 1) if pick is None else (1, 0)
    assert b.latent_shape == (3,)
    assert b.manifest["source"]["encoder_output"] == want
    z = _run(b, "encoder", x)
    assert _rel(z, out[want].numpy()) <= TIGHT
    assert _rel(z, out[other].numpy()) > 1e-3  # it really is the chosen one


@pytest.mark.parametrize(
    "as_dict, pick, match",
    [(False, 2, "does not index"), (False, "mean", "does not index"), (True, "sigma", "not a key"), (True, 0, "not a key")],
)
def test_bad_encoder_output(tmp_path, as_dict, pick, match):
    with pytest.raises(ExportError, match=match):
        flowcore_torch.export(VAEEncoder(as_dict), nn.Linear(3, 6), _x6(), tmp_path / "b", encoder_output=pick)
    assert not (tmp_path / "b").exists()


def test_tensor_encoder_rejects_encoder_output(tmp_path):
    enc, dec = _tiny_pair()
    with pytest.raises(ExportError, match="single tensor"):
        flowcore_torch.export(enc, dec, _x6(), tmp_path / "b", encoder_output=0)


# --------------------------------------------------------------- shapes, batch
def test_nonflat_latent(tmp_path, digits):
    torch.manual_seed(0)
    enc, dec = ConvEncoder(), ConvDecoder()
    x = digits["x_train"][:16]
    b = flowcore_torch.export(enc, dec, x, tmp_path / "conv", real_inputs=digits["x_test"])
    assert b.input_shape == (1, 8, 8) and b.latent_shape == (4, 2, 2) and b.latent_dim == 16
    assert b.manifest["input_shape"] == [1, 8, 8] and b.manifest["latent_shape"] == [4, 2, 2]
    res = flowcore_torch.parity(b, enc, dec, digits["x_test"])
    assert res["encoder"] <= TIGHT and res["decoder"] <= TIGHT
    assert _run(b, "encoder", digits["x_test"][:5]).shape == (5, 4, 2, 2)


def test_example_batch_of_one_stays_dynamic(tmp_path):
    enc, dec = _tiny_pair()
    x1 = _x6(1)
    b = flowcore_torch.export(enc, dec, torch.from_numpy(x1), tmp_path / "b")
    for part in (b.encoder, b.decoder):
        for vi in (part.graph.input[0], part.graph.output[0]):
            assert vi.type.tensor_type.shape.dim[0].HasField("dim_param")
    x = _x6(5, seed=2)
    assert _run(b, "encoder", x).shape == (5, 3)
    assert _rel(_run(b, "encoder", x), _torch(enc, x).numpy()) <= TIGHT


def test_modes_restored_and_eval_used(tmp_path):
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(6, 3), nn.Dropout(0.5))  # train-mode dropout would break parity
    dec = nn.Sequential(nn.Linear(3, 6))
    enc.train()
    dec.eval()
    enc[0].eval()  # mixed modes inside one module come back as they were
    flowcore_torch.export(enc, dec, _x6(), tmp_path / "b")
    assert enc.training and not enc[0].training and enc[1].training and not dec.training


# ------------------------------------------------------------------ failures
def test_broken_parity_raises_and_leaves_nothing(tmp_path):
    torch.manual_seed(0)
    enc, dec = nn.Linear(6, 3), DriftingDecoder()
    with pytest.raises(ExportError, match=r"parity failed: the decoder on (random|real) inputs .* relative error") as ei:
        flowcore_torch.export(enc, dec, _x6(), tmp_path / "b")
    assert "\n" not in str(ei.value)
    assert list(tmp_path.iterdir()) == []  # no bundle, no staging folder
    # the same export without the check succeeds, and parity() sees the drift: the graph holds
    # one frozen counter value, two successive eager calls hold two different ones
    b = flowcore_torch.export(enc, dec, _x6(), tmp_path / "b", check=False)
    errs = [flowcore_torch.parity(b, enc, dec, _x6())["decoder"] for _ in range(2)]
    assert max(errs) > 1e-2


def test_exporter_failure_is_one_line_export_error(tmp_path):
    with pytest.raises(ExportError, match="failed for the encoder") as ei:
        flowcore_torch.export(DataDependent(), nn.Identity(), _x6(), tmp_path / "b")
    assert "\n" not in str(ei.value)
    assert ei.value.__cause__ is not None
    assert list(tmp_path.iterdir()) == []


def test_opset_below_18_is_exact_or_refused(tmp_path):
    """Below 18 the exporter down-converts with onnx's converter and, when that fails (onnx 1.23:
    no adapter for Shape-15 -> 13), silently keeps opset 18. Either the bundle really is opset
    13 or export refuses: the manifest never mislabels."""
    enc = nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
    dec = nn.Sequential(nn.Linear(3, 6), nn.Unflatten(1, (1, 2, 3)))
    try:
        b = flowcore_torch.export(enc, dec, _x6().reshape(8, 1, 2, 3), tmp_path / "b", opset=13)
    except ExportError as exc:
        assert "opset 18, not the requested 13" in str(exc)
        assert list(tmp_path.iterdir()) == []
    else:
        assert b.manifest["encoder"]["opset"] == b.manifest["decoder"]["opset"] == 13


def test_decoder_shape_mismatch(tmp_path):
    with pytest.raises(ExportError, match="input shape"):
        flowcore_torch.export(nn.Linear(6, 3), nn.Linear(3, 5), _x6(), tmp_path / "b")


def test_float64_input_refused(tmp_path):
    enc, dec = _tiny_pair()
    with pytest.raises(ExportError, match="float32"):
        flowcore_torch.export(enc, dec, _x6().astype(np.float64), tmp_path / "b")


def test_existing_path_needs_overwrite(tmp_path):
    enc, dec = _tiny_pair()
    b = flowcore_torch.export(enc, dec, _x6(), tmp_path / "b")
    with pytest.raises(BundleError, match="already exists"):
        flowcore_torch.export(enc, dec, _x6(), tmp_path / "b")
    enc2, dec2 = _tiny_pair(seed=1)
    b2 = flowcore_torch.export(enc2, dec2, _x6(), tmp_path / "b", overwrite=True)
    assert b2.sha256 != b.sha256 and FlowBundle.load(tmp_path / "b").sha256 == b2.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("user data")
    with pytest.raises(BundleError, match="not a FlowBundle"):
        flowcore_torch.export(enc, dec, _x6(), tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "keep.txt").is_file()


def test_failed_overwrite_keeps_old_bundle(tmp_path):
    enc, dec = _tiny_pair()
    b = flowcore_torch.export(enc, dec, _x6(), tmp_path / "b")
    with pytest.raises(ExportError):
        flowcore_torch.export(nn.Linear(6, 3), DriftingDecoder(), _x6(), tmp_path / "b", overwrite=True)
    assert FlowBundle.load(tmp_path / "b").sha256 == b.sha256


def test_tampered_graph_fails_sha256(digits_bundle, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(digits_bundle.path, copy)
    f = copy / "encoder.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        FlowBundle.load(copy)
    assert (copy / MANIFEST).is_file()


# ------------------------------------------------------------------ demo data
def test_shipped_demo_matches_fixture_split(digits):
    """tools/make_demo_bundle.py and the ``digits`` fixture use one split; the demo bundle loads."""
    from flowcore.cli.demo import demo_paths  # noqa: PLC0415
    from flowcore.io import load_npz  # noqa: PLC0415

    bundle_dir, data_file = demo_paths()
    assert data_file.is_file(), "the shipped demo is missing: run tools/make_demo_bundle.py"
    arrays = load_npz(data_file)
    assert arrays["x"].dtype == np.float32 and arrays["y"].dtype == np.int64
    np.testing.assert_array_equal(arrays["x"], digits["x_test"])
    np.testing.assert_array_equal(arrays["y"], digits["y_test"])
    b = FlowBundle.load(bundle_dir)
    assert b.input_shape == (1, 8, 8) and b.latent_shape == (8,)
    assert sum(p.stat().st_size for p in data_file.parent.rglob("*") if p.is_file()) < 200 * 1024
