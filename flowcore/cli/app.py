"""The ``flowcore`` command line.

``main(argv=None) -> int``; results go to stdout (text, or JSON with ``--json``) and files under
``--out``; logs and progress go to stderr. Errors print one line, ``error: …``, and exit with
2 (usage), 3 (bad input) or 4 (runtime/backend); never a traceback for a user mistake.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from flowcore import __version__
from flowcore.errors import DataError, FlowcoreError
from flowcore.io import atomic_write_json, to_jsonable
from flowcore.results import staged_folder
from flowcore.cli.analysis import add_parsers as add_analysis, COMMANDS
from flowcore.cli.export import add_parser as add_export, run as run_export
from flowcore.cli.ood import add_parsers, run as run_ood
from flowcore.runtime.latent_map import LatentMap
from flowcore.dynamics.starts import starts_from_sources
from flowcore.dynamics.trajectories import iterate, Trajectories
from flowcore.dynamics.grouping_rules import grouping_from_settings
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.dynamics.attractors import Attractors, find_attractors
from flowcore.dynamics.stability import rate_check, stability
from flowcore.runtime.doctor import diagnose
from flowcore.cli.demo import run_demo

__all__ = ["main", "EXIT_OK", "EXIT_USAGE", "EXIT_BAD_INPUT", "EXIT_RUNTIME"]

EXIT_OK, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_RUNTIME = 0, 2, 3, 4


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (raised so main() decides)
        raise _UsageError(f"{self.prog}: {message}")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="ONNX Runtime device (default auto)")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: runtime's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")


def _starts_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="inputs to encode: file.npy, file.npz or file.npz:KEY, shape (N, *input_shape)")
    src.add_argument("--latents", help="latent starts: file.npy/.npz[:KEY], shape (N, *latent_shape)")
    src.add_argument("--noise", type=int, metavar="N", help="N latent starts drawn from N(0, I)")
    src.add_argument("--starts", metavar="SPEC", help="data file (as --data) or noise:N (as --noise N)")
    p.add_argument("--seed", type=int, default=0, help="seed for --noise (default 0)")
    p.add_argument("--tol", type=float, default=1e-6, help="stop when ||z_t - z_(t-1)||^2 < tol (default 1e-6)")
    p.add_argument("--max-steps", type=int, default=3000, help="most applications of f per start (default 3000)")
    p.add_argument("--batch-size", type=int, default=4096, help="rows in flight (default 4096)")
    p.add_argument("--norm-limit", type=float, default=1e8, help="norm above which a row is diverged (default 1e8)")
    p.add_argument("--out", help="folder for the result files")


def _grouping_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"], help="merge rule (default cosine)")
    p.add_argument("--threshold", type=float, default=None,
                   help="cosine: same attractor when cos > T (default 0.99); euclidean: distance <= T (default 1e-3)")
    p.add_argument("--relative", action="store_true", help="euclidean: T is relative to the RMS norm of the endpoints")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="flowcore", description="Latent-space dynamics of trained autoencoders (arXiv 2505.22785).")
    parser.add_argument("--version", action="version", version=f"flowcore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("info", help="describe and validate a FlowBundle")
    p.add_argument("bundle")
    _common(p)

    p = sub.add_parser("trajectories", help="iterate f = E∘D from data or noise starts")
    p.add_argument("bundle")
    _starts_args(p)
    p.add_argument("--record-every", type=int, default=None, help="store the path every S steps")
    _common(p)

    p = sub.add_parser("attractors", help="iterate, then group endpoints into attractors")
    p.add_argument("bundle")
    _starts_args(p)
    _grouping_args(p)
    _common(p)

    p = sub.add_parser("stability", help="Jacobian spectra of the attractors in an `attractors --out` folder")
    p.add_argument("dir", help="folder written by `flowcore attractors --out`")
    p.add_argument("--bundle", default=None, help="bundle (default: the one recorded in DIR/summary.json)")
    p.add_argument("--points", default="representatives", choices=["representatives", "centres"],
                   help="evaluate at each group's member nearest its mean (default) or at the mean")
    p.add_argument("--h", type=float, default=1e-3, help="finite-difference step, relative to the point's scale")
    p.add_argument("--out", default=None, help="folder for stability.json/.npz (default: DIR)")
    _common(p)

    p = sub.add_parser("demo", help="run the main job on the embedded digits model")
    p.add_argument("--out", default="demo_out", help="folder for demo_summary.json (default demo_out)")
    p.add_argument("--noise", type=int, default=None, help="noise starts (default: as many as test digits)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bundle", default=None, help="use this bundle instead of the embedded one (with --data)")
    p.add_argument("--data", default=None, help="test inputs for --bundle")
    _common(p)

    add_parsers(sub, _common)
    add_export(sub, _common)
    add_analysis(sub, _common)

    p = sub.add_parser("doctor", help="report the ONNX Runtime build, providers and conflicts")
    p.add_argument("--json", action="store_true")
    return parser


# ----------------------------------------------------------------------------- helpers
def _emit(out, payload: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        out.write(json.dumps(to_jsonable(payload), indent=2) + "\n")
    else:
        out.write(text.rstrip("\n") + "\n")


def _map(args):
    return LatentMap(args.bundle, providers=args.device, intra_op_num_threads=args.threads)


def _starts(args, lmap) -> tuple[np.ndarray, dict[str, Any]]:
    return starts_from_sources(lmap, data=args.data, latents=args.latents, noise=args.noise,
                               spec=getattr(args, "starts", None), seed=args.seed)


def _iterate(args, lmap, z0):
    return iterate(lmap, z0, tol=args.tol, max_steps=args.max_steps, batch_size=args.batch_size,
                   norm_limit=args.norm_limit, record_every=getattr(args, "record_every", None),
                   progress=None if not args.quiet else False)


def _traj_text(s: dict[str, Any]) -> str:
    med = s["median_steps_converged"]
    return (f"starts {s['n_starts']}: converged {s['converged']}, max_steps {s['max_steps']}, "
            f"diverged {s['diverged']}; median steps (converged) {med if med is not None else '-'} "
            f"[tol {s['settings']['tol']:g}, max_steps {s['settings']['max_steps']}]")


def _attr_text(a: dict[str, Any]) -> str:
    st = a["settings"]
    top = ", ".join(f"{c}" for c in a["counts"][:10]) + (" …" if a["n_attractors"] > 10 else "")
    return (f"distinct attractors {a['n_attractors']} (metric {st['metric']}, threshold {st['threshold']:g}"
            f"{', relative' if st.get('relative') else ''}); unassigned {a['n_unassigned']}; largest basins: {top}")


def _grouping(args):
    """The grouping rule of ``--metric``/``--threshold``/``--relative`` (default threshold 0.99 cosine, 1e-3 euclidean)."""
    return grouping_from_settings(args.metric, args.threshold, args.relative)


# ---------------------------------------------------------------------------- commands
def _cmd_info(args, out) -> int:
    info = FlowBundle.load(args.bundle).summary()
    text = "\n".join([
        f"bundle       {info['path']}",
        f"input shape  {tuple(info['input_shape'])}",
        f"latent shape {tuple(info['latent_shape'])}  (k = {info['latent_dim']})",
        f"opset        encoder {info['encoder'].get('opset')}, decoder {info['decoder'].get('opset')}",
        f"source       {info['source']}",
        "valid        hashes, ONNX checker and E/D shape composition OK",
    ])
    _emit(out, info, args.json, text)
    return EXIT_OK


def _cmd_trajectories(args, out) -> int:
    lmap = _map(args)
    z0, start = _starts(args, lmap)
    traj = _iterate(args, lmap, z0)
    summary = {"starts": start, **traj.summary()}
    if args.out:
        with staged_folder(args.out) as tmp:
            traj.write(tmp)
            atomic_write_json(tmp / "summary.json", summary)
    _emit(out, summary, args.json, _traj_text(summary))
    return EXIT_OK


def _cmd_attractors(args, out) -> int:
    lmap = _map(args)
    z0, start = _starts(args, lmap)
    traj = _iterate(args, lmap, z0)
    att = find_attractors(traj, grouping=_grouping(args), starts=start)
    summary = {"bundle": str(Path(args.bundle).resolve()), "starts": start, "trajectories": traj.summary(),
               "attractors": att.summary()}
    if args.out:
        with staged_folder(args.out) as tmp:
            traj.write(tmp)
            att.write(tmp)
            atomic_write_json(tmp / "summary.json", summary)
    _emit(out, summary, args.json, _traj_text(summary["trajectories"]) + "\n" + _attr_text(summary["attractors"]))
    return EXIT_OK


def _cmd_stability(args, out) -> int:
    folder = Path(args.dir)
    if not (folder / "attractors.npz").is_file():
        raise DataError(f"{folder} has no attractors.npz; run `flowcore attractors BUNDLE ... --out {folder}` first")
    att = Attractors.load(folder)
    bundle = args.bundle
    if bundle is None:
        try:
            bundle = json.loads((folder / "summary.json").read_text())["bundle"]
        except (OSError, ValueError, KeyError):
            raise DataError(f"{folder}/summary.json names no bundle; pass --bundle") from None
    lmap = LatentMap(bundle, providers=args.device, intra_op_num_threads=args.threads)
    points = att.representatives if args.points == "representatives" else att.centres
    stab = stability(lmap, points, h=args.h)
    report = stab.summary()
    report["points"] = args.points
    if (folder / "trajectories.npz").is_file():
        traj = Trajectories.load(folder)
        report["rate_check"] = rate_check(att, traj, stab)
    with staged_folder(args.out or folder) as tmp:
        stab.write(tmp, extra_json={k: report[k] for k in ("points", "rate_check") if k in report})
    lines = [f"{len(points)} attractors at their {args.points}: {report['n_stable']} stable (spectral radius < 1)"]
    checks = {r["attractor"]: r for r in report.get("rate_check", [])}
    for i in range(len(points)):
        line = (f"  #{i:<3d} basin {att.counts[i]:6d}  radius {stab.spectral_radius[i]:.4f}  "
                f"norm {stab.spectral_norm[i]:.4f}  {stab.labels()[i]}")
        if i in checks and checks[i]["predicted_median_steps"] is not None:
            line += f"  steps measured {checks[i]['measured_median_steps']:.0f} / predicted {checks[i]['predicted_median_steps']:.0f}"
        lines.append(line)
    _emit(out, report, args.json, "\n".join(lines))
    return EXIT_OK


def _cmd_demo(args, out) -> int:
    summary = run_demo(out_dir=args.out, n_noise=args.noise, seed=args.seed, providers=args.device,
                       threads=args.threads, bundle=args.bundle, data=args.data, progress=not args.quiet)
    lines = [f"flowcore demo — {summary['model']}", f"providers {summary['providers']}"]
    for name, part in summary["runs"].items():
        lines.append(f"[{name}] " + _traj_text(part["trajectories"]))
        for label, att in part["attractors"].items():
            lines.append(f"[{name}] {label}: " + _attr_text(att))
    lines.append(f"written {summary['written']}")
    _emit(out, summary, args.json, "\n".join(lines))
    return EXIT_OK


def _cmd_doctor(args, out) -> int:
    report = diagnose()
    text = "\n".join(f"{k:22s} {v}" for k, v in report.items())
    _emit(out, report, args.json, text)
    return EXIT_OK if report.get("ok") else EXIT_RUNTIME


def _cmd_analysis(args, out) -> int:
    return COMMANDS[args.command](args, out, _emit)


def _cmd_export(args, out) -> int:
    return run_export(args, out, _emit)


def _cmd_ood(args, out) -> int:
    return run_ood(args, out, _emit)


_COMMANDS = {"memorization": _cmd_analysis, "dynamics": _cmd_analysis, "probe": _cmd_analysis,
             "field": _cmd_analysis, "export": _cmd_export, "ood": _cmd_ood, "info": _cmd_info, "trajectories": _cmd_trajectories, "attractors": _cmd_attractors,
             "stability": _cmd_stability, "demo": _cmd_demo, "doctor": _cmd_doctor}


def main(argv: Sequence[str] | None = None, *, stdout=None, stderr=None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 usage, 3 bad input, 4 runtime)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        args = build_parser().parse_args(list(argv) if argv is not None else None)
    except _UsageError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if not getattr(args, "quiet", False):
        logging.basicConfig(level=logging.WARNING, stream=err, format="%(message)s")
    try:
        return _COMMANDS[args.command](args, out)
    except FlowcoreError as exc:
        err.write(f"error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        err.write("error: interrupted\n")
        return 130
    except MemoryError:
        err.write("error: out of memory; lower --batch-size or the number of starts\n")
        return EXIT_RUNTIME


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
