"""Pretrained and foundation-model architectures rebuilt in ``torch.nn``, weights from local files.

Nothing here downloads: every loader takes a local path (no machine of this project reaches a
model hub). Weights are read from NumPy ``.npz`` archives with ``allow_pickle=False`` — nothing
is unpickled or executed.

- :mod:`flowcore_torch.zoo.taef2` — TAEF2, the tiny autoencoder distilled from the FLUX.2 VAE
  (MIT, madebyollin/taesd): images (N, 3, H, W) in [0, 1] → latents (N, 32, H/8, W/8).
"""

from .taef2 import TAEF2Decoder, TAEF2Encoder, load_taef2

__all__ = ["TAEF2Encoder", "TAEF2Decoder", "load_taef2"]
