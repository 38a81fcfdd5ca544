"""One pass of the segment engine: up to K steps of f per ONNX Runtime call (``engine="segment"``).

:func:`run_segments` runs the segment graph of :mod:`flowcore.runtime.segment` on the running rows:
inside one call every row advances until it stops or K steps have passed, stopped rows are written
out and dropped from the batch in the graph (so none is computed again), and between calls the
host records the stopped rows and refills the batch from the chunk's starts. The results (final
state, steps, status, last squared step) are those of the per-step loop of
:mod:`flowcore.dynamics._pass`, row for row.

K adapts: it starts at ``trips`` and is halved when more than a quarter of a call's rows stopped
inside it (the batch ran short of rows for too long), doubled (up to ``trips``) when fewer than an
eighth did. It changes only how often the host refills, never a row's result.
"""

from __future__ import annotations

import numpy as np

from flowcore.errors import BackendError

__all__ = ["run_segments", "DEFAULT_TRIPS"]

#: Most steps per call by default (measured: docs/architecture.md, "Engines").
DEFAULT_TRIPS = 32


def _run(sess, feed):
    try:
        return sess.run(None, feed)
    except Exception as exc:
        raise BackendError(f"ONNX Runtime failed: {str(exc).splitlines()[0]}") from None


def run_segments(lmap, z0: np.ndarray, out: dict[str, np.ndarray], cfg, bar, *, trips: int = DEFAULT_TRIPS,
                 adaptive: bool = True) -> None:
    """Iterate the rows ``z0`` (n, *latent_shape) float32, filling the views ``out`` in place.

    ``cfg`` is the pass's :class:`~flowcore.dynamics._pass.PassSettings` (``every`` must be 0: the
    segment engine records no paths); ``trips`` the most steps per call (K).
    """
    sess = lmap.segment_session()
    final, steps, status, last_sq = out["final"], out["steps"], out["status"], out["last_step_sq"]
    n, shape = len(z0), z0.shape[1:]
    tol = np.asarray(cfg.tol, np.float32)
    limit = np.asarray(cfg.limit_sq, np.float32)
    max_steps = np.asarray(min(cfg.max_steps, np.iinfo(np.int32).max), np.int32)
    top = max(1, int(trips))
    k_now = top
    act_z = np.empty((0, *shape), np.float32)
    act_idx = np.empty(0, np.int64)
    act_steps = np.empty(0, np.int32)
    nxt = 0
    while True:
        if len(act_idx) < cfg.batch_size and nxt < n:
            take = min(cfg.batch_size - len(act_idx), n - nxt)
            act_z = np.concatenate([act_z, z0[nxt : nxt + take]]) if len(act_idx) else z0[nxt : nxt + take]
            act_idx = np.concatenate([act_idx, np.arange(nxt, nxt + take, dtype=np.int64)])
            act_steps = np.concatenate([act_steps, np.zeros(take, np.int32)])
            nxt += take
        m = len(act_idx)
        if not m:
            break
        z_run, i_run, s_run, z_last, s_last, sq_last, nrm_last = _run(sess, {
            "z": act_z, "idx": np.arange(m, dtype=np.int64), "steps": act_steps,
            "trips": np.asarray(k_now, np.int64), "tol": tol, "limit_sq": limit, "max_steps": max_steps})
        stopped = np.ones(m, np.bool_)
        stopped[i_run] = False
        n_done = m - len(i_run)
        if n_done:
            rows = act_idx[stopped]
            final[rows] = z_last[stopped]
            s_stop = s_last[stopped]
            steps[rows] = s_stop
            sq = sq_last[stopped]
            last_sq[rows] = sq
            # the status, from the values the graph stopped on, in check_rows' order
            status[rows] = np.where(~(nrm_last[stopped] <= cfg.limit_sq) | ~np.isfinite(sq), 2,
                                    np.where(sq < cfg.tol, 0, 1)).astype(np.int8)
            if bar is not None:
                bar.update(n_done)
        act_z, act_idx, act_steps = z_run, act_idx[i_run], s_run
        if adaptive:
            if 4 * n_done > m and k_now > 1:
                k_now //= 2
            elif 8 * n_done < m and k_now < top:
                k_now = min(top, 2 * k_now)
