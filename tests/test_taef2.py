"""TAEF2, a real pretrained image autoencoder, rebuilt from its description and loaded from ``.npz``.

The weights live outside the repository (``../shared/models/taef2/``, MIT, with their LICENSE;
``FLOWCORE_TAEF2`` points elsewhere). The test builds the torch modules, loads the float16
arrays (no pickle), exports them with ``flowcore_torch.export`` and reconstructs real photos
(scikit-image's samples) through the exported bundle with ONNX Runtime alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = Path(os.environ.get("FLOWCORE_TAEF2", ROOT.parent / "shared" / "models" / "taef2"))


def _photos(side: int) -> np.ndarray:
    """(3, 3, side, side) float32 RGB in [0, 1]: astronaut, coffee, chelsea, resized (anti-aliased)."""
    from skimage import data  # noqa: PLC0415  (scikit-image: dev extra)
    from skimage.transform import resize  # noqa: PLC0415

    imgs = [resize(getattr(data, n)(), (side, side), anti_aliasing=True) for n in ("astronaut", "coffee", "chelsea")]
    return np.stack(imgs).astype(np.float32).transpose(0, 3, 1, 2)


def _psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    mse = ((np.clip(a, 0, 1) - b) ** 2).reshape(len(a), -1).mean(axis=1)
    return 10 * np.log10(1.0 / mse)


@pytest.fixture(scope="module")
def taef2():
    if not (WEIGHTS / "taef2_encoder.npz").is_file():
        pytest.skip(f"TAEF2 weights not found at {WEIGHTS} (set FLOWCORE_TAEF2 to the folder)")
    from flowcore_torch.zoo import load_taef2  # noqa: PLC0415

    return load_taef2(WEIGHTS)


def test_weights_load_one_to_one(taef2):
    enc, dec = taef2
    assert sum(p.numel() for p in enc.parameters()) == 1_338_528
    assert sum(p.numel() for p in dec.parameters()) == 1_338_499
    with np.load(WEIGHTS / "taef2_encoder.npz", allow_pickle=False) as arrays:
        name = arrays.files[0]
        assert np.array_equal(enc.state_dict()[name].numpy(), arrays[name].astype(np.float32))


def test_wrong_archive_is_refused(tmp_path):
    from flowcore_torch.zoo.taef2 import TAEF2Encoder, _load_npz  # noqa: PLC0415

    np.savez(tmp_path / "bad.npz", **{"0.weight": np.zeros((64, 3, 3, 3), np.float16)})
    with pytest.raises(ValueError, match="do not match the TAEF2 architecture"):
        _load_npz(TAEF2Encoder(), tmp_path / "bad.npz")


def test_bundle_reconstructs_real_photos(taef2, tmp_path):
    import flowcore  # noqa: PLC0415
    import flowcore_torch  # noqa: PLC0415

    enc, dec = taef2
    x = _photos(128)
    bundle = flowcore_torch.export(enc, dec, x, tmp_path / "taef2_128", real_inputs=x)
    lmap = flowcore.LatentMap(bundle, providers="cpu")
    assert lmap.input_shape == (3, 128, 128) and lmap.latent_shape == (32, 16, 16)
    psnr = _psnr(lmap.decode(lmap.encode(x)), x)
    assert psnr.min() >= 25.0, psnr  # measured: 27.1 / 29.6 / 30.8 dB at 128² (29.7 / 29.5 / 32.7 at 256², in torch)
    # a real model's activations set the rows in flight: ~3 live 64-channel maps of 128² per row (12.6 MB),
    # so the 2 GiB default budget runs ~136 rows at once instead of the 4,096 asked for
    from flowcore.runtime.activation_memory import row_bytes  # noqa: PLC0415

    per_row = row_bytes(lmap.fused_model)
    assert 64 * 128 * 128 * 4 <= per_row <= 8 * 64 * 128 * 128 * 4, per_row
    assert 16 <= lmap.max_rows() <= 400 and lmap.rows_in_flight(4096) == lmap.max_rows()
