"""Blocked nearest-neighbour similarity and small statistics shared by the analyses.

:func:`_nearest` finds, for each row of one set, the most (or least) similar row of another,
blocked over both sets so peak extra memory is ``batch × batch`` floats;
:func:`chamfer_similarity` (public as :func:`flowcore.analysis.checkpoints.chamfer_similarity`)
is the symmetric Chamfer similarity of two point sets built on it. NumPy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowcore.errors import DataError, ParameterError
from flowcore.validation import renamed_keyword

__all__: list[str] = []  # private helpers of flowcore.analysis

_REDUCE = ("max", "min")
_METRICS = ("cosine", "euclidean")


def _flat(a: Any, what: str) -> np.ndarray:
    """(N, ...) array-like -> (N, m) float64; refuses NaN/Inf and empty feature axes."""
    arr = np.asarray(a)
    if arr.ndim == 0:
        raise DataError(f"{what} must be an array of shape (N, ...), got a scalar")
    arr = arr.reshape(len(arr), int(np.prod(arr.shape[1:], dtype=np.int64))).astype(np.float64, copy=False)
    if arr.shape[1] == 0:
        raise DataError(f"{what} has no features (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{what} contains NaN or Inf")
    return arr


def _unit_rows(a: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; zero rows stay zero (cosine 0 to everything)."""
    n = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(n > 0, n, 1.0)


def _nearest(a: np.ndarray, b: np.ndarray, *, metric: str = "cosine", reduce: str = "max",
             batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Best similarity of each row of ``a`` over the rows of ``b``, blocked over both.

    Parameters
    ----------
    a : ndarray of shape (n_a, m), float64
    b : ndarray of shape (n_b, m), float64
    metric : {"cosine", "euclidean"}
        cosine: s = cos(a, b). euclidean: s = −‖a − b‖₂ (a similarity, so max = nearest).
    reduce : {"max", "min"}
        Take the largest (nearest) or smallest (farthest) similarity over ``b``.
    batch : int
        Block size on both axes; peak extra memory ~ batch² float64.

    Returns
    -------
    value : ndarray of shape (n_a,), float64
    index : ndarray of shape (n_a,), int64 — the row of ``b`` that attains ``value`` (first on ties).
    """
    if metric not in _METRICS:
        raise ParameterError(f"metric must be one of {_METRICS}, got {metric!r}")
    if reduce not in _REDUCE:
        raise ParameterError(f"reduce must be one of {_REDUCE}, got {reduce!r}")
    if int(batch) < 1:
        raise ParameterError(f"batch must be >= 1, got {batch}")
    if len(b) == 0:
        raise DataError("the reference set is empty")
    batch = int(batch)
    if metric == "cosine":
        a, b = _unit_rows(a), _unit_rows(b)
    else:
        a_sq, b_sq = (a * a).sum(1), (b * b).sum(1)
    sign = 1.0 if reduce == "max" else -1.0  # work with max of sign*s
    value = np.full(len(a), -np.inf)
    index = np.zeros(len(a), np.int64)
    for i in range(0, len(a), batch):
        ai = a[i:i + batch]
        best = np.full(len(ai), -np.inf)
        arg = np.zeros(len(ai), np.int64)
        for j in range(0, len(b), batch):
            bj = b[j:j + batch]
            g = ai @ bj.T
            if metric == "cosine":
                s = g
            else:
                s = -np.sqrt(np.maximum(a_sq[i:i + batch, None] + b_sq[None, j:j + batch] - 2.0 * g, 0.0))
            s = sign * s
            loc = np.argmax(s, axis=1)
            val = s[np.arange(len(ai)), loc]
            better = val > best  # strict: keeps the first index on ties across blocks
            best[better] = val[better]
            arg[better] = loc[better] + j
        value[i:i + batch] = sign * best
        index[i:i + batch] = arg
    return value, index


def _mean_std(v: np.ndarray) -> dict[str, float]:
    v = np.asarray(v, np.float64)
    if len(v) == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(len(v))}


def _providers(lmap) -> Any:
    try:
        return list(lmap.providers)
    except Exception:  # noqa: BLE001 — a duck-typed map may have none
        return None


def chamfer_similarity(A: Any, B: Any, *, metric: str = "cosine", block_size: int = 1024,
                       batch: int | None = None) -> float:
    """Symmetric Chamfer similarity of two point sets.

    Parameters
    ----------
    A : array-like of shape (n_a, ...)
        First set (e.g. train attractors), flattened to (n_a, k).
    B : array-like of shape (n_b, ...)
        Second set (e.g. noise attractors), flattened to (n_b, k).
    metric : {"cosine", "euclidean"}, default "cosine"
        s(a, b) = cos(a, b), or −‖a − b‖₂ for "euclidean" (then CS ≤ 0 and 0 means equal sets).
    block_size : int, default 1024
        Block size; never holds an n_a × n_b matrix beyond ``block_size × block_size``.
    batch : int, optional
        Deprecated name of ``block_size`` (one release, with a FlowcoreDeprecationWarning).

    Returns
    -------
    float
        ``½[mean_a max_b s + mean_b max_a s]``. Cosine: in [−1, 1], 1 when every point of each
        set has a positive multiple in the other. Higher = more similar sets.

    Raises
    ------
    DataError
        Empty sets, mismatched dimensions, NaN/Inf.

    Examples
    --------
    >>> import numpy as np
    >>> chamfer_similarity(np.eye(2), np.eye(2))
    1.0
    """
    block_size = renamed_keyword("chamfer_similarity", "batch", "block_size", batch, block_size, 1024)
    a = _flat(A, "A")
    b = _flat(B, "B")
    if len(a) == 0 or len(b) == 0:
        raise DataError(f"Chamfer similarity needs two non-empty sets, got {len(a)} and {len(b)} points")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"A has {a.shape[1]} features per point but B has {b.shape[1]}")
    ab = _nearest(a, b, metric=metric, reduce="max", batch=block_size)[0]
    ba = _nearest(b, a, metric=metric, reduce="max", batch=block_size)[0]
    return float(0.5 * (ab.mean() + ba.mean()))
