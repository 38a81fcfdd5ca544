"""``flowcore export --pretrained KIND=FOLDER``: TAEF2's real weights and a tiny local AutoencoderKL folder.

The command builds the model from a local folder with the torch adapter (``flowcore_torch.load_pretrained``),
exports it with the parity check, and records the model's input range as the bundle's preprocessing. Bad
input (an unknown kind, a missing folder, no ``--example``, a second model source) is one ``error:`` line
with exit code 3 and nothing at ``--out``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch", reason="the torch adapter needs torch")

import flowcore  # noqa: E402
from flowcore.cli.app import main  # noqa: E402
from flowcore.io import save_npz  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = Path(os.environ.get("FLOWCORE_TAEF2", ROOT.parent / "shared" / "models" / "taef2"))


def _crops(n: int, side: int = 32) -> np.ndarray:
    """(n, 3, side, side) float32 RGB crops in [0, 1] of scikit-image's astronaut photo."""
    from skimage import data  # noqa: PLC0415

    img = data.astronaut().astype(np.float32).transpose(2, 0, 1) / 255.0
    rng = np.random.default_rng(0)
    ys, xs = rng.integers(0, img.shape[1] - side, n), rng.integers(0, img.shape[2] - side, n)
    return np.stack([img[:, y:y + side, x:x + side] for y, x in zip(ys, xs)])


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_taef2_from_its_weights_folder(tmp_path, capsys):
    if not (WEIGHTS / "taef2_encoder.npz").is_file():
        pytest.skip(f"TAEF2 weights not found at {WEIGHTS} (set FLOWCORE_TAEF2 to the folder)")
    x = _crops(6)
    save_npz(tmp_path / "x.npz", x=x)
    code, out, err = _run(["export", "--pretrained", f"taef2={WEIGHTS}", "--example", str(tmp_path / "x.npz"),
                           "--out", str(tmp_path / "b"), "--json", "--quiet"], capsys)
    assert code == 0, err
    info = json.loads(out)
    assert tuple(info["latent_shape"]) == (32, 4, 4) and tuple(info["input_shape"]) == (3, 32, 32)
    flow = json.loads((tmp_path / "b" / "flow.json").read_text())
    assert "[0, 1]" in json.dumps(flow)  # the model's input range is recorded with the bundle
    from flowcore_torch.zoo import load_taef2  # noqa: PLC0415

    enc, dec = load_taef2(WEIGHTS)
    lmap = flowcore.LatentMap(flowcore.FlowBundle.load(tmp_path / "b"))
    with torch.no_grad():
        z_ref = enc(torch.from_numpy(x)).numpy()
        x_ref = dec(torch.from_numpy(z_ref)).numpy()
    z = lmap.encode(x)
    np.testing.assert_allclose(z, z_ref, rtol=0, atol=1e-4 * np.abs(z_ref).max())
    np.testing.assert_allclose(lmap.decode(z_ref), x_ref, rtol=0, atol=1e-4 * np.abs(x_ref).max())


def test_autoencoder_kl_scaled_from_a_local_folder(tmp_path, capsys):
    diffusers = pytest.importorskip("diffusers", reason="the foundation extra (diffusers) is not installed")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4,
                                  norm_num_groups=4, sample_size=32, scaling_factor=0.5, shift_factor=0.1)
    vae.save_pretrained(tmp_path / "vae")
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 32, 32)).astype(np.float32)
    save_npz(tmp_path / "x.npz", x=x)
    code, out, err = _run(["export", "--pretrained", f"autoencoder-kl-scaled={tmp_path / 'vae'}",
                           "--example", str(tmp_path / "x.npz"), "--out", str(tmp_path / "b"), "--quiet"], capsys)
    assert code == 0, err
    assert "pretrained autoencoder-kl-scaled" in out
    with torch.no_grad():
        mean = vae.eval().encode(torch.from_numpy(x)).latent_dist.mean.numpy()
    z = flowcore.LatentMap(flowcore.FlowBundle.load(tmp_path / "b")).encode(x)
    np.testing.assert_allclose(z, (mean - 0.1) * 0.5, rtol=0, atol=1e-4 * np.abs(mean).max())


def test_bad_pretrained_input_is_one_line(tmp_path, capsys):
    save_npz(tmp_path / "x.npz", x=_crops(2))
    ex = str(tmp_path / "x.npz")
    out_dir = tmp_path / "b"
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("taef2_encoder.npz", "taef2_decoder.npz"):
        (corrupt / name).write_bytes(b"PK\x03\x04 not really a zip archive")
    cases = [
        (["--pretrained", f"taef2={corrupt}", "--example", ex], "taef2="),  # unreadable weights: exit 3, one line
        (["--pretrained", "nope=" + str(tmp_path), "--example", ex], "unknown kind"),
        (["--pretrained", "taef2", "--example", ex], "KIND=FOLDER"),
        (["--pretrained", f"taef2={tmp_path / 'missing'}", "--example", ex], "no such folder"),
        (["--pretrained", f"taef2={tmp_path}"], "--example"),
        (["--pretrained", f"taef2={tmp_path}", "--example", ex], "taef2_encoder.npz"),  # a folder without the weights
        (["--pretrained", f"taef2={tmp_path}", "--autoencoder", "ae.pt", "--example", ex], "does not go with"),
    ]
    for argv, words in cases:
        code, out, err = _run(["export", *argv, "--out", str(out_dir), "--quiet"], capsys)
        assert code == 3, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (argv, err)
        assert "Traceback" not in err and not out_dir.exists()


def test_vitmae_leaves_the_callers_model_as_it_was():
    transformers = pytest.importorskip("transformers", reason="the foundation extra (transformers) is not installed")
    from flowcore_torch import foundation  # noqa: PLC0415

    torch.manual_seed(0)
    cfg = transformers.ViTMAEConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                    patch_size=8, image_size=32, decoder_hidden_size=32, decoder_num_hidden_layers=1,
                                    decoder_num_attention_heads=2, decoder_intermediate_size=64, mask_ratio=0.75)
    model = transformers.ViTMAEForPreTraining(cfg)
    enc, _ = foundation.vitmae(model)
    assert model.config.mask_ratio == 0.75 and model.vit.embeddings.config.mask_ratio == 0.75
    assert enc.vit is not model.vit


def test_missing_foundation_extra_names_it(tmp_path, capsys, monkeypatch):
    save_npz(tmp_path / "x.npz", x=_crops(2))
    monkeypatch.setitem(__import__("sys").modules, "diffusers", None)  # as if the extra were not installed
    code, _, err = _run(["export", "--pretrained", f"autoencoder-kl={tmp_path}", "--example", str(tmp_path / "x.npz"),
                         "--out", str(tmp_path / "b"), "--quiet"], capsys)
    assert code == 4, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "flowcore-torch[foundation]" in err, err
    assert not (tmp_path / "b").exists()
