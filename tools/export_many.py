"""Batch conversion: run ``flowcore export`` for every job of a JSON file.

    python tools/export_many.py jobs.json [--force] [--keep-going]

``jobs.json`` is a list of objects whose keys are ``flowcore export`` flags without the dashes
(``encoder``, ``decoder``, ``autoencoder``, ``encoder_part``, ``decoder_part``, ``example``,
``out``, ``framework``, ``encoder_output``, ``opset``, ``rtol``), e.g.::

    [{"autoencoder": "models/ae.pt2", "example": "data/x.npz", "out": "bundles/ae"},
     {"encoder": "models/enc.keras", "decoder": "models/dec.keras", "out": "bundles/keras_ae"}]

Prints one line per job (ok / the error) and exits with the worst exit code (0 when all
converted). Relative paths are taken from the JSON file's folder.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from flowcore.cli.app import main as flowcore_main

_PATH_KEYS = {"encoder", "decoder", "autoencoder", "example", "out"}
_KEYS = _PATH_KEYS | {"encoder_part", "decoder_part", "framework", "encoder_output", "opset", "rtol"}


def _argv(job: dict, base: Path, force: bool) -> list[str]:
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run `flowcore export` for every job of a JSON file.")
    ap.add_argument("jobs", help="JSON file: a list of export jobs")
    ap.add_argument("--force", action="store_true", help="replace existing bundles")
    args = ap.parse_args(argv)
    path = Path(args.jobs)
    try:
        jobs = json.loads(path.read_text())
        if not isinstance(jobs, list):
            raise ValueError("the file must hold a JSON list of jobs")
    except (OSError, ValueError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 3
    worst = 0
    for i, job in enumerate(jobs):
        try:
            cmd = _argv(job, path.parent, args.force)
        except (ValueError, AttributeError, TypeError) as exc:
            print(f"[{i}] error: {exc}")
            worst = max(worst, 3)
            continue
        out, err = io.StringIO(), io.StringIO()
        code = flowcore_main(cmd, stdout=out, stderr=err)
        worst = max(worst, code)
        msg = out.getvalue().strip() if code == 0 else err.getvalue().strip().splitlines()[-1]
        print(f"[{i}] {'ok' if code == 0 else f'exit {code}'}: {msg}")
    print(f"{sum(1 for _ in jobs)} jobs, worst exit code {worst}")
    return worst


if __name__ == "__main__":
    sys.exit(main())
