"""Benchmark: peak memory of ``flowcore trajectories --noise N`` for N = 100,000 and 1,000,000.

Starts stream chunk by chunk (noise drawn per chunk, see ``flowcore/dynamics/sources.py``), so
what grows with N should be only the N-row result arrays (final states, starts, steps, status,
last step²). Each run is its own process, started by a fresh probe interpreter so that
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after it ends is that run's peak RSS alone.
The report gives each peak, the result arrays' size (final and starts float32 (N, k), steps int32, status int8, last step² float32)
and the peak apart from them; the target is that the 1,000,000 run's peak apart from its arrays
stays within 1.2× the 100,000 run's. Runs without ``--out`` (the computation's memory; writing
the ``.npz`` adds one buffer of the arrays' size). Writes ``bench_out/memory.json``.

    python tools/bench_memory.py                       # the shipped demo bundle, --max-steps 100
    python tools/bench_memory.py --bundle B --max-steps 50 --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_BUNDLE = ROOT / "flowcore" / "data" / "demo" / "bundle"
TARGET = 1.2

_PROBE = """
import json, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr[-2000:],
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def peak_rss(cmd: list[str]) -> tuple[int, float, dict]:
    """Peak RSS (bytes) of ``cmd`` run as the only child of a fresh probe process, its wall time, and its JSON output."""
    t0 = time.perf_counter()
    probe = subprocess.run([sys.executable, "-c", _PROBE, *cmd], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    got = json.loads(probe.stdout)
    if got["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({got['rc']}): {got['stderr'].strip()}")
    return int(got["maxrss_kb"]) * 1024, wall, json.loads(got["stdout"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", default=str(DEMO_BUNDLE))
    ap.add_argument("--sizes", type=int, nargs=2, default=[100_000, 1_000_000], metavar=("SMALL", "LARGE"))
    ap.add_argument("--max-steps", type=int, default=100, help="keeps the runs short; memory does not depend on it")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--out", default="bench_out")
    args = ap.parse_args(argv)

    from flowcore import FlowBundle  # the latent shape, without starting a session

    shape = tuple(FlowBundle.load(args.bundle).latent_shape)
    flowcore = [sys.executable, "-m", "flowcore"]
    rows = []
    for n in args.sizes:
        cmd = [*flowcore, "trajectories", args.bundle, "--noise", str(n), "--max-steps", str(args.max_steps),
               "--batch-size", str(args.batch_size), "--device", "cpu", "--quiet", "--json"]
        peak, wall, summary = peak_rss(cmd)
        arrays = n * (2 * 4 * math.prod(shape) + 4 + 1 + 4)  # final + starts (float32), steps, status, last step²
        rows.append({"n_starts": n, "peak_rss_bytes": peak, "result_arrays_bytes": arrays,
                     "peak_apart_from_arrays_bytes": peak - arrays, "wall_s": round(wall, 2),
                     "converged": summary.get("converged"), "max_steps": args.max_steps})
    small, large = rows
    ratio = large["peak_apart_from_arrays_bytes"] / small["peak_apart_from_arrays_bytes"]
    report = {"bundle": args.bundle, "latent_shape": list(shape), "batch_size": args.batch_size, "runs": rows,
              "ratio_apart_from_arrays": ratio, "raw_ratio": large["peak_rss_bytes"] / small["peak_rss_bytes"],
              "target": TARGET, "meets_target": ratio <= TARGET,
              "method": "each run a separate process; peak = ru_maxrss of RUSAGE_CHILDREN in a fresh probe; "
                        "arrays = N x (final + starts float32 (k each), steps int32, status int8, last_step_sq float32)"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory.json").write_text(json.dumps(report, indent=2) + "\n")
    mb = 2**20
    print("| starts | peak RSS | result arrays | peak apart from arrays | wall |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n_starts']:,} | {r['peak_rss_bytes'] / mb:.1f} MiB | {r['result_arrays_bytes'] / mb:.1f} MiB | "
              f"{r['peak_apart_from_arrays_bytes'] / mb:.1f} MiB | {r['wall_s']:.1f} s |")
    print(f"\npeak apart from the result arrays, {large['n_starts']:,} vs {small['n_starts']:,}: {ratio:.3f}x "
          f"(target <= {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'}); written {out / 'memory.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
