"""``flowcore ood fit|score|eval`` — the OOD detector on the command line.

``score`` needs only the core (no torch, tensorflow or scikit-learn); ``fit`` needs
scikit-learn for the Ledoit–Wolf fits, ``eval`` for the metrics and matplotlib for figures.
"""

from __future__ import annotations

import csv
import io
import warnings
from typing import Any

import numpy as np

from flowcore.errors import DataError, FlowcoreWarning, ParameterError
from flowcore.io import load_array
from flowcore.cli._out import detector_entries, out_file, out_folder, tree_bytes
from flowcore._version import __version__
from flowcore.analysis.ood.detector import AUTO_CALIBRATION_SPLIT, DEFAULT_METHOD, METHODS, OODDetector
from flowcore.analysis.ood._persist import write_detector
from flowcore.dynamics.checkpointing import RunCheckpoint, chunk_rows, file_identity
from flowcore.analysis.ood.evaluation import evaluate
from flowcore.analysis.ood.report import OODReport
from flowcore.plots.ood import write_report_into
from flowcore.cli._args import add_force, add_progress, add_resume, add_stop_rule, number, progress_of
from flowcore.cli._ray import add_ray, ray_score

__all__ = ["add_parser", "run", "COMMANDS"]


def add_parser(p, common) -> None:
    """Declare the ``ood`` command group (fit, score, eval) on its parser ``p`` (entry ``ood`` of ``app.COMMANDS``)."""
    osub = p.add_subparsers(dest="ood_command", metavar="OOD_COMMAND", parser_class=type(p),
                            help="the ood command to run (`flowcore ood OOD_COMMAND --help` lists its flags):")
    osub.required = True

    f = osub.add_parser("fit", help="fit the detector (all methods) on in-distribution data",
                        description="fit the detector (all methods) on in-distribution data")
    f.add_argument("bundle",
                   help="FlowBundle folder (flow.json + encoder.onnx + decoder.onnx), copied into the detector")
    f.add_argument("--id", required=True, help="ID inputs: file.npy/.npz[:KEY], shape (N, *input_shape)")
    f.add_argument("--out", required=True, help="detector folder to write")
    f.add_argument("--methods", default="all",
                   help=f"comma-separated methods of {', '.join(METHODS)}, or 'all' (default all)")
    cal = f.add_mutually_exclusive_group()
    cal.add_argument("--calibrate", default=None, metavar="FILE",
                     help="held-out ID inputs (file.npy/.npz[:KEY], best: rows the model was not trained on) whose "
                          "scores set the threshold (default: a split of --id, see --calibration-split)")
    number(cal, "--calibration-split", default=None, metavar="FRACTION",
           help=f"hold back this fraction of --id (seeded by --seed), not used for the bank or the scorers, to set the "
                f"threshold; 0: the fit rows themselves (in-sample: new ID data are flagged more often) (default "
                f"{AUTO_CALIBRATION_SPLIT:g} when it holds at least 5 / --contamination rows and leaves the methods "
                "enough, else 0)")
    f.add_argument("--default", default=None,
                   help=f"method used by `ood score` (default: {DEFAULT_METHOD} if fitted, else the first of --methods)")
    f.add_argument("--bank-source", default="id", choices=["id", "noise"],
                   help="attractor bank from the ID inputs or from N(0, I) latent starts (default id)")
    number(f, "--n-noise", default=None, help="noise starts for --bank-source noise (default: as many as ID rows)")
    number(f, "--contamination", default=0.05,
           help="the threshold flags this fraction of the held-out ID rows (default 0.05)")
    add_stop_rule(f)
    number(f, "--batch-size", default=4096, help="rows in flight at once (default 4096 rows)")
    number(f, "--seed", default=0, help="seed for noise starts and the calibration split (default 0)")
    add_force(f)
    add_resume(f)
    add_progress(f)
    common(f)

    s = osub.add_parser("score", help="score inputs with a fitted detector (core only)",
                        description="score inputs with a fitted detector (core only)")
    s.add_argument("detector", help="detector folder written by `flowcore ood fit --out`")
    s.add_argument("--data", required=True, help="inputs: file.npy/.npz[:KEY], shape (N, *input_shape)")
    s.add_argument("--out", required=True, help="CSV file: index, score, prediction (1 = OOD)")
    s.add_argument("--method", default=None, help="method (default: the detector's default)")
    s.add_argument("--all-methods", action="store_true",
                   help="add one score column per fitted method (default: the chosen method's only)")
    add_ray(s)
    add_force(s)
    add_progress(s)
    common(s)

    e = osub.add_parser("eval", help="metrics table, CSV, histograms and ROC curves",
                        description="metrics table, CSV, histograms and ROC curves")
    e.add_argument("detector", help="detector folder written by `flowcore ood fit --out`")
    e.add_argument("--id", required=True, help="held-out ID inputs: file.npy/.npz[:KEY], shape (N, *input_shape)")
    e.add_argument("--ood", required=True, nargs="+", metavar="NAME=PATH",
                   help="OOD sets, each a name and an inputs file (file.npy/.npz[:KEY]), e.g. noise=noise.npz")
    e.add_argument("--out", required=True, help="folder for metrics.csv, report.json, scores.npz, PNGs")
    add_force(e)
    add_progress(e)
    common(e)


def _load_detector(args):
    det = OODDetector.load(args.detector, providers=args.device, intra_op_num_threads=args.threads)
    det.progress = progress_of(args)  # --progress/--no-progress (a constructor argument; the session is kept)
    return det


# the entries of a detector folder (flowcore/analysis/ood/_persist.py)
DETECTOR_FILES = ("detector.json", "arrays.npz", "bundle", "checksums.json")


def _methods(spec: str) -> tuple[str, ...]:
    """``--methods``: 'all' or comma-separated names of the registry (``METHODS``); one line names a bad one."""
    if spec.strip() == "all":
        return METHODS
    names = tuple(m.strip() for m in spec.split(",") if m.strip())
    bad = [m for m in names if m not in METHODS]
    if bad or not names or len(set(names)) != len(names):
        what = (f"unknown method {bad[0]!r}" if bad else "no method named" if not names
                else f"method {next(m for m in names if names.count(m) > 1)!r} named twice")
        raise ParameterError(f"--methods {spec!r}: {what}; valid methods: {', '.join(METHODS)}, or all")
    return names


def _cmd_fit(args, out, emit) -> int:
    methods = _methods(args.methods)  # before anything is read or created
    dest = out_folder(args, "ood fit", writes=DETECTOR_FILES, nbytes=tree_bytes(args.bundle),
                      adopt=detector_entries(args.out))
    x = load_array(args.id)
    if x.ndim == 0 or len(x) == 0:
        raise DataError(f"--id {args.id} holds {'a scalar' if x.ndim == 0 else '0 rows'}: there are no ID samples "
                        "to fit the detector on")
    default = args.default or (DEFAULT_METHOD if DEFAULT_METHOD in methods else methods[0])
    split = "auto" if args.calibration_split is None else args.calibration_split
    det = OODDetector(args.bundle, methods=methods, default=default, contamination=args.contamination,
                      bank_source=args.bank_source, n_noise=args.n_noise, tol=args.tol, max_steps=args.max_steps,
                      batch_size=args.batch_size, providers=args.device, intra_op_num_threads=args.threads,
                      seed=args.seed, progress=progress_of(args), engine=args.engine, calibration_split=split)
    x = _inputs(det, args.id)  # shape and NaN/Inf checked here, so errors name the file
    xc = _inputs(det, args.calibrate) if args.calibrate else None
    # row counts checked before the partial area exists: a failed run leaves --out as it was
    plan = det.calibration_plan(len(x), None if xc is None else len(xc),
                                what=(f"--id {args.id}", f"--calibrate {args.calibrate}"))
    dest.check_space(tree_bytes(args.bundle) + 8 * (len(x) + plan["n"]) * (len(methods) + 2))
    ckpt = RunCheckpoint(args.out, {"command": "ood fit", "flowcore": __version__,
                                    "bundle_sha256": det._lmap().bundle.sha256, "id": file_identity(args.id),
                                    "n_id": len(x), "calibrate": file_identity(args.calibrate),
                                    "settings": {**det.params(), "device": args.device},
                                    "chunk_size": chunk_rows(det.batch_size)},
                         resume=bool(getattr(args, "resume", False)))  # completed chunks; --resume continues
    with ckpt:  # on a failure: chunks a rerun can use kept for --resume (the error line says so), else no trace
        with warnings.catch_warnings():  # the in-sample fallback is printed below, with the reason
            warnings.filterwarnings("ignore", message="threshold set on the fit data", category=FlowcoreWarning)
            det.fit(x, X_calib=xc, checkpoint=ckpt)
        with dest.staged(prune=True) as tmp:  # the folder's other files (a user's notes) are kept
            write_detector(det, tmp, shown=args.out)  # fills the staging folder; det.save would stage again
    ckpt.remove()
    calibration = det.calibration_ + (f"; {plan['reason']}: pass --calibrate FILE (held-out ID rows)"
                                      if plan["reason"] else "")
    summary = {"detector": args.out, "n_fit": det.n_fit_, "methods": list(det.methods), "default": det.default,
               "thresholds": det.thresholds_, "calibration": calibration, "calibration_info": det.calibration_info_,
               "bank": det.bank_info_, "score_direction": "higher = more OOD"}
    bank = det.bank_info_
    text = (f"fitted {len(det.methods)} methods on {det.n_fit_} ID samples; default {det.default} "
            f"(threshold {det.threshold_:.6g}: flags {100 * det.contamination:g}% of the "
            f"{'fit' if det.calibration_info_['source'] == 'fit' else 'held-out calibration'} rows)\n"
            f"threshold calibrated on: {calibration}\n"
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
    ray_info = None
    if getattr(args, "ray", None):  # the same scores, chunk by chunk on Ray actors (flowcore.cli._ray)
        scores, ray_info = ray_score(args, det, x, method=method, all_methods=args.all_methods)
    elif args.all_methods:
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
    if ray_info is not None:
        summary["ray"] = ray_info
    emit(out, summary, args.json,
         f"scored {len(main)} samples with {method}: {int(pred.sum())} above the threshold "
         f"{det.thresholds_[method]:.6g} (predicted OOD); written {args.out}"
         + (f" (on Ray: {ray_info['chunks']} chunks on {len(ray_info['actors'])} actors)" if ray_info else ""))
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
        write_report_into(report, tmp)
    emit(out, report.to_json(), args.json, report.table("text") + f"\nwritten {args.out}")
    return 0


COMMANDS = {"fit": _cmd_fit, "score": _cmd_score, "eval": _cmd_eval}


def run(args, out, emit) -> int:
    return COMMANDS[args.ood_command](args, out, emit)
