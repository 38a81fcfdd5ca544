"""The policy itself: :class:`OutputFolder` and :class:`OutputFile` (see :mod:`flowcore.outputs`)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

from flowcore.errors import DiskFullError, OutputError
from flowcore.io import atomic_write_bytes, atomic_write_json
from flowcore.outputs._marker import MARKER, NO_SPACE, OWN_PREFIX, Marker, commit_entries, read_marker

__all__ = ["OutputFolder", "OutputFile"]

_STAGING = OWN_PREFIX + "staging."
_MARGIN = 1 << 20  # bytes kept free beyond a command's estimate (JSON, CSV, figures, the marker)
_SPACE_ERRNOS = NO_SPACE
_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _probe_writable(folder: Path, what: Path) -> None:
    """Create and remove a temporary file in ``folder`` (os.access is wrong for root and ro mounts)."""
    try:
        fd, name = tempfile.mkstemp(prefix=OWN_PREFIX + "probe.", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        if exc.errno in _SPACE_ERRNOS:
            raise DiskFullError(f"no space left on the device of {what}; free some space or choose another "
                                "--out") from None
        why = f"cannot write into {folder} ({exc.strerror or type(exc).__name__})"
        raise OutputError((f"{why}" if Path(folder) == Path(what) else f"cannot create {what}: {why}")
                          + "; choose a writable --out") from None


def _free_bytes(folder: Path) -> int:
    """Free bytes on the file system of ``folder`` (tests patch this to simulate a full disk)."""
    return shutil.disk_usage(folder).free


def _mib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _space(base: Path, nbytes: int, what: Path) -> None:
    try:
        free = _free_bytes(base)
    except OSError:
        return
    need = int(nbytes) + _MARGIN
    if free < need:
        raise DiskFullError(f"{what} needs about {_mib(need)} but only {_mib(free)} are free there; free some "
                            "space or choose another --out")


def _translate(exc: OSError, where: Path, option: str) -> Exception | None:
    """A one-line flowcore error for an OSError met while writing under ``where``, else None."""
    if isinstance(exc, (OutputError, DiskFullError)):
        return None
    if exc.errno in _SPACE_ERRNOS:
        named = exc.filename if isinstance(exc.filename, str) else where
        return DiskFullError(f"no space left while writing {named} ({exc.strerror}); nothing was written to "
                             f"{where}; free some space or choose another {option}")
    fname = exc.filename if isinstance(exc.filename, str) else ""
    if exc.errno in _WRITE_ERRNOS and (not fname or fname.startswith(str(where.absolute().parent))):
        return OutputError(f"cannot write {fname or where} ({exc.strerror}); nothing was written to {where}; "
                           f"choose a writable {option}")
    return None


class OutputFolder:
    """The output folder of one command run (or one API save), under the policy of this module.

    :meth:`staged` is flowcore's one staging primitive: every folder flowcore writes (a command's
    ``--out``, ``Result.save``, ``FlowBundle.write``, ``OODDetector.save``, an adapter's export)
    is filled by its writer inside the folder it yields and committed by it, all or nothing.

    Parameters
    ----------
    path : path-like
        The ``--out`` folder (or the folder an API call saves to).
    command : str or None, default None
        The command's name as typed (``"trajectories"``, ``"ood fit"``); recorded in the marker.
        None: a save through the Python API (the caller named the folder): no marker is written,
        and a non-empty folder is written into beside its entries (as with ``force``); the
        entries of the names written are replaced, every other entry is kept.
    force : bool, default False
        ``--force``: write into a non-empty folder flowcore did not write, beside its entries.
        It never replaces an entry flowcore did not write (one line refuses it, with or without
        ``force``), only the ones the marker (or ``adopt``) names.
    version : str, optional
        flowcore's version for the marker (default: the installed distribution's).
    adopt : iterable of str, optional
        Names the caller knows flowcore wrote though no marker lists them (the files an existing
        bundle's ``flow.json`` or detector's ``checksums.json`` names); honoured only with ``force``
        (always for an API save, where they matter for ``staged(prune=True)``).
    """

    def __init__(self, path: str | os.PathLike, *, command: str | None = None, force: bool = False,
                 version: str | None = None, adopt: Iterable[str] = ()):
        self.path = Path(path)
        self.command = command
        self.force = bool(force) or command is None
        self.version = version
        self.adopt = frozenset(adopt) if self.force else frozenset()
        self._folder_output = True  # False: only single files are recorded (OutputFile)
        self._option = "--out" if command is not None else "path"  # what messages tell the user to change

    def __repr__(self) -> str:
        return f"OutputFolder({str(self.path)!r}, command={self.command!r}, force={self.force})"

    def _entries(self) -> list[str]:
        return sorted(n for n in os.listdir(self.path) if not n.startswith(OWN_PREFIX))

    def _marker(self) -> tuple[Marker | None, str | None]:
        return read_marker(self.path) if self.path.is_dir() else (None, None)

    def _may_replace(self, marker: Marker | None) -> Callable[[str, Path], bool]:
        if self.command is None:  # an API save: the caller named the folder and what it writes there
            return lambda name, target: True
        owned = (marker.files if marker is not None else frozenset()) | self.adopt
        return lambda name, target: name in owned

    def check(self, *, writes: Iterable[str] = (), nbytes: int = 0) -> "OutputFolder":
        """Refuse, before any computation, an output folder this command may not or cannot write.

        Parameters
        ----------
        writes : iterable of str
            Top-level names the command will write, when known (checked for foreign files now;
            every name is checked again when the results are put in place).
        nbytes : int, default 0
            Estimated bytes the command will write (see :meth:`check_space`).

        Returns
        -------
        OutputFolder
            ``self``.

        Raises
        ------
        OutputError
            An existing file at ``path``, a non-empty folder without a valid marker (without
            ``force``), a file of flowcore's names that flowcore did not write, or a folder that
            cannot be written.
        DiskFullError
            Less free space than ``nbytes`` (+ 1 MiB).
        """
        p = self.path
        if os.path.lexists(p) and not p.is_dir():
            raise OutputError(f"--out {p} is an existing file, not a folder; choose a folder path")
        if p.is_dir():
            marker, reason = self._marker()
            entries = self._entries()
            if (marker is None or not marker.folder) and entries and not self.force:
                why = (f"its {reason}" if reason else f"its {MARKER} records single files only" if marker
                       else f"it holds no {MARKER}")
                raise OutputError(f"--out {p} is a non-empty folder that flowcore did not write ({why}; it holds "
                                  f"{entries[0]!r}{f' and {len(entries) - 1} more' if len(entries) > 1 else ''}); "
                                  "pass --force to write beside its files (they are kept) or choose another --out")
            allowed = self._may_replace(marker)
            for name in writes:
                target = p / name
                if os.path.lexists(target) and not allowed(name, target):
                    raise OutputError(f"{target} exists and was not written by flowcore (even --force never "
                                      "replaces it); move it away or choose another --out")
            _probe_writable(p, p)
        else:
            base = _nearest_existing(p)
            if not base.is_dir():
                raise OutputError(f"cannot create --out {p}: {base} is a file, not a folder")
            _probe_writable(base, p)
        self.check_space(nbytes)
        return self

    def check_space(self, nbytes: int) -> None:
        """Refuse (:class:`DiskFullError`) when the output's file system has under ``nbytes`` + 1 MiB free."""
        _space(_nearest_existing(self.path), nbytes, self.path)

    @contextlib.contextmanager
    def staged(self, *, prune: bool = False) -> Iterator[Path]:
        """Yield an empty staging folder to fill; on success commit it into ``path``, all or nothing.

        The staging folder is a temporary sibling of ``path`` (inside ``path`` when it already
        exists, so the final renames stay on one file system). On success, an absent ``path``
        becomes the staging folder by one rename (missing parents are created); an existing
        folder gets each staged entry by atomic rename (``commit_entries``: for a command only
        entries the marker or ``adopt`` names are replaced; every entry not staged is kept) and,
        for a command, the marker is updated last.

        Parameters
        ----------
        prune : bool, default False
            Also remove the entries this same command wrote on its previous run here (or that
            ``adopt`` names) and did not write now (for outputs that are one unit: a bundle, a
            detector). Entries another command also recorded are kept.

        Yields
        ------
        Path
            An empty folder; the writer fills it and never stages itself.

        Raises
        ------
        OutputError
            ``path`` became a file, or a non-empty folder flowcore did not write (without
            ``force``), or a staged name exists there and was not written by flowcore; or a
            permission error while writing.
        DiskFullError
            No space left while writing (ENOSPC, EDQUOT, EFBIG).

        On any exception nothing is changed: the staging folder, any folder created for it, and
        every file in them are removed, and renames already done are undone. ``OSError`` while
        writing becomes one line: :class:`DiskFullError` for ENOSPC/EDQUOT, :class:`OutputError`
        for permission errors; any other exception propagates unchanged.
        """
        dest = self.path
        created: list[Path] = []
        existed = dest.is_dir()
        try:
            if existed:
                parent = dest
            else:
                parent = dest.absolute().parent
                missing = []
                p = parent
                while not os.path.lexists(p):
                    missing.append(p)
                    p = p.parent
                for d in reversed(missing):
                    d.mkdir()
                    created.append(d)
            tmp = Path(tempfile.mkdtemp(prefix=_STAGING if existed else f".{dest.name}{_STAGING}", dir=parent))
        except OSError as exc:
            self._cleanup(None, created)
            err = _translate(exc, dest, self._option)
            if err is None:
                raise
            raise err from None
        try:
            work = tmp / "out"
            work.mkdir()
            yield work
            self._commit(work, prune=prune)
        except OSError as exc:
            self._cleanup(tmp, created)
            err = _translate(exc, dest, self._option)
            if err is None:
                raise
            raise err from None
        except BaseException:
            self._cleanup(tmp, created)
            raise
        shutil.rmtree(tmp, ignore_errors=True)

    def _cleanup(self, tmp: Path | None, created: list[Path]) -> None:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()

    def _commit(self, work: Path, *, prune: bool) -> None:
        dest = self.path
        mine = self._folder_output
        command = self.command
        (work / MARKER).unlink(missing_ok=True)  # only flowcore writes the marker, here
        written = sorted(e.name for e in work.iterdir())
        if not os.path.lexists(dest):
            if command is not None:
                atomic_write_json(work / MARKER, Marker(folder=mine).updated(command, written, folder=mine,
                                                                             version=self.version))
            try:
                os.rename(work, dest)
                return
            except OSError:
                if not dest.is_dir():  # else: created while this ran; merged below
                    raise
                (work / MARKER).unlink(missing_ok=True)
        if not dest.is_dir():
            raise OutputError(f"{self._option} {dest} is an existing file, not a folder; choose a folder path")
        marker, _ = read_marker(dest)
        if (marker is None or not marker.folder) and self._entries() and not self.force:
            raise OutputError(f"--out {dest} became a non-empty folder that flowcore did not write while it "
                              "ran; pass --force or choose another --out")
        stale: list[str] = []
        if prune:
            runs = marker.runs if marker is not None else {}
            others = {f for c, r in runs.items() if c != command for f in r["files"]}
            before = set(self.adopt) | (set(runs[command]["files"]) & marker.files if command in runs else set())
            stale = sorted(f for f in before if f not in written and f not in others and f != MARKER)
        if command is not None:
            atomic_write_json(work / MARKER, (marker or Marker(folder=mine)).updated(
                command, written, folder=mine, version=self.version, pruned=stale))
        allowed = self._may_replace(marker)
        commit_entries(work, dest, may_replace=lambda n, t: (n == MARKER and command is not None) or allowed(n, t),
                       remove=stale, last=MARKER)


class OutputFile:
    """One output file (``ood score --out scores.csv``) under the policy of this module.

    A new file is always allowed; an existing one is replaced only when its folder's marker
    lists it (flowcore wrote it) or with ``force``. The file's name is recorded in that marker
    (created with ``folder: false`` when absent, so the folder itself does not become a flowcore
    output folder).
    """

    def __init__(self, path: str | os.PathLike, *, command: str, force: bool = False, version: str | None = None):
        self.path = Path(path)
        self.command = command
        self.force = bool(force)
        self.version = version

    def check(self, *, nbytes: int = 0) -> "OutputFile":
        """Refuse, before any computation, a path this command may not or cannot write (see the class)."""
        p = self.path
        if p.is_dir():
            raise OutputError(f"--out {p} is a folder; give the path of the file to write")
        if os.path.lexists(p):
            marker, _ = read_marker(p.parent)
            if not self.force and (marker is None or p.name not in marker.files):
                raise OutputError(f"--out {p} exists and was not written by flowcore; pass --force to replace "
                                  "it or choose another file")
        base = _nearest_existing(p.parent)
        if not base.is_dir():
            raise OutputError(f"cannot create --out {p}: {base} is a file, not a folder")
        _probe_writable(base, p)
        _space(base, nbytes, p)
        return self

    def write_bytes(self, data: bytes) -> Path:
        """Write ``data`` atomically and record the file in its folder's marker."""
        folder = OutputFolder(self.path.parent, command=self.command, force=True, version=self.version,
                              adopt=[self.path.name])  # check() decided this file may be replaced
        folder._folder_output = False
        with folder.staged() as tmp:
            atomic_write_bytes(tmp / self.path.name, data)
        return self.path

    def write_text(self, text: str) -> Path:
        """Write UTF-8 ``text`` atomically."""
        return self.write_bytes(text.encode("utf-8"))
