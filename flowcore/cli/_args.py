"""Every command-line number's range, and the parser that enforces them, in one place.

Each numeric flag of every ``flowcore`` command takes its ``type=`` from :data:`RANGES` (through
:func:`number`), so a value outside the flag's declared range is refused by the parser, before
any file is read, with one line naming the flag, what was expected and what was got::

    error: --tol: expected a finite number > 0, got 'nan'

The rule for exit codes (also in ``flowcore --help`` and the README):

- **2, usage** — the command line itself is wrong: an unknown command or flag (the closest known
  flag is named), a missing argument, a flag value that is not of the flag's type, not one of its
  choices, or outside its declared range (:data:`RANGES`), and cross-flag rules
  (:func:`check_relations`, e.g. ``--threshold`` against ``--metric``);
- **3, bad input** — something the command reads is unusable: a bundle, a data file, a detector
  folder, or the content of a flag the command reads itself (``--starts FILE|noise:N``,
  ``--atoms``, ``--ood NAME=PATH``, ``--methods``);
- **4, runtime** — ONNX Runtime or another dependency failed, or an internal error.

:class:`Parser` turns every argparse error into :class:`UsageError` (so ``main`` decides how to
print it), turns abbreviations off (``--max-step 1`` is refused, never read as ``--max-steps``),
and names the closest known flag for an unknown one (``difflib.get_close_matches``).
"""

from __future__ import annotations

import argparse
import difflib
import math
import re
import sys
from typing import Any, Sequence

from flowcore.dynamics.trajectories import STOP_RULES
from flowcore.errors import ParameterError

__all__ = ["Parser", "UsageError", "RANGES", "MAX_COUNT", "MAX_SEED", "FloatRange", "IntRange", "number",
           "add_force", "add_resume", "add_progress", "progress_of", "add_stop_rule", "apply_preset", "add_engine", "check_relations",
           "walk", "THRESHOLDS", "FORCE_HELP", "RESUME_HELP", "PROGRESS_HELP"]

MAX_COUNT = 2**31 - 1  # starts, steps, rows in flight: the int32 range ONNX Runtime and the kernels index with
MAX_SEED = 2**63 - 1  # seeds are stored as int64 in results
MAX_THREADS = 4096
MAX_LIM = 1e6  # field grid half-width in latent units

FORCE_HELP = ("write into a non-empty folder without flowcore's marker; only flowcore's own files are replaced "
              "(default: such a folder is refused)")
RESUME_HELP = "continue an interrupted run from its completed chunks (default: start afresh)"
PROGRESS_HELP = ("progress bar on stderr: --progress forces it on (e.g. CI logs, where stderr is not a terminal), "
                 "--no-progress off (default: shown only when stderr is a terminal, and not with --quiet; it "
                 "appears after 1 s of work)")


class UsageError(Exception):
    """A command-line mistake: one line, exit code 2."""


class FloatRange:
    """An argparse ``type=``: a finite float within bounds.

    Parameters
    ----------
    lo, hi : float or None
        Bounds; None is unbounded on that side (the value is still required to be finite).
    lo_open, hi_open : bool, default False
        Whether the bound itself is excluded.
    """

    def __init__(self, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 hi_open: bool = False):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open
        self.__name__ = "number"

    def describe(self) -> str:
        """The expected value in words, e.g. ``a finite number > 0``."""
        if self.lo is not None and self.hi is not None:
            lb, rb = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            return f"a number in {lb}{self.lo:g}, {self.hi:g}{rb}"
        if self.lo is not None:
            return f"a finite number {'>' if self.lo_open else '>='} {self.lo:g}"
        if self.hi is not None:
            return f"a finite number {'<' if self.hi_open else '<='} {self.hi:g}"
        return "a finite number"

    def accepts(self, v: float) -> bool:
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return False
        return not (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)))

    def __call__(self, text: str) -> float:
        try:
            v = float(text)
        except (TypeError, ValueError):
            v = math.nan
        if not self.accepts(v):
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}")
        return v


class IntRange:
    """An argparse ``type=``: a whole number in ``[lo, hi]`` (decimal digits, an optional sign)."""

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi
        self.__name__ = "integer"

    def describe(self) -> str:
        """The expected value in words, e.g. ``an integer in [1, 2147483647]``."""
        return f"an integer in [{self.lo}, {self.hi}]"

    def __call__(self, text: str) -> int:
        s = str(text).strip()
        digits = s[1:] if s[:1] in "+-" else s
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 40:
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}")
        v = int(s)
        if not self.lo <= v <= self.hi:
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}")
        return v


COUNT = IntRange(1, MAX_COUNT)

#: flag → its range; every numeric flag of every command is declared here and nowhere else.
RANGES: dict[str, FloatRange | IntRange] = {
    # iteration (trajectories, attractors, the analyses, ood fit)
    "--tol": FloatRange(0.0, None, lo_open=True),
    "--max-steps": COUNT,
    "--batch-size": COUNT,
    "--norm-limit": FloatRange(0.0, None, lo_open=True),
    "--record-every": COUNT,
    "--seed": IntRange(0, MAX_SEED),
    # start and sample counts
    "--noise": COUNT,
    "--n-starts": COUNT,
    "--n-noise": COUNT,
    "--seeds": COUNT,  # contraction: seeds 0 .. S-1
    "--steps": COUNT,  # residuals: applications of f per start
    # grouping: the per-metric range is checked by check_relations
    "--threshold": FloatRange(),
    # stability, field
    "--h": FloatRange(0.0, 1.0, lo_open=True),
    "--lim": FloatRange(0.0, MAX_LIM, lo_open=True),
    "--n": IntRange(2, 2048),
    # ood fit
    "--contamination": FloatRange(0.0, 1.0, lo_open=True, hi_open=True),
    "--calibration-split": FloatRange(0.0, 1.0, hi_open=True),
    # export
    "--opset": IntRange(7, 50),
    "--rtol": FloatRange(0.0, None, lo_open=True),
    # runtime
    "--threads": IntRange(0, MAX_THREADS),
    "--ray-actors": COUNT,  # flowcore.cli._ray
}

#: cross-flag ranges: the --threshold of each --metric (GroupByCosine / GroupByDistance's own rules)
THRESHOLDS = {"cosine": FloatRange(-1.0, 1.0, hi_open=True), "euclidean": FloatRange(0.0, None)}


def number(p: argparse.ArgumentParser, flag: str, *, default: Any = None, help: str | None = None,
           **kwargs: Any) -> argparse.Action:
    """Add the numeric ``flag`` to ``p`` with its declared range (``type=RANGES[flag]``).

    The help text ends with the range, so ``--help`` shows what each flag accepts.
    """
    kind = RANGES[flag]
    text = f"{help}; " if help else ""
    return p.add_argument(flag, type=kind, default=default, help=f"{text}{kind.describe()}", **kwargs)


def add_stop_rule(p: argparse.ArgumentParser) -> None:
    """Declare ``--tol``, ``--max-steps``, ``--preset`` (the paper's stopping rule) and ``--engine`` on every command that iterates.

    ``--tol`` and ``--max-steps`` default to None here and are filled from ``--preset``
    (:data:`flowcore.dynamics.trajectories.STOP_RULES`) by :func:`apply_preset` after parsing, so
    an explicit value always wins over the preset.
    """
    number(p, "--tol", default=None, help="stop when ||z_t - z_(t-1)||^2 < tol (default 1e-6, or the --preset's)")
    number(p, "--max-steps", default=None, help="most applications of f per start (default 3000, or the --preset's)")
    rules = "; ".join(f"{name}: tol {r['tol']:g}, {r['max_steps']} steps" for name, r in STOP_RULES.items())
    p.add_argument("--preset", default="small", choices=list(STOP_RULES),
                   help=f"the paper's stopping rule by name ({rules}; small = small autoencoders, foundation = "
                        "Stable Diffusion's AE and ViT-MAE); --tol / --max-steps override it (default small)")
    add_engine(p)


def apply_preset(args: argparse.Namespace) -> None:
    """Fill ``--tol`` / ``--max-steps`` left unset from the command's ``--preset`` (a no-op without one)."""
    preset = getattr(args, "preset", None)
    if preset is None:
        return
    for key, value in STOP_RULES[preset].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def add_engine(p: argparse.ArgumentParser) -> None:
    """Declare ``--engine`` (flowcore.dynamics.engines): how the trajectories are run, never what they are."""
    p.add_argument("--engine", default="auto", type=_engine_name, choices=["auto", "python", "iobinding"],
                   help="trajectory engine; every engine gives the same results (default auto: python on the CPU; docs/method.md, Engines)")


def _engine_name(text: str) -> str:
    """``--engine``'s ``type=``: a removed engine (``segment``) is refused with the line saying what replaces it."""
    from flowcore.dynamics.iterate_options import REMOVED_ENGINES  # lazy: import cost (numpy); parsing stays fast

    if text.lower() in REMOVED_ENGINES:
        raise argparse.ArgumentTypeError(REMOVED_ENGINES[text.lower()])
    return text


def add_progress(p: argparse.ArgumentParser) -> None:
    """Declare ``--progress/--no-progress`` on a command that iterates (read with :func:`progress_of`)."""
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help=PROGRESS_HELP)


def progress_of(args: argparse.Namespace) -> bool | None:
    """The ``progress=`` argument of the library call: True/False when forced, else None (a TTY decides).

    ``--progress`` / ``--no-progress`` win; without them ``--quiet`` turns bars off and otherwise
    bars are shown only when stderr is a terminal.
    """
    forced = getattr(args, "progress", None)
    if forced is not None:
        return bool(forced)
    return False if getattr(args, "quiet", False) else None


def atoms_of(args: argparse.Namespace) -> tuple[int, ...] | None:
    """``--atoms 8,16,32`` as a tuple of ints (None when not given); other text is bad input (exit 3)."""
    if not getattr(args, "atoms", None):
        return None
    try:
        return tuple(int(a) for a in args.atoms.split(","))
    except ValueError:
        raise ParameterError(f"--atoms {args.atoms!r}: expected comma-separated integers") from None


def add_force(p: argparse.ArgumentParser) -> None:
    """Declare ``--force`` (its behaviour lives in the output-folder policy)."""
    p.add_argument("--force", action="store_true", help=FORCE_HELP)


def add_resume(p: argparse.ArgumentParser) -> None:
    """Declare ``--resume`` (its behaviour lives in the chunked runs)."""
    p.add_argument("--resume", action="store_true", help=RESUME_HELP)


def check_relations(args: argparse.Namespace) -> None:
    """Ranges that depend on another flag; raises :class:`UsageError` (exit 2).

    ``--threshold`` is in [-1, 1) for ``--metric cosine`` and >= 0 for ``--metric euclidean``.
    """
    metric, threshold = getattr(args, "metric", None), getattr(args, "threshold", None)
    if metric in THRESHOLDS and threshold is not None and not THRESHOLDS[metric].accepts(threshold):
        raise UsageError(f"--threshold: expected {THRESHOLDS[metric].describe()} for --metric {metric}, "
                         f"got {threshold:g}")


_CHOICE = re.compile(r"invalid choice: '(?P<got>[^']*)' \(choose from (?P<options>.*)\)")


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with abbreviations off, typo suggestions, and errors raised, not printed.

    Subparsers made with ``parser_class=Parser`` (or ``type(parser)``) get the same behaviour.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)
        # a value such as -1e-3 or -inf is a (bad) value, not an unknown flag; argparse only knows -1 and -0.5
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^-(inf|nan)$", re.I)

    def error(self, message: str):  # one line, exit 2 (raised so main() decides how to print it)
        choice = _CHOICE.search(message)
        if choice:  # "invalid choice: 'fti' (choose from 'fit', …)" + "; did you mean fit?"
            close = difflib.get_close_matches(choice["got"], [o.strip("'\"") for o in choice["options"].split(", ")], n=1)
            message += f"; did you mean {close[0]}?" if close else ""
        if message.startswith("argument "):  # "argument --tol: expected …" → "--tol: expected …"
            raise UsageError(message[len("argument "):])
        raise UsageError(f"{self.prog}: {message}")

    # ------------------------------------------------------------------ unknown flags
    def _subcommand_action(self) -> argparse._SubParsersAction | None:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action
        return None

    def _own_tokens(self, args: Sequence[str]) -> list[str]:
        """The tokens this parser reads itself: all of them, or those before its sub-command."""
        sub = self._subcommand_action()
        own = []
        for tok in args:
            if tok == "--" or (sub is not None and tok in sub.choices):
                break
            own.append(tok)
        return own

    def _unknown_flags(self, args: Sequence[str]) -> list[str]:
        unknown = []
        for tok in self._own_tokens(args):
            if not tok.startswith("-") or tok == "-" or _is_number(tok):
                continue
            name = tok.split("=", 1)[0] if tok.startswith("--") else tok
            if name not in self._option_string_actions:
                unknown.append(name)
        return unknown

    def suggest(self, flag: str) -> str | None:
        """The known flag closest to ``flag`` (``--nosie`` → ``--noise``), or None."""
        known = [s for s in self._option_string_actions if s.startswith("--")]
        close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
        return close[0] if close else None

    def _unrecognized(self, flags: list[str]) -> UsageError:
        hints = [(f, self.suggest(f)) for f in flags]
        named = ", ".join(f for f, _ in hints)
        said = "; ".join(f"did you mean {s}?" if len(hints) == 1 else f"did you mean {s} for {f}?"
                         for f, s in hints if s)
        return UsageError(f"unrecognized argument{'s' if len(flags) > 1 else ''} {named}"
                          + (f"; {said}" if said else ""))

    def _command_token(self, args: Sequence[str]) -> str | None:
        """The token naming this parser's sub-command (its first positional), or None."""
        skip = False
        for i, tok in enumerate(args):
            if skip:
                skip = False
            elif tok == "--":
                return args[i + 1] if i + 1 < len(args) else None
            elif tok.startswith("-") and tok != "-":
                action = self._option_string_actions.get(tok.split("=", 1)[0])
                if action is None:  # an unknown flag first: named as such (its value, if any, is no command)
                    return None
                skip = action.nargs != 0 and "=" not in tok  # the flag's value is not the command
            else:
                return tok
        return None

    def _unknown_command(self, args: Sequence[str]) -> UsageError | None:
        """``unknown command 'trajectory' (did you mean 'trajectories'?)`` when the sub-command is not known."""
        sub = self._subcommand_action()
        token = self._command_token(args) if sub is not None else None
        if token is None or token in sub.choices:
            return None
        group = self.prog.split(" ", 1)[1] + " " if " " in self.prog else ""  # "ood " below flowcore ood
        close = difflib.get_close_matches(token, list(sub.choices), n=1, cutoff=0.6)
        hint = (f"did you mean '{group}{close[0]}'?" if close
                else f"commands: {', '.join(group + c for c in sub.choices)}")
        return UsageError(f"unknown command '{group}{token}' ({hint})")

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None):
        args = list(sys.argv[1:] if args is None else args)
        wrong = self._unknown_command(args)
        if wrong is not None:  # before any flag is looked at: the flags belong to the command
            raise wrong
        unknown = self._unknown_flags(args)
        if unknown:  # before argparse's own checks, so a typo is named instead of "--noise is required"
            raise self._unrecognized(unknown)
        return super().parse_known_args(args, namespace)

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None):
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            raise UsageError(f"unrecognized argument{'s' if len(extras) > 1 else ''} {' '.join(extras)}")
        check_relations(ns)
        apply_preset(ns)
        return ns


def walk(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every sub-parser below it (for tests and ``--help`` checks)."""
    found: list[argparse.ArgumentParser] = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += walk(sub)
    return found

