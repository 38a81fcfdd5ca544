"""``flowcore export``: saved PyTorch models (ExportedProgram, TorchScript) to bundles; bad input.

Also: a ``torch.save`` state dict is named as such, a flat ``nn.Sequential`` is cut with
``--split-at``, the frameworks' noise stays off stderr, and ``tools/export_many.py --keep-going``.
"""

import ast
import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.cli.app import main
from flowcore.io import save_npz
from flowcore.runtime.latent_map import LatentMap

from test_core_imports import BLOCK


class AE(torch.nn.Module):
    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x):
        return self.decoder(self.encoder(x))


@pytest.fixture(scope="module")
def saved(torch_digits_ae, digits, tmp_path_factory):
    enc, dec = torch_digits_ae
    root = tmp_path_factory.mktemp("saved")
    ae = AE(enc, dec).eval()
    x = torch.from_numpy(digits["x_test"][:16])
    torch.jit.script(ae).save(str(root / "ae.pt"))
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(ae, (x,), dynamic_shapes=({0: batch},)), str(root / "ae.pt2"))
    torch.export.save(torch.export.export(enc.eval(), (x,), dynamic_shapes=({0: batch},)), str(root / "enc.pt2"))
    z = enc(x).detach()
    torch.export.save(torch.export.export(dec.eval(), (z,), dynamic_shapes=({0: batch},)), str(root / "dec.pt2"))
    save_npz(root / "x.npz", x=digits["x_test"][:64])
    # what a user often brings instead: weights without the architecture, or a pickled module
    torch.save(ae.state_dict(), str(root / "sd.pt"))
    torch.save(ae.state_dict(), str(root / "sd.pth"))
    torch.save({"model_state_dict": ae.state_dict(), "epoch": 3}, str(root / "ckpt.pt"))
    torch.save(ae, str(root / "pickled.pt"))
    # one flat nn.Sequential: the encoder's 4 layers, then the decoder's 5
    flat = torch.nn.Sequential(*copy.deepcopy(enc), *copy.deepcopy(dec)).eval()
    torch.export.save(torch.export.export(flat, (x,), dynamic_shapes=({0: batch},)), str(root / "flat.pt2"))
    torch.jit.script(flat).save(str(root / "flat_ts.pt"))
    return root


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args", [
    ["--autoencoder", "ae.pt"],
    ["--autoencoder", "ae.pt2"],
    ["--encoder", "enc.pt2", "--decoder", "dec.pt2"],
])
def test_export_saved_models(saved, digits_bundle, digits, tmp_path, capsys, args):
    argv = ["export", *[str(saved / a) if a.endswith((".pt", ".pt2")) else a for a in args],
            "--example", str(saved / "x.npz"), "--out", str(tmp_path / "b")]
    code, out, err = _run(argv, capsys)
    assert code == 0, err
    # the frameworks' noise is not replayed: torch.export emitted 46 empty ``torch.__trace:`` lines
    assert "torch.__trace" not in err and all(line.strip() for line in err.splitlines()), err
    b = FlowBundle.load(tmp_path / "b")
    assert b.input_shape == (1, 8, 8) and b.latent_shape == (8,)
    assert b.manifest["source"]["framework"] == "torch"
    # the same latent map as the bundle exported from the live modules
    z = LatentMap(digits_bundle, providers="cpu").encode(digits["x_test"])
    np.testing.assert_allclose(LatentMap(b, providers="cpu")(z), LatentMap(digits_bundle, providers="cpu")(z),
                               rtol=1e-5, atol=1e-6)


def _one_line(code, err, expect=3):
    assert code == expect, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_bad_inputs(saved, tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"not a model at all")
    ex = str(saved / "x.npz")
    code, _, err = _run(["export", "--encoder", str(tmp_path / "junk.pt"), "--decoder", str(saved / "dec.pt2"),
                         "--example", ex, "--out", str(tmp_path / "b")], capsys)
    _one_line(code, err)
    # decoder output does not match the encoder input: the whole AE used as the decoder
    code, _, err = _run(["export", "--encoder", str(saved / "enc.pt2"), "--decoder", str(saved / "ae.pt2"),
                         "--example", ex, "--out", str(tmp_path / "b")], capsys)
    _one_line(code, err)
    assert "decoder" in err
    code, _, err = _run(["export", "--autoencoder", str(saved / "ae.pt"), "--out", str(tmp_path / "b")], capsys)
    _one_line(code, err)
    assert "--example" in err
    code, _, err = _run(["export", "--autoencoder", str(saved / "ae.pt"), "--encoder-part", "nope",
                         "--example", ex, "--out", str(tmp_path / "b")], capsys)
    _one_line(code, err)
    code, _, err = _run(["export", "--encoder", ex, "--decoder", ex, "--out", str(tmp_path / "b")], capsys)
    _one_line(code, err)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("name, what", [("sd.pt", "state dict"), ("sd.pth", "state dict"),
                                        ("ckpt.pt", "training checkpoint"), ("pickled.pt", "pickled PyTorch object")])
def test_state_dict_is_named_with_what_to_save(saved, tmp_path, capsys, name, what):
    code, _, err = _run(["export", "--autoencoder", str(saved / name), "--example", str(saved / "x.npz"),
                         "--out", str(tmp_path / "b")], capsys)
    _one_line(code, err)
    assert what in err and "corrupted" not in err, err
    # the formats flowcore export reads, named exactly
    assert "torch.export.save(torch.export.export(model, (x,)), " in err
    assert "torch.jit.save(torch.jit.script(model)" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("name", ["flat.pt2", "flat_ts.pt"])
def test_flat_sequential_split_at(saved, digits_bundle, digits, tmp_path, capsys, name):
    ex = str(saved / "x.npz")
    code, _, err = _run(["export", "--autoencoder", str(saved / name), "--example", ex, "--out", str(tmp_path / "b")],
                        capsys)
    _one_line(code, err)
    assert "--split-at" in err and "0 Flatten, 1 Linear, 2 Tanh, 3 Linear, 4 Linear" in err, err
    if name.endswith(".pt2"):  # the program records every layer's output shape: the bottleneck is the hint
        assert "narrowest inner layer is 3 (8 features)" in err, err
    code, _, err = _run(["export", "--autoencoder", str(saved / name), "--split-at", "9", "--example", ex,
                         "--out", str(tmp_path / "b")], capsys)
    _one_line(code, err)
    assert "not an inner layer" in err
    code, out, err = _run(["export", "--autoencoder", str(saved / name), "--split-at", "3", "--example", ex,
                           "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    assert "parity checked" in out
    b = FlowBundle.load(tmp_path / "b")
    assert b.input_shape == (1, 8, 8) and b.latent_shape == (8,)
    # cut after the bottleneck, the flat model is the fixture's encoder and decoder: the same f
    ref = LatentMap(digits_bundle, providers="cpu")
    z = ref.encode(digits["x_test"])
    np.testing.assert_allclose(LatentMap(b, providers="cpu")(z), ref(z), rtol=1e-5, atol=1e-6)
    assert main(["info", str(tmp_path / "b")]) == 0


def test_split_at_refuses_models_it_cannot_cut(saved, tmp_path, capsys):
    ex = str(saved / "x.npz")
    code, _, err = _run(["export", "--autoencoder", str(saved / "ae.pt2"), "--split-at", "0", "--example", ex,
                         "--out", str(tmp_path / "b")], capsys)
    _one_line(code, err)
    assert "not one flat nn.Sequential" in err and "--encoder-part" in err
    code, _, err = _run(["export", "--encoder", str(saved / "enc.pt2"), "--decoder", str(saved / "dec.pt2"),
                         "--split-at", "0", "--example", ex, "--out", str(tmp_path / "b")], capsys)
    _one_line(code, err)
    assert not (tmp_path / "b").exists()


def test_quiet_export_is_silent(saved, tmp_path):
    """``--quiet`` in a fresh process: the result line on stdout, nothing at all on stderr."""
    proc = subprocess.run([sys.executable, "-m", "flowcore", "export", "--autoencoder", str(saved / "ae.pt2"),
                           "--example", str(saved / "x.npz"), "--out", str(tmp_path / "b"), "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("exported torch model") and len(proc.stdout.splitlines()) == 1, proc.stdout


def test_missing_adapter_names_package(saved, tmp_path):
    code = BLOCK + textwrap.dedent(
        f"""
        from flowcore.cli.app import main
        raise SystemExit(main(["export", "--autoencoder", r"{saved / 'ae.pt'}", "--example", r"{saved / 'x.npz'}",
                               "--out", r"{tmp_path / 'b'}"]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith("error: ") and "flowcore-torch" in proc.stderr and "Traceback" not in proc.stderr


TOOL = Path(__file__).resolve().parents[1] / "tools" / "export_many.py"


def test_batch_conversion_tool_keep_going(saved, tmp_path):
    jobs = [{"autoencoder": str(saved / "sd.pt"), "example": str(saved / "x.npz"), "out": "b0"},
            {"autoencoder": str(saved / "ae.pt2"), "example": str(saved / "x.npz"), "out": "b1"}]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))

    def tool(*flags):
        return subprocess.run([sys.executable, str(TOOL), str(tmp_path / "jobs.json"), *flags], capture_output=True,
                              text=True, timeout=600)

    proc = tool()  # stops at the first failure
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("[0] exit 3: error: ") and "state dict" in lines[0]
    assert lines[1].startswith("[1] skipped") and "--keep-going" in lines[1]
    assert lines[-1] == "2 jobs: 0 ok, 1 failed, 1 skipped; worst exit code 3"
    assert not (tmp_path / "b1").exists()
    proc = tool("--keep-going")  # every job runs; the summary and the exit code still report the failure
    assert proc.returncode == 3, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("[0] exit 3: ") and lines[1].startswith("[1] ok: exported torch model")
    assert lines[-1] == "2 jobs: 1 ok, 1 failed, 0 skipped; worst exit code 3"
    assert FlowBundle.load(tmp_path / "b1").latent_shape == (8,) and not (tmp_path / "b0").exists()


def test_batch_tool_uses_public_paths_only():
    """tools/ shows users the way: no import of flowcore's private modules."""
    tree = ast.parse(TOOL.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    assert not [n for n in names if n.startswith("flowcore.")], names
