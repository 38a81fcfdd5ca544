"""Subnormal weights: counted by bit pattern, flushed in the in-memory graphs only, outputs unchanged."""

import subprocess
import sys

import numpy as np
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.bundle.subnormal import count_subnormals, flush_subnormals, subnormal_mask
from flowcore.dynamics.trajectories import iterate
from flowcore.io import sha256_file
from flowcore.runtime.latent_map import LatentMap

from _graphs import affine_graph

TINY32 = np.finfo(np.float32).tiny


def _subnormals(rng, n):
    """n float32 subnormals of mixed sign, made from bit patterns (float arithmetic would give 0 once
    an ONNX Runtime session set flush-to-zero in this thread)."""
    bits = rng.integers(1, 0x007FFFFF, n, dtype=np.uint32) | (rng.integers(0, 2, n, dtype=np.uint32) << 31)
    return bits.view(np.float32)


def _subnormal_pair(tmp_path, n_sub=40):
    """A tanh autoencoder 8 -> 4 -> 8 whose weights hold ``n_sub`` subnormal values (signs mixed)."""
    rng = np.random.default_rng(3)
    We = rng.standard_normal((8, 4)).astype(np.float32) * 0.4
    Wd = rng.standard_normal((4, 8)).astype(np.float32) * 0.4
    flat = np.concatenate([We.ravel(), Wd.ravel()])
    idx = rng.choice(flat.size, n_sub, replace=False)
    flat[idx] = _subnormals(rng, n_sub)
    We, Wd = flat[:32].reshape(8, 4), flat[32:].reshape(4, 8)
    enc = affine_graph(We, np.zeros(4), name="enc", inp="x", out="z", act="Tanh")
    dec = affine_graph(Wd, np.zeros(8), name="dec", inp="z", out="x_hat", act="Tanh")
    bundle = FlowBundle.write(tmp_path / "b", enc, dec)
    return bundle, int(subnormal_mask(flat).sum())


def test_mask_reads_bits():
    bits = [0x00000000, 0x80000000, 0x00800000, 0x00400000, 0x80155555, 0x3F800000, 0x7F800000, 0x7FC00000, 0x80000001]
    a = np.array(bits, np.uint32).view(np.float32)
    assert subnormal_mask(a).tolist() == [False, False, False, True, True, False, False, False, True]
    h = np.array([0x0100, 0x3C00], np.uint16).view(np.float16)
    assert subnormal_mask(h).tolist() == [True, False]
    assert not subnormal_mask(np.arange(3)).any()


def test_flush_keeps_sign_and_everything_else(tmp_path):
    bundle, n = _subnormal_pair(tmp_path)
    assert n > 0
    total = count_subnormals(bundle.encoder) + count_subnormals(bundle.decoder)
    assert total == n
    flushed, got = flush_subnormals(bundle.encoder)
    assert got == count_subnormals(bundle.encoder) and count_subnormals(flushed) == 0
    from onnx import numpy_helper

    before = numpy_helper.to_array(bundle.encoder.graph.initializer[0])
    after = numpy_helper.to_array(flushed.graph.initializer[0])
    sub = subnormal_mask(before)
    assert np.array_equal(after[~sub], before[~sub])
    assert np.all(after[sub] == 0) and np.array_equal(np.signbit(after[sub]), np.signbit(before[sub]))
    same, zero = flush_subnormals(flushed)
    assert zero == 0 and same is flushed


def test_flushed_map_equals_original(tmp_path):
    bundle, n = _subnormal_pair(tmp_path)
    hashes = {f: sha256_file(bundle.path / f) for f in ("encoder.onnx", "decoder.onnx", "flow.json")}
    plain = LatentMap(bundle, providers="cpu", flush_subnormals=False)
    fast = LatentMap(bundle, providers="cpu")
    x = np.random.default_rng(0).random((300, 8), dtype=np.float32)
    assert np.array_equal(fast.encode(x), plain.encode(x))
    z = plain.encode(x)
    assert np.array_equal(fast.decode(z), plain.decode(z))
    assert np.array_equal(fast(z), plain(z))
    a, b = iterate(fast, z, progress=False), iterate(plain, z, progress=False)
    assert np.array_equal(a.final, b.final) and np.array_equal(a.steps, b.steps) and np.array_equal(a.status, b.status)
    assert a.settings["subnormal_weights"] == {"count": n, "flushed": True} and "subnormal_weights" not in b.settings
    info = fast.subnormals
    assert info["fused"]["count"] == n and info["fused"]["flushed"]
    assert info["encoder"]["flushed"] and info["decoder"]["flushed"]
    assert info["encoder"]["count"] + info["decoder"]["count"] == n
    assert count_subnormals(fast.fused_model) == 0
    assert plain.subnormals == {} and fast.count_subnormals() == plain.count_subnormals()
    assert fast.describe()["subnormals"]["fused"]["count"] == n
    # the bundle on disk and its hashes are unchanged
    assert {f: sha256_file(bundle.path / f) for f in hashes} == hashes
    FlowBundle.load(bundle.path)


def test_counting_survives_a_denormals_are_zero_thread(tmp_path):
    """After a session with set_denormal_as_zero ran in this thread, the count is still right."""
    bundle, n = _subnormal_pair(tmp_path)
    code = (
        "import numpy as np\n"
        "from flowcore.runtime.latent_map import LatentMap\n"
        "from flowcore.bundle.subnormal import count_subnormals\n"
        f"first = LatentMap(r'{bundle.path}', providers='cpu')\n"
        "first.encode(np.zeros((2, 8), np.float32))\n"
        "daz = np.float32(1e-40) * np.float32(1.0) == 0\n"
        f"second = LatentMap(r'{bundle.path}', providers='cpu')\n"
        "second(np.zeros((2, 4), np.float32))\n"
        "print(int(daz), second.subnormals['fused']['count'], count_subnormals(second.bundle.encoder) + count_subnormals(second.bundle.decoder))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    _daz, fused, total = map(int, out.stdout.split())
    assert fused == n and total == n


_REFUSED = """
import warnings
import numpy as np, onnx, onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.runtime.latent_map import LatentMap, SubnormalWarning
tiny = np.finfo(np.float32).tiny

def div_graph(name, inp, out):
    d = numpy_helper.from_array(np.full((4,), tiny / 2, np.float32), "d")
    s = numpy_helper.from_array(np.full((4,), tiny / 2, np.float32), "s")
    nodes = [helper.make_node("Mul", [inp, "s"], ["t"]), helper.make_node("Div", ["t", "d"], [out])]
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info(inp, TensorProto.FLOAT, ["batch", 4])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", 4])], initializer=[d, s])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 10
    return m

bundle = FlowBundle.write(r"{path}", div_graph("enc", "x", "z"), div_graph("dec", "z", "x_hat"))
z = np.ones((3, 4), np.float32)
# plain session options (no denormals-as-zero), in a fresh process whose thread never ran one
lm = LatentMap(bundle, providers="cpu", session_options=ort.SessionOptions())
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = lm(z)
ref = LatentMap(bundle, providers="cpu", session_options=ort.SessionOptions(), flush_subnormals=False)(z)
print(sum(issubclass(w.category, SubnormalWarning) for w in caught), int(np.array_equal(out, ref)),
      int(lm.subnormals["fused"]["flushed"]), int(np.isfinite(out).all()))
"""


def test_flush_that_changes_outputs_is_refused(tmp_path):
    """A graph that divides by a subnormal changes when flushed: the original graph is kept, with a warning.

    Runs in a fresh process: once a denormals-as-zero session has run in a thread, that thread
    treats subnormals as zero for every later graph (and NumPy), so the difference would vanish.
    """
    out = subprocess.run([sys.executable, "-c", _REFUSED.replace("{path}", str(tmp_path / "div"))],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    warned, equal, flushed, finite = map(int, out.stdout.split())
    assert warned == 1 and equal == 1 and flushed == 0 and finite == 1


def test_info_reports_subnormal_counts(tmp_path, capsys):
    import json

    from flowcore.cli import main

    bundle, n = _subnormal_pair(tmp_path)
    assert main(["info", str(bundle.path), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)["subnormal_weights"]
    assert counts["encoder"] + counts["decoder"] == n and counts == LatentMap(bundle, providers="cpu").count_subnormals()
    from flowcore.cli.demo import demo_paths

    assert main(["info", str(demo_paths()[0]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["subnormal_weights"] == {"encoder": 165, "decoder": 0}


def test_export_writes_flushed_graphs(tmp_path):
    """The adapters' shared staged write flushes subnormal weights and records the counts."""
    from flowcore.bundle.export import write_staged

    rng = np.random.default_rng(5)
    We = rng.standard_normal((8, 4)).astype(np.float32)
    We.ravel()[:7] = _subnormals(rng, 7)
    enc = affine_graph(We, np.zeros(4), name="enc", inp="x", out="z", act="Tanh")
    dec = affine_graph(rng.standard_normal((4, 8)).astype(np.float32), np.zeros(8), name="dec", inp="z", out="x_hat")
    seen = []
    b = write_staged(tmp_path / "flushed", enc, dec, source={"framework": "test"},
                     check=lambda bundle: seen.append(count_subnormals(bundle.encoder)))
    assert seen == [0]
    loaded = FlowBundle.load(b.path)
    assert count_subnormals(loaded.encoder) == 0 and count_subnormals(loaded.decoder) == 0
    assert loaded.manifest["source"]["subnormals_flushed_encoder"] == 7
    assert loaded.manifest["source"]["subnormals_flushed_decoder"] == 0
    kept = write_staged(tmp_path / "kept", enc, dec, source={"framework": "test"}, flush_subnormals=False)
    assert count_subnormals(FlowBundle.load(kept.path).encoder) == 7
