"""What ``main`` does with a failure: one ``error:`` line and an exit code, never a traceback.

:func:`report` maps an exception to ``(exit code, line)``: :class:`~flowcore.cli._args.UsageError`
→ 2; a :class:`~flowcore.errors.FlowcoreError` → its class's ``exit_code`` (3 bad input, 4 runtime);
an ``OSError`` about the user's paths (missing, not permitted, a file where a folder is expected …)
→ 3, any other ``OSError`` (disk full, I/O error) → 4; ``MemoryError`` → 4; ``KeyboardInterrupt``
→ 130; anything else is an internal error, ``error: internal error: <type>: <msg> (please report)``
→ 4 (``FLOWCORE_DEBUG=1`` re-raises it instead, with its traceback).

:func:`framework_logs` holds back the frameworks' own log lines (torch.export, torch.onnx,
TensorFlow/absl, tf2onnx) and Python warnings while ``flowcore export`` runs: they are replayed on
stderr when the command succeeds, dropped when it fails (the error stays one line) and never shown
with ``--quiet``; so is what the frameworks write straight to the process's stderr (TensorFlow's
C++ log) or to ``sys.stdout``/``sys.stderr``. Noise is never replayed: empty records, torch's
structured-trace records (``torch.__trace``, for tlparse) and deprecation notices raised from the
frameworks' or Python's own files. Nothing here runs at import time.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import sys
import sysconfig
import tempfile
import warnings
from typing import Iterator, TextIO

from flowcore.errors import FlowcoreError
from flowcore.cli._args import UsageError

__all__ = ["EXIT_OK", "EXIT_USAGE", "EXIT_BAD_INPUT", "EXIT_RUNTIME", "EXIT_INTERRUPTED", "report",
           "debug", "framework_logs", "FRAMEWORK_LOGGERS"]

EXIT_OK, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_RUNTIME, EXIT_INTERRUPTED = 0, 2, 3, 4, 130

#: loggers of the export frameworks, silenced on the error path and with --quiet
FRAMEWORK_LOGGERS = ("torch.export", "torch.onnx", "torch._dynamo", "torch._export", "torch.fx", "torch",
                     "tensorflow", "absl", "keras", "tf2onnx", "h5py")

#: records of these loggers are never replayed: torch's structured trace (for tlparse, not people)
NOISE_LOGGERS = ("torch.__trace",)
# a deprecation notice raised from inside these packages (or the stdlib) is about the framework's own code
_FRAMEWORK_PACKAGES = ("torch", "tensorflow", "keras", "tf2onnx", "onnxscript", "onnx", "absl", "h5py", "tf_keras")
_NATIVE_NOISE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",)

# errno values that describe the user's paths (bad input), not the machine (runtime)
_PATH_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EEXIST, errno.EISDIR, errno.ENOTDIR,
                errno.EROFS, errno.ENAMETOOLONG, errno.ENOTEMPTY, errno.ELOOP}


def debug() -> bool:
    """``FLOWCORE_DEBUG=1``: internal errors are re-raised with their traceback."""
    return os.environ.get("FLOWCORE_DEBUG", "") == "1"


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or "(no message)"


def report(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one ``error: …`` line (without newline) for ``exc``.

    The exception's notes (``__notes__``: e.g. completed chunks kept for ``--resume``) end the
    line, each after ``; ``.
    """
    code, line = _report(exc)
    notes = getattr(exc, "__notes__", None)
    notes = [_one_line(n) for n in notes if isinstance(n, str)] if isinstance(notes, list) else []
    return code, "; ".join([line, *notes])


def _report(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, UsageError):
        return EXIT_USAGE, f"error: {_one_line(exc)}"
    if isinstance(exc, FlowcoreError):
        return exc.exit_code, f"error: {_one_line(exc)}"
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "error: interrupted"
    if isinstance(exc, MemoryError):
        return EXIT_RUNTIME, "error: out of memory; use fewer starts or a smaller --batch-size"
    if isinstance(exc, OSError) and exc.strerror:
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        code = EXIT_BAD_INPUT if exc.errno in _PATH_ERRNOS else EXIT_RUNTIME
        return code, f"error: {where + ': ' if where else ''}{_one_line(exc.strerror)}"
    return EXIT_RUNTIME, f"error: internal error: {type(exc).__name__}: {_one_line(exc)} (please report)"


def _is_framework(name: str) -> bool:
    return any(name == n or name.startswith(n + ".") for n in FRAMEWORK_LOGGERS)


def _is_noise(record: logging.LogRecord) -> bool:
    return record.name in NOISE_LOGGERS or not record.getMessage().strip()


def _is_framework_deprecation(w: warnings.WarningMessage) -> bool:
    if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
        return False
    path = os.path.normcase(os.path.abspath(str(w.filename)))
    stdlib = os.path.normcase(os.path.abspath(sysconfig.get_paths()["stdlib"]))
    parts = path.split(os.sep)
    in_stdlib = path.startswith(stdlib + os.sep) and not {"site-packages", "dist-packages"} & set(parts)
    return in_stdlib or any(pkg in parts[:-1] for pkg in _FRAMEWORK_PACKAGES)


@contextlib.contextmanager
def _native_stderr(sink: list[str]) -> Iterator[None]:
    """Send what is written to file descriptor 2 (C/C++ logs) to a temporary file; append its text to ``sink``."""
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor: nothing to hold
        yield
        return
    try:
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                for stream in (sys.stderr, sys.__stderr__):
                    with contextlib.suppress(Exception):
                        stream.flush()
                os.dup2(saved, 2)
                tmp.seek(0)
                sink.append(tmp.read().decode("utf-8", errors="replace"))
    finally:
        os.close(saved)


@contextlib.contextmanager
def framework_logs(err: TextIO, *, quiet: bool) -> Iterator[None]:
    """Hold the frameworks' log records and Python warnings while the body runs (``flowcore export``).

    On success they are written to ``err``, one ``logger: message`` line each (unless ``quiet``);
    on an exception they are dropped, so the error stays one line. Records are held where every
    logger hands them to its handlers, so this holds even when a framework installs its own
    handlers on import (torch does). With ``quiet`` the frameworks' loggers are also set above
    CRITICAL. ``TF_CPP_MIN_LOG_LEVEL`` (TensorFlow's C++ log, which no Python handler sees) is 3
    with ``quiet`` and defaults to 2 (errors only) otherwise. What is written to the process's
    stderr descriptor (C++ logs) and to ``sys.stdout``/``sys.stderr`` is held the same way (the
    command's own output goes to the streams passed to ``main``, which stay untouched). Noise
    (empty records, ``torch.__trace``, deprecation notices from the frameworks' or Python's own
    files, blank lines) is never replayed. The environment, the loggers, the streams and
    ``logging`` are restored afterwards.
    """
    held: list[logging.LogRecord] = []
    call_handlers = logging.Logger.callHandlers

    def hold(logger: logging.Logger, record: logging.LogRecord) -> None:
        if _is_framework(record.name):
            held.append(record)
        else:
            call_handlers(logger, record)

    silent = logging.CRITICAL + 10
    levels = {name: logging.getLogger(name).level for name in FRAMEWORK_LOGGERS} if quiet else {}
    for name in levels:
        logging.getLogger(name).setLevel(silent)
    env_before = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    if quiet:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.Logger.callHandlers = hold  # type: ignore[method-assign]
    ok = False
    native: list[str] = []
    printed = [io.StringIO(), io.StringIO()]  # the frameworks' print()s to sys.stdout / sys.stderr
    try:
        with warnings.catch_warnings(record=True) as caught, _native_stderr(native), \
                contextlib.redirect_stdout(printed[0]), contextlib.redirect_stderr(printed[1]):
            yield
        ok = True
    finally:
        logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]
        for name, level in levels.items():
            if logging.getLogger(name).level == silent:  # not reset by the framework meanwhile
                logging.getLogger(name).setLevel(level)
        if env_before is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        else:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = env_before
        if ok and not quiet:
            for rec in held:
                if not _is_noise(rec):
                    err.write(f"{rec.name}: {' '.join(rec.getMessage().split())}\n")
            for line in "".join([*native, *(p.getvalue() for p in printed)]).splitlines():
                if line.strip() and line.strip() not in _NATIVE_NOISE:
                    err.write(line.rstrip() + "\n")
            for w in caught:
                if not _is_framework_deprecation(w):
                    err.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line))
