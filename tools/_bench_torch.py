"""The torch peers of ``tools/bench_engines.py`` (imports torch).

* :func:`torch_batch_global` — what one writes without flowcore (torchdeq's fixed-point pattern):
  chunks of ``batch_size`` rows, each chunk iterated until its *slowest* row has
  ``‖z_t − z_{t−1}‖² < tol`` (or ``max_steps``).
* :func:`torch_per_row` — flowcore's algorithm written in torch, the fairest peer: per-row
  stopping with flowcore's exact rule (converged / max_steps / diverged, in that precedence),
  compaction of the rows that stopped (``index_select`` on the kept rows) and refill from the
  next starts, under ``torch.inference_mode()``, results written into preallocated tensors.
  Same device for the model and the state; on CUDA only the count of stopped rows crosses to
  the host each step (one sync, as flowcore's iobinding engine).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

__all__ = ["torch_batch_global", "torch_per_row", "twin_parity"]


def torch_batch_global(encoder, decoder, z0: np.ndarray, *, tol: float, max_steps: int, batch_size: int,
                       device: str = "cpu", measure_steps: int | None = None,
                       needed_steps: list[int] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Torch eager loop, batch-global stop.

    Parameters
    ----------
    encoder, decoder : torch.nn.Module
        The twin of the ONNX bundle, in eval mode, on ``device``.
    z0 : ndarray of shape (N, k), float32
    tol, max_steps, batch_size
        As :func:`flowcore.iterate`.
    measure_steps, needed_steps : int and list of int, optional
        Cost cap: a chunk still running after ``measure_steps`` steps is stopped there and its time
        projected to ``needed_steps[chunk]`` steps (its slowest row's step count in flowcore's run)
        at the measured per-step rate — exact up to noise, as every step of a chunk has the same shape.

    Returns
    -------
    final : ndarray of shape (N, k), float32
        Rows of projected chunks hold where their chunk was stopped.
    info : dict
        ``seconds`` (measured + projected), ``row_steps`` (rows × steps, projected ones included),
        ``chunk_steps``, ``projected`` (chunk indices), ``measured_seconds``.
    """
    final = np.empty_like(z0)
    chunk_steps, row_steps, projected = [], 0, []
    seconds = measured = 0.0
    with torch.inference_mode():
        for c, i in enumerate(range(0, len(z0), batch_size)):
            z = torch.from_numpy(np.ascontiguousarray(z0[i : i + batch_size])).to(device)
            t, t0 = 0, time.perf_counter()
            stop = max_steps if measure_steps is None else min(max_steps, measure_steps)
            worst = float("inf")
            while t < stop:
                zn = encoder(decoder(z)).reshape(z.shape)
                t += 1
                worst = float(((zn - z) ** 2).sum(1).max())  # NaN never passes: a diverged row keeps going
                z = zn
                if worst < tol:
                    break
            dt = time.perf_counter() - t0
            measured += dt
            steps = t
            if not worst < tol and t < max_steps and needed_steps is not None:  # stopped by the cap
                steps = max(t, int(needed_steps[c]))
                dt *= steps / t
                projected.append(c)
            seconds += dt
            final[i : i + len(z)] = z.cpu().numpy()
            chunk_steps.append(steps)
            row_steps += steps * len(z)
    return final, {"seconds": seconds, "measured_seconds": measured, "row_steps": row_steps,
                   "chunk_steps": chunk_steps, "projected": projected}


def torch_per_row(encoder, decoder, z0: np.ndarray, *, tol: float, max_steps: int, batch_size: int,
                  norm_limit: float = 1e8, device: str = "cpu") -> dict[str, Any]:
    """flowcore's per-row stopping with compaction and refill, in torch.

    Parameters
    ----------
    encoder, decoder : torch.nn.Module
        In eval mode, on ``device``.
    z0 : ndarray of shape (N, k), float32
    tol, max_steps, batch_size, norm_limit
        As :func:`flowcore.iterate`: a row stops when ``‖z_t − z_{t−1}‖² < tol`` (float32
        comparison), diverges when its squared norm passes ``norm_limit²`` or its step is
        NaN/Inf, and ends ``max_steps`` at ``max_steps`` applications.

    Returns
    -------
    dict
        ``final`` (N, k) float32, ``steps`` (N,) int32, ``status`` (N,) int8 (0/1/2),
        ``last_step_sq`` (N,) float32, ``row_steps`` int, ``step_calls`` int.
    """
    n, k = z0.shape
    dev = torch.device(device)
    tol_t = torch.tensor(tol, dtype=torch.float32, device=dev)
    lim_t = torch.tensor(min(float(norm_limit) ** 2, float(np.finfo(np.float32).max)), dtype=torch.float32,
                         device=dev)
    src = torch.from_numpy(np.ascontiguousarray(z0)).to(dev)
    final = torch.empty((n, k), dtype=torch.float32, device=dev)
    steps_out = torch.zeros(n, dtype=torch.int32, device=dev)
    status_out = torch.zeros(n, dtype=torch.int8, device=dev)
    last_out = torch.zeros(n, dtype=torch.float32, device=dev)
    all_idx = torch.arange(n, dtype=torch.int64, device=dev)
    z = src[:0]
    idx = all_idx[:0]
    steps = torch.zeros(0, dtype=torch.int32, device=dev)
    nxt, row_steps, calls = 0, 0, 0
    with torch.inference_mode():
        while True:
            m = len(idx)
            if m < batch_size and nxt < n:
                take = min(batch_size - m, n - nxt)
                if m:
                    z = torch.cat([z, src[nxt : nxt + take]])
                    idx = torch.cat([idx, all_idx[nxt : nxt + take]])
                    steps = torch.cat([steps, torch.zeros(take, dtype=torch.int32, device=dev)])
                else:
                    z, idx = src[nxt : nxt + take], all_idx[nxt : nxt + take]
                    steps = torch.zeros(take, dtype=torch.int32, device=dev)
                nxt += take
                m = len(idx)
            if not m:
                break
            zn = encoder(decoder(z)).reshape(m, k)
            sq = ((zn - z) ** 2).sum(1)
            nrm = (zn * zn).sum(1)
            steps += 1
            calls += 1
            row_steps += m
            diverged = ~(nrm <= lim_t) | ~torch.isfinite(sq)
            converged = ~diverged & (sq < tol_t)
            done = diverged | converged | (steps >= max_steps)
            n_done = int(done.sum())  # the one host sync per step
            if n_done:
                gone = torch.nonzero(done).squeeze(1)
                rows = idx.index_select(0, gone)
                final.index_copy_(0, rows, zn.index_select(0, gone))
                steps_out.index_copy_(0, rows, steps.index_select(0, gone))
                last_out.index_copy_(0, rows, sq.index_select(0, gone))
                code = torch.where(diverged, 2, torch.where(converged, 0, 1)).to(torch.int8)
                status_out.index_copy_(0, rows, code.index_select(0, gone))
                if n_done < m:
                    keep = torch.nonzero(~done).squeeze(1)
                    z, idx, steps = zn.index_select(0, keep), idx.index_select(0, keep), steps.index_select(0, keep)
                else:
                    z, idx, steps = zn[:0], idx[:0], steps[:0]
            else:
                z = zn
    return {"final": final.cpu().numpy(), "steps": steps_out.cpu().numpy(), "status": status_out.cpu().numpy(),
            "last_step_sq": last_out.cpu().numpy(), "row_steps": row_steps, "step_calls": calls}


def twin_parity(encoder, decoder, lmap, z: np.ndarray) -> float:
    """max |torch E(D(z)) − ONNX f(z)| on ``z`` (N, k) float32: do the twins run the same map?"""
    with torch.inference_mode():
        zt = torch.from_numpy(np.ascontiguousarray(z))
        a = encoder(decoder(zt)).reshape(zt.shape).numpy()
    return float(np.max(np.abs(a - lmap.step(np.ascontiguousarray(z).reshape((len(z), *lmap.latent_shape)))[0]
                               .reshape(a.shape))))


def timed(fn, *args, **kwargs) -> tuple[Any, float]:
    """(fn(*args, **kwargs), wall seconds)."""
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t
