"""One pass of :func:`flowcore.dynamics.trajectories.iterate` over a chunk of starts.

:func:`run_pass` is the batched loop: per-sample stopping (:mod:`flowcore.dynamics._step_kernel`),
compaction of the rows that stopped and refill from the chunk's own starts, optional paths and
streaming features. :func:`join_paths` stacks the chunks' paths as one pass would have padded
them, and :func:`restore_chunk` puts a checkpointed chunk back into the result arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flowcore.dynamics._step_kernel import check_rows, retire_rows

__all__ = ["PassSettings", "run_pass", "join_paths", "restore_chunk"]


class PassSettings(NamedTuple):
    """The stopping settings of one pass, as the kernels take them."""

    tol: np.float32
    limit_sq: np.float32
    max_steps: int
    batch_size: int
    every: int


def restore_chunk(done: dict[str, np.ndarray], out: dict[str, np.ndarray], every: int) -> bool:
    """Copy a checkpointed chunk into the result views ``out``; False when it does not fit them."""
    for name, view in out.items():
        a = done.get(name)
        if a is None or a.shape != view.shape or a.dtype != view.dtype:
            return False
    if every and ("path" not in done or "path_steps" not in done):
        return False
    for name, view in out.items():
        view[...] = done[name]
    return True


def run_pass(lmap, z0: np.ndarray, out: dict[str, np.ndarray], cfg: PassSettings, recorder, bar):
    """Iterate the rows ``z0`` (n, *latent_shape) as one pass, filling the views ``out`` in place.

    Rows leave the batch when they stop (compaction) and the next starts of ``z0`` refill it.
    Returns the recorded (path, path_steps) of these rows, or None without ``cfg.every``.
    """
    final, steps, status, last_sq = out["final"], out["steps"], out["status"], out["last_step_sq"]
    n, shape, every, batch_size = len(z0), z0.shape[1:], cfg.every, cfg.batch_size
    rec: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    act_z = np.empty((0, *shape), np.float32)
    act_idx = np.empty(0, np.int64)
    act_steps = np.empty(0, np.int32)
    nxt = 0
    final_flat = final.reshape(n, int(np.prod(shape, dtype=np.int64)))
    done_buf = np.empty(min(batch_size, max(n, 1)), np.bool_)
    status_buf = np.empty(min(batch_size, max(n, 1)), np.int8)
    while True:
        if len(act_idx) < batch_size and nxt < n:
            take = min(batch_size - len(act_idx), n - nxt)
            new_idx = np.arange(nxt, nxt + take, dtype=np.int64)
            if every:
                rec.append((new_idx, np.zeros(take, np.int32), z0[nxt : nxt + take].copy()))
            if recorder is not None:
                recorder.start(new_idx, z0[nxt : nxt + take])
            if len(act_idx):
                act_z = np.concatenate([act_z, z0[nxt : nxt + take]])
                act_idx = np.concatenate([act_idx, new_idx])
                act_steps = np.concatenate([act_steps, np.zeros(take, np.int32)])
            else:
                act_z = z0[nxt : nxt + take]  # read only: the first step returns a fresh array
                act_idx, act_steps = new_idx.copy(), np.zeros(take, np.int32)  # compacted in place
            nxt += take
        if not len(act_idx):
            break
        z_new, sq, nrm = lmap.step(act_z)
        m = len(act_idx)
        done, st = done_buf[:m], status_buf[:m]
        n_done = check_rows(sq, nrm, act_steps, cfg.tol, cfg.limit_sq, cfg.max_steps, done, st)
        if recorder is not None:
            recorder.update(act_idx, z_new, sq, act_steps)
        if every:
            due = (act_steps % every == 0) & ~done
            if due.any():
                rec.append((act_idx[due], act_steps[due], z_new[due]))
        if n_done:
            if every:
                rec.append((act_idx[done], act_steps[done], z_new[done]))
            flat_new = z_new.reshape(m, final_flat.shape[1])
            w = retire_rows(flat_new, act_idx, act_steps, sq, done, st, final_flat, steps, last_sq, status)
            act_z = z_new[:w]
            act_idx = act_idx[:w]
            act_steps = act_steps[:w]
            if bar is not None:
                bar.update(n_done)
        else:
            act_z = z_new
    return _assemble_path(rec, n, shape) if every else None


def join_paths(parts: list[tuple[np.ndarray, np.ndarray]], shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Stack the chunks' paths, NaN / −1 padded to the longest (as one pass would have padded them)."""
    n = sum(len(p[1]) for p in parts)
    length = max(p[1].shape[1] for p in parts)
    path = np.full((n, length, *shape), np.nan, np.float32)
    path_steps = np.full((n, length), -1, np.int32)
    lo = 0
    for p, ps in parts:
        path[lo : lo + len(ps), : ps.shape[1]] = p
        path_steps[lo : lo + len(ps), : ps.shape[1]] = ps
        lo += len(ps)
    return path, path_steps


def _assemble_path(rec, n: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    if not rec:
        return np.empty((n, 0, *shape), np.float32), np.empty((n, 0), np.int32)
    rows = np.concatenate([r[0] for r in rec])
    st = np.concatenate([r[1] for r in rec])
    zs = np.concatenate([r[2] for r in rec])
    order = np.lexsort((st, rows))  # by row, then step
    rows, st, zs = rows[order], st[order], zs[order]
    counts = np.bincount(rows, minlength=n)
    length = int(counts.max()) if n else 0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if n else np.empty(0, np.int64)
    pos = np.arange(len(rows)) - np.repeat(starts, counts)
    path = np.full((n, length, *shape), np.nan, np.float32)
    path_steps = np.full((n, length), -1, np.int32)
    path[rows, pos] = zs
    path_steps[rows, pos] = st
    return path, path_steps
