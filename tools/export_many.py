"""Batch conversion: run ``flowcore export`` for every job of a JSON file.

    python tools/export_many.py jobs.json [--force] [--keep-going]

``jobs.json`` is a list of objects whose keys are ``flowcore export`` flags without the dashes
(``encoder``, ``decoder``, ``autoencoder``, ``encoder_part``, ``decoder_part``, ``split_at``,
``example``, ``out``, ``framework``, ``encoder_output``, ``opset``, ``rtol``), e.g.::

    [{"autoencoder": "models/ae.pt2", "example": "data/x.npz", "out": "bundles/ae"},
     {"encoder": "models/enc.keras", "decoder": "models/dec.keras", "out": "bundles/keras_ae"},
     {"autoencoder": "models/flat.keras", "split_at": "code", "out": "bundles/flat"}]

Each job runs as its own ``python -m flowcore export … --quiet`` process (the command a user
types; one model's framework state or crash cannot touch the next), so this tool imports
nothing from flowcore. It prints one line per job (``ok`` and the result, or the exit code and
the one-line error). By default it stops at the first failed job and lists the rest as skipped;
with ``--keep-going`` it runs every job. A summary line ends the output; the exit code is the
worst job's (0 when all converted; 3 for a malformed jobs file). Relative paths are taken from
the JSON file's folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

_PATH_KEYS = {"encoder", "decoder", "autoencoder", "example", "out"}
_KEYS = _PATH_KEYS | {"encoder_part", "decoder_part", "split_at", "framework", "encoder_output", "opset", "rtol"}


def _argv(job: dict, base: Path, force: bool) -> list[str]:
    if not isinstance(job, dict):
        raise ValueError(f"a job is a JSON object of export flags, got {type(job).__name__}")
    unknown = set(job) - _KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    if "out" not in job:
        raise ValueError("a job needs 'out'")
    argv = ["export"]
    for key, value in job.items():
        if key in _PATH_KEYS:
            p = Path(str(value).split(":")[0])
            value = str(base / value) if not p.is_absolute() else str(value)
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv + (["--force"] if force else []) + ["--quiet"]


def _export(argv: list[str]) -> tuple[int, str]:
    """Run ``flowcore <argv>`` in its own process: (exit code, its result or error line)."""
    proc = subprocess.run([sys.executable, "-m", "flowcore", *argv], capture_output=True, text=True)
    text = proc.stdout if proc.returncode == 0 else proc.stderr
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if proc.returncode < 0:  # killed by a signal (a crash inside a framework)
        return 4, f"error: the export process died (signal {-proc.returncode})"
    return proc.returncode, lines[-1] if lines else "(no output)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run `flowcore export` for every job of a JSON file.")
    ap.add_argument("jobs", help="JSON file: a list of export jobs")
    ap.add_argument("--force", action="store_true", help="replace existing bundles")
    ap.add_argument("--keep-going", action="store_true",
                    help="run every job even after one failed (default: stop at the first failure)")
    args = ap.parse_args(argv)
    path = Path(args.jobs)
    try:
        jobs = json.loads(path.read_text())
        if not isinstance(jobs, list):
            raise ValueError("the file must hold a JSON list of jobs")
    except (OSError, ValueError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 3
    worst, ok, failed, skipped = 0, 0, 0, 0
    for i, job in enumerate(jobs):
        if worst and not args.keep_going:
            print(f"[{i}] skipped: an earlier job failed (pass --keep-going to run every job)")
            skipped += 1
            continue
        try:
            cmd = _argv(job, path.parent, args.force)
        except ValueError as exc:
            code, msg = 3, f"error: {exc}"
        else:
            code, msg = _export(cmd)
        worst = max(worst, code)
        ok, failed = ok + (code == 0), failed + (code != 0)
        print(f"[{i}] {'ok' if code == 0 else f'exit {code}'}: {msg}", flush=True)
    print(f"{len(jobs)} jobs: {ok} ok, {failed} failed, {skipped} skipped; worst exit code {worst}")
    return worst


if __name__ == "__main__":
    sys.exit(main())
