"""Pretrained autoencoders named by kind and read from a local folder (``flowcore export --pretrained KIND=FOLDER``).

Each kind builds the (encoder, decoder) pair of ``torch.nn.Module`` that :func:`flowcore_torch.export`
takes; nothing is downloaded and nothing is unpickled (``.npz`` with ``allow_pickle=False`` for TAEF2,
safetensors only for the diffusers / transformers folders). ``KINDS`` maps each kind to the input its
bundle takes, which is also what ``flow.json`` records as the bundle's preprocessing:

- ``taef2``: :func:`flowcore_torch.zoo.load_taef2`, a folder with ``taef2_encoder.npz`` and
  ``taef2_decoder.npz``; (N, 3, H, W) RGB in [0, 1], H and W multiples of 8 → latents (N, 32, H/8, W/8).
- ``autoencoder-kl``: :func:`flowcore_torch.foundation.autoencoder_kl` (posterior mean, unscaled), a
  diffusers ``save_pretrained`` folder or a pipeline folder with ``vae/``; RGB in [-1, 1].
- ``autoencoder-kl-scaled``: the same with ``scaled=True`` (the diffusion model's latent scale).
- ``vit-mae``: :func:`flowcore_torch.foundation.vitmae` (mask ratio 0, tokens with CLS as latents), a
  transformers ``save_pretrained`` folder; images normalised with the model's ImageNet mean / std.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

__all__ = ["KINDS", "load_pretrained"]

KINDS = {
    "taef2": "RGB (N, 3, H, W) in [0, 1], H and W multiples of 8",
    "autoencoder-kl": "RGB (N, 3, H, W) in [-1, 1] (2x - 1 of [0, 1] images)",
    "autoencoder-kl-scaled": "RGB (N, 3, H, W) in [-1, 1]; latents scaled by the VAE's scaling_factor",
    "vit-mae": "RGB (N, 3, S, S) normalised with the ImageNet mean and std (the model's image processor)",
}


def load_pretrained(kind: str, folder: str | os.PathLike) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) of the pretrained model ``kind`` from the local ``folder``, in inference mode.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    folder : path-like
        Local weights folder (see the module docstring for what each kind expects in it).

    Returns
    -------
    (nn.Module, nn.Module)
        Encoder (N, *input_shape) → (N, *latent_shape) and decoder back, float32.

    Raises
    ------
    ValueError
        Unknown ``kind``, or weights that do not fit the architecture.
    FileNotFoundError
        ``folder`` (or a weights file in it) does not exist.
    ImportError
        The kind needs diffusers / transformers (the ``foundation`` extra) and they are not installed.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown pretrained kind {kind!r}; choose from {', '.join(KINDS)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (--pretrained {kind} reads a local weights folder)")
    if kind == "taef2":
        from .zoo import load_taef2  # noqa: PLC0415

        return load_taef2(folder)
    from . import foundation  # noqa: PLC0415

    if kind == "vit-mae":
        return foundation.vitmae(folder)
    return foundation.autoencoder_kl(folder, scaled=kind == "autoencoder-kl-scaled")
