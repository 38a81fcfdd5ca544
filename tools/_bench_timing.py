"""Timing helpers shared by the benchmarks (``tools/bench_engines.py``).

* :class:`CpuMeter` — CPU time other processes used during a block (``foreign_cores``).
* :func:`schedule_of` — the per-step batch sizes of flowcore's python engine, rebuilt from the
  per-row step counts (refill before each step, compaction after), so a raw ``session.run`` loop
  can replay exactly the same row-steps.
* :func:`raw_session` / :func:`time_raw` — the raw ONNX Runtime floor.
* :func:`step_stats`, :func:`tile_with_jitter`, :func:`spread` — small numeric helpers.
* :func:`calling_thread_daz` — whether this thread treats subnormal floats as zero (ONNX Runtime's
  ``session.set_denormal_as_zero`` of the first session in a process sets it on the caller).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["T_START", "log", "CpuMeter", "wait_for_quiet", "schedule_of", "raw_session", "time_raw",
           "step_stats", "tile_with_jitter", "spread", "calling_thread_daz", "cores"]

T_START = time.perf_counter()


def log(msg: str) -> None:
    """Progress line on stderr, prefixed by the seconds since the benchmark started."""
    print(f"[{time.perf_counter() - T_START:7.1f}s] {msg}", file=sys.stderr, flush=True)


def cores(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f}"


class CpuMeter:
    """CPU time used by *other* processes during a block, in cores, from /proc/stat.

    ``foreign_cores`` ≈ 0 on a quiet machine; ≥ 0.3 means the timing shared the cores with
    someone else and is pessimistic. None for blocks under 1 s (10 ms ticks) or without /proc.
    """

    def __init__(self):
        self.foreign_cores: float | None = None

    @staticmethod
    def _busy() -> float | None:
        try:
            f = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        return (sum(f[:8]) - f[3] - f[4]) / hz  # all but idle and iowait

    def __enter__(self):
        self._b0, self._p0, self._t0 = self._busy(), _self_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        b1, p1, t1 = self._busy(), _self_cpu(), time.perf_counter()
        if self._b0 is not None and b1 is not None and t1 - self._t0 >= 1.0:
            self.foreign_cores = max(0.0, ((b1 - self._b0) - (p1 - self._p0)) / (t1 - self._t0))
        return False


def _self_cpu() -> float:
    """CPU seconds of this process and of its finished children (the subnormal workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def wait_for_quiet(max_wait: float, what: str, threshold: float = 0.25) -> float | None:
    """Wait up to ``max_wait`` s until other processes use < ``threshold`` cores over 1 s."""
    if max_wait <= 0:
        return None
    t_end = time.perf_counter() + max_wait
    while True:
        with CpuMeter() as m:
            time.sleep(1.0)
        if m.foreign_cores is None or m.foreign_cores < threshold or time.perf_counter() >= t_end:
            return m.foreign_cores
        log(f"{what}: waiting for a quiet machine (other processes: {m.foreign_cores:.2f} cores)")
        time.sleep(4.0)


def schedule_of(steps: np.ndarray, batch_size: int) -> np.ndarray:
    """Per-step batch sizes of the python engine for rows needing ``steps`` applications each.

    Mirrors ``flowcore/dynamics/_pass.py::run_pass``: before each step the batch is refilled in
    order up to ``batch_size``; after it the rows that stopped leave. The sizes depend only on
    the step counts, not on the order kept inside the batch.

    Parameters
    ----------
    steps : ndarray of shape (N,), int
        Applications of f per row (>= 1), in start order.
    batch_size : int

    Returns
    -------
    ndarray of shape (n_calls,), int64
        Rows in each ``step`` call; its sum is ``steps.sum()``.
    """
    steps = np.asarray(steps, np.int64)
    n, nxt = len(steps), 0
    active = np.empty(0, np.int64)
    sizes: list[int] = []
    while True:
        if len(active) < batch_size and nxt < n:
            take = min(batch_size - len(active), n - nxt)
            active = np.concatenate([active, steps[nxt : nxt + take]])
            nxt += take
        if not len(active):
            break
        sizes.append(len(active))
        active = active - 1
        if active.min() == 0:
            active = active[active > 0]
    return np.asarray(sizes, np.int64)


def raw_session(model, threads: int, *, denormal_as_zero: bool = True, providers=("CPUExecutionProvider",)):
    """A bare InferenceSession of ``model`` (onnx.ModelProto) with flowcore's default options.

    ``denormal_as_zero=False`` leaves out ``session.set_denormal_as_zero`` (the subnormal trap).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if denormal_as_zero:
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=list(providers))


def time_raw(sess, base: np.ndarray, schedule: np.ndarray) -> float:
    """Seconds for ``sess.run`` (all outputs) on ``base[:m]`` for every m in ``schedule``."""
    in_name = sess.get_inputs()[0].name
    run = sess.run
    views = {int(m): base[: int(m)] for m in np.unique(schedule)}
    t = time.perf_counter()
    for m in schedule:
        run(None, {in_name: views[m]})
    return time.perf_counter() - t


def step_stats(steps: np.ndarray, status: np.ndarray, max_steps: int) -> dict[str, Any]:
    """Spread of the per-row step counts (min / median / p90 / p99 / max) and the status counts."""
    s = np.asarray(steps, np.float64)
    return {
        "min": int(s.min()), "median": float(np.median(s)), "p90": float(np.percentile(s, 90)),
        "p99": float(np.percentile(s, 99)), "max": int(s.max()), "mean": float(s.mean()),
        "hit_max_steps": int(np.sum(steps >= max_steps)), "converged": int(np.sum(status == 0)),
        "diverged": int(np.sum(status == 2)),
    }


def tile_with_jitter(z: np.ndarray, rows: int, seed: int, rel: float = 0.01) -> np.ndarray:
    """First ``len(z)`` rows exact, the rest copies plus N(0, (rel·std_d)²) per latent dimension.

    Returns ndarray of shape (rows, *z.shape[1:]), float32, C-contiguous.
    """
    reps = int(np.ceil(rows / len(z)))
    out = np.tile(z, (reps,) + (1,) * (z.ndim - 1))[:rows].copy()
    std = z.std(axis=0, keepdims=True)
    noise = np.random.default_rng(seed).standard_normal(out.shape).astype(np.float32)
    out[len(z) :] += rel * std * noise[len(z) :]
    return np.ascontiguousarray(out, dtype=np.float32)


def spread(values: list[float]) -> dict[str, Any]:
    """``{"median", "min", "max", "all"}`` of timings (seconds); empty input → all None."""
    if not values:
        return {"median": None, "min": None, "max": None, "all": []}
    return {"median": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values)),
            "all": [float(v) for v in values]}


def calling_thread_daz() -> bool:
    """True when this thread flushes subnormal float32 inputs to zero (DAZ/FTZ set in MXCSR)."""
    tiny = np.array([1e-40], np.float32)  # subnormal
    return bool((tiny * np.float32(1.0))[0] == 0.0)
