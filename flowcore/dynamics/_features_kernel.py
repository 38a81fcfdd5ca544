"""Numba kernels for streaming trajectory features (updated once per iteration, in place).

Per-row accumulators are indexed by the row's global number, so compaction of the active batch
needs no bookkeeping here. Distances accumulate in float64.
"""

from __future__ import annotations

import numpy as np

from flowcore.dynamics._numba import njit

__all__ = ["nearest_distance", "accumulate_distance", "accumulate_steps"]


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


@njit
def accumulate_steps(rows, step_sq, steps_now, path_len, v0):
    """Add ‖z_t − z_{t−1}‖ to the path length; keep ‖V(z_0)‖ = the first step's length."""
    for i in range(rows.shape[0]):
        r = rows[i]
        s = np.sqrt(np.float64(step_sq[i])) if step_sq[i] == step_sq[i] else np.nan
        path_len[r] += s
        if steps_now[i] == 1:
            v0[r] = s
