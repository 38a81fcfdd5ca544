"""One protocol for results: frozen dataclasses of arrays plus the settings that produced them.

A result class declares, at class level, its ``kind`` (the file stem: ``trajectories`` →
``trajectories.npz`` + ``trajectories.json``), a ``version`` and an array ``schema``
(name → :class:`Array`: dtype kinds, ndim, optional, named leading axes that must agree in
length). It implements ``to_json()`` (plain types: the summary and the settings),
``_arrays()`` (what goes into the ``.npz``) and ``_from_files(arrays, meta)``. The base gives:

- ``write(folder)`` — the files into an existing folder (to compose several results);
- ``save(dir)`` — folder-atomic, through flowcore's one staging primitive
  (:meth:`flowcore.outputs.OutputFolder.staged`): complete or absent;
- ``load(dir)`` — checks the JSON header (``format``, ``kind``, ``format_version``) and that
  exactly the arrays the header lists are present, each matching the schema; anything else is
  refused with one line (:class:`~flowcore.errors.DataError` naming the file and the field).

To add a result: subclass :class:`Result` as a frozen dataclass, set ``kind``, ``schema`` (and
``version``), implement ``to_json``, ``_arrays`` and ``_from_files``.
Nothing loaded is executed: ``allow_pickle=False`` and JSON only.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np

from flowcore.errors import DataError
from flowcore.io import atomic_write_json, atomic_write_text, load_npz, save_npz
from flowcore.outputs import OutputFolder

__all__ = ["Array", "Result", "read_header", "check_arrays", "FORMAT_PREFIX"]

FORMAT_PREFIX = "flowcore."


@dataclass(frozen=True)
class Array:
    """Schema of one stored array.

    Parameters
    ----------
    kinds : str
        Allowed NumPy dtype kinds (``"f"`` float, ``"iu"`` integer, ``"b"`` bool, ``"c"`` complex).
    ndim : int, optional
        Exact number of axes; None: any number of at least ``min_ndim``.
    min_ndim : int, default 0
    dims : tuple of str, default ()
        Names of the leading axes: every array with an axis of the same name must agree in length.
    optional : bool, default False
        May be absent (names with ``*`` are patterns and always optional).
    """

    kinds: str
    ndim: int | None = None
    min_ndim: int = 0
    dims: tuple[str, ...] = ()
    optional: bool = False


def _match(name: str, schema: Mapping[str, Array]) -> Array | None:
    if name in schema:
        return schema[name]
    for pattern, spec in schema.items():
        if "*" in pattern and fnmatch.fnmatchcase(name, pattern):
            return spec
    return None


def check_arrays(where: str | os.PathLike, arrays: Mapping[str, np.ndarray], schema: Mapping[str, Array],
                 listed: Any = None) -> None:
    """Check ``arrays`` against ``schema``; raise one :class:`DataError` line naming ``where`` and the field.

    Parameters
    ----------
    where : path-like
        The file named in messages.
    arrays : dict of str to ndarray
    schema : dict of str to Array
        Names (or ``*`` patterns, first match wins after exact names).
    listed : list of str, optional
        The names the JSON header lists; the file must hold exactly these.
    """
    names = set(arrays)
    if listed is not None:
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
            raise DataError(f"{where}: the header's 'arrays' is not a list of names")
        if set(listed) - names:
            raise DataError(f"{where} lacks the array {sorted(set(listed) - names)[0]!r} that its JSON lists")
        if names - set(listed):
            raise DataError(f"{where} holds the array {sorted(names - set(listed))[0]!r} that its JSON does not list")
    for name, spec in schema.items():
        if "*" not in name and not spec.optional and name not in names:
            raise DataError(f"{where} lacks the required array {name!r}")
    lengths: dict[str, tuple[int, str]] = {}
    for name in sorted(names):
        spec = _match(name, schema)
        if spec is None:
            raise DataError(f"{where} holds an unexpected array {name!r}")
        a = arrays[name]
        if a.dtype.kind not in spec.kinds:
            raise DataError(f"{where}: array {name!r} has dtype {a.dtype}; expected kind {'/'.join(spec.kinds)}")
        if (spec.ndim is not None and a.ndim != spec.ndim) or a.ndim < max(spec.min_ndim, len(spec.dims)):
            want = spec.ndim if spec.ndim is not None else f">= {max(spec.min_ndim, len(spec.dims))}"
            raise DataError(f"{where}: array {name!r} has {a.ndim} axes (shape {a.shape}); expected {want}")
        for axis, dim in enumerate(spec.dims):
            n = a.shape[axis]
            if dim in lengths and lengths[dim][0] != n:
                other, m = lengths[dim][1], lengths[dim][0]
                raise DataError(f"{where}: array {name!r} has length {n} on axis {axis} ({dim}) "
                                f"but {other!r} has {m}; they must agree")
            lengths.setdefault(dim, (n, name))


def read_header(path: str | os.PathLike, kind: str, version: int, *, title: str | None = None) -> dict[str, Any]:
    """Read a result's JSON file and check ``format``, ``kind`` and ``format_version``.

    Returns
    -------
    dict
        The parsed JSON object.

    Raises
    ------
    DataError
        Missing or unreadable file, another kind, or an unknown version (one line).
    """
    path = Path(path)
    what = title or f"a {kind}"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = type(exc).__name__ if isinstance(exc, OSError) else str(exc).splitlines()[0]
        raise DataError(f"{path} is missing or unreadable ({reason}); not {what} folder") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: not a JSON object; not {what} folder")
    got = meta.get("kind", str(meta.get("format", ""))[len(FORMAT_PREFIX):] or None)
    if meta.get("format") != FORMAT_PREFIX + kind or got != kind:
        raise DataError(f"{path}: field 'kind' is {got!r}, expected {kind!r}; not {what} folder")
    if meta.get("format_version") != version:
        raise DataError(f"{path}: field 'format_version' is {meta.get('format_version')!r}; this flowcore reads "
                        f"version {version} of {what}")
    return meta


def header(kind: str, version: int) -> dict[str, Any]:
    """The header keys every result JSON starts with."""
    return {"format": FORMAT_PREFIX + kind, "kind": kind, "format_version": int(version)}


class Result:
    """Base of flowcore results (frozen dataclasses of arrays + the settings that produced them).

    Class attributes
    ----------------
    kind : str
        File stem and JSON ``kind``.
    version : int
        ``format_version``; files of another version are refused.
    schema : dict of str to Array
        The arrays of the ``.npz`` (``*`` patterns allowed).
    title : str
        Name used in messages, with its article (default: ``"a <kind>"``).
    json_name, npz_name : str, optional
        File names when they are not ``<kind>.json`` / ``<kind>.npz``.

    For developers: implement ``to_json()``, ``_arrays()`` and the classmethod
    ``_from_files(arrays, meta, folder)``; override ``_schema(meta)`` when the array names depend on
    the JSON, and ``_extra_files()`` to write tables (CSV) beside them.
    """

    kind: ClassVar[str] = ""
    version: ClassVar[int] = 1
    schema: ClassVar[dict[str, Array]] = {}
    title: ClassVar[str | None] = None
    json_name: ClassVar[str | None] = None
    npz_name: ClassVar[str | None] = None

    # ---------------------------------------------------------------- to implement
    def to_json(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _arrays(self) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def _from_files(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], folder: Path):  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def _schema(cls, meta: dict[str, Any]) -> Mapping[str, Array]:
        return cls.schema

    def _extra_files(self) -> dict[str, str]:
        """Text files (name → content) written beside the JSON and NPZ."""
        return {}

    # ----------------------------------------------------------------- protocol
    @classmethod
    def files(cls) -> tuple[str, str]:
        """(json file name, npz file name)."""
        return cls.json_name or f"{cls.kind}.json", cls.npz_name or f"{cls.kind}.npz"

    def write(self, folder: str | os.PathLike, *, extra_json: Mapping[str, Any] | None = None) -> Path:
        """Write the JSON, the NPZ and any tables into an existing ``folder`` (no staging).

        Use :meth:`save` for one result; to stage several results and other files together,
        ``write`` each into the folder :meth:`flowcore.outputs.OutputFolder.staged` yields.
        ``extra_json`` adds plain keys to the JSON (e.g. the figure files a face wrote beside it).
        """
        folder = Path(folder)
        json_name, npz_name = self.files()
        arrays = {k: np.asarray(v) for k, v in self._arrays().items()}
        meta = self.to_json()
        check_arrays(folder / npz_name, arrays, self._schema(meta))
        save_npz(folder / npz_name, **arrays)
        for name, text in self._extra_files().items():
            atomic_write_text(folder / name, text)
        atomic_write_json(folder / json_name, {**header(self.kind, self.version), **meta,
                                               "arrays": sorted(arrays), **(extra_json or {})})
        return folder

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result into folder ``path``, folder-atomically: complete or absent.

        Staged by :meth:`flowcore.outputs.OutputFolder.staged`: an absent ``path`` is created
        by one rename; an existing folder gets this result's files (replacing its earlier ones)
        and keeps every other entry. On any failure ``path`` is left exactly as it was.

        Raises
        ------
        DataError
            ``path`` exists and is not a folder.
        DiskFullError
            No space left while writing (ENOSPC, EDQUOT); nothing was written.
        """
        path = Path(path)
        if os.path.lexists(path) and not path.is_dir():
            raise DataError(f"{path} exists and is not a folder; choose another output path")
        with OutputFolder(path).staged() as tmp:  # the API's save: no marker, other entries kept
            self.write(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike):
        """Read a folder written by :meth:`save`; validates header, schema, dtypes and shapes."""
        folder = Path(path)
        json_name, npz_name = cls.files()
        meta = read_header(folder / json_name, cls.kind, cls.version, title=cls.title)
        with _incomplete(folder / json_name):
            schema = cls._schema(meta)
        arrays = load_npz(folder / npz_name)
        check_arrays(folder / npz_name, arrays, schema, meta.get("arrays"))
        with _incomplete(folder / json_name):
            return cls._from_files(arrays, meta, folder)


@contextlib.contextmanager
def _incomplete(path: Path) -> Iterator[None]:
    """Turn a missing or malformed JSON field into one DataError line naming the file."""
    try:
        yield
    except DataError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{path}: field {exc} is missing or malformed ({type(exc).__name__})") from None
