"""Randomly initialised image backbones as encoders with a linear decoder (PAPER Fig. 6), in plain torch.nn.

The paper measures contraction at initialization for torchvision backbones used as encoders with a
linear decoder. torchvision cannot be imported beside the pinned CPU torch 2.13.0 here (PyPI's
torchvision wheel fails with "operator torchvision::nms does not exist" and no CPU build of it is
on this machine's disk), so the three architectures below are rebuilt with ``torch.nn`` in
torchvision's layout and with torchvision's initialisation:

- ``resnet18``: 7×7/2 stem, BatchNorm, 3×3/2 max pool, BasicBlocks [2, 2, 2, 2] at widths
  64–512 with 1×1 projection shortcuts, global average pool; conv weights Kaiming-normal
  (fan_out, ReLU), BatchNorm weight 1 / bias 0 (torchvision ``resnet18``).
- ``vgg11_bn``: configuration "A" (64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M) of
  3×3 convs with BatchNorm and ReLU; conv weights Kaiming-normal (fan_out, ReLU), bias 0
  (torchvision ``vgg11_bn``); its 4096-wide classifier is not used.
- ``vit``: a small ViT (patch 8 → 16 tokens + a class token, width 192, 6 pre-norm blocks of
  3 heads, MLP 768, GELU, no dropout); position embedding and class token N(0, 0.02²), patch
  embedding LeCun-normal-like (torchvision ``VisionTransformer`` with smaller sizes).

Each trunk's pooled features go through a fresh ``nn.Linear(features, k)`` (torch's default
init): the encoder (N, 3, 32, 32) -> (N, k). The decoder is one ``nn.Linear(k, 3·32·32)`` reshaped
to (N, 3, 32, 32). BatchNorm runs in inference mode (running mean 0, variance 1). The weights come
from ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng` (encoder first).
"""

from __future__ import annotations

import math

__all__ = ["BACKBONES", "backbone_autoencoder"]

BACKBONES = ("resnet18", "vgg11_bn", "vit")
IMAGE = (3, 32, 32)


def _kaiming_convs(module) -> None:
    from torch import nn  # noqa: PLC0415  (torch: the studies' extra)

    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _resnet18():
    from torch import nn  # noqa: PLC0415

    class Basic(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                      nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.short = (nn.Identity() if stride == 1 and cin == cout else
                          nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

        def forward(self, x):
            return (self.body(x) + self.short(x)).relu()

    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Basic(cin, cout, stride), Basic(cout, cout, 1)]
        cin = cout
    trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    _kaiming_convs(trunk)
    return trunk, 512


def _vgg11_bn():
    from torch import nn  # noqa: PLC0415

    layers, cin = [], 3
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            cin = v
    trunk = nn.Sequential(*layers, nn.Flatten())  # 32 -> 1 after five pools: (N, 512)
    _kaiming_convs(trunk)
    return trunk, 512


def _vit(dim: int = 192, depth: int = 6, heads: int = 3, patch: int = 8):
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, dim, patch, patch)
            fan_in = 3 * patch * patch
            nn.init.trunc_normal_(self.embed.weight, std=math.sqrt(1.0 / fan_in))
            nn.init.zeros_(self.embed.bias)
            n_tok = (IMAGE[1] // patch) * (IMAGE[2] // patch) + 1
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(torch.empty(1, n_tok, dim).normal_(std=0.02))
            block = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(dim)

        def forward(self, x):
            t = self.embed(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(len(t), -1, -1), t], dim=1) + self.pos
            return self.norm(self.blocks(t))[:, 0]

    return ViT(), dim


def backbone_autoencoder(name: str, k: int, *, seed: int):
    """(encoder (N, 3, 32, 32) -> (N, k), decoder (N, k) -> (N, 3, 32, 32)) of ``name`` at random init.

    Raises
    ------
    ValueError
        ``name`` not in :data:`BACKBONES`.
    """
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    build = {"resnet18": _resnet18, "vgg11_bn": _vgg11_bn, "vit": _vit}.get(name)
    if build is None:
        raise ValueError(f"unknown backbone {name!r}; choose one of {list(BACKBONES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trunk, width = build()
        enc = nn.Sequential(trunk, nn.Linear(width, k))
        dec = nn.Sequential(nn.Linear(k, math.prod(IMAGE)), nn.Unflatten(1, IMAGE))
    enc.train(False)  # inference mode: BatchNorm uses its running statistics (mean 0, variance 1)
    dec.train(False)
    return enc, dec
