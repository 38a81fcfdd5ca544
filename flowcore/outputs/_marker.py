"""The marker file ``.flowcore-output.json`` and the all-or-nothing move of staged entries.

See :mod:`flowcore.outputs` for the policy these serve.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from flowcore.errors import OutputError

__all__ = ["MARKER", "MARKER_FORMAT", "MARKER_VERSION", "OWN_PREFIX", "NO_SPACE", "Marker", "read_marker", "commit_entries"]

MARKER = ".flowcore-output.json"
MARKER_FORMAT = "flowcore.output-folder"
MARKER_VERSION = 1
OWN_PREFIX = ".flowcore-"  # the marker, staging and work folders: flowcore's bookkeeping, never content
_MAX_MARKER_BYTES = 1 << 20
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})  # errno values of a full disk or quota


def _version() -> str:
    from importlib import metadata  # lazy: import cost (only when a marker is written)

    try:
        return metadata.version("flowcore")
    except metadata.PackageNotFoundError:
        return "unknown"


def _plain(name: object) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


@dataclass(frozen=True)
class Marker:
    """A folder's ``.flowcore-output.json``: the entries flowcore wrote there, per command.

    Attributes
    ----------
    files : frozenset of str
        Top-level names flowcore wrote into the folder (files or folders).
    folder : bool
        True when the folder itself is a flowcore output folder (False: only single files of
        ``OutputFile`` were recorded in it).
    runs : dict
        Per command: ``files`` (list), ``written_at`` (ISO time), ``flowcore_version``.
    """

    files: frozenset = frozenset()
    folder: bool = True
    runs: dict = field(default_factory=dict)

    def updated(self, command: str, written: Iterable[str], *, folder: bool, version: str | None,
                pruned: Iterable[str] = ()) -> dict:
        """The marker JSON after ``command`` wrote ``written`` (and removed ``pruned``)."""
        written = sorted(set(written))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        ver = version or _version()
        runs = {k: v for k, v in self.runs.items() if k != command}
        runs[command] = {"files": written, "written_at": stamp, "flowcore_version": ver}
        files = (set(self.files) - set(pruned)) | set(written)
        return {"format": MARKER_FORMAT, "format_version": MARKER_VERSION, "command": command,
                "flowcore_version": ver, "written_at": stamp, "files_written": written,
                "folder": bool(folder or self.folder), "files": sorted(files), "runs": runs}


def read_marker(folder: str | os.PathLike) -> tuple[Marker | None, str | None]:
    """Read ``folder/.flowcore-output.json``; ``(None, reason)`` when absent or not a valid marker.

    A marker must be a regular file (not a symlink) under 1 MiB holding a JSON object with the
    marker format and a list of plain names (no separators, no ``..``); anything else is treated
    as no marker at all, so a crafted file can never make flowcore replace a path outside it.
    """
    path = Path(folder) / MARKER
    if not os.path.lexists(path):
        return None, None
    if path.is_symlink() or not path.is_file():
        return None, f"{MARKER} is not a regular file"
    try:
        if path.stat().st_size > _MAX_MARKER_BYTES:
            return None, f"{MARKER} is larger than 1 MiB"
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        return None, f"{MARKER} is unreadable ({type(exc).__name__})"
    if not isinstance(meta, dict) or meta.get("format") != MARKER_FORMAT:
        return None, f"{MARKER} is not a flowcore output marker"
    files = meta.get("files")
    if not isinstance(files, list) or not all(_plain(f) for f in files):
        return None, f"{MARKER}: field 'files' is not a list of plain file names"
    runs = meta.get("runs") if isinstance(meta.get("runs"), dict) else {}
    runs = {k: v for k, v in runs.items() if isinstance(v, dict) and isinstance(v.get("files"), list)
            and all(_plain(f) for f in v["files"])}
    return Marker(files=frozenset(files), folder=meta.get("folder", True) is True, runs=runs), None


def _undo(moves: list[tuple[Path, Path]]) -> None:
    for src, dst in reversed(moves):  # put back what was moved, newest first
        with contextlib.suppress(OSError):
            os.replace(dst, src)


def commit_entries(staging: Path, dest: Path, *, may_replace: Callable[[str, Path], bool],
                   remove: Iterable[str] = (), last: str | None = None) -> None:
    """Move every entry of ``staging`` into the existing folder ``dest``, all or nothing.

    Parameters
    ----------
    staging : Path
        Folder holding the new entries (a ``.trash`` folder is made inside it).
    dest : Path
        Existing folder to update.
    may_replace : callable (name, existing path) -> bool
        Asked, before anything moves, for each name that already exists in ``dest``; False
        raises :class:`OutputError` and nothing changes.
    remove : iterable of str
        Names in ``dest`` to take away (moved into the trash).
    last : str, optional
        Name moved after all others (the marker).

    Every existing entry that is replaced or removed is first moved into the trash; if any
    rename fails, every earlier one is undone, so ``dest`` is left as it was.
    """
    names = sorted(e.name for e in staging.iterdir())
    if last in names:
        names = [n for n in names if n != last] + [last]
    for name in names:
        target = dest / name
        if os.path.lexists(target) and not may_replace(name, target):
            raise OutputError(f"{target} exists and was not written by flowcore (even --force never replaces "
                              "it); move it away or choose another --out")
    trash = Path(tempfile.mkdtemp(prefix=".trash.", dir=staging))
    moves: list[tuple[Path, Path]] = []
    try:
        for name in [n for n in remove if n not in names and os.path.lexists(dest / n)]:
            os.replace(dest / name, trash / name)
            moves.append((dest / name, trash / name))
        for name in names:
            target = dest / name
            if os.path.lexists(target):
                os.replace(target, trash / name)
                moves.append((target, trash / name))
            os.replace(staging / name, target)
            moves.append((staging / name, target))
    except BaseException:
        _undo(moves)
        raise


