"""Lazy start sources: starts read by row chunks, so nothing of size N × k is allocated up front.

:func:`~flowcore.dynamics.trajectories.iterate` takes an array or any :class:`StartSource` (an
object with ``latent_shape``, ``__len__`` and ``rows(lo, hi)``):

- :class:`ArrayStarts` — an in-memory array, checked once;
- :class:`NoiseStarts` — N(0, I) drawn chunk by chunk from ``np.random.default_rng(seed)``,
  bit-identical to the one-shot :func:`~flowcore.dynamics.starts.noise_starts`;
- :class:`LatentStarts` — a latents array, typically a memory-mapped ``.npy`` (:func:`open_array`);
- :class:`EncodedStarts` — ``E(x)`` of an inputs array (memory-mapped too), encoded block by block.

:func:`flowcore.dynamics.starts.open_start_source` builds them from the command line's choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from flowcore.errors import DataError, ParameterError
from flowcore.io import load_array, load_npy
from flowcore.validation import Interval, validate_params

__all__ = ["StartSource", "ArrayStarts", "NoiseStarts", "LatentStarts", "EncodedStarts", "as_start_source",
           "read_all", "open_array"]

_MAX_ROWS = 2**63 - 1
_BLOCK_BYTES = 1 << 24  # rows read at once by the finite scans and the noise skip (~16 MB)


@runtime_checkable
class StartSource(Protocol):
    """Starts read by row chunks: what :func:`~flowcore.dynamics.trajectories.iterate` consumes.

    For developers: implement ``latent_shape`` (tuple of int), ``__len__`` (the number of starts
    N) and ``rows(lo, hi)``, returning ndarray of shape (hi − lo, *latent_shape), float32,
    C-contiguous and finite, the same values for the same rows whatever was read before.
    """

    latent_shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def rows(self, lo: int, hi: int) -> np.ndarray: ...


def as_start_source(lmap, z0: Any, *, what: str = "starts") -> StartSource:
    """``z0`` itself when it is a :class:`StartSource`, else :class:`ArrayStarts` of the array."""
    if isinstance(z0, StartSource) and not isinstance(z0, np.ndarray):
        return z0
    return ArrayStarts(lmap, z0, what=what)


def read_all(source: StartSource) -> np.ndarray:
    """Every start of ``source``: ndarray of shape (N, *latent_shape), float32."""
    return source.rows(0, len(source))


def _block_rows(row_items: int) -> int:
    return max(1, _BLOCK_BYTES // max(8 * int(row_items), 1))


def _check_finite(arr: Any, what: str) -> None:
    """One DataError line when ``arr`` (N, …) holds NaN or Inf; scanned in blocks (memory-mapped files)."""
    step = _block_rows(int(np.prod(arr.shape[1:], dtype=np.int64)))
    for lo in range(0, len(arr), step):
        if not np.all(np.isfinite(arr[lo : lo + step])):
            raise DataError(f"{what} contain NaN or Inf")


def _checked_head(arr: Any, check, what: str) -> None:
    """Check dtype and shape on an empty head of ``arr``, so a memory-mapped file is not read."""
    if np.ndim(arr) == 0:
        check(arr, what)
        return
    head = arr[:0]
    try:
        check(head, what)
    except DataError as exc:  # name the file's shape, not the empty head's
        raise DataError(str(exc).replace(f"shape {tuple(head.shape)}", f"shape {tuple(arr.shape)}")) from None


class ArrayStarts:
    """An in-memory start array used as given (checked once: float32, finite).

    Parameters
    ----------
    lmap : LatentMap
    z : array-like of shape (N, *latent_shape) or (N, k)
    what : str — names the starts in error messages
    """

    def __init__(self, lmap, z: Any, *, what: str = "starts") -> None:
        self.array = lmap.check_latents(z, what)
        if not np.all(np.isfinite(self.array)):
            raise DataError(f"{what} contain NaN or Inf")
        self.latent_shape = tuple(self.array.shape[1:])

    def __len__(self) -> int:
        return len(self.array)

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` (a view), ndarray of shape (hi − lo, *latent_shape), float32."""
        return self.array[lo:hi]


class NoiseStarts:
    """``n`` N(0, I) starts drawn chunk by chunk from ``np.random.default_rng(seed)``.

    The rows are bit-identical to :func:`noise_starts` (``standard_normal`` fills in C order, so
    consecutive chunks continue the one-shot stream). Reading forward continues the generator;
    reading an earlier or later chunk redraws from the seed and discards up to it.

    Parameters
    ----------
    latent_shape : sequence of int
    n : int ≥ 0 (below 2**63)
    seed : int ≥ 0, default 0 — an integer, so any chunk can be drawn again

    Raises
    ------
    ParameterError
        A bad ``n`` or ``seed``, or more starts than an int64 counts.
    """

    def __init__(self, latent_shape: Sequence[int], n: int, *, seed: int = 0) -> None:
        validate_params({"n": [Interval(int, 0, None)], "seed": [Interval(int, 0, None)]}, {"n": n, "seed": seed},
                        caller="NoiseStarts")
        if int(n) > _MAX_ROWS:
            raise ParameterError(f"{n} noise starts is more than can be counted (at most 2**63 - 1); use fewer starts")
        self.latent_shape = tuple(int(d) for d in latent_shape)
        self.n, self.seed = int(n), int(seed)
        self._rng: np.random.Generator | None = None
        self._pos = 0

    def __len__(self) -> int:
        return self.n

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` of the draw, ndarray of shape (hi − lo, *latent_shape), float32."""
        lo, hi = int(lo), min(int(hi), self.n)
        if self._rng is None or lo < self._pos:
            self._rng, self._pos = np.random.default_rng(self.seed), 0
        step = _block_rows(int(np.prod(self.latent_shape, dtype=np.int64)))
        while self._pos < lo:  # draw and discard up to ``lo``, a block at a time
            m = min(lo - self._pos, step)
            self._rng.standard_normal((m, *self.latent_shape))
            self._pos += m
        z = self._rng.standard_normal((max(hi - lo, 0), *self.latent_shape)).astype(np.float32)
        self._pos = max(hi, lo)
        return z


class LatentStarts:
    """Latent starts read from an array, typically a memory-mapped ``.npy`` (read chunk by chunk).

    Parameters
    ----------
    lmap : LatentMap
    array : array-like of shape (N, *latent_shape) or (N, k), numeric; a ``numpy.memmap`` stays on disk
    what : str — names the starts in error messages

    Raises
    ------
    DataError
        Wrong dtype or shape (checked on the header), or NaN/Inf anywhere (scanned in blocks).
    """

    def __init__(self, lmap, array: Any, *, what: str = "starts") -> None:
        _checked_head(array, lmap.check_latents, what)
        _check_finite(array, what)
        self.array, self.what, self._check = array, what, lmap.check_latents
        self.latent_shape = tuple(lmap.latent_shape)

    def __len__(self) -> int:
        return len(self.array)

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi``, ndarray of shape (hi − lo, *latent_shape), float32 (a copy)."""
        return self._check(self.array[lo:hi], self.what)


class EncodedStarts:
    """``E(x)`` of an inputs array (typically memory-mapped), encoded block by block.

    Blocks of ``batch_size`` rows are aligned at row 0, as :func:`data_starts` encodes them, so
    every chunk equals the matching rows of ``data_starts(lmap, x)`` bit for bit.

    Parameters
    ----------
    lmap : LatentMap
    x : array-like of shape (N, *input_shape) or (N, m)
    what : str — names the inputs in error messages
    batch_size : int, default 4096 — rows per encoder call
    """

    def __init__(self, lmap, x: Any, *, what: str = "data", batch_size: int = 4096) -> None:
        _checked_head(x, lmap.check_inputs, what)
        _check_finite(x, what)
        self.x, self.what, self.batch_size, self._lmap = x, what, int(batch_size), lmap
        self.latent_shape = tuple(lmap.latent_shape)
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.x)

    def _block(self, b: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != b:
            bs = self.batch_size
            x = self._lmap.check_inputs(self.x[b * bs : (b + 1) * bs], self.what)
            self._cached = (b, self._lmap.encode(x, batch_size=bs))
        return self._cached[1]

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Latents of rows ``lo:hi``, ndarray of shape (hi − lo, *latent_shape), float32."""
        lo, hi, bs = int(lo), min(int(hi), len(self)), self.batch_size
        parts = [self._block(b)[max(lo, b * bs) - b * bs : min(hi, (b + 1) * bs) - b * bs]
                 for b in range(lo // bs, -(-hi // bs))] if hi > lo else []
        if not parts:
            return np.empty((0, *self.latent_shape), np.float32)
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)


def open_array(spec: str) -> Any:
    """A ``.npy`` file memory-mapped (read only, no pickle); any other spec through :func:`load_array`."""
    path = Path(str(spec))
    if path.suffix == ".npy" and path.is_file():
        return load_npy(path, mmap_mode="r")  # the loader's checks and messages (flowcore.io)
    return load_array(spec)
