"""Write ``docs/cli.md``, the ``flowcore`` command-line reference, from the parser itself.

Every command of the command table (``flowcore.cli.app.COMMANDS``, read through
``flowcore.cli.build_parser``), its usage line and every argument with its help text, so the
reference cannot drift from ``flowcore COMMAND --help``. ``tests/test_cli_docs.py`` regenerates it
and fails when ``docs/cli.md`` differs. The output does not depend on the terminal width or the
Python version (the usage lines are rendered here, not by argparse's wrapping formatter)::

    python tools/gen_cli_docs.py            # (re)write docs/cli.md
    python tools/gen_cli_docs.py --check    # exit 1 when docs/cli.md is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowcore.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cli.md"
COMMAND = "python tools/gen_cli_docs.py"
WIDTH = 100  # usage lines are wrapped here, whatever the terminal

__all__ = ["render", "main", "DOC", "COMMAND"]


def _subcommands(p: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in p._actions if isinstance(a, argparse._SubParsersAction)), None)


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest if not action.option_strings else action.dest.upper()


def _args_of(action: argparse.Action) -> str:
    """The value part of an argument: ``M``, ``[M]``, ``M [M ...]``, … (argparse's nargs forms)."""
    m, n = _metavar(action), action.nargs
    if n is None:
        return m
    if n == argparse.OPTIONAL:
        return f"[{m}]"
    if n == argparse.ZERO_OR_MORE:
        return f"[{m} ...]"
    if n == argparse.ONE_OR_MORE:
        return f"{m} [{m} ...]"
    if n == argparse.PARSER:
        return f"{m} ..."
    if n == argparse.REMAINDER:
        return "..."
    return " ".join([m] * int(n)) if n else ""


def _signature(action: argparse.Action) -> str:
    """How the argument is written: ``bundle``, ``--tol TOL``, ``--progress, --no-progress``."""
    if not action.option_strings:
        return _args_of(action)
    value = _args_of(action)
    if isinstance(action, argparse.BooleanOptionalAction):
        return ", ".join(action.option_strings)
    return ", ".join(f"{s} {value}" if value else s for s in action.option_strings)


def _usage_item(action: argparse.Action) -> str:
    if not action.option_strings:
        return _args_of(action)
    flag = action.option_strings[0] if not isinstance(action, argparse.BooleanOptionalAction) \
        else " | ".join(action.option_strings)
    value = _args_of(action)
    return f"{flag} {value}" if value else flag


def usage(p: argparse.ArgumentParser, width: int = WIDTH) -> str:
    """The usage: options first (required ones bare, others in brackets), then positionals, wrapped at ``width``."""
    groups = {id(a): g for g in p._mutually_exclusive_groups for a in g._group_actions}
    done: set[int] = set()
    items: list[str] = []
    for action in [a for a in p._actions if a.option_strings] + [a for a in p._actions if not a.option_strings]:
        if id(action) in done or action.help == argparse.SUPPRESS:
            continue
        group = groups.get(id(action))
        if group is not None:
            members = [a for a in group._group_actions if a.help != argparse.SUPPRESS]
            done.update(map(id, members))
            inner = " | ".join(_usage_item(a) for a in members)
            items.append(f"({inner})" if group.required else f"[{inner}]")
            continue
        done.add(id(action))
        item = _usage_item(action)
        items.append(item if action.required or not action.option_strings else f"[{item}]")
    lines, indent = [p.prog], " " * (len(p.prog) + 1)
    for item in items:  # greedy wrap, an item never split
        if len(lines[-1]) + 1 + len(item) > width and lines[-1].strip() != "":
            lines.append(indent + item)
        else:
            lines[-1] += " " + item
    return "\n".join(lines)


def _expand(action: argparse.Action, prog: str) -> str:
    """The help text as ``--help`` prints it (``%(default)s``, ``%%`` expanded)."""
    text = action.help or ""
    if "%" not in text:
        return text
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params["prog"] = prog
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(c) for c in params["choices"])
    return text % params


def _md(text: str) -> str:
    """Markdown-escape ``text`` outside its `code spans` (which are kept as they are)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        for ch in ("\\", "*", "_", "<"):
            parts[i] = parts[i].replace(ch, "\\" + ch)
    return "`".join(parts)


def _anchor(prog: str) -> str:
    return prog.lower().replace(" ", "-")


def _section(p: argparse.ArgumentParser, level: int, summary: str | None) -> list[str]:
    lines = [f"{'#' * level} {p.prog}", ""]
    if summary:
        lines += [_md(summary), ""]
    lines += ["```", usage(p), "```", ""]
    positionals = [a for a in p._actions if not a.option_strings and not isinstance(a, argparse._HelpAction)]
    titled = [g for g in p._action_groups if g.title not in ("positional arguments", "options", "optional arguments")]
    in_titled = {id(a) for g in titled for a in g._group_actions}
    options = [a for a in p._actions if a.option_strings and not isinstance(a, argparse._HelpAction)
               and id(a) not in in_titled]

    def item(a: argparse.Action) -> str:
        tags = " (required)" if a.required and a.option_strings else ""
        return f"- `{_signature(a)}`{tags}: {_md(_expand(a, p.prog))}"

    if positionals:
        lines += ["Arguments:", ""] + [item(a) for a in positionals] + [""]
    if options:
        lines += ["Options:", ""] + [item(a) for a in options] + [""]
    for g in titled:
        lines += [f"{_md(g.title[:1].upper() + g.title[1:])}:", ""] + [item(a) for a in g._group_actions] + [""]
    for g in p._mutually_exclusive_groups:
        if g.required:
            names = ", ".join(f"`{a.option_strings[0]}`" for a in g._group_actions)
            lines += [f"Exactly one of {names} is required.", ""]
    sub = _subcommands(p)
    if sub is not None:
        helps = {c.dest: c.help for c in sub._choices_actions}
        for name, child in sub.choices.items():
            lines += _section(child, level + 1, helps.get(name))
    return lines


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The Markdown reference of ``parser`` (default: ``flowcore.cli.build_parser()``)."""
    parser = parser or build_parser()
    sub = _subcommands(parser)
    helps = {c.dest: c.help for c in sub._choices_actions}
    lines = [
        "# flowcore command-line reference",
        "",
        f"<!-- generated from flowcore's parser by tools/gen_cli_docs.py; do not edit: run `{COMMAND}` -->",
        "",
        _md(parser.description or ""),
        "",
        "```",
        usage(parser),
        "```",
        "",
        "Every command and flag below is also shown by `flowcore --help` and `flowcore COMMAND --help`.",
        "",
        "## Commands",
        "",
        f"`{_metavar(sub)}`: {_md(_expand(sub, parser.prog))}",
        "",
    ]
    lines += [f"- [`{name}`](#{_anchor(child.prog)}): {_md(helps.get(name) or '')}"
              for name, child in sub.choices.items()]
    lines += ["", "## Options of `flowcore` itself", ""]
    lines += [f"- `{_signature(a)}`: {_md(_expand(a, parser.prog))}" for a in parser._actions if a.option_strings]
    lines += ["", "## Exit codes and errors", "", "```", (parser.epilog or "").rstrip("\n"), "```", ""]
    for name, child in sub.choices.items():
        lines += _section(child, 2, helps.get(name))
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write ``--out`` (default docs/cli.md), or with ``--check`` compare it; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DOC, help="file to write (default docs/cli.md)")
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 when the file is out of date")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else None
        if current != text:
            print(f"error: {args.out} is out of date; regenerate it with `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(args.out)  # atomic: never a half-written reference
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
