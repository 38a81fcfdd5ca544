"""``flowcore ood fit|score|eval`` — the OOD detector on the command line.

``score`` needs only the core (no torch, tensorflow or scikit-learn); ``fit`` needs
scikit-learn for the Ledoit–Wolf fits, ``eval`` for the metrics and matplotlib for figures.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flowcore.errors import ParameterError
from flowcore.io import atomic_write_text, load_array
from flowcore.analysis.ood.detector import METHODS, OODDetector
from flowcore.analysis.ood.evaluation import evaluate
from flowcore.plots.ood import write_report

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
    f.add_argument("--default", default="features", help="method used by `ood score` (default features)")
    f.add_argument("--bank-source", default="id", choices=["id", "noise"], help="attractor bank from ID or N(0,I) starts")
    f.add_argument("--n-noise", type=int, default=None, help="noise starts for --bank-source noise")
    f.add_argument("--contamination", type=float, default=0.05, help="threshold keeps 1 - this of ID (default 0.05)")
    f.add_argument("--tol", type=float, default=1e-6)
    f.add_argument("--max-steps", type=int, default=3000)
    f.add_argument("--batch-size", type=int, default=4096)
    f.add_argument("--seed", type=int, default=0)
    common(f)

    s = osub.add_parser("score", help="score inputs with a fitted detector (core only)")
    s.add_argument("detector")
    s.add_argument("--data", required=True, help="inputs: file.npy/.npz[:KEY]")
    s.add_argument("--out", required=True, help="CSV file: index, score, prediction (1 = OOD)")
    s.add_argument("--method", default=None, help="method (default: the detector's default)")
    s.add_argument("--all-methods", action="store_true", help="add one score column per fitted method")
    common(s)

    e = osub.add_parser("eval", help="metrics table, CSV, histograms and ROC curves")
    e.add_argument("detector")
    e.add_argument("--id", required=True, help="held-out ID inputs")
    e.add_argument("--ood", required=True, nargs="+", metavar="NAME=PATH", help="OOD sets")
    e.add_argument("--out", required=True, help="folder for metrics.csv, report.json, scores.npz, PNGs")
    common(e)


def _load_detector(args):
    return OODDetector.load(args.detector, providers=args.device, intra_op_num_threads=args.threads)


def _cmd_fit(args, out, emit) -> int:
    methods = METHODS if args.methods == "all" else tuple(m.strip() for m in args.methods.split(",") if m.strip())
    x = load_array(args.id)
    det = OODDetector(args.bundle, methods=methods, default=args.default, contamination=args.contamination,
                      bank_source=args.bank_source, n_noise=args.n_noise, tol=args.tol, max_steps=args.max_steps,
                      batch_size=args.batch_size, providers=args.device, intra_op_num_threads=args.threads,
                      seed=args.seed, progress=None if not args.quiet else False)
    det.fit(x)
    det.save(args.out)
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
    det = _load_detector(args)
    x = load_array(args.data)
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
    atomic_write_text(args.out, buf.getvalue())
    summary = {"n": len(main), "method": method, "threshold": det.thresholds_[method], "n_ood": int(pred.sum()),
               "written": args.out, "score_direction": "higher = more OOD"}
    emit(out, summary, args.json,
         f"scored {len(main)} samples with {method}: {int(pred.sum())} above the threshold "
         f"{det.thresholds_[method]:.6g} (predicted OOD); written {args.out}")
    return 0


def _parse_sets(specs: list[str]) -> dict[str, Any]:
    sets = {}
    for spec in specs:
        if "=" not in spec:
            raise ParameterError(f"--ood {spec!r}: expected NAME=PATH")
        name, path = spec.split("=", 1)
        if not name or name in sets:
            raise ParameterError(f"--ood {spec!r}: empty or repeated set name")
        sets[name] = load_array(path)
    return sets


def _cmd_eval(args, out, emit) -> int:
    det = _load_detector(args)
    x_id = load_array(args.id)
    sets = _parse_sets(args.ood)
    report = evaluate(det, x_id, sets)
    write_report(report, args.out)
    emit(out, report.to_json(), args.json, report.table("text") + f"\nwritten {args.out}")
    return 0


COMMANDS = {"fit": _cmd_fit, "score": _cmd_score, "eval": _cmd_eval}


def run(args, out, emit) -> int:
    return COMMANDS[args.ood_command](args, out, emit)
