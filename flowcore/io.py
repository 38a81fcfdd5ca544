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
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
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
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file with ``allow_pickle=False``.

    Raises
    ------
    DataError
        If the file is missing, not an npz archive, or holds object arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise DataError(f"{path} is a .npy array, not an .npz archive")
            return {k: npz[k] for k in npz.files}
    except DataError:
        raise
    except ValueError as exc:  # object arrays need pickle
        raise DataError(f"{path}: cannot load without pickle ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile, OSError, EOFError …
        raise DataError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None


def load_array(spec: str | os.PathLike) -> np.ndarray:
    """Load one array from ``file.npy``, ``file.npz`` (its only array, or ``x``) or ``file.npz:key``.

    Returns
    -------
    ndarray
        The stored array, unchanged (dtype conversion is the caller's job).
    """
    spec = str(spec)
    key = None
    if ":" in spec and not Path(spec).exists():
        spec, key = spec.rsplit(":", 1)
    path = Path(spec)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    if path.suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except Exception as exc:
            raise DataError(f"{path} is not a readable .npy file ({type(exc).__name__}: {exc})") from None
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
