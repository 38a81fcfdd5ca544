"""Numba kernel for the per-step stopping test of :func:`flowcore.dynamics.trajectories.iterate`.

One pass over the active rows replaces a dozen NumPy temporaries per step (what dominates the
loop's own cost when the model is small).
"""

from __future__ import annotations

import numpy as np

from flowcore.dynamics._numba import njit

__all__ = ["check_rows"]


@njit
def check_rows(step_sq, norm_sq, steps, tol, limit_sq, max_steps, done, status):
    """Advance ``steps`` (n,) by one and mark the rows that stop now.

    done[i] = step small (``step_sq < tol``), or diverged (``step_sq`` NaN/Inf, or ``norm_sq``
    above ``limit_sq`` or NaN), or ``steps`` reached ``max_steps``; ``status[i]`` gets
    0 converged / 1 max_steps / 2 diverged for those rows. Returns how many stopped.
    """
    n_done = 0
    for i in range(step_sq.shape[0]):
        steps[i] += 1
        s = step_sq[i]
        q = norm_sq[i]
        if not (q <= limit_sq) or not np.isfinite(s):
            status[i] = 2
            done[i] = True
            n_done += 1
        elif s < tol:
            status[i] = 0
            done[i] = True
            n_done += 1
        elif steps[i] >= max_steps:
            status[i] = 1
            done[i] = True
            n_done += 1
        else:
            done[i] = False
    return n_done


@njit
def retire_rows(z_new, act_idx, act_steps, step_sq, done, st, final, steps, last_sq, status):
    """Write the stopped rows' results and compact the active arrays in place (order kept).

    z_new : (n, k) this step's states (compacted in place); act_idx, act_steps : (n,);
    final : (N, k); steps, last_sq, status : (N,). Returns the number of rows still active,
    which now occupy the first rows of ``z_new``, ``act_idx`` and ``act_steps``.
    """
    k = z_new.shape[1]
    w = 0
    for i in range(z_new.shape[0]):
        if done[i]:
            r = act_idx[i]
            for d in range(k):
                final[r, d] = z_new[i, d]
            steps[r] = act_steps[i]
            last_sq[r] = step_sq[i]
            status[r] = st[i]
        else:
            if w != i:
                for d in range(k):
                    z_new[w, d] = z_new[i, d]
                act_idx[w] = act_idx[i]
                act_steps[w] = act_steps[i]
            w += 1
    return w
