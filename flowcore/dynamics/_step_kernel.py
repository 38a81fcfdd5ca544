"""Numba kernel for the per-step stopping test of :func:`flowcore.dynamics.trajectories.iterate`.

One pass over the active rows replaces a dozen NumPy temporaries per step (what dominates the
loop's own cost when the model is small). ``check_rows_ref`` and ``retire_rows_ref`` are the
vectorised NumPy references (same arguments, same in-place effects, same return value).
"""

from __future__ import annotations

import numpy as np

from flowcore.dynamics._numba import njit

__all__ = ["check_rows", "check_rows_ref", "retire_rows", "retire_rows_ref"]


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


def check_rows_ref(step_sq, norm_sq, steps, tol, limit_sq, max_steps, done, status):
    """NumPy reference of :func:`check_rows` (same in-place contract).

    Parameters
    ----------
    step_sq, norm_sq : ndarray of shape (n,), float32
        This step's ``‖z_t − z_{t−1}‖²`` and ``‖z_t‖²``.
    steps : ndarray of shape (n,), int32
        Steps so far; incremented by one in place.
    tol, limit_sq : float32
        Convergence tolerance on ``step_sq``; divergence limit on ``norm_sq``.
    max_steps : int
    done : ndarray of shape (n,), bool
        Filled in place: True for the rows that stop now.
    status : ndarray of shape (n,), int8
        Set in place for the stopped rows only: 0 converged, 1 max_steps, 2 diverged.

    Returns
    -------
    int
        How many rows stopped.
    """
    steps += 1
    diverged = ~(norm_sq <= limit_sq) | ~np.isfinite(step_sq)
    converged = ~diverged & (step_sq < tol)
    maxed = ~diverged & ~converged & (steps >= max_steps)
    status[diverged] = 2
    status[converged] = 0
    status[maxed] = 1
    done[:] = diverged | converged | maxed
    return int(np.count_nonzero(done))


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


def retire_rows_ref(z_new, act_idx, act_steps, step_sq, done, st, final, steps, last_sq, status):
    """NumPy reference of :func:`retire_rows` (same in-place contract).

    Parameters
    ----------
    z_new : ndarray of shape (n, k), float32
        This step's states; the kept rows are moved to the front in place (order kept).
    act_idx : ndarray of shape (n,), int64
        Global row number of each active row (distinct); compacted in place.
    act_steps : ndarray of shape (n,), int32
        Steps of each active row; compacted in place.
    step_sq : ndarray of shape (n,), float32
    done : ndarray of shape (n,), bool
        Rows that stop now.
    st : ndarray of shape (n,), int8
        Their status.
    final : ndarray of shape (N, k), float32
    steps, last_sq, status : ndarray of shape (N,), int32 / float32 / int8
        Filled in place at the stopped rows' global numbers.

    Returns
    -------
    int
        Rows still active (the first rows of ``z_new``, ``act_idx``, ``act_steps``); rows past
        them are left as they were.
    """
    rows = act_idx[done]
    final[rows] = z_new[done]
    steps[rows] = act_steps[done]
    last_sq[rows] = step_sq[done]
    status[rows] = st[done]
    keep = ~done
    w = int(np.count_nonzero(keep))
    z_new[:w] = z_new[keep]
    act_idx[:w] = act_idx[keep]
    act_steps[:w] = act_steps[keep]
    return w
