"""Atomic writes and safe loading of arrays and JSON.

Nothing loaded here is executed: ``.npz``/``.npy`` files are read with ``allow_pickle=False``
and JSON with the standard parser. Every write goes to a temporary file in the target folder
and is renamed into place, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from flowcore.errors import DataError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "save_npz",
    "load_npz",
    "load_npy",
    "load_array",
    "sha256_file",
    "to_jsonable",
    "csv_cell",
    "default_mode",
]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """The mode a plain ``open``/``mkdir`` would give under the current umask."""
    return (0o777 if directory else 0o666) & ~_umask()


def _write_file(fh, data: bytes) -> None:
    """Write, flush and fsync one open file (the one place bytes reach the disk; tests patch it)."""
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    The file gets the usual permissions for the current umask (not mkstemp's private 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, default_mode())
        with os.fdopen(fd, "wb") as fh:
            _write_file(fh, data)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if type(exc) is OSError and exc.errno is not None and not isinstance(exc.filename, str):
            raise OSError(exc.errno, exc.strerror, str(path)) from None  # name the file, not the descriptor
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert NumPy scalars/arrays, tuples and paths into plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def csv_cell(v: Any) -> str:
    """One CSV cell: floats as ``repr`` (exact round trip), integers plain, strings quoted when needed."""
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, np.integer):
        return str(int(v))
    v = str(v)
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n\r') else v


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` (converted by :func:`to_jsonable`) as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def save_npz(path: str | os.PathLike, /, **arrays: np.ndarray) -> Path:
    """Save arrays to an uncompressed ``.npz`` atomically (object arrays are refused)."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise DataError(f"array {name!r} has dtype object; only numeric arrays are saved")
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:  # as np.savez, minus the clock:
        for name, arr in arrays.items():  # a fixed member time, so equal arrays give equal bytes
            with zf.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(arr), allow_pickle=False)
    return atomic_write_bytes(path, buf.getbuffer())


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip
_OBJECT = "holds an object array, which flowcore never loads (it would need pickle); save numeric arrays"


def _head(path: Path, n: int = 16) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror or exc})") from None


def _looks_like(head: bytes) -> str:
    """What a file that is not a NumPy file seems to be, in words (for the error message)."""
    if not head:
        return "it is empty"
    if head[:1] == b"\x80":
        return "it looks like a Python pickle, which flowcore never loads"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"it starts with the text {head[:12].decode('ascii')!r}"
    return f"it starts with the bytes {head[:8]!r}"


def _reason(exc: BaseException) -> str:
    """A loader's error in words, never repeating NumPy's advice to unpickle."""
    text = " ".join(str(exc).split())
    if "pickle" in text.lower():
        return "it would need pickle, which flowcore never uses"
    return f"{type(exc).__name__}: {text[:200]}"


def _npy_dtype(path: Path) -> np.dtype:
    """The dtype in a ``.npy`` header (read without loading the data)."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as fh:
            version = fmt.read_magic(fh)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            return read(fh)[2]
    except Exception as exc:  # a damaged header
        raise DataError(f"{path} is not a readable .npy file (its header: {_reason(exc)})") from None


def load_npy(path: str | os.PathLike, *, mmap_mode: str | None = None) -> np.ndarray:
    """Load one ``.npy`` array with ``allow_pickle=False`` (memory-mapped with ``mmap_mode="r"``).

    Returns
    -------
    ndarray
        The stored array, unchanged (any numeric dtype; conversion is the caller's job).

    Raises
    ------
    DataError
        If the file is missing, is not a NumPy ``.npy`` file (text, a pickle, a zip …), or holds
        an object array. The message never advises unpickling.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    head = _head(path)
    if head.startswith(_ZIP_MAGICS):
        raise DataError(f"{path} is a NumPy .npz archive, not a .npy file; name it .npz")
    if not head.startswith(_NPY_MAGIC):
        raise DataError(f"{path} is not a NumPy .npy file ({_looks_like(head)})")
    if _npy_dtype(path).hasobject:
        raise DataError(f"{path} {_OBJECT}")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except ValueError as exc:
        if "object arrays" in str(exc).lower():
            raise DataError(f"{path} {_OBJECT}") from None
        raise DataError(f"{path} is not a readable .npy file ({_reason(exc)})") from None
    except Exception as exc:  # EOFError, OSError …
        raise DataError(f"{path} is not a readable .npy file ({_reason(exc)})") from None


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file with ``allow_pickle=False``.

    Returns
    -------
    dict of str to ndarray
        Each stored array, unchanged.

    Raises
    ------
    DataError
        If the file is missing, is not a NumPy ``.npz`` archive (text, a pickle, a ``.npy`` …), or
        holds an object array (named in the message). The message never advises unpickling.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    head = _head(path)
    if head.startswith(_NPY_MAGIC):
        raise DataError(f"{path} is a .npy array, not an .npz archive")
    if not head.startswith(_ZIP_MAGICS):
        raise DataError(f"{path} is not a NumPy .npz archive ({_looks_like(head)})")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {}
            for k in npz.files:
                try:
                    arrays[k] = npz[k]
                except ValueError as exc:
                    if "object arrays" in str(exc).lower():
                        raise DataError(f"{path}: array {k!r} {_OBJECT}") from None
                    raise
            return arrays
    except DataError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, OSError, EOFError, a member that is not .npy …
        raise DataError(f"{path} is not a readable .npz archive ({_reason(exc)})") from None


def load_array(spec: str | os.PathLike) -> np.ndarray:
    """Load one array from ``file.npy``, ``file.npz`` (its only array, or ``x``) or ``file.npz:key``.

    Returns
    -------
    ndarray
        The stored array, unchanged (dtype conversion is the caller's job).

    Raises
    ------
    DataError
        A missing file, a file that is not a NumPy ``.npy``/``.npz`` file, an object array, or a
        key the archive does not hold.
    """
    spec = str(spec)
    key = None
    if ":" in spec and not Path(spec).exists():
        spec, key = spec.rsplit(":", 1)
    path = Path(spec)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    if path.suffix == ".npy":
        return load_npy(path)
    arrays = load_npz(path)
    if key is not None:
        if key not in arrays:
            raise DataError(f"{path} has no array {key!r}; it holds {sorted(arrays)}")
        return arrays[key]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    if "x" in arrays:
        return arrays["x"]
    raise DataError(f"{path} holds several arrays {sorted(arrays)}; pick one with {path}:NAME")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
