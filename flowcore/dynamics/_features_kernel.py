"""Numba kernels for streaming trajectory features (updated once per iteration, in place).

Per-row accumulators are indexed by the row's global number, so compaction of the active batch
needs no bookkeeping here. Distances accumulate in float64. Each kernel has a vectorised NumPy
``*_ref`` beside it with the same arguments and in-place effects.
"""

from __future__ import annotations

import numpy as np

from flowcore.dynamics._numba import njit

__all__ = [
    "nearest_distance",
    "nearest_distance_ref",
    "accumulate_distance",
    "accumulate_distance_ref",
    "accumulate_steps",
    "accumulate_steps_ref",
]


@njit
def nearest_distance(z, refs, out):
    """out[i] = min_j ‖z[i] − refs[j]‖ (Euclidean); partial sums abort past the best so far.

    z : (B, k) float32; refs : (M, k) float32 (M ≥ 1); out : (B,) float64.
    """
    b, k = z.shape
    m = refs.shape[0]
    for i in range(b):
        best = np.inf
        for j in range(m):
            acc = 0.0
            for d in range(k):
                t = np.float64(z[i, d]) - np.float64(refs[j, d])
                acc += t * t
                if acc >= best:
                    break
            if acc < best:
                best = acc
        out[i] = np.sqrt(best)


def nearest_distance_ref(z, refs, out):
    """NumPy reference of :func:`nearest_distance` (same in-place contract).

    Parameters
    ----------
    z : ndarray of shape (B, k), float32
    refs : ndarray of shape (M, k), float32
    out : ndarray of shape (B,), float64
        Filled in place with ``min_j ‖z[i] − refs[j]‖``; a NaN distance never wins (a row whose
        distances are all NaN, or M = 0, gets +inf), as in the kernel.
    """
    acc = np.zeros((z.shape[0], refs.shape[0]))
    for d in range(z.shape[1]):  # coordinate by coordinate: the kernel's summation order
        t = z[:, d].astype(np.float64)[:, None] - refs[:, d].astype(np.float64)[None, :]
        acc += t * t
    acc[np.isnan(acc)] = np.inf
    out[:] = np.sqrt(acc.min(axis=1, initial=np.inf))


@njit
def accumulate_distance(rows, dist, d_sum, d_min, d_max, d_last, d_count):
    """Fold one step's distances ``dist`` (B,) into the accumulators of global ``rows`` (B,)."""
    for i in range(rows.shape[0]):
        r = rows[i]
        v = dist[i]
        d_sum[r] += v
        d_count[r] += 1
        if v < d_min[r]:
            d_min[r] = v
        if v > d_max[r]:
            d_max[r] = v
        d_last[r] = v


def accumulate_distance_ref(rows, dist, d_sum, d_min, d_max, d_last, d_count):
    """NumPy reference of :func:`accumulate_distance` (same in-place contract).

    Parameters
    ----------
    rows : ndarray of shape (B,), int64
        Distinct global row numbers (one step of the active batch).
    dist : ndarray of shape (B,), float64
        This step's distances; a NaN is added to the sum but never becomes a min or max.
    d_sum, d_min, d_max, d_last : ndarray of shape (N,), float64
    d_count : ndarray of shape (N,), int64
        Updated in place at ``rows``.
    """
    d_sum[rows] += dist
    d_count[rows] += 1
    cur = d_min[rows]
    d_min[rows] = np.where(dist < cur, dist, cur)
    cur = d_max[rows]
    d_max[rows] = np.where(dist > cur, dist, cur)
    d_last[rows] = dist


@njit
def accumulate_steps(rows, step_sq, steps_now, path_len, v0):
    """Add ‖z_t − z_{t−1}‖ to the path length; keep ‖V(z_0)‖ = the first step's length."""
    for i in range(rows.shape[0]):
        r = rows[i]
        s = np.sqrt(np.float64(step_sq[i])) if step_sq[i] == step_sq[i] else np.nan
        path_len[r] += s
        if steps_now[i] == 1:
            v0[r] = s


def accumulate_steps_ref(rows, step_sq, steps_now, path_len, v0):
    """NumPy reference of :func:`accumulate_steps` (same in-place contract).

    Parameters
    ----------
    rows : ndarray of shape (B,), int64
        Distinct global row numbers.
    step_sq : ndarray of shape (B,), float32
        This step's ``‖z_t − z_{t−1}‖²`` (NaN stays NaN).
    steps_now : ndarray of shape (B,), int32
        Each row's step count after this step (1 on the first step).
    path_len, v0 : ndarray of shape (N,), float64
        Path length gains ``sqrt(step_sq)``; ``v0`` is set on the first step.
    """
    with np.errstate(invalid="ignore"):
        s = np.sqrt(step_sq.astype(np.float64))
    path_len[rows] += s
    first = steps_now == 1
    v0[rows[first]] = s[first]
