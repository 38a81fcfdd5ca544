"""Benchmark: attractor grouping, flowcore's Numba kernel vs sklearn DBSCAN(min_samples=1).

Each method runs in its own subprocess so peak memory (ru_maxrss above the baseline after the
data is built) is measured cleanly. The partitions are asserted identical (ARI = 1.0 and equal
label arrays up to renumbering). Prints a Markdown table and writes bench_out/grouping.{json,md}.

    python tools/bench_grouping.py            # 100,000 × 128, ~100 clusters (sklearn takes ~1 min)
    python tools/bench_grouping.py --quick    # 20,000 × 128
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_model  # tools/ is on sys.path when a tool runs as a script

import numpy as np

CASES = {
    # name: (description, builder kwargs, eps)
    "tight": ("~100 tight clusters (spread 0.01/coord)", dict(kind="tight"), 0.5),
    "chained": ("elongated clusters, 60 eps long (leaders chain; union-find merges them)", dict(kind="chained"), 1.0),
}


def make_points(n: int, k: int, kind: str, seed: int = 0) -> np.ndarray:
    """(n, k) float32 built in place, chunk by chunk, so building it peaks at ~1× its size."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((100, k), dtype=np.float32) * 3
    dirs = rng.standard_normal((100, k), dtype=np.float32)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    lab = rng.integers(0, 100, n)
    x = np.empty((n, k), np.float32)
    for s in range(0, n, 8192):
        m = min(8192, n - s)
        if kind == "tight":
            x[s : s + m] = centres[lab[s : s + m]] + rng.standard_normal((m, k), dtype=np.float32) * 0.01
        else:  # filaments: spread along a random direction over 60 eps, neighbours far closer than eps
            t = rng.uniform(0, 60, m).astype(np.float32)
            x[s : s + m] = (centres[lab[s : s + m]] * 10 + t[:, None] * dirs[lab[s : s + m]]
                            + rng.standard_normal((m, k), dtype=np.float32) * 0.005)
    return x


def _child(method: str, n: int, k: int, kind: str, eps: float, out: str) -> None:
    if method == "numba":
        from flowcore import group_points
    else:
        from sklearn.cluster import DBSCAN
    x = make_points(n, k, kind)
    if method == "numba":
        t0 = time.perf_counter()
        labels = group_points(x[:64], metric="euclidean", threshold=eps)  # cold: JIT or cache load
        cold = time.perf_counter() - t0
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # after imports, data and code loading
    if method == "numba":
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            labels = group_points(x, metric="euclidean", threshold=eps)
            times.append(time.perf_counter() - t0)
        wall = min(times)
    else:
        cold = None
        t0 = time.perf_counter()
        labels = DBSCAN(eps=eps, min_samples=1).fit_predict(x)
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.save(out, labels.astype(np.int64))
    print(json.dumps({"wall_s": wall, "cold_s": cold, "extra_peak_mb": (peak - base) / 1024, "input_mb": x.nbytes / 2**20}))


def _cold_start(n: int, k: int) -> float:
    """First call in a fresh process with an empty Numba cache: compile time included."""
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        code = ("import time, numpy as np; t=time.perf_counter(); from flowcore import group_points;"
                f"group_points(np.random.default_rng(0).normal(size=({n},{k})).astype(np.float32), metric='euclidean', threshold=0.5);"
                "print(time.perf_counter()-t)")
        return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout)


def run(n: int, k: int, out_dir: Path) -> dict:
    from sklearn.metrics import adjusted_rand_score

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for case, (desc, kw, eps) in CASES.items():
        res = {}
        for method in ("numba", "sklearn"):
            lab_file = out_dir / f"labels_{case}_{method}.npy"
            print(f"[{case}] {method} …", file=sys.stderr, flush=True)
            proc = subprocess.run([sys.executable, __file__, "--child", method, "--n", str(n), "--k", str(k),
                                   "--kind", kw["kind"], "--eps", str(eps), "--labels", str(lab_file)],
                                  capture_output=True, text=True, check=True)
            res[method] = json.loads(proc.stdout.strip().splitlines()[-1])
            res[method]["labels"] = np.load(lab_file)
            lab_file.unlink()
        a, b = res["numba"].pop("labels"), res["sklearn"].pop("labels")
        ari = adjusted_rand_score(a, b)
        assert ari == 1.0, f"partitions differ on {case}: ARI {ari}"
        rows.append({
            "case": case, "description": desc, "n": n, "k": k, "eps": eps, "clusters": int(a.max() + 1),
            "numba_s": res["numba"]["wall_s"], "numba_first_call_s": res["numba"]["cold_s"],
            "sklearn_s": res["sklearn"]["wall_s"], "speedup": res["sklearn"]["wall_s"] / res["numba"]["wall_s"],
            "numba_extra_mb": res["numba"]["extra_peak_mb"], "sklearn_extra_mb": res["sklearn"]["extra_peak_mb"],
            "input_mb": res["numba"]["input_mb"], "ari": ari,
        })
    cold = _cold_start(2000, k)
    return {"rows": rows, "cold_compile_s": cold, "machine": cpu_model(),
            "cpus": os.cpu_count()}


def to_markdown(result: dict) -> str:
    lines = ["| case | N × k | clusters | flowcore Numba (warm) | sklearn DBSCAN | speed-up | extra peak memory, Numba / sklearn (input) | ARI |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['description']} | {r['n']:,} × {r['k']} | {r['clusters']} | {r['numba_s']:.3f} s | "
                     f"{r['sklearn_s']:.1f} s | {r['speedup']:.0f}× | {r['numba_extra_mb']:.0f} MB / "
                     f"{r['sklearn_extra_mb']:.0f} MB ({r['input_mb']:.0f} MB) | {r['ari']:.1f} |")
    lines.append("")
    lines.append(f"First call in a warm process (cache load): {result['rows'][0]['numba_first_call_s']:.2f} s; "
                 f"first call with an empty Numba cache (compile): {result['cold_compile_s']:.1f} s. "
                 f"{result['cpus']} CPUs.")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--k", type=int, default=128)
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--child", default=None)
    ap.add_argument("--kind", default="tight")
    ap.add_argument("--eps", type=float, default=0.5)
    ap.add_argument("--labels", default=None)
    args = ap.parse_args()
    n = args.n or (20_000 if args.quick else 100_000)
    if args.child:
        _child(args.child, n, args.k, args.kind, args.eps, args.labels)
        return 0
    result = run(n, args.k, Path(args.out))
    md = to_markdown(result)
    print(md)
    Path(args.out, "grouping.json").write_text(json.dumps(result, indent=2))
    Path(args.out, "grouping.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
