"""The ``flowcore`` command line.

``main(argv=None) -> int``; results go to stdout (text, or JSON with ``--json``) and files under
``--out``; logs and progress go to stderr. Errors print one line, ``error: …``, never a traceback
for a user mistake. Exit codes (also in ``flowcore --help``):

- 0 — success;
- 2 — usage: an unknown command (named before any flag is read, with the closest known command:
  ``error: unknown command 'trajectory' (did you mean 'trajectories'?)``) or flag (the closest
  known flag is named; abbreviations are off, so ``--max-step`` is not ``--max-steps``), a
  missing argument, or a flag value of the wrong type, not among its choices or outside its
  declared range (every number's range is declared once, in :mod:`flowcore.cli._args`) —
  refused before any file is read;
- 3 — bad input: a bundle, data file, detector folder or output path that cannot be used, or the
  content of a flag the command reads itself (``--starts FILE|noise:N``, ``--atoms``, ``--ood``,
  ``--methods``);
- 4 — runtime: ONNX Runtime or another dependency failed, out of memory, or an internal error
  (``error: internal error: <type>: <msg> (please report)``; ``FLOWCORE_DEBUG=1`` re-raises it);
- 130 — interrupted (Ctrl-C), one line.

Every command is one entry of :data:`COMMANDS` (help summary, the function that declares its
flags, the function that runs it): the parser (:func:`build_parser`), the dispatch (:func:`main`)
and ``docs/cli.md`` (``tools/gen_cli_docs.py``) all read that table. A command that iterates takes
``--progress/--no-progress`` (:func:`flowcore.cli._args.progress_of`): bars forced on or off;
without either, bars only when stderr is a terminal, and none with ``--quiet``.

``flowcore export`` holds the frameworks' log lines (torch.export, torch.onnx, TensorFlow/absl,
tf2onnx) back while it runs: shown after a success, dropped on an error, never with ``--quiet``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence


from flowcore._version import __version__
from flowcore.errors import DataError, FlowcoreError
from flowcore.io import atomic_write_json, to_jsonable
from flowcore.cli._out import out_folder, rows_bytes
from flowcore.cli import analysis, export, ood, report as report_cmd
from flowcore.cli import residuals as residuals_cmd
from flowcore.runtime.latent_map import LatentMap
from flowcore.dynamics.starts import open_start_source
from flowcore.dynamics.checkpointing import RunCheckpoint, chunk_rows, file_identity
from flowcore.dynamics.memory import check_result_memory
from flowcore.dynamics.trajectories import iterate, Trajectories
from flowcore.dynamics.iterate_options import IterateOptions
from flowcore.dynamics.grouping_rules import grouping_from_settings
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.bundle.subnormal import count_subnormals
from flowcore.dynamics.attractors import Attractors, find_attractors
from flowcore.dynamics.stability import Stability, rate_check, stability
from flowcore.runtime.doctor import diagnose, format_report
from flowcore.cli.demo import run_demo
from flowcore.cli._args import UsageError, progress_of
from flowcore.cli._ray import ray_iterate
from flowcore.cli._parser import (Command, add_attractors, add_demo, add_doctor, add_info, add_stability,
                                  add_trajectories, make_parser)
from flowcore.cli._guard import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, debug, framework_logs, report

__all__ = ["main", "build_parser", "COMMANDS", "EXIT_OK", "EXIT_USAGE", "EXIT_BAD_INPUT", "EXIT_RUNTIME"]


# ----------------------------------------------------------------------------- helpers
def _emit(out, payload: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        out.write(json.dumps(to_jsonable(payload), indent=2) + "\n")
    else:
        out.write(text.rstrip("\n") + "\n")


def _map(args):
    return LatentMap(args.bundle, providers=args.device, intra_op_num_threads=args.threads)


def _starts(args, lmap):
    """The start set as a lazy source (noise drawn per chunk, ``.npy`` files memory-mapped) and its description."""
    source, desc = open_start_source(lmap, data=args.data, latents=args.latents, noise=args.noise,
                                     spec=getattr(args, "starts", None), seed=args.seed)
    flag = next(f"--{k} {v}" for k, v in (("noise", args.noise), ("starts", getattr(args, "starts", None)),
                                          ("data", args.data), ("latents", args.latents)) if v is not None)
    check_result_memory(len(source), lmap.latent_shape, record_every=getattr(args, "record_every", None),
                        what=flag)  # the N-row results must fit: refused before anything is allocated
    return source, desc


def _checkpoint(args, lmap, start: dict[str, Any], command: str) -> RunCheckpoint | None:
    """The run's partial area inside ``--out`` (completed chunks; ``--resume`` continues); None without --out."""
    if not args.out:
        return None
    keys = ("tol", "max_steps", "batch_size", "norm_limit", "record_every", "metric", "threshold", "relative", "device")
    spec = {"command": command, "flowcore": __version__, "bundle_sha256": lmap.bundle.sha256,
            "starts": {**start, "source": file_identity(start.get("file"))},
            "settings": {k: getattr(args, k) for k in keys if hasattr(args, k)},
            "chunk_size": chunk_rows(args.batch_size)}
    return RunCheckpoint(args.out, spec, resume=bool(getattr(args, "resume", False)))


def _iterate(args, lmap, z0, ckpt: RunCheckpoint | None = None):
    size = chunk_rows(args.batch_size)  # chunks of starts, each its own pass, with or without --out
    options = IterateOptions(engine=args.engine, chunk_size=size,
                             checkpoint=ckpt.stage("trajectories", size) if ckpt is not None else None)
    kwargs = dict(tol=args.tol, max_steps=args.max_steps, batch_size=args.batch_size, norm_limit=args.norm_limit,
                  record_every=getattr(args, "record_every", None), options=options)
    if getattr(args, "ray", None):  # the same chunks on Ray actors (flowcore.cli._ray)
        return ray_iterate(args, lmap, z0, **kwargs)
    return iterate(lmap, z0, progress=progress_of(args), **kwargs)


def _traj_text(s: dict[str, Any]) -> str:
    med = s["median_steps_converged"]
    return (f"starts {s['n_starts']}: converged {s['converged']}, max_steps {s['max_steps']}, "
            f"diverged {s['diverged']}; median steps (converged) {med if med is not None else '-'} "
            f"[tol {s['settings']['tol']:g}, max_steps {s['settings']['max_steps']}]" + _ray_text(s['settings']))


def _ray_text(settings: dict[str, Any]) -> str:
    ray = settings.get("ray")  # a --ray run (flowcore.cli._ray)
    if not ray:
        return ""
    return (f"\non Ray ({ray.get('address', '?')}): {ray['chunks_run']} chunks of {ray['chunk_size']} run on "
            f"{len(ray['actors'])} actors, {ray['chunks_resumed']} read back")


def _attr_text(a: dict[str, Any]) -> str:
    st = a["settings"]
    top = ", ".join(f"{c}" for c in a["counts"][:10]) + (" …" if a["n_attractors"] > 10 else "")
    return (f"distinct attractors {a['n_attractors']} (metric {st['metric']}, threshold {st['threshold']:g}"
            f"{', relative' if st.get('relative') else ''}); unassigned {a['n_unassigned']}; largest basins: {top}")


def _grouping(args):
    """The grouping rule of ``--metric``/``--threshold``/``--relative`` (default threshold 0.99 cosine, 1e-3 euclidean)."""
    return grouping_from_settings(args.metric, args.threshold, args.relative)


# ---------------------------------------------------------------------------- commands
def _cmd_info(args, out, emit) -> int:
    bundle = FlowBundle.load(args.bundle)
    info = bundle.summary()
    info["subnormal_weights"] = {w: count_subnormals(getattr(bundle, w)) for w in ("encoder", "decoder")}
    ver = info["verified"]
    files = [f"  {r['file']:<20s} {r['size']:>12,d} bytes  sha256 {r['sha256'][:16]}…  ({r['role']})"
             for r in ver["files"]]
    text = "\n".join([
        f"bundle       {info['path']}",
        f"input shape  {tuple(info['input_shape'])}",
        f"latent shape {tuple(info['latent_shape'])}  (k = {info['latent_dim']})",
        f"opset        encoder {info['encoder'].get('opset')}, decoder {info['decoder'].get('opset')}",
        f"source       {info['source']}",
        f"verified     {ver['manifest']}",
        f"             {len(ver['files'])} files ONNX Runtime reads ({ver['external_data_files']} external-data "
        f"files, {ver['total_bytes']:,d} bytes): {ver['hashes']} OK",
        *files,
        f"             paths: {ver['paths']}",
        f"             ONNX checker {ver['onnx_checker']}; shapes {ver['shapes']}",
        f"subnormal    encoder {info['subnormal_weights']['encoder']:,d}, decoder {info['subnormal_weights']['decoder']:,d} "
        "weight values (slow on x86 CPUs; flushed to 0 in the in-memory graphs when run, bundle unchanged)",
        "valid        hashes, ONNX checker and E/D shape composition OK",
    ])
    emit(out, info, args.json, text)
    return EXIT_OK


def _cmd_trajectories(args, out, emit) -> int:
    dest = out_folder(args, "trajectories", writes=(*Trajectories.files(), "summary.json"))
    lmap = _map(args)
    z0, start = _starts(args, lmap)
    if dest:
        dest.check_space(rows_bytes(len(z0), 2 * lmap.latent_dim, floats_per_row=3))
    ckpt = _checkpoint(args, lmap, start, "trajectories")
    with ckpt or contextlib.nullcontext():  # on a failure: completed chunks kept for --resume, else no trace
        traj = _iterate(args, lmap, z0, ckpt)
    summary = {"starts": start, **traj.summary()}
    if dest:
        with dest.staged() as tmp:
            traj.write(tmp)
            atomic_write_json(tmp / "summary.json", summary)
        ckpt.remove()
    emit(out, summary, args.json, _traj_text(summary))
    return EXIT_OK


def _cmd_attractors(args, out, emit) -> int:
    dest = out_folder(args, "attractors", writes=(*Trajectories.files(), *Attractors.files(), "summary.json"))
    lmap = _map(args)
    z0, start = _starts(args, lmap)
    if dest:
        dest.check_space(rows_bytes(len(z0), 2 * lmap.latent_dim, floats_per_row=4))
    ckpt = _checkpoint(args, lmap, start, "attractors")
    with ckpt or contextlib.nullcontext():  # on a failure: completed chunks kept for --resume, else no trace
        traj = _iterate(args, lmap, z0, ckpt)
    att = find_attractors(traj, grouping=_grouping(args), starts=start)
    summary = {"bundle": str(Path(args.bundle).resolve()), "starts": start, "trajectories": traj.summary(),
               "attractors": att.summary()}
    if dest:
        with dest.staged() as tmp:
            traj.write(tmp)
            att.write(tmp)
            atomic_write_json(tmp / "summary.json", summary)
        ckpt.remove()
    emit(out, summary, args.json, _traj_text(summary["trajectories"]) + "\n" + _attr_text(summary["attractors"]))
    return EXIT_OK


def _cmd_stability(args, out, emit) -> int:
    folder = Path(args.dir)
    if not (folder / "attractors.npz").is_file():
        raise DataError(f"{folder} has no attractors.npz; run `flowcore attractors BUNDLE ... --out {folder}` first")
    dest = out_folder(args, "stability", path=args.out or folder, writes=Stability.files())
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
    with dest.staged() as tmp:
        stab.write(tmp, extra_json={k: report[k] for k in ("points", "rate_check") if k in report})
    lines = [f"{len(points)} attractors at their {args.points}: {report['n_stable']} stable (spectral radius < 1)"]
    checks = {r["attractor"]: r for r in report.get("rate_check", [])}
    for i in range(len(points)):
        line = (f"  #{i:<3d} basin {att.counts[i]:6d}  radius {stab.spectral_radius[i]:.4f}  "
                f"norm {stab.spectral_norm[i]:.4f}  {stab.labels()[i]}")
        if i in checks and checks[i]["predicted_median_steps"] is not None:
            line += f"  steps measured {checks[i]['measured_median_steps']:.0f} / predicted {checks[i]['predicted_median_steps']:.0f}"
        lines.append(line)
    emit(out, report, args.json, "\n".join(lines))
    return EXIT_OK


def _cmd_demo(args, out, emit) -> int:
    summary = run_demo(out_dir=args.out, n_noise=args.noise, seed=args.seed, providers=args.device,
                       threads=args.threads, bundle=args.bundle, data=args.data, progress=progress_of(args),
                       force=getattr(args, "force", False))
    lines = [f"flowcore demo — {summary['model']}", f"providers {summary['providers']}"]
    for name, part in summary["runs"].items():
        lines.append(f"[{name}] " + _traj_text(part["trajectories"]))
        for label, att in part["attractors"].items():
            lines.append(f"[{name}] {label}: " + _attr_text(att))
    lines.append(f"written {summary['written']}")
    emit(out, summary, args.json, "\n".join(lines))
    return EXIT_OK


def _cmd_doctor(args, out, emit) -> int:
    report = diagnose(bundle=args.bundle)
    emit(out, report, args.json, format_report(report))
    return EXIT_OK if report.get("ok") else EXIT_RUNTIME


# ------------------------------------------------------------------------- the command table
#: every ``flowcore`` command, in ``--help`` order: name -> Command(help summary, add(p, common), run(args, out,
#: emit)). The parser (build_parser), the dispatch (main) and docs/cli.md (tools/gen_cli_docs.py) all read this
#: table; adding a command is one entry.
COMMANDS: dict[str, Command] = {
    "info": Command("describe and validate a FlowBundle", add_info, _cmd_info),
    "trajectories": Command("iterate f = E∘D from data or noise starts", add_trajectories, _cmd_trajectories),
    "attractors": Command("iterate, then group endpoints into attractors", add_attractors, _cmd_attractors),
    "stability": Command("Jacobian spectra of the attractors in an `attractors --out` folder", add_stability,
                         _cmd_stability),
    "demo": Command("run the main job on the embedded digits model", add_demo, _cmd_demo),
    "ood": Command("out-of-distribution detection from latent trajectories", ood.add_parser, ood.run),
    "export": Command("convert saved PyTorch / Keras / TensorFlow models to a FlowBundle", export.add_parser,
                      export.run),
    "memorization": Command("memorization coefficient of the decoded attractors, with null levels",
                            analysis.add_memorization, analysis.run_memorization),
    "dynamics": Command("metrics per training checkpoint (bundles in order)", analysis.add_dynamics,
                        analysis.run_dynamics),
    "probe": Command("data-free probing: OMP on noise attractors vs orthobasis vs PCA", analysis.add_probe,
                     analysis.run_probe),
    "field": Command("the latent vector field V(z) = f(z) - z on a 2-D grid, with basins and steps",
                     analysis.add_field, analysis.run_field),
    "contraction": Command("σ_out / σ_in of one application of f to N(0, I) latents, over seeds",
                           analysis.add_contraction, analysis.run_contraction),
    "residuals": Command("per-step ‖z_{t+1} − z_t‖ and ‖z_t‖ (median, quartiles) and their figure",
                         residuals_cmd.add_residuals, residuals_cmd.run_residuals),
    "report": Command("one self-contained HTML page for a model (all analyses, tested in a browser)",
                      report_cmd.add_report, report_cmd.run_report),
    "doctor": Command("report the ONNX Runtime build, providers and conflicts; run a tiny graph on each",
                      add_doctor, _cmd_doctor),
}


def build_parser():
    """The ``flowcore`` parser, built from :data:`COMMANDS` (abbreviations off, every number range-checked)."""
    return make_parser(COMMANDS)


def _run(argv: Sequence[str] | None, out, err) -> int:
    try:
        args = build_parser().parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    quiet = bool(getattr(args, "quiet", False))
    if not quiet:
        logging.basicConfig(level=logging.WARNING, stream=err, format="%(message)s")
    if args.command == "export":  # the frameworks' loggers: held back, dropped on an error, silent with --quiet
        with framework_logs(err, quiet=quiet):
            return COMMANDS[args.command].run(args, out, _emit)
    return COMMANDS[args.command].run(args, out, _emit)


def main(argv: Sequence[str] | None = None, *, stdout=None, stderr=None) -> int:
    """Run the CLI; returns the exit code.

    Exit codes: 0 ok; 2 usage (unknown command or flag, missing argument, a flag value outside
    its declared range, see :mod:`flowcore.cli._args`); 3 bad input (a bundle, data file,
    detector folder or output path that cannot be used); 4 runtime (ONNX Runtime, out of memory,
    an internal error); 130 interrupted. Every failure is one ``error: …`` line on ``stderr``;
    an unexpected exception is ``error: internal error: <type>: <msg> (please report)``, or
    re-raised with its traceback when ``FLOWCORE_DEBUG=1``.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        return _run(argv, out, err)
    except (UsageError, FlowcoreError, OSError, MemoryError, KeyboardInterrupt) as exc:
        code, line = report(exc)
    except Exception as exc:  # an internal error: one line, unless FLOWCORE_DEBUG=1
        if debug():
            raise
        code, line = report(exc)
    err.write(line + "\n")
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
