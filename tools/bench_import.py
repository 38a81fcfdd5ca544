"""Benchmark: start-up cost of ``import flowcore`` and of ``flowcore info BUNDLE``.

Each measurement is a fresh interpreter (wall time of the whole process, interpreter start
included), run ``--runs`` times after one warm-up run; the median, min and max are reported.
``python -X importtime`` then shows where the time goes (the modules with the largest
cumulative import time). Prints a Markdown summary and writes ``bench_out/import.json``.

    python tools/bench_import.py                  # 9 runs each, the shipped demo bundle
    python tools/bench_import.py --runs 5 --bundle path/to/bundle
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_model  # tools/ is on sys.path when a tool runs as a script

ROOT = Path(__file__).resolve().parents[1]
DEMO_BUNDLE = ROOT / "flowcore" / "data" / "demo" / "bundle"
TARGETS = {"import flowcore": 0.3, "flowcore info BUNDLE": 0.6}  # seconds, from issue 9
HEAVY = ("numba", "onnx", "onnxruntime", "sklearn", "matplotlib", "tqdm")




def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return wall


def timings(cmd: list[str], runs: int) -> dict[str, float | list[float]]:
    """Median/min/max wall seconds of ``runs`` fresh processes after one warm-up."""
    _wall(cmd)
    walls = [_wall(cmd) for _ in range(runs)]
    return {"median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls), "runs_s": walls}


def importtime(cmd: list[str], top: int) -> dict[str, object]:
    """Top ``top`` modules by cumulative import time, and which heavy packages got imported."""
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True)
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line.split(":", 1)[1].split("|", 2)
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        rows.append({"module": name.strip(), "self_ms": int(self_us) / 1000, "cumulative_ms": int(cum_us) / 1000,
                     "depth": depth})
    roots = {r["module"].split(".")[0] for r in rows}
    rows.sort(key=lambda r: -r["cumulative_ms"])
    return {"top": rows[:top], "heavy_imported": sorted(m for m in HEAVY if m in roots)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9, help="fresh processes per measurement (>= 5)")
    ap.add_argument("--bundle", default=str(DEMO_BUNDLE))
    ap.add_argument("--top", type=int, default=12, help="importtime entries to keep")
    ap.add_argument("--out", default="bench_out")
    args = ap.parse_args(argv)
    if args.runs < 5:
        ap.error("--runs must be >= 5")
    cmds = {
        "import flowcore": [sys.executable, "-c", "import flowcore"],
        "flowcore info BUNDLE": [sys.executable, "-m", "flowcore", "info", args.bundle],
    }
    result: dict[str, object] = {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
                                 "runs": args.runs, "bundle": args.bundle, "cases": {}}
    print(f"CPU: {result['cpu']} ({result['cpus']} CPUs), Python {result['python']}")
    print()
    print("| command | median s | min s | max s | target s | heavy packages imported |")
    print("|---|---|---|---|---|---|")
    for name, cmd in cmds.items():
        case = timings(cmd, args.runs)
        case.update(importtime(cmd, args.top))
        case["target_s"] = TARGETS[name]
        result["cases"][name] = case
        print(f"| `{name}` | {case['median_s']:.3f} | {case['min_s']:.3f} | {case['max_s']:.3f} | "
              f"{TARGETS[name]} | {', '.join(case['heavy_imported']) or 'none'} |")
    for name, case in result["cases"].items():
        print(f"\n`python -X importtime` top {args.top} by cumulative time, `{name}`:\n")
        print("| module | cumulative ms | self ms |")
        print("|---|---|---|")
        for r in case["top"]:
            print(f"| {'  ' * r['depth']}{r['module']} | {r['cumulative_ms']:.1f} | {r['self_ms']:.1f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "import.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {out / 'import.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
