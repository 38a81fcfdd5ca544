"""Machine description, README-ready tables and the batch-size recommendation of ``tools/bench_engines.py``."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from _machine import cpu_model
from _bench_rows import ENGINES
from _bench_timing import calling_thread_daz

__all__ = ["environment", "recommend_batch", "markdown"]

SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def environment(threads: int, *, with_torch: bool) -> dict[str, Any]:
    """CPU model, cores, versions, SIMD/AMX use of ONNX Runtime and torch, thread settings."""
    import onnx
    import onnxruntime as ort

    flags = _cpu_flags()
    have = [f for f in SIMD_FLAGS if f in flags]
    env: dict[str, Any] = {
        "cpu": cpu_model(), "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(), "numpy": np.__version__, "onnx": onnx.__version__,
        "onnxruntime": ort.__version__, "ort_providers_available": ort.get_available_providers(),
        "cpu_flags": have,
        # MLAS (ORT's CPU kernels) dispatches on CPUID at run time: AVX-512F present -> AVX-512
        # fp32 GEMM kernels; AMX only in its int8 GEMM (these fp32 graphs never use it).
        "ort_simd": ("AVX-512 (MLAS dispatch on avx512f)" if "avx512f" in flags else
                     "AVX2/FMA" if "avx2" in flags else "SSE"),
        "ort_amx_fp32": False,
        "threads": {"ort_intra_op_num_threads": threads, "ort_intra_op_spinning": False, "torch_num_threads": None},
        "calling_thread_daz": calling_thread_daz(),
    }
    if with_torch:
        import torch

        env["torch"] = torch.__version__
        env["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        env["threads"]["torch_num_threads"] = torch.get_num_threads()
        env["threads"]["torch_num_interop_threads"] = torch.get_num_interop_threads()
        env["torch_cuda_available"] = bool(torch.cuda.is_available())
        # oneDNN uses AMX for bf16/int8 only; fp32 eager matmuls run on the capability above
        env["torch_amx_fp32"] = False
    return env


def recommend_batch(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model, the batch size whose best engine gave the most row-steps/s; and the overall pick.

    The overall pick is the batch size with the highest geometric mean over the models measured at
    every candidate batch size of (row-steps/s at that batch) / (best row-steps/s of the model).
    """
    per: dict[str, dict[int, float]] = {}
    for r in rows:
        rates = [r["columns"][e].get("row_steps_per_s") for e in ENGINES if r["columns"].get(e, {}).get("row_steps_per_s")]
        if rates:
            per.setdefault(r["model"], {})[r["batch_size"]] = max(rates)
    out: dict[str, Any] = {"per_model": {m: {"best_batch": max(v, key=v.get), "row_steps_per_s": v}
                                         for m, v in per.items()}}
    sizes = sorted({b for v in per.values() for b in v})
    full = [v for v in per.values() if all(b in v for b in sizes)]
    if full and sizes:
        score = {b: float(np.exp(np.mean([np.log(v[b] / max(v.values())) for v in full]))) for b in sizes}
        out["overall"] = {"batch_size": max(score, key=score.get), "relative_rate": score,
                          "models": len(full)}
    return out


def _s(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x * 1e3:.0f} ms" if x < 1 else f"{x:.2f} s"


def _t(col: dict[str, Any] | None) -> str:
    """median (min–max), or why there is no number."""
    if not col or "seconds" not in col:
        return "—"
    s = col["seconds"]
    if len(s["all"]) == 1:
        return _s(s["median"])
    return f"{_s(s['median'])} ({_s(s['min'])}–{_s(s['max'])})"


def _x(v: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if v is None else fmt.format(v)


def machine_line(env: dict[str, Any]) -> str:
    th = env["threads"]
    torch_part = (f"torch {env['torch']} (capability {env['torch_cpu_capability']}, AMX for fp32: no, "
                  f"set_num_threads={th['torch_num_threads']})" if "torch" in env else "torch not measured")
    return (f"**Machine**: {env['cpu']}, {env['usable_cpus']} usable of {env['logical_cpus']} logical CPUs; "
            f"CPU flags {', '.join(env['cpu_flags']) or 'unknown'}; ONNX Runtime {env['onnxruntime']} CPU EP "
            f"(kernels: {env['ort_simd']}; AMX for fp32: no; intra_op_num_threads={th['ort_intra_op_num_threads']}, "
            f"spinning off); {torch_part}; Python {env['python']}.")


def markdown(payload: dict[str, Any]) -> str:
    """The README-ready report: engines table, subnormal table, import timings, batch pick, notes."""
    env, rows = payload["environment"], payload["rows"]
    head = ["model (k)", "batch", "starts", "steps median / p90 / max", "row-steps",
            *[f"{e}" for e in ENGINES], "raw session.run", "torch per-row", "torch batch-global",
            "engine / raw (py, iob)", "iob / py", "best vs torch per-row", "best vs torch batch-global",
            "engines agree", "torch steps agree"]
    lines = [machine_line(env), "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        c, st, ra = r["columns"], r.get("steps", {}), r.get("ratios", {})
        agree = [c[e]["agreement_vs_python"]["identical"] for e in ENGINES if "agreement_vs_python" in c.get(e, {})]
        tpr = c.get("torch_per_row", {}).get("agreement_vs_python")
        cells = [f"{r['model']} ({r['k']})", str(r["batch_size"]), f"{r['n_starts']:,}",
                 f"{st.get('median', 0):.0f} / {st.get('p90', 0):.0f} / {st.get('max', 0)}"
                 + (f" ({st['hit_max_steps']} at max)" if st.get("hit_max_steps") else ""),
                 f"{r.get('row_steps', 0):,}"]
        for e in ENGINES:
            why = r["engines_available"].get(e)
            cell = "n/a" if why else _t(c.get(e))
            if e == "auto" and not why and c.get(e, {}).get("engine_ran"):
                cell += f" → {c[e]['engine_ran']}"
            cells.append(cell)
        cbg = c.get("torch_batch_global", {})
        bg = _t(cbg) + (" (projected)" if cbg.get("projected") else "")
        cells += [_t(c.get("raw")), _t(c.get("torch_per_row")), bg,
                  " / ".join(_x(c.get(e, {}).get("vs_raw")) for e in ("python", "iobinding")),
                  _x(ra.get("iobinding_vs_python")),
                  _x(ra.get("best_vs_torch_per_row"), "{:.2f}×"), _x(ra.get("best_vs_torch_batch_global"), "{:.1f}×"),
                  ("yes" if all(agree) else "**no**") if agree else "—",
                  "—" if tpr is None else f"{100 * tpr['steps_agree']:.1f} %"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", _notes(payload)]
    sub = payload.get("subnormal")
    if sub:
        lines += ["", _subnormal_table(sub)]
    rec = payload.get("batch_recommendation", {})
    if rec.get("overall"):
        o = rec["overall"]
        per = ", ".join(f"{m}: {v['best_batch']}" for m, v in rec["per_model"].items())
        lines += ["", f"**Default batch size**: {o['batch_size']} (best row-steps/s per model — {per}; "
                  f"relative rate by batch over {o['models']} models: "
                  + ", ".join(f"{b}: {v:.2f}" for b, v in o["relative_rate"].items()) + ")."]
    imp = payload.get("import")
    if imp:
        lines += ["", "| start-up (fresh process) | median | min | max |", "|---|---|---|---|"]
        for name, case in imp.items():
            lines.append(f"| `{name}` | {case['median_s']:.3f} s | {case['min_s']:.3f} s | {case['max_s']:.3f} s |")
    return "\n".join(lines) + "\n"


def _notes(payload: dict[str, Any]) -> str:
    cfg, env = payload["config"], payload["environment"]
    busy = [x for r in payload["rows"] for c in r["columns"].values() for x in c.get("foreign_cores", []) if x]
    worst = max(busy, default=0.0)
    twins = payload.get("twins", {})
    same = all(t.get("identical") for t in twins.values()) if twins else None
    out = (f"tol={cfg['tol']:g}, max_steps={cfg['max_steps']}"
           f"{' (chosen so the whole run fits ' + str(cfg['budget_min']) + ' min on 2 cores)' if not payload['quick'] else ' (--quick)'}; "
           f"times: median (min–max) of {cfg['repeats']} interleaved cycles (rows under 0.5 s: up to {cfg['max_repeats']} cycles of the flowcore "
           f"and raw columns), "
           f"torch batch-global {cfg['bg_repeats']} cycle(s)"
           + (f"; a batch-global chunk still running after {cfg['bg_measure_steps']} steps is stopped and its time "
              "projected to the steps its slowest row needs (flowcore's count) at the measured per-step rate "
              "(every step of a chunk has the same shape): marked '(projected)'" if cfg.get("bg_measure_steps") else "")
           + f". engine / raw = median of paired ratios (< 1: faster than a bare session.run loop "
           f"over the same row-steps); best vs torch = torch median / fastest engine median (> 1: flowcore faster). "
           f"'engines agree': every engine's endpoints, steps and statuses equal the python engine's bit for bit. "
           f"Torch twins run the bundles' weights: "
           f"{'identical (every parameter compared)' if same else 'NOT all identical, see twins in the JSON' if same is False else 'n/a'}. "
           f"Whole run {payload['total_seconds']:.0f} s.")
    if worst > 0.25:
        out += (f"\n\n**Note:** other processes used up to {worst:.1f} of {env['logical_cpus']} CPUs during some "
                "timings (`foreign_cores` in engines.json); those numbers are pessimistic.")
    return out


def _subnormal_table(sub: dict[str, Any]) -> str:
    sw = sub["subnormal_weights"]
    c, ra = sub["configs"], sub["ratios"]
    head = ["configuration", "time", "vs flushed twin (raw)", "calling thread DAZ"]
    lines = [f"**Subnormal weights** — {sub['model']}: {sw['encoder']} of {sw['encoder_total']:,} encoder and "
             f"{sw['decoder']} of {sw['decoder_total']:,} decoder weights subnormal; {sub['n_starts']:,} starts, batch "
             f"{sub['batch_size']}, {sub['row_steps']:,} row-steps, each configuration in its own fresh process, "
             f"interleaved.", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = {"flowcore": "flowcore (flush_subnormals=True, default)", "flowcore_no_flush": "flowcore flush_subnormals=False",
             "raw_flushed": "raw session.run, flushed graph (twin)", "raw_unflushed_daz":
             "raw session.run, original graph, set_denormal_as_zero", "raw_trap":
             "raw session.run, original graph, default options (the trap)"}
    base = c["raw_flushed"]["seconds"]["median"]
    for k, label in names.items():
        s = c[k]["seconds"]
        lines.append(f"| {label} | {_t(c[k])} | {s['median'] / base:.2f}× | {c[k].get('daz_after')} |")
    lines += ["", f"flowcore / flushed twin = {ra['flowcore_vs_flushed_twin']:.2f} (target ≤ 1.1); "
              f"the trap is {ra['trap_vs_flowcore']:.2f}× flowcore's time; set_denormal_as_zero alone: "
              f"{ra['daz_only_vs_flushed_twin']:.2f}× the twin."]
    return "\n".join(lines)
