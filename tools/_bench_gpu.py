"""The GPU rows of ``tools/bench_engines.py --device cuda``.

Columns per model and batch size, repeats interleaved: flowcore's python engine on the CUDA EP (a
plain ``session.run`` loop, latents through the host every step), the ``iobinding`` engine
(device-resident buffers), ``iobinding`` with CUDA graphs (``cuda_graph=True``; "n/a" when this
flowcore lacks the option) and, when ``torch.cuda.is_available()``, the torch per-row loop on the
GPU. Without a CUDA execution provider in the installed ONNX Runtime it prints one line and
returns 0. Writes ``<out>/engines_gpu.json`` and ``<out>/engines_gpu.md``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from _bench_timing import log, spread

__all__ = ["main"]

GPU_ROWS = [("mlp-k16", 4096, 5000), ("mlp-k128", 4096, 5000), ("conv-k16", 4096, 5000), ("demo", 4096, 8192),
            ("demo", 65536, 131072)]
QUICK_GPU_ROWS = [("demo", 4096, 4096), ("mlp-k16", 1024, 1024)]
COLUMNS = (("python", {}), ("iobinding", {}), ("iobinding+cuda_graph", {"cuda_graph": True}))


def main(args) -> int:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"--device cuda: this ONNX Runtime ({ort.__version__}) has no CUDAExecutionProvider "
              f"(providers: {', '.join(ort.get_available_providers())}); no GPU rows measured")
        return 0
    import bench_engines as be
    from _bench_report import environment
    from _bench_rows import probe_engines, run_engine
    from flowcore import LatentMap

    cfg, _ = be.config(args)
    plan = QUICK_GPU_ROWS if args.quick else GPU_ROWS
    if args.models:
        plan = [r for r in plan if r[0] in {m.strip() for m in args.models.split(",")}]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment(args.threads, with_torch=not args.no_torch)
    env["gpu"] = _gpu_name()
    torch_ok = not args.no_torch and env.get("torch_cuda_available")
    rows = []
    for name in dict.fromkeys(r[0] for r in plan):
        bundle, twin, _ = be.load_model(name, out, args, cfg)
        lmap = LatentMap(bundle, providers="cuda", intra_op_num_threads=args.threads)
        z_all = be.starts(name, lmap, max(n for m, _, n in plan if m == name), args.seed)
        if torch_ok and twin is not None:
            twin = (twin[0].cuda(), twin[1].cuda())
        for m, bs, n in plan:
            if m != name:
                continue
            rows.append(_row(name, lmap, z_all[:n], twin if torch_ok else None, cfg, bs, probe_engines, run_engine))
    payload = {"environment": env, "config": cfg, "plan": plan, "rows": rows, "quick": args.quick}
    (out / "engines_gpu.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md = _markdown(payload)
    (out / "engines_gpu.md").write_text(md)
    print(md)
    return 0


def _row(name, lmap, z0, twin, cfg, bs, probe_engines, run_engine) -> dict[str, Any]:
    import _bench_torch as bt

    tol, max_steps = cfg["tol"], cfg["max_steps"]
    avail = {}
    for col, extra in COLUMNS:
        engine = col.split("+")[0]
        avail[col] = probe_engines(lmap, z0, (engine,), **extra)[engine]
    times: dict[str, list[float]] = {c: [] for c, _ in COLUMNS if avail[c] is None}
    if twin is not None:
        times["torch_cuda_per_row"] = []
    for col, extra in COLUMNS:  # warm-up at this batch size (CUDA graphs captured here)
        if avail[col] is None:
            run_engine(lmap, z0[:bs], col.split("+")[0], tol=tol, max_steps=3, batch_size=bs, **extra)
    ref, agree = None, {}
    for _ in range(cfg["repeats"]):
        for col in times:
            t = time.perf_counter()
            if col == "torch_cuda_per_row":
                tp = bt.torch_per_row(twin[0], twin[1], z0, tol=tol, max_steps=max_steps, batch_size=bs, device="cuda")
                times[col].append(time.perf_counter() - t)
                agree[col] = float(np.mean(tp["steps"] == ref.steps)) if ref is not None else None
                continue
            extra = dict(COLUMNS)[col]
            tr = run_engine(lmap, z0, col.split("+")[0], tol=tol, max_steps=max_steps, batch_size=bs, **extra)
            times[col].append(time.perf_counter() - t)
            ref = ref if ref is not None else tr
            agree[col] = bool(np.array_equal(tr.steps, ref.steps) and np.array_equal(tr.status, ref.status))
    res = {"model": name, "batch_size": bs, "n_starts": len(z0), "available": avail, "agree_vs_python": agree,
           "row_steps": int(ref.steps.sum()) if ref is not None else None,
           "seconds": {c: spread(v) for c, v in times.items()}}
    med = {c: s["median"] for c, s in res["seconds"].items()}
    if "python" in med:
        res["ratios"] = {f"python_vs_{c}": med["python"] / v for c, v in med.items() if c != "python" and v}
    if "iobinding+cuda_graph" in med and "torch_cuda_per_row" in med:
        res["ratios"]["torch_per_row_vs_iobinding_graph"] = med["torch_cuda_per_row"] / med["iobinding+cuda_graph"]
    log(f"GPU {name} b={bs}: " + "  ".join(f"{c} {v:.3f}s" for c, v in med.items()))
    return res


def _gpu_name() -> str | None:
    import subprocess

    try:
        p = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20)
        return p.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _markdown(payload: dict[str, Any]) -> str:
    env = payload["environment"]
    cols = [c for c, _ in COLUMNS] + ["torch_cuda_per_row"]
    lines = [f"**GPU**: {env.get('gpu')}; ONNX Runtime {env['onnxruntime']}; torch {env.get('torch', '—')}; "
             f"tol={payload['config']['tol']:g}, max_steps={payload['config']['max_steps']}", "",
             "| model | batch | row-steps | " + " | ".join(cols) + " | python / iobinding | python / iob+graph "
             "| torch per-row / iob+graph | engines agree |", "|" + "---|" * (len(cols) + 7)]
    for r in payload["rows"]:
        s = r["seconds"]
        cell = [f"{s[c]['median']:.3f} s" if c in s else "n/a" for c in cols]
        ra = r.get("ratios", {})
        f = lambda v: "—" if v is None else f"{v:.2f}×"  # noqa: E731
        lines.append(f"| {r['model']} | {r['batch_size']} | {r['row_steps'] or 0:,} | " + " | ".join(cell)
                     + f" | {f(ra.get('python_vs_iobinding'))} | {f(ra.get('python_vs_iobinding+cuda_graph'))} | "
                     f"{f(ra.get('torch_per_row_vs_iobinding_graph'))} | "
                     f"{all(v for k, v in r['agree_vs_python'].items() if k != 'torch_cuda_per_row')} |")
    return "\n".join(lines) + "\n"
