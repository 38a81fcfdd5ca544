"""Arrays fed to the runtime: numeric, batched, reshaped to a graph's per-row shape, float32, C-contiguous."""

from __future__ import annotations

from typing import Any

import numpy as np

from flowcore.errors import DataError

__all__ = ["coerce"]


def coerce(a: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``a`` as C-contiguous float32 of shape (N, *shape); a flat (N, prod(shape)) array is reshaped.

    Raises
    ------
    DataError
        Not a numeric array, no batch axis, or a shape that is neither (N, *shape) nor (N, prod(shape)).
    """
    try:
        arr = np.asarray(a)
    except Exception:
        raise DataError(f"{what} could not be read as an array") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"{what} have dtype {arr.dtype}; expected a numeric array")
    if arr.ndim < 1:
        raise DataError(f"{what} must have a batch axis; got a scalar")
    k = int(np.prod(shape, dtype=np.int64))
    n = arr.shape[0]
    if tuple(arr.shape[1:]) != tuple(shape):
        if arr.ndim == 2 and arr.shape[1] == k:
            arr = arr.reshape((n, *shape))
        else:
            raise DataError(
                f"{what} have shape {tuple(arr.shape)}; expected (N, {', '.join(map(str, shape))})"
                f"{'' if len(shape) == 1 else f' or (N, {k})'}"
            )
    return np.ascontiguousarray(arr, dtype=np.float32)
