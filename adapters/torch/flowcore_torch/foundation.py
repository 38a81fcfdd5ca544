"""Foundation-model adapters: diffusers ``AutoencoderKL`` and transformers ``ViTMAEForPreTraining``.

Each builder returns an ``(encoder, decoder)`` pair of ``torch.nn.Module`` in inference mode, ready
for :func:`flowcore_torch.export` (the adapter's one exporter); :func:`export_autoencoder_kl` and
:func:`export_vitmae` do both steps. A model argument is either a loaded model or a local folder
written by ``save_pretrained`` (read with ``local_files_only=True``: nothing is downloaded).

AutoencoderKL (the Stable Diffusion / FLUX image VAE):

- encoder: (N, 3, H, W) float32 in the VAE's own range **[-1, 1]** (H, W multiples of
  2**(len(block_out_channels) - 1)) → posterior mean (N, C, h, w), i.e. the first half of the
  ``quant_conv`` output; with ``scaled=True`` it becomes (mean − shift_factor) · scaling_factor,
  the diffusion model's latent scale (shift 0 when the config has none).
- decoder: (N, C, h, w) → ``vae.decode(z / s + shift).sample``, (N, 3, H, W), approximately in [-1, 1]
  (not clipped). The bundle takes and returns the model's range; map [0, 1] images with 2x − 1.

ViTMAEForPreTraining (mask ratio 0; tokens are the latents):

- encoder: (N, C, S, S) float32 normalised as the model's image processor does (ImageNet mean/std)
  → the encoder's last hidden state (N, 1 + L, D) with L = (S / patch)**2, **CLS token kept** (the
  MAE decoder reads it, so dropping it would change f). The random shuffle of the MAE forward is
  neutralised by a fixed ``noise`` = arange(L): argsort keeps the patch order, so the map is
  deterministic and ``ids_restore`` is the identity.
- decoder: (N, 1 + L, D) → ``model.decoder`` → per-patch pixels (N, L, patch² · C) →
  ``model.unpatchify`` → (N, C, S, S) in the same normalised range.
- ``config.norm_pix_loss=True`` models predict per-patch normalised pixels (mean 0, var 1 per patch),
  not images, so E(D(z)) would not be the model's autoencoder map: such models are refused.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch
from torch import nn

from ._export import export

__all__ = ["autoencoder_kl", "vitmae", "export_autoencoder_kl", "export_vitmae", "KLEncoder", "KLDecoder",
           "MAEEncoder", "MAEDecoder"]


def _load(model: Any, loader: str):
    if isinstance(model, (str, os.PathLike)):
        if not os.path.isdir(model):
            raise FileNotFoundError(f"{model}: not a local model folder (save_pretrained output)")
        if loader == "vae":
            from diffusers import AutoencoderKL  # noqa: PLC0415  (foundation extra)

            sub = os.path.join(model, "vae")
            return AutoencoderKL.from_pretrained(sub if os.path.isdir(sub) else model, local_files_only=True,
                                                 use_safetensors=True)
        from transformers import ViTMAEForPreTraining  # noqa: PLC0415  (foundation extra)

        return ViTMAEForPreTraining.from_pretrained(model, local_files_only=True, use_safetensors=True)
    return model


class _KLHalf(nn.Module):
    """One half of an AutoencoderKL with the latent scale and shift of its config (1 and 0 unless ``scaled``)."""

    def __init__(self, vae: nn.Module, scaled: bool):
        super().__init__()
        self.vae = vae
        cfg = vae.config
        self.scale = float(cfg.scaling_factor) if scaled else 1.0
        self.shift = float(getattr(cfg, "shift_factor", None) or 0.0) if scaled else 0.0


class KLEncoder(_KLHalf):
    """(N, 3, H, W) in [-1, 1] → posterior mean (N, C, h, w), optionally (mean − shift) · scale."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.vae.encode(x).latent_dist.mean
        return (mean - self.shift) * self.scale


class KLDecoder(_KLHalf):
    """(N, C, h, w) → ``vae.decode(z / scale + shift).sample``, (N, 3, H, W) approximately in [-1, 1]."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z / self.scale + self.shift).sample


def autoencoder_kl(vae_or_path: Any, *, scaled: bool = False) -> tuple[KLEncoder, KLDecoder]:
    """(encoder, decoder) of a diffusers ``AutoencoderKL`` (model, or local folder / its ``vae/`` subfolder).

    ``scaled=True`` multiplies the latents by ``config.scaling_factor`` after subtracting
    ``config.shift_factor`` (if any); the decoder undoes it, so f is the same map up to that affine
    change of coordinates. Images are in [-1, 1]; see the module docstring for shapes.
    """
    vae = _load(vae_or_path, "vae").train(False)
    return KLEncoder(vae, scaled).train(False), KLDecoder(vae, scaled).train(False)


class MAEEncoder(nn.Module):
    """(N, C, S, S) normalised pixels → encoder tokens (N, 1 + L, D), CLS first, patch order kept."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.vit = model.vit
        cfg = model.config
        self.n_patches = (cfg.image_size // cfg.patch_size) ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noise = torch.arange(self.n_patches, dtype=x.dtype, device=x.device).expand(x.shape[0], -1)
        return self.vit(pixel_values=x, noise=noise).last_hidden_state


class MAEDecoder(nn.Module):
    """(N, 1 + L, D) tokens → ``unpatchify(decoder(tokens, identity))``, (N, C, S, S) normalised pixels."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.decoder = model.decoder
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n_patches = z.shape[1] - 1
        ids = torch.arange(n_patches, device=z.device).expand(z.shape[0], -1)
        logits = self.decoder(z, ids).logits
        return self.model.unpatchify(logits)


def vitmae(model_or_path: Any) -> tuple[MAEEncoder, MAEDecoder]:
    """(encoder, decoder) of a transformers ``ViTMAEForPreTraining`` with mask ratio 0 (model or local folder).

    Raises ValueError for ``config.norm_pix_loss=True`` (its decoder outputs per-patch normalised
    pixels, not an image; see the module docstring). A model passed in is copied before its mask
    ratio is set to 0, so the caller's model is left as it was. Folders are read with safetensors only.
    """
    model = _load(model_or_path, "mae")
    if getattr(model.config, "norm_pix_loss", False):
        raise ValueError("norm_pix_loss=True: the decoder predicts per-patch normalised pixels, not images; "
                         "E(D(z)) is not this model's autoencoder map (refused)")
    if model is model_or_path:  # a caller's model keeps its own mask ratio: set it on a copy
        model = copy.deepcopy(model)
    model.config.mask_ratio = 0.0
    model.vit.embeddings.config.mask_ratio = 0.0
    model = model.train(False)
    return MAEEncoder(model).train(False), MAEDecoder(model).train(False)


def export_autoencoder_kl(vae_or_path: Any, example_input: Any, path: str | os.PathLike, *, scaled: bool = False,
                          **kwargs):
    """:func:`autoencoder_kl` then :func:`flowcore_torch.export` (kwargs passed on); returns the FlowBundle."""
    enc, dec = autoencoder_kl(vae_or_path, scaled=scaled)
    kwargs.setdefault("preprocessing", "RGB (N, 3, H, W) float32 in [-1, 1] (2x - 1 of [0, 1] images)")
    kwargs.setdefault("notes", f"diffusers AutoencoderKL, posterior mean, scaled={scaled}")
    return export(enc, dec, example_input, path, **kwargs)


def export_vitmae(model_or_path: Any, example_input: Any, path: str | os.PathLike, **kwargs):
    """:func:`vitmae` then :func:`flowcore_torch.export` (kwargs passed on); returns the FlowBundle."""
    enc, dec = vitmae(model_or_path)
    kwargs.setdefault("preprocessing", "(N, C, S, S) float32 normalised like the model's image processor")
    kwargs.setdefault("notes", "transformers ViTMAEForPreTraining, mask_ratio 0, latents = tokens (CLS first)")
    return export(enc, dec, example_input, path, **kwargs)
