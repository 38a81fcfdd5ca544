"""TAEF2 — the tiny autoencoder distilled from the FLUX.2 image VAE, rebuilt in ``torch.nn``.

Architecture from the public madebyollin/taesd source (MIT licence), laid out so that the
published tensor names load one to one (``nn.Sequential`` indices are the key prefixes):

- ``Block(c)``: ``conv`` = three 3×3 convs c→c with ReLU between them (keys ``conv.0/2/4``), added
  to the input, then ReLU. Blocks of the FLUX.2 variant marked ``pool`` first add a pooling branch
  to their input: 1×1 conv c→4c (no bias), GroupNorm(4, 4c), ReLU, 1×1 conv 4c→c (no bias)
  (keys ``pool.0``, ``pool.1``, ``pool.3``).
- Encoder: conv 3→64, Block; three times (conv 64→64 stride 2 without bias, three Blocks; the last
  three Blocks with ``pool``); conv 64→32. (N, 3, H, W) in [0, 1] → (N, 32, H/8, W/8).
- Decoder: 3·tanh(x/3), conv 32→64, ReLU, three Blocks with ``pool``; three times (nearest
  upsample ×2, conv 64→64 without bias, Blocks: three, three, one); conv 64→3.
  (N, 32, h, w) → (N, 3, 8h, 8w), approximately in [0, 1] (not clipped).

:func:`load_taef2` reads ``taef2_encoder.npz`` / ``taef2_decoder.npz`` (float16 arrays named as the
original state dicts) with ``allow_pickle=False`` and returns float32 modules in inference mode.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["TAEF2Encoder", "TAEF2Decoder", "load_taef2", "LATENT_CHANNELS", "DOWNSCALE"]

LATENT_CHANNELS = 32
DOWNSCALE = 8
_C = 64


def _conv(c_in: int, c_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, **kwargs)


class _Pool(nn.Module):
    """The FLUX.2 pooling branch: 1×1 conv c→4c, GroupNorm(4, 4c), ReLU, 1×1 conv 4c→c (no biases)."""

    def __init__(self, c: int):
        super().__init__()
        self.pool = nn.Sequential(nn.Conv2d(c, 4 * c, 1, bias=False), nn.GroupNorm(4, 4 * c), nn.ReLU(),
                                  nn.Conv2d(4 * c, c, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class _Block(nn.Module):
    """relu(conv(x') + x') with x' = x + pool(x) when ``pool`` (else x' = x); (N, c, H, W) → same."""

    def __init__(self, c: int, *, pool: bool = False):
        super().__init__()
        self.conv = nn.Sequential(_conv(c, c), nn.ReLU(), _conv(c, c), nn.ReLU(), _conv(c, c))
        if pool:
            self.pool = _Pool(c).pool
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "pool"):
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


class _Clamp(nn.Module):
    """3·tanh(x/3): the decoder's soft clamp of its input latents to (−3, 3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class TAEF2Encoder(nn.Sequential):
    """(N, 3, H, W) float32 RGB in [0, 1], H and W multiples of 8 → (N, 32, H/8, W/8) float32."""

    def __init__(self):
        layers: list[nn.Module] = [_conv(3, _C), _Block(_C)]
        for stage in range(3):
            pool = stage == 2
            layers += [_conv(_C, _C, stride=2, bias=False), _Block(_C, pool=pool), _Block(_C, pool=pool),
                       _Block(_C, pool=pool)]
        layers.append(_conv(_C, LATENT_CHANNELS))
        super().__init__(*layers)


class TAEF2Decoder(nn.Sequential):
    """(N, 32, h, w) float32 latents → (N, 3, 8h, 8w) float32 images, approximately in [0, 1]."""

    def __init__(self):
        layers: list[nn.Module] = [_Clamp(), _conv(LATENT_CHANNELS, _C), nn.ReLU(),
                                   _Block(_C, pool=True), _Block(_C, pool=True), _Block(_C, pool=True)]
        for n_blocks in (3, 3, 1):
            layers += [nn.Upsample(scale_factor=2), _conv(_C, _C, bias=False), *(_Block(_C) for _ in range(n_blocks))]
        layers.append(_conv(_C, 3))
        super().__init__(*layers)


def _load_npz(module: nn.Module, path: Path) -> None:
    """Copy the arrays of ``path`` into ``module`` by name; every name and shape must match both ways."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (TAEF2 weights: taef2_encoder.npz and taef2_decoder.npz)")
    with np.load(path, allow_pickle=False) as arrays:
        weights = {name: arrays[name] for name in arrays.files}
    state = module.state_dict()
    missing, unexpected = sorted(set(state) - set(weights)), sorted(set(weights) - set(state))
    if missing or unexpected:
        raise ValueError(f"{path}: tensor names do not match the TAEF2 architecture "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    for name, value in weights.items():
        if tuple(value.shape) != tuple(state[name].shape):
            raise ValueError(f"{path}: {name} has shape {value.shape}, the architecture expects {tuple(state[name].shape)}")
        state[name] = torch.from_numpy(value.astype(np.float32))
    module.load_state_dict(state)


def load_taef2(folder: str | os.PathLike) -> tuple[TAEF2Encoder, TAEF2Decoder]:
    """(encoder, decoder) of TAEF2 from a local folder holding ``taef2_encoder.npz`` and ``taef2_decoder.npz``.

    Parameters
    ----------
    folder : path-like
        The weights folder (in this project: ``../shared/models/taef2/``; keep its LICENSE with any copy).

    Returns
    -------
    (TAEF2Encoder, TAEF2Decoder)
        float32 modules in inference mode (weights converted from the stored float16).
    """
    folder = Path(folder)
    encoder, decoder = TAEF2Encoder(), TAEF2Decoder()
    _load_npz(encoder, folder / "taef2_encoder.npz")
    _load_npz(decoder, folder / "taef2_decoder.npz")
    return encoder.train(False), decoder.train(False)  # inference mode
