"""Real images for the real-model studies, all offline: Fashion-MNIST from Debian, photo crops.

- :func:`load_fashion_mnist` reads the IDX files of Debian's ``dataset-fashion-mnist``
  (``apt-get install dataset-fashion-mnist``; files in ``/usr/share/datasets/fashion-mnist/``):
  60,000 + 10,000 real 28×28 grey images of clothing, 10 classes (Zalando, MIT licence).
- :func:`photo_crops` cuts seeded square crops from scikit-image's sample photos.

IDX (LeCun's format): big-endian magic ``0x0000 08 NN`` (08 = unsigned byte, NN = number of
dimensions), NN big-endian uint32 sizes, then the bytes. Read with NumPy, nothing executed.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["FASHION_DIR", "read_idx", "load_fashion_mnist", "photo_crops", "PHOTOS"]

FASHION_DIR = Path(os.environ.get("FLOWCORE_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
_MAX_BYTES = 64 * 2**20  # the largest Fashion-MNIST file is 47 MB uncompressed


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The uint8 array of an IDX file (``.gz`` or plain); shape from its header.

    Raises
    ------
    ValueError
        When the header is not an unsigned-byte IDX header or the data size disagrees with it.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read(_MAX_BYTES + 1)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (header {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} ({int(np.prod(shape))} bytes), file holds {data.size}")
    return data.reshape(shape)


def load_fashion_mnist(split: str = "test", *, folder: str | os.PathLike = FASHION_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of Fashion-MNIST's ``"train"`` (60,000) or ``"test"`` (10,000) split.

    Returns
    -------
    images : ndarray of shape (N, 1, 28, 28), float32 in [0, 1]
    labels : ndarray of shape (N,), int64 in 0..9
    """
    prefix = {"train": "train", "test": "t10k"}[split]
    folder = Path(folder)
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"{folder}: images {images.shape} and labels {labels.shape} are not Fashion-MNIST's")
    return (images[:, None] / 255.0).astype(np.float32), labels.astype(np.int64)


def photo_crops(n: int, side: int, *, seed: int = 0, photos: tuple[str, ...] = PHOTOS) -> np.ndarray:
    """``n`` seeded random ``side``×``side`` RGB crops of scikit-image's sample photos.

    Returns
    -------
    ndarray of shape (n, 3, side, side), float32 in [0, 1]; crop i comes from photo i mod len(photos).
    """
    from skimage import data  # noqa: PLC0415  (scikit-image: the studies' extra)
    from skimage.color import gray2rgb  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    images = []
    for name in photos:
        img = getattr(data, name)()
        img = gray2rgb(img) if img.ndim == 2 else img[..., :3]
        images.append(img.astype(np.float32) / 255.0)
    out = np.empty((n, 3, side, side), np.float32)
    for i in range(n):
        img = images[i % len(images)]
        top = rng.integers(0, img.shape[0] - side + 1)
        left = rng.integers(0, img.shape[1] - side + 1)
        out[i] = img[top:top + side, left:left + side].transpose(2, 0, 1)
    return out
