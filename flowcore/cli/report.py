"""``flowcore report BUNDLE --data X [--test X] [--ood NAME=PATH …] [--checkpoints B …] --out DIR``.

Writes ``report.html`` (one self-contained page: inline CSS, base64 PNGs, the content as JSON in
``<script type="application/json" id="flowcore-data">``, no network) or, with ``--format json``,
``report.json`` (the same content as data, figures named). Sections without their input (no
``--test``, no ``--ood``, no ``--checkpoints``) say so in a note. Prints the written path.
"""

from __future__ import annotations

import shlex
import sys
import json
from pathlib import Path

import numpy as np

from flowcore.errors import BundleError, DataError, ParameterError
from flowcore.io import atomic_write_text, load_array, to_jsonable
from flowcore.cli._out import out_folder
from flowcore.cli._args import add_force, add_stop_rule, atoms_of, number
from flowcore.report import build_report, render_html

__all__ = ["add_report", "run_report"]


def add_report(p, common) -> None:
    """Declare the flags of ``flowcore report``."""
    p.add_argument("bundle", help="FlowBundle folder (flow.json + encoder.onnx + decoder.onnx)")
    p.add_argument("--data", required=True, help="training inputs: file.npy/.npz[:KEY], shape (N, *input_shape)")
    p.add_argument("--test", default=None, help="held-out inputs (memorization null levels, probing, OOD ID set) "
                                                "(default: none; those sections say so)")
    p.add_argument("--ood", nargs="+", default=None, metavar="NAME=PATH",
                   help="OOD sets, each a name and an inputs file (default: none; the OOD section says so)")
    p.add_argument("--checkpoints", nargs="+", default=None, metavar="BUNDLE",
                   help="bundle folders in training order, for the checkpoint section (needs --test) (default: none)")
    p.add_argument("--methods", default="trajectory,features_knn,recon_error",
                   help="comma-separated OOD methods (default trajectory,features_knn,recon_error)")
    number(p, "--n-noise", default=200, help="N(0, I) starts for the trajectory summary (default 200)")
    number(p, "--n-starts", default=300, help="data starts (a seeded subsample of --data) (default 300)")
    number(p, "--n", default=32, help="field grid points per axis (default 32)")
    p.add_argument("--atoms", default=None, help="comma-separated OMP atom counts (default 1, 2, 4, … up to k)")
    p.add_argument("--format", default="html", choices=["html", "json"],
                   help="html: report.html; json: report.json, the same content as data (default html)")
    number(p, "--seed", default=0, help="seed for subsamples and noise starts (default 0)")
    p.add_argument("--out", required=True, help="folder for report.html (or report.json)")
    add_force(p)
    add_stop_rule(p)
    common(p)


def _inputs(path: str, what: str) -> np.ndarray:
    x = np.asarray(load_array(path), dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{what} {path} contain NaN or Inf")
    return x


def run_report(args, out, emit) -> int:
    name = "report.json" if args.format == "json" else "report.html"
    dest = out_folder(args, "report", writes=(name,))
    atoms = atoms_of(args)
    ood = {}
    for spec in args.ood or ():
        if "=" not in spec:
            raise ParameterError(f"--ood {spec!r}: expected NAME=PATH")
        key, path = spec.split("=", 1)
        if not key or key in ood:
            raise ParameterError(f"--ood {spec!r}: empty or repeated set name")
        ood[key] = _inputs(path, f"--ood {key}:")
    for c in args.checkpoints or ():
        if not Path(c).is_dir():
            raise BundleError(f"no bundle folder at {c}")
    methods = tuple(m for m in args.methods.split(",") if m)
    if not methods:
        raise ParameterError(f"--methods {args.methods!r}: name at least one OOD method")
    command = "flowcore " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if sys.argv[1:2] == ["report"] else
                                                              ["report", args.bundle, "…"]))
    rep = build_report(args.bundle, _inputs(args.data, "--data"),
                       x_test=None if args.test is None else _inputs(args.test, "--test"), ood=ood,
                       checkpoints=args.checkpoints or (), n_noise=args.n_noise, n_starts=args.n_starts, grid=args.n,
                       atoms=atoms, methods=methods, seed=args.seed, tol=args.tol, max_steps=args.max_steps,
                       providers=args.device, threads=args.threads, command=command)
    with dest.staged() as tmp:
        if args.format == "json":
            atomic_write_text(tmp / name, json.dumps(to_jsonable(rep.to_json()), indent=1) + "\n")
        else:
            atomic_write_text(tmp / name, render_html(rep))
    written = str(Path(args.out) / name)
    mem = next((s.get("verdict") for s in rep.sections if s["id"] == "memorization"), None)
    emit(out, {"written": written, "sections": {s["id"]: s["status"] for s in rep.sections}, "verdict": mem},
         args.json, (f"memorization verdict: {mem}\n" if mem else "") + f"written {written}")
    return 0
