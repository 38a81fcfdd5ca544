"""Benchmark: trajectories on Ray (one node, 2 actors × 1 thread) vs one process × 2 threads.

The same noise starts on the demo bundle (k = 8), chunked as the CLI chunks them
(``chunk_rows(batch_size)``); the results are asserted identical (bitwise). Prints the CPU model,
wall times, Ray's overhead (cluster start apart), the peak RSS of the one process and of each
actor (``ru_maxrss`` reported by the actor), and the grouping measurement: gathering the N × k
endpoints to the driver (exact) vs merging per-worker leader sets (not exact). Writes
bench_out/ray.{json,md}.

    python tools/bench_ray.py            # 65,536 starts, batch 256 (16 chunks of 4,096)
    python tools/bench_ray.py --quick    # 8,192 starts, batch 128 (4 chunks of 2,048)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_model  # tools/ is on sys.path when a tool runs as a script

import numpy as np

ONE = r"""
import json, resource, sys, time
import numpy as np
import flowcore
from flowcore import IterateOptions, LatentMap, iterate, noise_starts
n, batch, threads, max_steps, seed = map(int, sys.argv[1:6])
lmap = LatentMap(flowcore.demo_paths()[0], providers="cpu", intra_op_num_threads=threads)
z = noise_starts(lmap.latent_shape, n, seed=seed)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
tr = iterate(lmap, z, batch_size=batch, max_steps=max_steps, progress=False,
             options=IterateOptions(chunk_size=16 * batch))
wall = time.perf_counter() - t
np.save(sys.argv[6], tr.final)
print(json.dumps({"wall_s": wall, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "counts": tr.counts()}))
"""


def one_process(n: int, batch: int, threads: int, max_steps: int, seed: int, out: Path) -> dict:
    """One fresh process: wall time of ``iterate`` and the process's peak RSS."""
    res = subprocess.run([sys.executable, "-c", ONE, str(n), str(batch), str(threads), str(max_steps), str(seed),
                          str(out)], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def grouping_options(final: np.ndarray, workers: int = 2, threshold: float = 0.99) -> dict:
    """Gather-to-driver vs leader-set merging on the same endpoints (cosine > threshold)."""
    from flowcore import group_points

    group_points(final[:8], metric="cosine", threshold=threshold)  # compile the kernel outside the timing
    t = time.perf_counter()
    exact = group_points(final, metric="cosine", threshold=threshold)
    gather_s = time.perf_counter() - t
    # leader merging: each worker groups its share; the driver links two groups of different workers
    # when their leaders (first members) are linked. Exact only if single linkage decomposed that way.
    parts = np.array_split(np.arange(len(final)), workers)
    lead_rows, lead_group, offset, labels = [], [], 0, np.empty(len(final), np.int64)
    for rows in parts:
        lab = group_points(final[rows], metric="cosine", threshold=threshold)
        labels[rows] = lab + offset
        for g in range(lab.max() + 1 if len(lab) else 0):
            lead_rows.append(rows[np.flatnonzero(lab == g)[0]])
            lead_group.append(g + offset)
        offset += int(lab.max()) + 1 if len(lab) else 0
    merged = group_points(final[np.asarray(lead_rows)], metric="cosine", threshold=threshold)
    remap = np.empty(offset, np.int64)
    remap[np.asarray(lead_group)] = merged
    approx = remap[labels]
    # same partition ⇔ a bijection between labels
    pairs = set(zip(exact.tolist(), approx.tolist()))
    same = len(pairs) == exact.max() + 1 == approx.max() + 1
    return {"n": len(final), "k": final.shape[1], "gather_bytes": int(final.nbytes), "driver_grouping_s": gather_s,
            "groups_exact": int(exact.max()) + 1, "groups_leader_merge": int(approx.max()) + 1,
            "leader_merge_same_partition": bool(same), "leaders_sent": len(lead_rows)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="bench_out")
    args = ap.parse_args(argv)
    n, batch, max_steps, seed = (8192, 128, 3000, 0) if args.quick else (65536, 256, 3000, 0)
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); demo bundle k = 8; {n} noise starts, batch {batch}, "
          f"chunks of {16 * batch}", flush=True)
    rows = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))  # the one-process endpoints, compared with Ray's below
    for threads in (2, 1):
        rows[f"one process × {threads} thread{'s' if threads > 1 else ''}"] = one_process(
            n, batch, threads, max_steps, seed, tmp / f"final_{threads}.npy")
    import flowcore
    from flowcore import LatentMap, RayOptions, connect_ray, iterate_ray, noise_starts

    t = time.perf_counter()
    info = connect_ray(num_cpus=2, object_store_memory=200 * 2**20)
    start_s = time.perf_counter() - t
    lmap = LatentMap(flowcore.demo_paths()[0], providers="cpu", intra_op_num_threads=1)
    z = noise_starts(lmap.latent_shape, n, seed=seed)
    runs = []
    for _ in range(2):  # every run starts its own actors (sessions built in each actor's constructor)
        t = time.perf_counter()
        tr = iterate_ray(lmap, z, batch_size=batch, max_steps=max_steps, ray_options=RayOptions(actors=2, threads=1))
        runs.append(time.perf_counter() - t)
    ray_info = tr.settings["ray"]
    driver_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import ray

    ray.shutdown()
    for threads in (2, 1):
        assert np.array_equal(np.load(tmp / f"final_{threads}.npy"), tr.final), "Ray and one process differ"
    shutil.rmtree(tmp)
    rows["Ray, one node, 2 actors × 1 thread"] = {
        "wall_s": min(runs), "walls_s": runs, "cluster_start_s": start_s, "driver_peak_rss_mib": driver_rss,
        "actor_peak_rss_mib": [a["peak_rss_mib"] for a in ray_info["actors"]],
        "actor_chunks": [a["chunks"] for a in ray_info["actors"]], "ray": info["ray"]}
    base = rows["one process × 2 threads"]["wall_s"]
    grouping = grouping_options(tr.flat_final[tr.converged])
    lines = [f"CPU: {cpu_model()}; {n} noise starts on the demo bundle (k = 8), batch {batch}, chunks of {16 * batch} "
             f"({ray_info['chunks']} chunks); results identical (bitwise)", "",
             "| run | wall | vs 1 process × 2 threads | peak RSS per worker |", "|---|---|---|---|"]
    for name, r in rows.items():
        rss = (f"{r['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in r else
               " / ".join(f"{m:.0f}" for m in r["actor_peak_rss_mib"]) + f" MiB per actor (driver {r['driver_peak_rss_mib']:.0f} MiB)")
        extra = f" (+ cluster start {r['cluster_start_s']:.1f} s)" if "cluster_start_s" in r else ""
        lines.append(f"| {name} | {r['wall_s']:.2f} s{extra} | {r['wall_s'] / base:.2f}× | {rss} |")
    lines += ["", f"Grouping {grouping['n']} converged endpoints (cosine > 0.99): gather to the driver "
              f"{grouping['gather_bytes'] / 2**20:.2f} MiB, grouped in {grouping['driver_grouping_s']:.3f} s, "
              f"{grouping['groups_exact']} groups; leader-set merging over 2 workers: {grouping['groups_leader_merge']} "
              f"groups, same partition: {grouping['leader_merge_same_partition']}."]
    text = "\n".join(lines)
    print(text)
    (out / "ray.md").write_text(text + "\n")
    (out / "ray.json").write_text(json.dumps({"cpu": cpu_model(), "n": n, "batch_size": batch, "rows": rows,
                                              "grouping": grouping, "ray": ray_info}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
