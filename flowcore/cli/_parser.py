"""The ``flowcore`` argument parser: every command, its flags and ranges, and the exit-code epilog.

Built from :class:`flowcore.cli._args.Parser` (abbreviations off, closest-flag hints, errors
raised as :class:`~flowcore.cli._args.UsageError`), with every numeric flag typed from
:data:`flowcore.cli._args.RANGES`. The command modules add their own sub-parsers
(``add_parsers``/``add_parser``); :mod:`flowcore.cli.app` runs the parsed command.
"""

from __future__ import annotations

import argparse

from flowcore import __version__
from flowcore.cli._args import Parser, add_force, add_resume, add_stop_rule, number
from flowcore.cli.analysis import add_parsers as add_analysis
from flowcore.cli.export import add_parser as add_export
from flowcore.cli.ood import add_parsers

__all__ = ["build_parser", "EPILOG"]


EPILOG = """\
exit codes:
  0    success
  2    usage: an unknown command or flag (the closest known flag is named), a missing argument,
       or a flag value of the wrong type, not among its choices or outside its declared range
       (e.g. --tol nan, --seed -1, --max-steps 0) -- all refused before any file is read
  3    bad input: a bundle, data file, detector folder or output path that cannot be used, or the
       content of a flag the command reads itself (--starts FILE|noise:N, --atoms, --ood, --methods)
  4    runtime: ONNX Runtime or another dependency failed, out of memory, or an internal error
  130  interrupted (Ctrl-C)
errors are one line, "error: ...", never a traceback (FLOWCORE_DEBUG=1 shows the traceback of an
internal error). Data files are read without pickle: .npy/.npz of numbers; float64 and integer data
are converted to float32, object arrays are refused.
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="ONNX Runtime device (default auto)")
    number(p, "--threads", default=None, help="ONNX Runtime intra-op threads (default or 0: runtime's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")


def _starts_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="inputs to encode: file.npy, file.npz or file.npz:KEY, shape (N, *input_shape)")
    src.add_argument("--latents", help="latent starts: file.npy/.npz[:KEY], shape (N, *latent_shape)")
    number(src, "--noise", metavar="N", help="N latent starts drawn from N(0, I)")
    src.add_argument("--starts", metavar="SPEC", help="data file (as --data) or noise:N (as --noise N)")
    number(p, "--seed", default=0, help="seed for --noise (default 0)")
    add_stop_rule(p)
    number(p, "--batch-size", default=4096, help="rows in flight (default 4096)")
    number(p, "--norm-limit", default=1e8, help="norm above which a row is diverged (default 1e8)")
    p.add_argument("--out", help="folder for the result files")
    add_force(p)
    add_resume(p)


def _grouping_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"], help="merge rule (default cosine)")
    number(p, "--threshold", default=None,
           help="cosine: same attractor when cos > T, T in [-1, 1) (default 0.99); euclidean: distance <= T, "
                "T >= 0 (default 1e-3)")
    p.add_argument("--relative", action="store_true", help="euclidean: T is relative to the RMS norm of the endpoints")


def build_parser() -> argparse.ArgumentParser:
    """The ``flowcore`` parser: abbreviations off, every number range-checked (:mod:`flowcore.cli._args`)."""
    parser = Parser(prog="flowcore", description="Latent-space dynamics of trained autoencoders (arXiv 2505.22785).",
                    epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"flowcore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("info", help="describe and validate a FlowBundle")
    p.add_argument("bundle")
    _common(p)

    p = sub.add_parser("trajectories", help="iterate f = E∘D from data or noise starts")
    p.add_argument("bundle")
    _starts_args(p)
    number(p, "--record-every", default=None, help="store the path every S steps")
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
    number(p, "--h", default=1e-3, help="finite-difference step, relative to the point's scale (default 1e-3)")
    p.add_argument("--out", default=None, help="folder for stability.json/.npz (default: DIR)")
    add_force(p)
    _common(p)

    p = sub.add_parser("demo", help="run the main job on the embedded digits model")
    p.add_argument("--out", default="demo_out", help="folder for demo_summary.json (default demo_out)")
    number(p, "--noise", default=None, help="noise starts (default: as many as test digits)")
    number(p, "--seed", default=0, help="seed for the noise starts (default 0)")
    p.add_argument("--bundle", default=None, help="use this bundle instead of the embedded one (with --data)")
    p.add_argument("--data", default=None, help="test inputs for --bundle")
    add_force(p)
    _common(p)

    add_parsers(sub, _common)
    add_export(sub, _common)
    add_analysis(sub, _common)

    p = sub.add_parser("doctor", help="report the ONNX Runtime build, providers and conflicts; run a tiny graph on each")
    p.add_argument("--json", action="store_true")
    p.add_argument("--bundle", default=None,
                   help="also report the node placement of this bundle's fused latent map (providers per node, Memcpy nodes)")
    return parser
