"""Checkpoints of long runs: completed chunks of starts, kept until the run's result is written.

A long run (``trajectories``, ``attractors``, ``ood fit``) iterates its starts in chunks, each
chunk as its own pass (a row's result depends only on its own start and the settings, never on
where a run stopped). After each chunk :func:`~flowcore.dynamics.trajectories.iterate` writes
the chunk's rows — final states, starts, steps, status, last step², features, paths — to one
``.npz`` file, atomically (a temporary file renamed into place), in the run's partial area::

    OUT/.flowcore-partial/run.json                 what the run is (RunCheckpoint.spec)
    OUT/.flowcore-partial/<pass>/chunk-000000.npz  one file per completed chunk of a pass

``run.json`` describes the run: the command, the bundle's hash, the settings, the start set
(kind, N, seed, file), the chunk size and the flowcore version. A run started with ``resume``
reads back every completed chunk and continues with the first missing one; its result equals an
uninterrupted run's bit for bit. A resume whose description differs from the partial run's is
refused with one line naming the first differing field. A run without ``resume`` discards an
earlier partial area (it starts over). :meth:`RunCheckpoint.remove` deletes the area once the
result is written; after a failure (used as a context manager, or :meth:`RunCheckpoint.abandon`)
completed chunks stay for ``resume`` only when a rerun could get further (an interruption, a
runtime or disk error: the error gets a note saying so, which the CLI's error line ends with);
after bad input (:class:`~flowcore.errors.BadInputError`, which a rerun meets again) and in an
area without any chunk, the area is removed, and so is an output folder the run created. Nothing loaded is executed: JSON and ``allow_pickle=False`` only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from flowcore.errors import BadInputError, DataError, OutputError, ParameterError
from flowcore.io import atomic_write_json, load_npz, save_npz, to_jsonable

__all__ = ["PARTIAL_DIR", "CHUNK_BATCHES", "RunCheckpoint", "ChunkStore", "chunk_rows", "chunk_bounds", "file_identity"]

PARTIAL_DIR = ".flowcore-partial"
CHUNK_BATCHES = 16  # a chunk is this many batches of starts
_FORMAT = "flowcore.partial-run"
_log = logging.getLogger("flowcore")


def chunk_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` of the chunks of ``n`` rows, ``size`` rows each (the last may be shorter); one process and
    Ray cut the same chunks with it, which is what makes their results the same bit for bit."""
    return [(lo, min(lo + size, n)) for lo in range(0, n, max(int(size), 1))]


def chunk_rows(batch_size: int) -> int:
    """Rows per checkpointed chunk: ``CHUNK_BATCHES`` batches (a multiple of the batch)."""
    return CHUNK_BATCHES * int(batch_size)


def file_identity(spec: str | os.PathLike | None) -> dict[str, Any] | None:
    """A data file as the run description records it: path, size and modification time (not its hash)."""
    if spec is None:
        return None
    path = Path(str(spec))
    if not path.is_file() and ":" in str(spec):
        path = Path(str(spec).rsplit(":", 1)[0])
    try:
        st = path.stat()
    except OSError:
        return {"file": str(spec)}
    return {"file": str(spec), "resolved": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            diff = _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
            if diff:
                return diff
        return None
    return None if a == b else where or "run"


class ChunkStore:
    """The completed chunks of one pass (a folder of ``chunk-NNNNNN.npz`` files).

    Parameters
    ----------
    folder : path-like — created on the first save
    chunk_size : int — rows per chunk
    """

    def __init__(self, folder: str | os.PathLike, chunk_size: int, *, on_save=None) -> None:
        self.folder = Path(folder)
        self.chunk_size = int(chunk_size)
        self._on_save = on_save

    def _file(self, index: int) -> Path:
        return self.folder / f"chunk-{index:06d}.npz"

    def load(self, index: int, n_rows: int) -> dict[str, np.ndarray] | None:
        """The arrays of chunk ``index`` when it was completed with ``n_rows`` rows, else None.

        A missing, unreadable or inconsistent chunk file is None: the chunk is computed again.
        """
        path = self._file(index)
        if not path.is_file():
            return None
        try:
            arrays = load_npz(path)
        except DataError as exc:
            _log.warning("ignoring checkpoint %s (%s); computing the chunk again", path, exc)
            return None
        if not arrays or any(a.ndim < 1 or len(a) != n_rows for a in arrays.values()):
            _log.warning("ignoring checkpoint %s (wrong number of rows); computing the chunk again", path)
            return None
        return arrays

    def save(self, index: int, arrays: Mapping[str, np.ndarray]) -> Path:
        """Write chunk ``index`` atomically (a temporary file renamed into place)."""
        if self._on_save is not None:
            self._on_save()
        self.folder.mkdir(parents=True, exist_ok=True)
        return save_npz(self._file(index), **{k: np.asarray(v) for k, v in arrays.items()})


class RunCheckpoint:
    """The partial area of one run inside its output folder: ``OUT/.flowcore-partial/``.

    Parameters
    ----------
    out : path-like
        The run's output folder (the area is a hidden subfolder of it).
    spec : dict
        Plain-JSON description of the run (command, bundle hash, settings, start set, seed, N,
        chunk size, version); stored as ``run.json`` with the first chunk.
    resume : bool, default False
        Continue an earlier partial run with the same description; without it an earlier partial
        area is discarded and the run starts over.

    Raises
    ------
    ParameterError
        ``resume`` and the partial run's description differs (one line, naming the field).
    DataError
        ``resume`` and the partial area's ``run.json`` is unreadable.
    """

    def __init__(self, out: str | os.PathLike, spec: Mapping[str, Any], *, resume: bool = False) -> None:
        self.out = Path(out)
        self.folder = self.out / PARTIAL_DIR
        self.spec = json.loads(json.dumps({"format": _FORMAT, "format_version": 1, **to_jsonable(dict(spec))}))
        self._made_out = not os.path.lexists(self.out)
        run_file = self.folder / "run.json"
        if resume and run_file.is_file():
            try:
                old = json.loads(run_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DataError(f"{run_file} is unreadable ({type(exc).__name__}); run without --resume "
                                "to start over") from None
            diff = _first_difference(old, self.spec)
            if diff:
                raise ParameterError(
                    f"--resume: the partial run in {self.folder} has {diff} = {_get(old, diff)!r}, this run "
                    f"{_get(self.spec, diff)!r}; rerun with the same settings, or without --resume to start over")
        elif self.folder.is_dir() and not self.folder.is_symlink():
            if any(self.folder.rglob("chunk-*.npz")):
                _log.warning("starting over: discarding the partial run in %s (pass --resume to continue it)",
                             self.folder)
            shutil.rmtree(self.folder)  # an earlier partial run of ours, not resumed: start over
        elif self.folder.is_symlink() or self.folder.exists():
            raise DataError(f"{self.folder} is not a flowcore partial-run folder; remove it or choose another --out")

    def _write_spec(self) -> None:
        run_file = self.folder / "run.json"
        if not run_file.is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(run_file, self.spec)

    def stage(self, name: str, chunk_size: int) -> ChunkStore:
        """The chunk store of pass ``name`` (e.g. ``"trajectories"``, ``"bank"``, ``"evidence"``)."""
        return ChunkStore(self.folder / name, chunk_size, on_save=self._write_spec)

    def remove(self) -> None:
        """Delete the partial area (after the run's result was written)."""
        if self.folder.is_dir() and not self.folder.is_symlink():
            shutil.rmtree(self.folder)

    def abandon(self, exc: BaseException | None = None) -> None:
        """After the failure ``exc``: keep completed chunks for ``resume`` when a rerun could use them.

        The partial area goes when it holds no completed chunk or when ``exc`` is bad input
        (:class:`~flowcore.errors.BadInputError` other than :class:`~flowcore.errors.OutputError`:
        resuming would meet it again), and so does the output folder when this run created it
        and it is empty again. When chunks are kept, ``exc`` gets a note (``__notes__``) naming
        the area and ``--resume``.
        """
        if self.folder.is_dir() and not self.folder.is_symlink():
            rerun_meets_it_again = isinstance(exc, BadInputError) and not isinstance(exc, OutputError)
            if not rerun_meets_it_again and any(self.folder.rglob("chunk-*.npz")):
                if exc is not None:
                    notes = getattr(exc, "__notes__", None)
                    if not isinstance(notes, list):
                        notes = exc.__notes__ = []  # what BaseException.add_note does, also on Python 3.10
                    notes.append(f"completed chunks kept in {self.folder}: rerun the same command with --resume "
                                 "to continue")
            else:
                shutil.rmtree(self.folder, ignore_errors=True)
        if self._made_out and self.out.is_dir() and not self.out.is_symlink():
            try:
                self.out.rmdir()  # only when empty
            except OSError:
                pass

    def __enter__(self) -> "RunCheckpoint":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abandon(exc)


def _get(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d
