"""The levels a memorization value is read against: null levels and rank at a variance share.

- :func:`null_levels` — the nearest-train cosine of test images and of uniform noise (PAPER §6.4;
  MNIST replication: 0.856 / 0.519).
- :func:`rank_at_variance` — rank at 90 % of the squared singular-value mass ("generalization
  entropy", App. B.5). Higher = more diverse attractors.
- ``_degenerate`` / ``_verdict`` (used by :func:`flowcore.analysis.memorization.memorization_report`)
  — flag blank and mean-image attractors (``BLANK_STD``), and read the basin-weighted mem against
  the nulls in one line.

NumPy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowcore.analysis._similarity import _flat, _mean_std, _nearest
from flowcore.errors import DataError, ParameterError
from flowcore.validation import renamed_keyword

__all__ = ["null_levels", "rank_at_variance"]


def null_levels(x_test: Any, x_train: Any, *, n_noise: int = 1000, seed: int | np.random.Generator = 0,
                reduce: str = "max", block_size: int = 1024, batch: int | None = None) -> dict[str, Any]:
    """Nearest-train cosine of test images and of uniform noise: the nulls for ``mem``.

    Parameters
    ----------
    x_test : array-like of shape (n_test, *input_shape)
    x_train : array-like of shape (N, *input_shape)
    n_noise : int, default 1000
        Noise inputs, uniform in ``[x_train.min(), x_train.max()]`` per feature.
    seed : int or numpy.random.Generator, default 0
    reduce, block_size :
        As in :func:`memorization_coefficient`.
    batch : int, optional
        Deprecated name of ``block_size`` (one release, with a FlowcoreDeprecationWarning).

    Returns
    -------
    dict
        ``{"test": {"mean", "std", "n"}, "noise": {"mean", "std", "n"}, "noise_range": [lo, hi],
        "reduce", "seed"}`` (plain floats). A ``mem`` near the test level means attractors look
        like unseen data; near 1 means copies of training samples; near the noise level means
        nothing like the data.
    """
    block_size = renamed_keyword("null_levels", "batch", "block_size", batch, block_size, 1024)
    b = _flat(x_train, "x_train")
    t = _flat(x_test, "x_test")
    if t.shape[1] != b.shape[1]:
        raise DataError(f"x_test has {t.shape[1]} features per row but x_train has {b.shape[1]}")
    if int(n_noise) < 0:
        raise ParameterError(f"n_noise must be >= 0, got {n_noise}")
    rng = np.random.default_rng(seed)
    lo, hi = float(b.min()), float(b.max())
    noise = rng.uniform(lo, hi, size=(int(n_noise), b.shape[1]))
    test_v = _nearest(t, b, reduce=reduce, batch=block_size)[0] if len(t) else np.empty(0)
    noise_v = _nearest(noise, b, reduce=reduce, batch=block_size)[0] if len(noise) else np.empty(0)
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


BLANK_STD = 0.1
"""A decoded attractor is *blank* when the standard deviation of its own pixels is below
``BLANK_STD ×`` the median of the same statistic over the training images: a near-uniform image,
whatever its brightness (a constant image has none of the structure any training image has)."""

DOMINANT = 0.5
"""A share of the converged starts above this makes an attractor (or the flagged ones) dominate
the basin-weighted mean, and the verdict says so."""


def _degenerate(decoded: np.ndarray, x_train: Any, nearest: np.ndarray) -> dict[str, np.ndarray]:
    """Flags of decoded attractors that are no training image's copy: blank or mean-image.

    Parameters
    ----------
    decoded : ndarray of shape (K, m), float
        ``D(z*)`` flattened.
    x_train : array-like of shape (N, *input_shape)
        Training images.
    nearest : ndarray of shape (K,), float64
        Cosine of each decoded attractor to its nearest training image (``reduce="max"``).

    Returns
    -------
    dict
        ``blank`` (K,) bool — pixel std below ``BLANK_STD ×`` the training images' median pixel
        std; ``mean_image`` (K,) bool — cosine to the training mean image at least ``nearest``
        (the attractor is closer to the average image than to any training image);
        ``mean_cosine`` (K,) float64 — that cosine; ``pixel_std_ratio`` (K,) float64 — pixel std
        over the training median.
    """
    b = _flat(x_train, "x_train")
    a = np.asarray(decoded, np.float64).reshape(len(decoded), -1)
    ref_std = float(np.median(b.std(axis=1)))
    std = a.std(axis=1)
    ratio = std / ref_std if ref_std > 0 else np.where(std > 0, np.inf, 0.0)
    mean_img = b.mean(axis=0)
    mean_cos = _nearest(a, mean_img[None], reduce="max")[0] if len(a) else np.empty(0)
    return {"blank": ratio < BLANK_STD, "mean_image": mean_cos >= np.asarray(nearest, np.float64) - 1e-12,
            "mean_cosine": mean_cos, "pixel_std_ratio": np.asarray(ratio, np.float64)}


def _verdict(weighted: float, null: dict[str, Any], flagged_fraction: float, top_fraction: float) -> str:
    """One line: the basin-weighted mem read against the test-image and noise nulls, with caveats.

    "memorizes" when the basin-weighted mem exceeds the test-image null mean (attractors nearer
    the training set than unseen data are), "does not memorize" otherwise; "inconclusive" instead
    of "memorizes" when more than ``DOMINANT`` of the converged starts flow to blank or mean-image
    attractors. A caveat names a flagged or single attractor that takes more than ``DOMINANT``.
    """
    test = (null.get("test") or {}).get("mean")
    noise = (null.get("noise") or {}).get("mean")
    if not np.isfinite(weighted):
        return "no verdict: no start converged to an attractor"
    if test is None or not np.isfinite(test):
        return "no verdict: no test images for the test-image null"
    w = f"basin-weighted mem {weighted:.3f}"
    if weighted > test:
        head = f"memorizes: {w} above the test-image null {test:.3f}"
    elif noise is None or not np.isfinite(noise) or weighted > noise:
        head = f"does not memorize: {w} below the test-image null {test:.3f}" + (
            f" (above the noise null {noise:.3f})" if noise is not None and np.isfinite(noise) else "")
    else:
        head = f"does not memorize: {w} at or below the noise null {noise:.3f}"
    if flagged_fraction > DOMINANT:
        if weighted > test:
            head = "inconclusive" + head[len("memorizes"):]
        return (f"{head}; caveat: {100 * flagged_fraction:.1f} % of the converged starts flow to blank / "
                "mean-image attractors, so the weighted value describes those, not copies of training images")
    if top_fraction > DOMINANT:
        return f"{head}; caveat: one attractor takes {100 * top_fraction:.1f} % of the converged starts"
    return head
