"""One benchmark row of ``tools/bench_engines.py``: a model at one batch size, every column.

Columns, timed in one process with repeats interleaved (cycle = python, iobinding, auto,
raw, torch per-row, torch batch-global; then the next cycle): flowcore's engines
(``flowcore.iterate(..., options=flowcore.IterateOptions(engine=E))``), the raw ``session.run`` floor replaying the python engine's
per-step batch sizes, and the two torch eager peers of :mod:`_bench_torch`. Every engine's
endpoints, step counts and statuses are compared with the python engine's, and the torch per-row
loop's step counts too (float noise can move a row across ``tol``: the agreeing fraction is
reported).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from _bench_timing import CpuMeter, cores, log, raw_session, schedule_of, spread, step_stats, time_raw, wait_for_quiet

__all__ = ["ENGINES", "probe_engines", "run_engine", "bench_row", "derive_row"]

ENGINES = ("python", "iobinding", "auto")


class EngineMissing(Exception):
    """The installed flowcore has no such engine (or option) yet."""


def run_engine(lmap, z0: np.ndarray, engine: str, *, tol: float, max_steps: int, batch_size: int, **extra):
    """``flowcore.iterate`` with ``engine`` (``extra``: more :class:`flowcore.IterateOptions` fields,
    e.g. ``cuda_graph``); EngineMissing when this flowcore cannot run it."""
    from flowcore import IterateOptions, ParameterError, iterate

    try:
        return iterate(lmap, z0, tol=tol, max_steps=max_steps, batch_size=batch_size, progress=False,
                       options=IterateOptions(engine=engine, **extra))
    except ParameterError as exc:
        raise EngineMissing(f"not available ({str(exc).splitlines()[0]})") from None


def probe_engines(lmap, z0: np.ndarray, engines=ENGINES, **extra) -> dict[str, str | None]:
    """None for each engine that runs on a few rows, else why not (also warms its sessions up)."""
    out: dict[str, str | None] = {}
    for e in engines:
        try:
            run_engine(lmap, z0[:8], e, tol=1e-6, max_steps=3, batch_size=8, **extra)
            out[e] = None
        except EngineMissing as exc:
            out[e] = str(exc)
    return out


def _agree(ref, got_final, got_steps, got_status) -> dict[str, Any]:
    d = np.abs(np.asarray(got_final, np.float64).reshape(len(ref.final), -1)
               - ref.final.reshape(len(ref.final), -1).astype(np.float64))
    return {
        "identical": bool(np.array_equal(got_final.reshape(ref.final.shape), ref.final)
                          and np.array_equal(got_steps, ref.steps) and np.array_equal(got_status, ref.status)),
        "steps_agree": float(np.mean(np.asarray(got_steps) == ref.steps)),
        "status_agree": float(np.mean(np.asarray(got_status) == ref.status)),
        "final_max_abs_diff": float(np.nanmax(d)) if d.size else 0.0,
    }


def bench_row(model: str, lmap, z0: np.ndarray, twin, cfg: dict, args, *, batch_size: int,
              available: dict[str, str | None]) -> dict[str, Any]:
    """Time every column on ``z0`` (N, k) float32 at ``batch_size``; returns the row's JSON dict.

    ``twin`` is (encoder, decoder) in torch or None; ``available`` maps engine → None or why not.
    """
    import _bench_torch as bt

    tol, max_steps = cfg["tol"], cfg["max_steps"]
    n = len(z0)
    res: dict[str, Any] = {"model": model, "batch_size": batch_size, "n_starts": n, "tol": tol,
                           "max_steps": max_steps, "engines_available": dict(available), "columns": {}}
    engines = [e for e in ENGINES if available.get(e) is None]
    sess = raw_session(lmap.fused_model, args.threads)
    warm = z0[: min(batch_size, n)]
    for _ in range(2):
        sess.run(None, {sess.get_inputs()[0].name: warm})
    for e in engines:  # sessions built, arenas grown at this batch size
        run_engine(lmap, warm, e, tol=tol, max_steps=3, batch_size=batch_size)
    if twin is not None:
        res["twin_max_abs_diff_f"] = bt.twin_parity(twin[0], twin[1], lmap, warm[: min(len(warm), 512)])
        bt.torch_per_row(twin[0], twin[1], warm, tol=tol, max_steps=3, batch_size=batch_size)
    times: dict[str, list[float]] = {c: [] for c in (*engines, "raw", "torch_per_row", "torch_batch_global")}
    foreign: dict[str, list[float | None]] = {c: [] for c in times}
    ref = schedule = base = None  # set by the first python run (each cycle runs python before raw)
    repeats, r = cfg["repeats"], 0
    bg_plan = None
    while r < repeats:
        wait_for_quiet(args.wait_quiet, model)
        for col in times:
            if col == "torch_batch_global" and (twin is None or r >= cfg["bg_repeats"]):
                continue
            if col.startswith("torch") and (twin is None or r >= cfg["repeats"]):
                continue  # the extra cycles of short rows are for flowcore and raw only
            with CpuMeter() as m:
                t = time.perf_counter()
                if col in engines:
                    tr = run_engine(lmap, z0, col, tol=tol, max_steps=max_steps, batch_size=batch_size)
                elif col == "raw":
                    time_raw_s = time_raw(sess, base, schedule)
                elif col == "torch_per_row":
                    tp = bt.torch_per_row(twin[0], twin[1], z0, tol=tol, max_steps=max_steps, batch_size=batch_size)
                else:
                    z_bg, bg = bt.torch_batch_global(twin[0], twin[1], z0, tol=tol, max_steps=max_steps,
                                                     batch_size=batch_size, measure_steps=bg_plan["measure_steps"],
                                                     needed_steps=bg_plan["chunk_steps"])
                dt = time.perf_counter() - t
            times[col].append(time_raw_s if col == "raw" else bg["seconds"] if col == "torch_batch_global" else dt)
            foreign[col].append(m.foreign_cores)
            if col == "python" and ref is None:
                ref = tr
                schedule = schedule_of(tr.steps, batch_size)
                base = np.ascontiguousarray(z0[: int(schedule.max())])
                res["steps"] = step_stats(tr.steps, tr.status, max_steps)
                res["row_steps"] = int(schedule.sum())
                res["step_calls"] = len(schedule)
                bg_plan = _bg_plan(tr.steps, batch_size, cfg["bg_measure_steps"])
                res["torch_batch_global_plan"] = bg_plan
                if r == 0 and dt < 0.5:  # short rows: more cycles (≥ ~1.5 s per column, at most max_repeats)
                    repeats = min(cfg["max_repeats"], max(repeats, int(np.ceil(1.5 / max(dt, 1e-3)))))
            if col in engines:
                c = res["columns"].setdefault(col, {})
                c["agreement_vs_python"] = _agree(ref, tr.final, tr.steps, tr.status)
                c["engine_ran"] = tr.settings["engine"]
                c["settings"] = {k: v for k, v in tr.settings.items() if "engine" in k}
            elif col == "torch_per_row":
                c = res["columns"].setdefault(col, {})
                c["agreement_vs_python"] = _agree(ref, tp["final"], tp["steps"], tp["status"])
                c["row_steps"] = tp["row_steps"]
            elif col == "torch_batch_global":
                c = res["columns"].setdefault(col, {})
                c.update({k: bg[k] for k in ("row_steps", "chunk_steps", "projected", "measured_seconds")})
                full = np.ones(n, bool)
                for p in bg["projected"]:
                    full[p * batch_size : (p + 1) * batch_size] = False
                dist = np.linalg.norm((z_bg - ref.final.reshape(z_bg.shape))[full], axis=1)
                c["final_l2_vs_python"] = ({"median": float(np.median(dist)), "max": float(np.max(dist))}
                                           if full.any() else None)
        r += 1
        msg = "  ".join(f"{c} {v[-1]:.3f}s" for c, v in times.items() if len(v) == r)
        log(f"{model} b={batch_size}: cycle {r}/{repeats}: {msg} (others used "
            f"{cores(max((x for v in foreign.values() for x in v[-1:] if x is not None), default=None))} cores)")
        time.sleep(0.2)  # let torch's OpenMP workers go idle before the next ORT timing
    for col, v in times.items():
        if v:
            c = res["columns"].setdefault(col, {})
            c["seconds"] = spread(v)
            c["foreign_cores"] = foreign[col]
    res["repeats"] = repeats
    res["torch_repeats"] = min(repeats, cfg["repeats"])
    return derive_row(res)


def _bg_plan(steps: np.ndarray, batch_size: int, measure_steps: int | None) -> dict[str, Any]:
    """Steps each batch-global chunk needs (its slowest row's, in flowcore's run) and the cost cap."""
    chunks = np.array_split(steps, range(batch_size, len(steps), batch_size))
    need = [int(c.max()) for c in chunks]
    return {"chunk_steps": need, "row_steps": int(sum(len(c) * s for c, s in zip(chunks, need))),
            "measure_steps": measure_steps}


def _paired(a: list[float], b: list[float]) -> float | None:
    k = min(len(a), len(b))
    return float(np.median([x / y for x, y in zip(a[:k], b[:k])])) if k else None


def derive_row(res: dict[str, Any]) -> dict[str, Any]:
    """Ratios from the timings: each engine / raw (median of paired ratios), iobinding / python,
    best engine vs each torch peer (medians), and row-steps per second."""
    cols = res["columns"]
    raw = cols.get("raw", {}).get("seconds", {}).get("all", [])
    eng = {e: cols[e]["seconds"] for e in ENGINES if "seconds" in cols.get(e, {})}
    for e, s in eng.items():
        cols[e]["vs_raw"] = _paired(s["all"], raw)
        cols[e]["row_steps_per_s"] = res.get("row_steps", 0) / s["median"] if s["median"] else None
    ratios: dict[str, Any] = {}
    if "iobinding" in eng and "python" in eng:
        ratios["iobinding_vs_python"] = _paired(eng["iobinding"]["all"], eng["python"]["all"])
    if eng:
        best = min(eng, key=lambda e: eng[e]["median"])
        ratios["best_engine"] = best
        for peer in ("torch_batch_global", "torch_per_row"):
            s = cols.get(peer, {}).get("seconds")
            if s and s["median"]:
                ratios[f"best_vs_{peer}"] = s["median"] / eng[best]["median"]  # > 1: flowcore faster
                ratios[f"python_vs_{peer}"] = s["median"] / eng["python"]["median"] if "python" in eng else None
    res["ratios"] = ratios
    return res
