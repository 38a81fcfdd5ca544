"""Helpers of the CLI tests: run ``flowcore`` in-process, and check a one-line error."""

from flowcore.cli import main


def run(argv, capsys):
    """``main(argv)`` (items turned into str), then (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code, err, expect):
    """The exit code is ``expect`` and stderr is one ``error: …`` line, no traceback; returns that line."""
    assert code == expect, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]
