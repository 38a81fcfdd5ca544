"""Arrays across the Ray object store: a dict of arrays as one ``.npz`` byte string, no pickle.

Rows of a Ray dataset carry their arrays as ``bytes`` (an Arrow binary column), so chunks of any
shape (paths, features, a shorter last chunk) travel unchanged; reading back uses
``allow_pickle=False``.
"""

from __future__ import annotations

import io
from typing import Mapping

import numpy as np

__all__ = ["pack", "unpack"]


def pack(arrays: Mapping[str, np.ndarray]) -> bytes:
    """``arrays`` (name → numeric ndarray) as ``.npz`` bytes; object arrays are refused by NumPy's loader later."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def unpack(blob: bytes) -> dict[str, np.ndarray]:
    """The arrays of :func:`pack`'s bytes (``allow_pickle=False``: nothing executed)."""
    with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
