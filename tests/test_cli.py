"""The flowcore CLI: happy paths, and bad input as one line with exit code 3."""

import json
import subprocess
import sys

import numpy as np
import pytest

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.cli.app import main
from flowcore.io import save_npz

from _graphs import affine_graph, contraction_to, rotation, two_attractors


@pytest.fixture
def bundle(tmp_path):
    a, b, u = np.array([2.0, 1.0]), np.array([-1.0, -3.0]), np.array([1.0, 0.0])
    return FlowBundle.write(tmp_path / "b", *two_attractors(a, b, u))


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_info(bundle, capsys):
    code, out, _ = run(["info", str(bundle.path), "--json"], capsys)
    assert code == 0 and json.loads(out)["latent_shape"] == [2]


def test_trajectories_noise(bundle, tmp_path, capsys):
    code, out, _ = run(["trajectories", str(bundle.path), "--noise", "50", "--seed", "3", "--out", str(tmp_path / "o"), "--json"], capsys)
    s = json.loads(out)
    assert code == 0 and s["converged"] == 50 and s["starts"]["seed"] == 3
    assert (tmp_path / "o" / "trajectories.npz").is_file() and (tmp_path / "o" / "summary.json").is_file()


def test_attractors_data(bundle, tmp_path, capsys):
    x = np.random.default_rng(0).uniform(-4, 4, size=(64, 2)).astype(np.float32)
    save_npz(tmp_path / "x.npz", x=x)
    code, out, _ = run(["attractors", str(bundle.path), "--data", str(tmp_path / "x.npz"), "--metric", "euclidean",
                        "--threshold", "0.01", "--out", str(tmp_path / "o")], capsys)
    assert code == 0 and "distinct attractors 2" in out
    att = json.loads((tmp_path / "o" / "attractors.json").read_text())
    assert att["n_attractors"] == 2 and att["settings"]["trajectory_tol"] == 1e-6


def _one_line_error(code, out, err, expect=3):
    assert code == expect, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err


def test_bad_inputs_exit_3(bundle, tmp_path, capsys):
    _one_line_error(*run(["info", str(tmp_path / "missing")], capsys))
    # tampered hash
    p = bundle.path / "decoder.onnx"
    data = bytearray(p.read_bytes())
    data[-3] ^= 0x55
    p.write_bytes(bytes(data))
    code, out, err = run(["info", str(bundle.path)], capsys)
    _one_line_error(code, out, err)
    assert "sha256" in err


def test_truncated_and_mismatched(tmp_path, capsys):
    enc = affine_graph(np.eye(3, 4), np.zeros(4), name="e", inp="x", out="z")
    dec = affine_graph(np.eye(3), np.zeros(3), name="d", inp="z", out="x_hat")
    good_enc, good_dec = contraction_to(np.zeros(3), 0.5)
    b = FlowBundle.write(tmp_path / "b", good_enc, good_dec)
    # E/D shape mismatch: swap in a decoder that takes 3 while E emits 4 (with matching hashes)
    (b.path / "encoder.onnx").write_bytes(enc.SerializeToString())
    (b.path / "decoder.onnx").write_bytes(dec.SerializeToString())
    m = json.loads((b.path / "flow.json").read_text())
    from flowcore.io import sha256_file

    def rehash(part):  # a manifest that matches the swapped files (hash, and size where recorded)
        m[part]["sha256"] = sha256_file(b.path / f"{part}.onnx")
        if "size" in m[part]:
            m[part]["size"] = (b.path / f"{part}.onnx").stat().st_size

    for part in ("encoder", "decoder"):
        rehash(part)
    (b.path / "flow.json").write_text(json.dumps(m))
    code, out, err = run(["trajectories", str(b.path), "--noise", "3"], capsys)
    _one_line_error(code, out, err)
    assert "does not match" in err
    # truncated ONNX with a matching hash
    half = enc.SerializeToString()[:40]
    (b.path / "encoder.onnx").write_bytes(half)
    rehash("encoder")
    (b.path / "flow.json").write_text(json.dumps(m))
    _one_line_error(*run(["info", str(b.path)], capsys))


def test_wrong_data_shape(bundle, tmp_path, capsys):
    save_npz(tmp_path / "x.npz", x=np.zeros((5, 3), np.float32))
    code, out, err = run(["trajectories", str(bundle.path), "--data", str(tmp_path / "x.npz")], capsys)
    _one_line_error(code, out, err)
    assert "(5, 3)" in err and "expected (N, 2)" in err
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    _one_line_error(*run(["trajectories", str(bundle.path), "--data", str(tmp_path / "junk.npz")], capsys))
    _one_line_error(*run(["trajectories", str(bundle.path), "--data", str(tmp_path / "nope.npz")], capsys))
    assert not (tmp_path / "o").exists()


def test_usage_errors_exit_2(bundle, capsys):
    _one_line_error(*run(["bogus"], capsys), expect=2)
    _one_line_error(*run(["trajectories", str(bundle.path)], capsys), expect=2)  # no start source


def test_subprocess_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flowcore", "info", str(tmp_path / "nothing")],
                          capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr


def test_demo(tmp_path, capsys):
    code, out, err = run(["demo", "--out", str(tmp_path / "demo"), "--json", "--quiet"], capsys)
    assert code == 0, err
    s = json.loads(out)
    assert set(s["runs"]) == {"test digits", "latent noise N(0,I)"}
    for part in s["runs"].values():
        t = part["trajectories"]
        assert t["converged"] + t["max_steps"] + t["diverged"] == t["n_starts"]
        assert part["attractors"]["cosine>0.99"]["n_attractors"] >= 1
    assert json.loads((tmp_path / "demo" / "demo_summary.json").read_text())["seed"] == 0


def test_attractors_starts_then_stability(bundle, tmp_path, capsys):
    out = tmp_path / "att"
    code, text, err = run(["attractors", str(bundle.path), "--starts", "noise:300", "--metric", "euclidean",
                           "--threshold", "0.01", "--out", str(out)], capsys)
    assert code == 0, err
    code, text, err = run(["stability", str(out), "--json"], capsys)
    assert code == 0, err
    rep = json.loads(text)
    assert rep["n_points"] == 2 and rep["label"] == ["stable", "stable"]
    np.testing.assert_allclose(rep["spectral_radius"], [0.5, 0.5], atol=1e-3)
    for row in rep["rate_check"]:
        assert abs(row["predicted_median_steps"] - row["measured_median_steps"]) <= 2
    assert (out / "stability.npz").is_file()
    _one_line_error(*run(["stability", str(tmp_path / "nothing")], capsys))
    _one_line_error(*run(["attractors", str(bundle.path), "--starts", "noise:abc"], capsys))


def test_progress_forced_on_and_off_without_a_tty(tmp_path, capsys):
    # stderr here is pytest's capture, not a terminal: by default no bar; --progress forces one (the bar
    # shows once a run passes tqdm's 1 s delay), --no-progress forbids it. A rotation never converges, so
    # every start runs --max-steps; the step count grows (x4, at most 3 times) until the run outlasts the
    # delay on this machine, and --no-progress then gets a run just as long.
    b = FlowBundle.write(tmp_path / "rot", *rotation())
    assert not sys.stderr.isatty()
    argv = ["trajectories", str(b.path), "--noise", "4"]
    steps = 5000
    for _ in range(4):
        code, out, err = run([*argv, "--max-steps", str(steps), "--progress"], capsys)
        if code != 0 or "trajectories:" in err:
            break
        steps *= 4
    assert code == 0, err
    assert "max_steps 4" in out and "trajectories:" in err and "4/4" in err, err  # the bar, on stderr only
    assert "trajectories:" not in out
    code, out, err = run([*argv, "--max-steps", str(steps), "--no-progress"], capsys)
    assert code == 0 and "max_steps 4" in out and err == "", err
