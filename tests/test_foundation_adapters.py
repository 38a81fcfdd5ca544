"""Foundation-model adapters on tiny random-weight configs: diffusers AutoencoderKL and transformers ViT-MAE.

The paper's exact architectures are built from configs offline (no weights, HF_HUB_OFFLINE=1),
exported with ``flowcore_torch.export`` (parity checked against torch inside the export and again
on fresh inputs), iterated with :func:`flowcore.iterate`, and reloaded from a local
``save_pretrained`` folder to show the path-loading works without a hub.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
torch = pytest.importorskip("torch", reason="the torch adapter needs torch")
diffusers = pytest.importorskip("diffusers", reason="the foundation extra (diffusers) is not installed")
transformers = pytest.importorskip("transformers", reason="the foundation extra (transformers) is not installed")

import flowcore  # noqa: E402
import flowcore_torch  # noqa: E402
from flowcore_torch import foundation  # noqa: E402

RTOL = 1e-4  # the adapter's parity tolerance (flowcore_torch.export default)


def _tiny_vae():
    torch.manual_seed(0)
    return diffusers.AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                                   up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4,
                                   norm_num_groups=4, sample_size=32, scaling_factor=0.5, shift_factor=0.1)


def _tiny_mae(**overrides):
    torch.manual_seed(0)
    cfg = transformers.ViTMAEConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    patch_size=8, image_size=32, decoder_hidden_size=32, decoder_num_hidden_layers=1,
                                    decoder_num_attention_heads=2, decoder_intermediate_size=64, **overrides)
    return transformers.ViTMAEForPreTraining(cfg)


@pytest.fixture(scope="module")
def kl_bundle(tmp_path_factory):
    vae = _tiny_vae()
    folder = tmp_path_factory.mktemp("vae") / "local_vae"
    vae.save_pretrained(folder)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 32, 32)).astype(np.float32)
    bundle = foundation.export_autoencoder_kl(folder, x, tmp_path_factory.mktemp("b") / "kl", scaled=True)
    return vae, bundle, x


@pytest.fixture(scope="module")
def mae_bundle(tmp_path_factory):
    model = _tiny_mae()
    folder = tmp_path_factory.mktemp("mae") / "local_mae"
    model.save_pretrained(folder)
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    bundle = foundation.export_vitmae(folder, x, tmp_path_factory.mktemp("b") / "mae")
    return model, bundle, x


def test_kl_latents_are_the_scaled_posterior_mean(kl_bundle):
    vae, bundle, x = kl_bundle  # exported from the save_pretrained folder, compared with the in-memory model
    assert bundle.input_shape == (3, 32, 32) and bundle.latent_shape == (4, 16, 16)
    lmap = flowcore.LatentMap(bundle, providers="cpu")
    with torch.no_grad():
        mean = vae.train(False).encode(torch.from_numpy(x)).latent_dist.mean.numpy()
    z = lmap.encode(x)
    assert np.allclose(z, (mean - 0.1) * 0.5, atol=1e-5 * max(1.0, np.abs(mean).max()))
    with torch.no_grad():
        x_hat = vae.decode(torch.from_numpy(z) / 0.5 + 0.1).sample.numpy()
    assert np.abs(lmap.decode(z) - x_hat).max() <= RTOL * np.abs(x_hat).max()


def test_kl_parity_and_trajectory(kl_bundle):
    vae, bundle, _ = kl_bundle
    enc, dec = foundation.autoencoder_kl(vae, scaled=True)
    fresh = np.random.default_rng(5).uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    report = flowcore_torch.parity(bundle, enc, dec, fresh)
    assert report["n"] == 3 and report["encoder"] <= RTOL and report["decoder"] <= RTOL, report
    lmap = flowcore.LatentMap(bundle, providers="cpu")
    z0 = lmap.encode(fresh)
    traj = flowcore.iterate(lmap, z0, max_steps=5, tol=1e-12)
    assert traj.final.shape == (3, 4, 16, 16) and np.isfinite(traj.final).all()
    assert (traj.status != 2).all() and (traj.steps >= 1).all()
    one = flowcore.iterate(lmap, z0, max_steps=1, tol=1e-12).final  # one step of f = E(D(z0)), by hand
    assert np.allclose(one, lmap.encode(lmap.decode(z0)), atol=1e-5 * max(1.0, float(np.abs(one).max())))


def test_mae_tokens_keep_patch_order_and_cls(mae_bundle):
    model, bundle, x = mae_bundle
    assert bundle.input_shape == (3, 32, 32) and bundle.latent_shape == (17, 32)  # 1 CLS + (32/8)² patches, D=32
    lmap = flowcore.LatentMap(bundle, providers="cpu")
    z = lmap.encode(x)
    enc, _ = foundation.vitmae(model)  # mask ratio 0 on a copy: the caller's model keeps its default 0.75
    assert enc.vit.config.mask_ratio == 0.0 and model.config.mask_ratio == 0.75
    with torch.no_grad():
        out = enc.vit(pixel_values=torch.from_numpy(x), noise=torch.arange(16.0).expand(4, -1))
    assert np.allclose(z, out.last_hidden_state.numpy(), atol=1e-4)
    assert (out.ids_restore.numpy() == np.arange(16)).all()  # the fixed noise keeps the patch order
    # permuting the input patches permutes the patch tokens the same way: order really is kept
    x_flip = x[:, :, ::-1, :].copy()
    assert not np.allclose(lmap.encode(x_flip)[:, 1:], z[:, 1:], atol=1e-3)


def test_mae_parity_and_trajectory(mae_bundle):
    model, bundle, _ = mae_bundle
    enc, dec = foundation.vitmae(model)
    fresh = np.random.default_rng(6).standard_normal((3, 3, 32, 32)).astype(np.float32)
    report = flowcore_torch.parity(bundle, enc, dec, fresh)
    assert report["n"] == 3 and report["encoder"] <= RTOL and report["decoder"] <= RTOL, report
    lmap = flowcore.LatentMap(bundle, providers="cpu")
    z0 = lmap.encode(fresh)
    traj = flowcore.iterate(lmap, z0, max_steps=5, tol=1e-12)
    assert traj.final.shape == (3, 17, 32) and np.isfinite(traj.final).all()
    assert (traj.status != 2).all() and (traj.steps >= 1).all()
    one = flowcore.iterate(lmap, z0, max_steps=1, tol=1e-12).final  # one step of f = E(D(z0)), by hand
    assert np.allclose(one, lmap.encode(lmap.decode(z0)), atol=1e-5 * max(1.0, float(np.abs(one).max())))


def test_mae_norm_pix_loss_is_refused():
    with pytest.raises(ValueError, match="norm_pix_loss"):
        foundation.vitmae(_tiny_mae(norm_pix_loss=True))


def test_missing_local_folder_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local model folder"):
        foundation.autoencoder_kl(tmp_path / "nope")
