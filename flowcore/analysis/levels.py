"""The levels a memorization value is read against: null levels and rank at a variance share.

- :func:`null_levels` — the nearest-train cosine of test images and of uniform noise (PAPER §6.4;
  MNIST replication: 0.856 / 0.519).
- :func:`rank_at_variance` — rank at 90 % of the squared singular-value mass ("generalization
  entropy", App. B.5). Higher = more diverse attractors.

NumPy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowcore.analysis._similarity import _flat, _mean_std, _nearest
from flowcore.errors import DataError, ParameterError

__all__ = ["null_levels", "rank_at_variance"]


def null_levels(x_test: Any, x_train: Any, *, n_noise: int = 1000, seed: int | np.random.Generator = 0,
                reduce: str = "max", batch: int = 1024) -> dict[str, Any]:
    """Nearest-train cosine of test images and of uniform noise: the nulls for ``mem``.

    Parameters
    ----------
    x_test : array-like of shape (n_test, *input_shape)
    x_train : array-like of shape (N, *input_shape)
    n_noise : int, default 1000
        Noise inputs, uniform in ``[x_train.min(), x_train.max()]`` per feature.
    seed : int or numpy.random.Generator, default 0
    reduce, batch :
        As in :func:`memorization_coefficient`.

    Returns
    -------
    dict
        ``{"test": {"mean", "std", "n"}, "noise": {"mean", "std", "n"}, "noise_range": [lo, hi],
        "reduce", "seed"}`` (plain floats). A ``mem`` near the test level means attractors look
        like unseen data; near 1 means copies of training samples; near the noise level means
        nothing like the data.
    """
    b = _flat(x_train, "x_train")
    t = _flat(x_test, "x_test")
    if t.shape[1] != b.shape[1]:
        raise DataError(f"x_test has {t.shape[1]} features per row but x_train has {b.shape[1]}")
    if int(n_noise) < 0:
        raise ParameterError(f"n_noise must be >= 0, got {n_noise}")
    rng = np.random.default_rng(seed)
    lo, hi = float(b.min()), float(b.max())
    noise = rng.uniform(lo, hi, size=(int(n_noise), b.shape[1]))
    test_v = _nearest(t, b, reduce=reduce, batch=batch)[0] if len(t) else np.empty(0)
    noise_v = _nearest(noise, b, reduce=reduce, batch=batch)[0] if len(noise) else np.empty(0)
    return {"test": _mean_std(test_v), "noise": _mean_std(noise_v), "noise_range": [lo, hi],
            "reduce": reduce, "seed": seed if isinstance(seed, int) else None}


def rank_at_variance(matrix: Any, *, level: float = 0.9, center: bool = True) -> int:
    """Smallest r with ``Σ_{i≤r} s_i² / Σ_i s_i² ≥ level`` (singular values of the rows).

    Parameters
    ----------
    matrix : array-like of shape (K, ...)
        One row per item (e.g. decoded attractors ``D(Z*)``), flattened to (K, m).
    level : float, default 0.9
        Share of the squared singular-value mass, in (0, 1].
    center : bool, default True
        Subtract the row mean before the SVD (PCA variance). ``False``: raw second moment
        (the paper does not say; a constant offset then counts as one direction).

    Returns
    -------
    int
        In [0, min(K, m)]; 0 when the (centred) matrix is all zeros (e.g. K = 1 centred).
        Higher = more spread (the paper reads it as better generalization).
    """
    if not (0.0 < float(level) <= 1.0):
        raise ParameterError(f"level must be in (0, 1], got {level}")
    a = _flat(matrix, "matrix")
    if center:
        a = a - a.mean(0, keepdims=True)
    s = np.linalg.svd(a, compute_uv=False)
    energy = s ** 2
    total = energy.sum()
    if not total > 0 or total <= 1e-24 * max(1.0, float(np.abs(a).max()) ** 2):
        return 0
    frac = np.cumsum(energy) / total
    return int(np.argmax(frac >= float(level) - 1e-12) + 1)
