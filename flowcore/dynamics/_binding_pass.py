"""One pass of the device-resident engine (``engine="iobinding"``).

:func:`run_bound` drives a :class:`~flowcore.runtime.binding.BoundMap`: the running rows' latents
stay in its two device buffers, each step returns only the per-row squared step and norm, the
stopping test of :mod:`flowcore.dynamics._step_kernel` runs on the host, and when rows stop (or
starts are waiting) one compaction call on the device keeps the running rows, appends the next
starts and returns the stopped rows' states. Results equal those of the per-step loop of
:mod:`flowcore.dynamics._pass`, row for row.
"""

from __future__ import annotations

import numpy as np

from flowcore.dynamics._step_kernel import check_rows
from flowcore.runtime.binding import BoundMap

__all__ = ["run_bound"]


def run_bound(lmap, z0: np.ndarray, out: dict[str, np.ndarray], cfg, bar, *, buckets: bool = False,
              cuda_graph: bool = False) -> dict:
    """Iterate the rows ``z0`` (n, *latent_shape) float32, filling the views ``out`` in place.

    ``cfg`` is the pass's :class:`~flowcore.dynamics._pass.PassSettings` (``every`` must be 0).
    Returns the bound map's description (device, buckets, CUDA graph ids used).
    """
    final, steps, status, last_sq = out["final"], out["steps"], out["status"], out["last_step_sq"]
    n = len(z0)
    if n == 0:
        return {}
    capacity = min(cfg.batch_size, n)
    bound = BoundMap(lmap, capacity, buckets=buckets, cuda_graph=cuda_graph)
    empty = np.empty(0, np.int64)
    take = capacity
    bound.compact(0, empty, empty, z0[:take])
    act_idx = np.arange(take, dtype=np.int64)
    act_steps = np.zeros(take, np.int32)
    nxt = take
    done_buf = np.empty(capacity, np.bool_)
    status_buf = np.empty(capacity, np.int8)
    while len(act_idx):
        m = len(act_idx)
        sq, nrm = bound.step(m)
        done, st = done_buf[:m], status_buf[:m]
        n_done = check_rows(sq, nrm, act_steps, cfg.tol, cfg.limit_sq, cfg.max_steps, done, st)
        if not n_done:
            continue
        stop = np.flatnonzero(done)
        keep = np.flatnonzero(~done)
        add = min(capacity - len(keep), n - nxt)
        z_stop = bound.compact(m, keep, stop, z0[nxt : nxt + add])
        rows = act_idx[stop]
        final[rows] = z_stop
        steps[rows] = act_steps[stop]
        last_sq[rows] = sq[stop]
        status[rows] = st[stop]
        act_idx = np.concatenate([act_idx[keep], np.arange(nxt, nxt + add, dtype=np.int64)])
        act_steps = np.concatenate([act_steps[keep], np.zeros(add, np.int32)])
        nxt += add
        if bar is not None:
            bar.update(n_done)
    return bound.describe()
