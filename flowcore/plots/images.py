"""Image figures: decoded attractors, each beside its nearest training image."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from flowcore.errors import DataError, ParameterError
from flowcore.plots._base import _csv, figure_class, png_bytes

__all__ = ["decoded_grid"]


def _as_image(img: np.ndarray, what: str) -> np.ndarray:
    """One image to (H, W) greyscale or (H, W, 3|4) colour, float64."""
    a = np.asarray(img, np.float64)
    if a.ndim == 1:
        n = a.size
        s = math.isqrt(n)
        if s * s == n:
            return a.reshape(s, s)
        s3 = math.isqrt(n // 3)
        if n % 3 == 0 and s3 * s3 * 3 == n:
            return a.reshape(3, s3, s3).transpose(1, 2, 0)
        raise DataError(f"{what}: a flat image needs a square side (n = s² or 3·s²); got n = {n}")
    if a.ndim == 2:
        return a
    if a.ndim == 3:
        if a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
            a = a.transpose(1, 2, 0)  # (C, H, W) → (H, W, C)
        elif a.shape[-1] not in (1, 3, 4):
            raise DataError(f"{what}: image shape {a.shape} is neither (C, H, W) nor (H, W, C) with C in 1, 3, 4")
        return a[..., 0] if a.shape[-1] == 1 else a
    raise DataError(f"{what}: images must be (C, H, W), (H, W, C), (H, W) or flat; got shape {a.shape}")


def _display(img: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Values in [0, 1] shown as is; other ranges min–max scaled (per image)."""
    finite = img[np.isfinite(img)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo >= 0.0 and hi <= 1.0:
        lo, hi = 0.0, 1.0
    elif hi <= lo:
        hi = lo + 1.0
    return np.clip((np.nan_to_num(img, nan=lo) - lo) / (hi - lo), 0.0, 1.0), lo, hi


def decoded_grid(decoded: Any, nearest: Any = None, cosines: Any = None, *, title: str = "",
                 ncols: int | None = None, labels: Any = None) -> tuple[bytes, str]:
    """Image grid of decoded attractors, each beside its nearest training image.

    Parameters
    ----------
    decoded : array-like of shape (K, *input_shape), float
        D(z*) for K attractors. ``input_shape`` is (C, H, W), (H, W, C), (H, W) or flat (n,)
        with n = s² (greyscale s×s) or n = 3·s² (read as (3, s, s)). One channel is drawn grey.
        Values in [0, 1] are shown as is; any other range is min–max scaled per image.
    nearest : array-like of shape (K, *input_shape), float, optional
        The nearest training image of each attractor, drawn to its right.
    cosines : array-like of shape (K,), float, optional
        Cosine similarity of each pair (higher = closer to a training image, i.e. more
        memorised), shown in the attractor's title.
    title : str
        Figure title.
    ncols : int, optional
        Attractors per row (default 8 alone, 4 pairs with ``nearest``).
    labels : sequence of K str, optional
        Caption of each decoded image (default ``attr i``); the cosine, if given, is appended.

    Returns
    -------
    png : bytes
    csv : str
        Columns ``index,role,cosine,p0,…,p{n−1}``: one ``decoded`` row per attractor and, with
        ``nearest``, one ``nearest`` row right after it; the pixels are the given image flattened
        in C order (the input values, not the display scaling); ``cosine`` is empty without
        ``cosines``.

    Raises
    ------
    DataError
        Shapes that disagree. BackendError: matplotlib missing.
    """
    dec = np.asarray(decoded, np.float64)
    if dec.ndim < 2 or len(dec) == 0:
        raise DataError(f"decoded must have shape (K, *input_shape) with K ≥ 1; got {dec.shape}")
    K = len(dec)
    near = None
    if nearest is not None:
        near = np.asarray(nearest, np.float64)
        if near.shape != dec.shape:
            raise DataError(f"nearest must have the shape of decoded {dec.shape}; got {near.shape}")
    cos = None
    if cosines is not None:
        cos = np.asarray(cosines, np.float64).reshape(-1)
        if cos.shape != (K,):
            raise DataError(f"cosines must have shape ({K},); got {np.asarray(cosines).shape}")
    if labels is not None:
        labels = [str(v) for v in labels]
        if len(labels) != K:
            raise DataError(f"labels must hold {K} captions, one per decoded image; got {len(labels)}")
    if ncols is None:
        ncols = 8 if near is None else 4
    if ncols < 1:
        raise ParameterError(f"ncols must be ≥ 1; got {ncols}")
    imgs_d = [_as_image(d, "decoded") for d in dec]
    imgs_n = [_as_image(n, "nearest") for n in near] if near is not None else None
    Figure = figure_class()

    per = 2 if near is not None else 1
    c = min(ncols, K)
    nr = math.ceil(K / c)
    fig = Figure(figsize=(1.3 * c * per + 0.2, 1.45 * nr + (0.3 if title else 0.0)), dpi=100,
                 layout="constrained")
    axes = fig.subplots(nr, c * per, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i in range(K):
        r, col = divmod(i, c)
        name = labels[i] if labels is not None else f"attr {i}"
        pairs = [(imgs_d[i], name if cos is None else f"{name}  cos {cos[i]:.3f}")]
        if imgs_n is not None:
            pairs.append((imgs_n[i], "nearest"))
        for p, (img, label) in enumerate(pairs):
            ax = axes[r, col * per + p]
            shown, _, _ = _display(img)
            if shown.ndim == 2:
                ax.imshow(shown, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(shown, interpolation="nearest")
            ax.set_title(label, fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)

    n_pix = dec[0].size
    header = ["index", "role", "cosine", *(f"p{j}" for j in range(n_pix))]
    rows = []
    for i in range(K):
        cv = "" if cos is None else float(cos[i])
        rows.append((i, "decoded", cv, *dec[i].ravel().tolist()))
        if near is not None:
            rows.append((i, "nearest", cv, *near[i].ravel().tolist()))
    return png_bytes(fig), _csv(header, rows)
