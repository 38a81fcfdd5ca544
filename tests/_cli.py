"""Helpers of the CLI tests: run ``flowcore`` in-process, check a one-line error, signal a run mid-way."""

import os
import signal
import subprocess
import sys
import time

from flowcore.cli import main
from flowcore.dynamics.checkpointing import PARTIAL_DIR


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


def signal_after_first_chunk(argv, out, sig, *, timeout: float = 300, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """Start ``python -m flowcore *argv``, send ``sig`` once its first chunk is under ``out``/PARTIAL_DIR; the Popen.

    The child gets SIGINT's default disposition whatever launched the suite: a shell without job control
    (``make test &``, CI runners) starts background jobs with SIGINT ignored, children inherit that, and
    Python then installs no KeyboardInterrupt handler (a SIGINT would be ignored and the run end with 0).
    """
    proc = subprocess.Popen([sys.executable, "-m", "flowcore", *map(str, argv)], stdout=subprocess.DEVNULL,
                            stderr=stderr, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + timeout
    while not list((out / PARTIAL_DIR).glob("*/chunk-000000.npz")):
        assert proc.poll() is None, "the run ended before writing a chunk"
        assert time.monotonic() < deadline, f"no chunk file within {timeout:g} s"
        time.sleep(0.002)
    os.kill(proc.pid, sig)
    return proc
