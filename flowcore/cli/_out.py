"""The commands' side of the output-folder policy (:mod:`flowcore.outputs`).

Every command that writes calls :func:`out_folder` (or :func:`out_file`) right after parsing,
before it loads a model or computes, and writes through the returned object's ``staged()``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from flowcore._version import __version__
from flowcore.bundle.flowbundle import bundle_entries
from flowcore.bundle.manifest import read_json
from flowcore.errors import FlowcoreError
from flowcore.outputs import OutputFile, OutputFolder

__all__ = ["out_folder", "out_file", "force", "rows_bytes", "tree_bytes", "bundle_entries", "detector_entries"]


def force(args) -> bool:
    """``--force`` of a command (False for commands without the flag)."""
    return bool(getattr(args, "force", False))


def out_folder(args, command: str, *, path: str | os.PathLike | None = None, writes: Iterable[str] = (),
               nbytes: int = 0, adopt: Iterable[str] = ()) -> OutputFolder | None:
    """The checked output folder of ``command`` (``path`` or ``args.out``); None when there is none.

    ``adopt`` (honoured with ``--force`` only): names flowcore wrote there that no marker lists
    (:func:`bundle_entries`, :func:`detector_entries`). Raises
    :class:`~flowcore.errors.OutputError` / :class:`~flowcore.errors.DiskFullError` (one line)
    when the folder may not or cannot be written; see :mod:`flowcore.outputs`.
    """
    path = path if path is not None else getattr(args, "out", None)
    if not path:
        return None
    return OutputFolder(path, command=command, force=force(args), version=__version__,
                        adopt=adopt).check(writes=writes, nbytes=nbytes)


def out_file(args, command: str, *, nbytes: int = 0) -> OutputFile:
    """The checked output file ``args.out`` of ``command`` (see :class:`~flowcore.outputs.OutputFile`)."""
    return OutputFile(args.out, command=command, force=force(args), version=__version__).check(nbytes=nbytes)


def rows_bytes(n: int, k: int, *, floats_per_row: int = 0, fixed: int = 0) -> int:
    """Rough bytes of a per-row result: ``n`` rows of ``k`` float32 plus ``floats_per_row`` 8-byte values."""
    return int(n) * (4 * int(k) + 8 * int(floats_per_row)) + int(fixed)


def tree_bytes(*paths: str | os.PathLike | None) -> int:
    """Total size of the files under ``paths`` (files or folders; missing ones count 0)."""
    total = 0
    for p in paths:
        if p is None:
            continue
        p = Path(p)
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
    return total


def _top(rel: str) -> str:
    return Path(rel).parts[0] if Path(rel).parts else rel


def detector_entries(folder: str | os.PathLike) -> list[str]:
    """Top-level entries an existing detector folder's ``checksums.json`` covers (and itself)."""
    try:
        sums = read_json(Path(folder) / "checksums.json", what="detector checksums")
    except (FlowcoreError, OSError):
        return []
    if not isinstance(sums, dict) or not all(isinstance(k, str) for k in sums):
        return []
    return sorted({"checksums.json"} | {_top(k) for k in sums if not Path(k).is_absolute() and ".." not in Path(k).parts})
