"""``flowcore ood fit|score|eval`` — the OOD detector on the command line.

``score`` needs only the core (no torch, tensorflow or scikit-learn); ``fit`` needs
scikit-learn for the Ledoit–Wolf fits, ``eval`` for the metrics and matplotlib for figures.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from flowcore.errors import DataError, ParameterError
from flowcore.io import load_array
from flowcore.cli._out import detector_entries, out_file, out_folder, tree_bytes
from flowcore import __version__
from flowcore.analysis.ood.detector import DEFAULT_METHOD, METHODS, OODDetector
from flowcore.dynamics.checkpointing import RunCheckpoint, chunk_rows, file_identity
from flowcore.analysis.ood.evaluation import evaluate
from flowcore.analysis.ood.report import OODReport
from flowcore.plots.ood import write_report
from flowcore.cli._args import add_force, add_resume, add_stop_rule, number

__all__ = ["add_parsers", "COMMANDS"]


def add_parsers(sub, common) -> None:
    """Add the ``ood`` command group to the subparsers ``sub``."""
    p = sub.add_parser("ood", help="out-of-distribution detection from latent trajectories")
    osub = p.add_subparsers(dest="ood_command", metavar="OOD_COMMAND", parser_class=type(p))
    osub.required = True

    f = osub.add_parser("fit", help="fit the detector (all methods) on in-distribution data")
    f.add_argument("bundle")
    f.add_argument("--id", required=True, help="ID inputs: file.npy/.npz[:KEY], shape (N, *input_shape)")
    f.add_argument("--out", required=True, help="detector folder to write")
    f.add_argument("--methods", default="all", help="comma-separated methods, or 'all' (default)")
    f.add_argument("--default", default=None,
                   help=f"method used by `ood score` (default: {DEFAULT_METHOD} if fitted, else the first of --methods)")
    f.add_argument("--bank-source", default="id", choices=["id", "noise"], help="attractor bank from ID or N(0,I) starts")
    number(f, "--n-noise", default=None, help="noise starts for --bank-source noise")
    number(f, "--contamination", default=0.05, help="threshold keeps 1 - this of ID (default 0.05)")
    add_stop_rule(f)
    number(f, "--batch-size", default=4096, help="rows in flight (default 4096)")
    number(f, "--seed", default=0, help="seed for noise starts (default 0)")
    add_force(f)
    add_resume(f)
    common(f)

    s = osub.add_parser("score", help="score inputs with a fitted detector (core only)")
    s.add_argument("detector")
    s.add_argument("--data", required=True, help="inputs: file.npy/.npz[:KEY]")
    s.add_argument("--out", required=True, help="CSV file: index, score, prediction (1 = OOD)")
    s.add_argument("--method", default=None, help="method (default: the detector's default)")
    s.add_argument("--all-methods", action="store_true", help="add one score column per fitted method")
    add_force(s)
    common(s)

    e = osub.add_parser("eval", help="metrics table, CSV, histograms and ROC curves")
    e.add_argument("detector")
    e.add_argument("--id", required=True, help="held-out ID inputs")
    e.add_argument("--ood", required=True, nargs="+", metavar="NAME=PATH", help="OOD sets")
    e.add_argument("--out", required=True, help="folder for metrics.csv, report.json, scores.npz, PNGs")
    add_force(e)
    common(e)


def _load_detector(args):
    return OODDetector.load(args.detector, providers=args.device, intra_op_num_threads=args.threads)


# the entries of a detector folder (flowcore/analysis/ood/_persist.py)
DETECTOR_FILES = ("detector.json", "arrays.npz", "bundle", "checksums.json")


def _cmd_fit(args, out, emit) -> int:
    dest = out_folder(args, "ood fit", writes=DETECTOR_FILES, nbytes=tree_bytes(args.bundle),
                      adopt=detector_entries(args.out))
    methods = METHODS if args.methods == "all" else tuple(m.strip() for m in args.methods.split(",") if m.strip())
    x = load_array(args.id)
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"--id {args.id} holds {'a scalar' if x.ndim == 0 else '0 rows'}: there are no ID samples "
                        "to fit the detector on")
    dest.check_space(tree_bytes(args.bundle) + 8 * len(x) * (len(methods) + 2))
    default = args.default or (DEFAULT_METHOD if DEFAULT_METHOD in methods or not methods else methods[0])
    det = OODDetector(args.bundle, methods=methods, default=default, contamination=args.contamination,
                      bank_source=args.bank_source, n_noise=args.n_noise, tol=args.tol, max_steps=args.max_steps,
                      batch_size=args.batch_size, providers=args.device, intra_op_num_threads=args.threads,
                      seed=args.seed, progress=None if not args.quiet else False, engine=args.engine)
    x = _inputs(det, args.id)  # shape and NaN/Inf checked here, so errors name the file
    ckpt = RunCheckpoint(args.out, {"command": "ood fit", "flowcore": __version__,
                                    "bundle_sha256": det._lmap().bundle.sha256, "id": file_identity(args.id),
                                    "n_id": len(x), "settings": {**det.params(), "device": args.device},
                                    "chunk_size": chunk_rows(det.batch_size)},
                         resume=bool(getattr(args, "resume", False)))  # completed chunks; --resume continues
    with ckpt:  # on a failure: completed chunks kept for --resume, else no trace
        det.fit(x, checkpoint=ckpt)
    with dest.staged(prune=True) as tmp:  # the folder's other files (a user's notes) are kept
        det.save(tmp)
    ckpt.remove()
    summary = {"detector": args.out, "n_fit": det.n_fit_, "methods": list(det.methods), "default": det.default,
               "thresholds": det.thresholds_, "bank": det.bank_info_, "score_direction": "higher = more OOD"}
    bank = det.bank_info_
    text = (f"fitted {len(det.methods)} methods on {det.n_fit_} ID samples; default {det.default} "
            f"(threshold {det.threshold_:.6g}, keeps {100 * (1 - det.contamination):.0f}% of ID)\n"
            + (f"attractor bank: {bank['size']} from {bank['starts']} {bank['source']} starts "
               f"(converged {bank['converged']}, median steps {bank['median_steps']:.0f})\n" if bank else "")
            + f"written {args.out}")
    emit(out, summary, args.json, text)
    return 0


def _cmd_score(args, out, emit) -> int:
    dest = out_file(args, "ood score")
    det = _load_detector(args)
    x = _inputs(det, args.data)
    dest.check(nbytes=len(x) * 28 * (len(det.methods) + 2 if args.all_methods else 3))
    method = det._method(args.method)
    if args.all_methods:
        scores = det.score_all(x)
    else:
        scores = {method: det.decision_function(x, method=method)}
    main = scores[method]
    pred = (main > det.thresholds_[method]).astype(int)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    extra = [m for m in scores if m != method]
    w.writerow(["index", "score", "prediction"] + [f"score_{m}" for m in extra])
    for i in range(len(main)):
        w.writerow([i, repr(float(main[i])), int(pred[i])] + [repr(float(scores[m][i])) for m in extra])
    dest.write_text(buf.getvalue())
    summary = {"n": len(main), "method": method, "threshold": det.thresholds_[method], "n_ood": int(pred.sum()),
               "written": args.out, "score_direction": "higher = more OOD"}
    emit(out, summary, args.json,
         f"scored {len(main)} samples with {method}: {int(pred.sum())} above the threshold "
         f"{det.thresholds_[method]:.6g} (predicted OOD); written {args.out}")
    return 0


def _inputs(det, path: str) -> np.ndarray:
    """Inputs from ``path`` as float32 (N, *input_shape), checked against the detector's bundle; errors name the file."""
    x = det._lmap().check_inputs(load_array(path), f"data in {path}")
    if not np.all(np.isfinite(x)):
        raise DataError(f"data in {path} contain NaN or Inf")
    return x


def _parse_sets(specs: list[str], det) -> dict[str, Any]:
    sets = {}
    for spec in specs:
        if "=" not in spec:
            raise ParameterError(f"--ood {spec!r}: expected NAME=PATH")
        name, path = spec.split("=", 1)
        if not name or name in sets:
            raise ParameterError(f"--ood {spec!r}: empty or repeated set name")
        sets[name] = _inputs(det, path)
    return sets


def _cmd_eval(args, out, emit) -> int:
    dest = out_folder(args, "ood eval", writes=(*OODReport.files(), "metrics.csv", "roc.png", "roc.csv"))
    det = _load_detector(args)
    x_id = _inputs(det, args.id)
    sets = _parse_sets(args.ood, det)
    dest.check_space(8 * (len(x_id) + sum(len(v) for v in sets.values())) * len(det.methods))
    report = evaluate(det, x_id, sets)
    with dest.staged() as tmp:
        write_report(report, tmp)
    emit(out, report.to_json(), args.json, report.table("text") + f"\nwritten {args.out}")
    return 0


COMMANDS = {"fit": _cmd_fit, "score": _cmd_score, "eval": _cmd_eval}


def run(args, out, emit) -> int:
    return COMMANDS[args.ood_command](args, out, emit)
