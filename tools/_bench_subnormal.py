"""The subnormal rows of ``tools/bench_engines.py``: a model with subnormal weights vs its flushed twin.

Whether a thread flushes subnormals is per-thread CPU state (MXCSR DAZ/FTZ), and ONNX Runtime sets
it on the *calling* thread once, from the first session created in the process
(``session.set_denormal_as_zero``). So every configuration runs in a fresh worker process
(``python tools/_bench_subnormal.py SPEC.json``), where its own session is the first one, and the
parent interleaves the workers (A B C D E, A B C D E, …). Configurations, all replaying or running
the same starts at the same batch size:

* ``flowcore``            — ``LatentMap`` defaults: subnormal weights flushed in memory, DAZ on
* ``flowcore_no_flush``   — ``flush_subnormals=False``: the original weights, DAZ on
* ``raw_flushed``         — raw ``session.run`` on the flushed fused graph, DAZ on (the twin's floor)
* ``raw_unflushed_daz``   — raw on the original graph with ``set_denormal_as_zero`` only
* ``raw_trap``            — raw on the original graph, no ``set_denormal_as_zero``: what a user
  of plain ONNX Runtime gets
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_timing import CpuMeter, calling_thread_daz, log, raw_session, spread, time_raw  # noqa: E402

__all__ = ["CONFIGS", "bench_subnormal"]

CONFIGS = ("flowcore", "flowcore_no_flush", "raw_flushed", "raw_unflushed_daz", "raw_trap")


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration once (after a warm-up) and return its timing as plain JSON."""
    cfg = spec["config"]
    z0 = np.load(spec["z0"], allow_pickle=False)
    schedule = np.load(spec["schedule"], allow_pickle=False)
    threads = spec["threads"]
    out: dict[str, Any] = {"config": cfg, "daz_before": calling_thread_daz()}
    if cfg.startswith("flowcore"):
        from _bench_rows import run_engine
        from flowcore import LatentMap

        lmap = LatentMap(spec["bundle"], providers="cpu", intra_op_num_threads=threads,
                         flush_subnormals=cfg == "flowcore")
        kw = dict(tol=spec["tol"], max_steps=spec["max_steps"], batch_size=spec["batch_size"])
        run_engine(lmap, z0[: spec["batch_size"]], spec["engine"], **{**kw, "max_steps": 3})
        t = time.perf_counter()
        tr = run_engine(lmap, z0, spec["engine"], **kw)
        out["seconds"] = time.perf_counter() - t
        out["steps"] = tr.steps.tolist()
        out["subnormal_weights"] = tr.settings.get("subnormal_weights")
    else:
        from flowcore import FlowBundle, count_subnormals, flush_subnormals, fuse

        model = fuse(FlowBundle.load(spec["bundle"]))
        out["subnormals_in_graph"] = count_subnormals(model)
        if cfg == "raw_flushed":
            model, _ = flush_subnormals(model)
        sess = raw_session(model, threads, denormal_as_zero=cfg != "raw_trap")
        base = np.ascontiguousarray(z0[: int(schedule.max())])
        for _ in range(2):
            sess.run(None, {sess.get_inputs()[0].name: base})
        out["seconds"] = time_raw(sess, base, schedule)
    out["daz_after"] = calling_thread_daz()
    return out


def bench_subnormal(name: str, bundle: Path, z0: np.ndarray, steps: np.ndarray, schedule: np.ndarray,
                    cfg: dict, args, folder: Path, *, batch_size: int, engine: str = "python") -> dict[str, Any]:
    """Interleave the worker processes of every configuration; returns the subnormal row's JSON dict.

    Parameters
    ----------
    z0 : ndarray of shape (N, k), float32
        The starts.
    steps, schedule : ndarray, int
        The reference run's per-row steps (N,) and its per-step batch sizes (for the raw replays).
    folder : Path
        Where the workers' inputs are written (this benchmark's own folder).
    """
    from flowcore import FlowBundle, count_subnormals

    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "z0.npy", z0)
    np.save(folder / "schedule.npy", schedule)
    b = FlowBundle.load(bundle)
    res: dict[str, Any] = {
        "model": name, "bundle": str(bundle), "batch_size": batch_size, "n_starts": len(z0), "engine": engine,
        "row_steps": int(schedule.sum()),
        "subnormal_weights": {"encoder": count_subnormals(b.encoder), "decoder": count_subnormals(b.decoder),
                              "encoder_total": _n_weights(b.encoder), "decoder_total": _n_weights(b.decoder)},
        "configs": {}}
    times: dict[str, list[float]] = {c: [] for c in CONFIGS}
    foreign: dict[str, list[float | None]] = {c: [] for c in CONFIGS}
    for r in range(cfg["sub_repeats"]):
        for c in CONFIGS:
            spec = {"config": c, "bundle": str(bundle), "z0": str(folder / "z0.npy"),
                    "schedule": str(folder / "schedule.npy"), "threads": args.threads, "tol": cfg["tol"],
                    "max_steps": cfg["max_steps"], "batch_size": batch_size, "engine": engine}
            (folder / f"spec_{c}.json").write_text(json.dumps(spec))
            with CpuMeter() as m:
                p = subprocess.run([sys.executable, __file__, str(folder / f"spec_{c}.json")],
                                   capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"subnormal worker {c} failed ({p.returncode}): {p.stderr.strip()[-800:]}")
            got = json.loads(p.stdout.strip().splitlines()[-1])
            times[c].append(got.pop("seconds"))
            foreign[c].append(m.foreign_cores)  # over the whole worker (start-up included)
            st = got.pop("steps", None)
            if st is not None:
                got["steps_agree_vs_reference"] = float(np.mean(np.asarray(st) == steps))
            res["configs"].setdefault(c, {}).update(got)
        log(f"{name} (subnormal) repeat {r + 1}/{cfg['sub_repeats']}: "
            + "  ".join(f"{c} {times[c][-1]:.3f}s" for c in CONFIGS))
    for c in CONFIGS:
        res["configs"][c]["seconds"] = spread(times[c])
        res["configs"][c]["foreign_cores"] = foreign[c]
    med = {c: res["configs"][c]["seconds"]["median"] for c in CONFIGS}
    res["ratios"] = {
        "flowcore_vs_flushed_twin": med["flowcore"] / med["raw_flushed"],
        "flowcore_no_flush_vs_flowcore": med["flowcore_no_flush"] / med["flowcore"],
        "trap_vs_flowcore": med["raw_trap"] / med["flowcore"],
        "trap_vs_flushed_twin": med["raw_trap"] / med["raw_flushed"],
        "daz_only_vs_flushed_twin": med["raw_unflushed_daz"] / med["raw_flushed"],
    }
    return res


def _n_weights(model) -> int:
    from onnx import numpy_helper

    return int(sum(numpy_helper.to_array(t).size for t in model.graph.initializer
                   if numpy_helper.to_array(t).dtype.kind == "f"))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(json.dumps(_worker(json.loads(Path(sys.argv[1]).read_text()))))
