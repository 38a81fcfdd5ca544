"""``flowcore export``: saved PyTorch models (ExportedProgram, TorchScript) to bundles; bad input."""

import subprocess
import sys
import textwrap

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


def test_batch_conversion_tool(saved, tmp_path):
    import json
    from pathlib import Path

    jobs = [{"autoencoder": str(saved / "ae.pt2"), "example": str(saved / "x.npz"), "out": "b1"},
            {"encoder": str(saved / "enc.pt2"), "decoder": str(saved / "ae.pt2"), "example": str(saved / "x.npz"),
             "out": "b2"}]
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    tool = Path(__file__).resolve().parents[1] / "tools" / "export_many.py"
    proc = subprocess.run([sys.executable, str(tool), str(tmp_path / "jobs.json")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "[0] ok" in proc.stdout and "[1] exit 3" in proc.stdout
    assert FlowBundle.load(tmp_path / "b1").latent_shape == (8,) and not (tmp_path / "b2").exists()
