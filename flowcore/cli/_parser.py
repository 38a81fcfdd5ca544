"""The ``flowcore`` argument parser: built from the command table, with the exit-code epilog.

Built from :class:`flowcore.cli._args.Parser` (abbreviations off, unknown commands and flags
named with the closest known one, errors raised as :class:`~flowcore.cli._args.UsageError`),
with every numeric flag typed from :data:`flowcore.cli._args.RANGES`. Each command is one
:class:`Command` entry of :data:`flowcore.cli.app.COMMANDS` (help summary, the function that
declares its flags, the function that runs it); :func:`make_parser` builds the parser from that
table and :func:`flowcore.cli.app.main` dispatches through the same table. This module declares
the flags of the core commands (info, trajectories, attractors, stability, demo, doctor); the
other command modules declare their own (``add_parser``/``add_<command>``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, Mapping

from flowcore._version import __version__
from flowcore.cli._args import Parser, add_force, add_progress, add_resume, add_stop_rule, number
from flowcore.cli._ray import add_ray

__all__ = ["Command", "make_parser", "common", "EPILOG", "add_info", "add_trajectories", "add_attractors",
           "add_stability", "add_demo", "add_doctor"]


EPILOG = """\
exit codes:
  0    success
  2    usage: an unknown command (the closest known command is named) or flag (the closest
       known flag is named), a missing argument, or a flag value of the wrong type, not among
       its choices or outside its declared range (e.g. --tol nan, --seed -1, --max-steps 0)
       -- all refused before any file is read
  3    bad input: a bundle, data file, detector folder or output path that cannot be used, or the
       content of a flag the command reads itself (--starts FILE|noise:N, --atoms, --ood, --methods)
  4    runtime: ONNX Runtime or another dependency failed, out of memory, or an internal error
  130  interrupted (Ctrl-C)
errors are one line, "error: ...", never a traceback (FLOWCORE_DEBUG=1 shows the traceback of an
internal error). Data files are read without pickle: .npy/.npz of numbers; float64 and integer data
are converted to float32, object arrays are refused.
"""

#: the help of a ``bundle`` positional
BUNDLE_HELP = "FlowBundle folder (flow.json + encoder.onnx + decoder.onnx, e.g. written by `flowcore export`)"


@dataclass(frozen=True)
class Command:
    """One ``flowcore`` command: one entry of :data:`flowcore.cli.app.COMMANDS`, keyed by its name.

    For developers: to add a command, write ``add(p, common)`` and ``run(args, out, emit)`` in a
    module of :mod:`flowcore.cli` and add one entry to the table; the parser, the dispatch and
    ``docs/cli.md`` (``tools/gen_cli_docs.py``) all read it.

    Attributes
    ----------
    help : str
        One-line summary (``flowcore --help``, the command's ``--help`` description, docs/cli.md).
    add : callable
        ``add(p, common)`` declares the command's arguments on its own parser ``p``, each with
        ``help=`` stating its default and units; ``common(p)`` adds ``--json``, ``--device``,
        ``--threads`` and ``--quiet``.
    run : callable
        ``run(args, out, emit) -> int`` runs the parsed command, writes its result to ``out``
        through ``emit(out, payload, as_json, text)`` and returns the exit code.
    """

    help: str
    add: Callable[[argparse.ArgumentParser, Callable[[argparse.ArgumentParser], None]], None]
    run: Callable[..., int]


def common(p: argparse.ArgumentParser) -> None:
    """Declare ``--json``, ``--device``, ``--threads`` and ``--quiet`` (every command that runs a model)."""
    p.add_argument("--json", action="store_true",
                   help="print the result as machine-readable JSON on stdout (default: a text summary)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="ONNX Runtime device (default auto: CUDA when the installed onnxruntime has it, else CPU)")
    number(p, "--threads", default=None, help="ONNX Runtime intra-op threads (default or 0: the runtime's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines on stderr (default: shown)")


def make_parser(commands: Mapping[str, Command]) -> Parser:
    """The ``flowcore`` parser with one sub-parser per entry of ``commands``, in the table's order."""
    parser = Parser(prog="flowcore", description="Latent-space dynamics of trained autoencoders (arXiv 2505.22785).",
                    epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"flowcore {__version__}",
                        help="print flowcore's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser,
                                help="the command to run (`flowcore COMMAND --help` lists its flags):")
    sub.required = True
    for name, cmd in commands.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.add(p, common)
    return parser


# ------------------------------------------------------------------------ the core commands' flags
def _starts_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="inputs to encode into the starts: file.npy, file.npz or file.npz:KEY, "
                                    "shape (N, *input_shape)")
    src.add_argument("--latents", help="latent starts: file.npy/.npz[:KEY], shape (N, *latent_shape)")
    number(src, "--noise", metavar="N", help="N latent starts drawn from N(0, I) (seeded by --seed)")
    src.add_argument("--starts", metavar="SPEC", help="data file (as --data) or noise:N (as --noise N)")
    number(p, "--seed", default=0, help="seed for the noise starts (default 0)")
    add_stop_rule(p)
    number(p, "--batch-size", default=4096,
           help="rows in flight at once (default 4096 rows; lowered to the rows whose activations fit in 2 GiB "
                "on the CPU, 8 GiB on CUDA: 34 CPU rows for TAEF2 at 256²)")
    number(p, "--norm-limit", default=1e8, help="latent L2 norm above which a row ends diverged (default 1e8)")
    p.add_argument("--out", help="folder for the result files (default: none written, summary only)")
    add_force(p)
    add_resume(p)
    add_progress(p)


def _grouping_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"],
                   help="rule that merges endpoints into one attractor (default cosine)")
    number(p, "--threshold", default=None,
           help="cosine: same attractor when cos > T, T in [-1, 1) (default 0.99); euclidean: distance <= T, "
                "T >= 0 in latent units (default 1e-3)")
    p.add_argument("--relative", action="store_true",
                   help="euclidean: T is relative to the RMS norm of the endpoints (default: absolute)")


def add_info(p: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``flowcore info BUNDLE``."""
    p.add_argument("bundle", help=BUNDLE_HELP)
    common(p)


def add_trajectories(p: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``flowcore trajectories BUNDLE (--data | --latents | --noise | --starts) …``."""
    p.add_argument("bundle", help=BUNDLE_HELP)
    _starts_args(p)
    number(p, "--record-every", default=None,
           help="store the path every S steps, in trajectories.npz (default: endpoints only)")
    add_ray(p)
    common(p)


def add_attractors(p: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``flowcore attractors BUNDLE (--data | --latents | --noise | --starts) …``."""
    p.add_argument("bundle", help=BUNDLE_HELP)
    _starts_args(p)
    _grouping_args(p)
    add_ray(p)
    common(p)


def add_stability(p: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``flowcore stability DIR``."""
    p.add_argument("dir", help="folder written by `flowcore attractors --out` (attractors.npz, summary.json)")
    p.add_argument("--bundle", default=None, help="bundle (default: the one recorded in DIR/summary.json)")
    p.add_argument("--points", default="representatives", choices=["representatives", "centres"],
                   help="evaluate at each group's member nearest its mean (default representatives) or at the mean")
    number(p, "--h", default=1e-3, help="finite-difference step, relative to the point's scale (default 1e-3)")
    p.add_argument("--out", default=None, help="folder for stability.json/.npz (default: DIR)")
    add_force(p)
    common(p)


def add_demo(p: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``flowcore demo``."""
    p.add_argument("--out", default="demo_out", help="folder for demo_summary.json (default demo_out)")
    number(p, "--noise", default=None, help="noise starts (default: as many as test digits)")
    number(p, "--seed", default=0, help="seed for the noise starts (default 0)")
    p.add_argument("--bundle", default=None,
                   help="use this bundle instead of the embedded one, with --data (default: the embedded digits model)")
    p.add_argument("--data", default=None,
                   help="test inputs for --bundle: file.npy/.npz[:KEY] (default: the embedded test digits)")
    add_force(p)
    add_progress(p)
    common(p)


def add_doctor(p: argparse.ArgumentParser, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """``flowcore doctor`` (no model to run, so no ``common`` flags besides ``--json``)."""
    p.add_argument("--json", action="store_true",
                   help="print the report as machine-readable JSON on stdout (default: a text report)")
    p.add_argument("--bundle", default=None,
                   help="also report the node placement of this bundle's fused latent map (providers per node, "
                        "Memcpy nodes) (default: none)")
