"""Start sets: the latents ``z_0`` that trajectories start from, made in one place.

Three kinds of start set, each with an explicit seed where it draws anything:

- **noise** — :func:`noise_starts`: ``n`` draws of N(0, I) of the latent shape from
  ``np.random.default_rng(seed)`` (a seed or a ``numpy.random.Generator``; no global RNG);
- **data** — :func:`data_starts`: ``E(x)`` of inputs, optionally a seeded subsample
  (:func:`subsample_indices`);
- **latents** — :func:`given_latents`: an array used as given, checked against the latent shape.

:func:`latent_starts` names the analyses' start sets (``"train"``, ``"test"``, ``"noise"`` or an
array) with one seed for whichever draw the set needs.

:func:`parse_start_spec` reads the ``noise:N`` / file spec of the command line, and
:func:`starts_from_sources` builds the start set and its description from the command line's
``--data`` / ``--latents`` / ``--noise`` choice; :func:`open_start_source` builds the same start
set lazily, as a :class:`StartSource` that :func:`~flowcore.dynamics.trajectories.iterate`
reads chunk by chunk (nothing of size N × k is allocated up front): :class:`NoiseStarts`
draws each chunk from the seeded generator (the same values as the one-shot draw),
:class:`LatentStarts` reads a (memory-mapped) latents array, :class:`EncodedStarts` encodes a
(memory-mapped) inputs array block by block. Every function only reads the map's shapes
and calls its ``encode``/``check_*`` methods, so any object with ``latent_shape``, ``encode``,
``check_inputs`` and ``check_latents`` (a :class:`flowcore.runtime.latent_map.LatentMap`) will do.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from flowcore.errors import DataError, ParameterError
from flowcore.dynamics.sources import (ArrayStarts, EncodedStarts, LatentStarts, NoiseStarts, StartSource, open_array,
                                       read_all)
from flowcore.validation import Interval, validate_params

__all__ = ["noise_starts", "data_starts", "given_latents", "subsample_indices", "latent_starts",
           "parse_start_spec", "starts_from_sources", "StartSource", "ArrayStarts", "NoiseStarts", "LatentStarts",
           "EncodedStarts", "open_start_source", "read_all"]

_SEED = [Interval(int, 0, None), np.random.Generator]


def noise_starts(latent_shape: Sequence[int], n: int, *, seed: int | np.random.Generator = 0) -> np.ndarray:
    """``n`` latent starts drawn from N(0, I).

    Parameters
    ----------
    latent_shape : sequence of int
        Shape of one latent, e.g. ``lmap.latent_shape``.
    n : int ≥ 0
        Number of starts.
    seed : int ≥ 0 or numpy.random.Generator, default 0
        ``np.random.default_rng(seed)`` draws them (a Generator is used, and advanced, as given).

    Returns
    -------
    z0 : ndarray of shape (n, *latent_shape), float32
        ``default_rng(seed).standard_normal((n, *latent_shape)).astype(float32)``.

    Raises
    ------
    ParameterError
        A negative or non-integer ``n``, or a bad seed.
    """
    validate_params({"n": [Interval(int, 0, None)], "seed": _SEED}, {"n": n, "seed": seed}, caller="noise_starts")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((int(n), *latent_shape)).astype(np.float32)


def subsample_indices(n_total: int, n: int | None, *, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Sorted indices of ``n`` of ``n_total`` rows, drawn without replacement.

    Parameters
    ----------
    n_total : int — rows available
    n : int or None — rows wanted; None or ≥ ``n_total`` keeps every row (no draw is made)
    seed : int ≥ 0 or numpy.random.Generator, default 0

    Returns
    -------
    ndarray of shape (min(n, n_total),), int64
        ``sort(default_rng(seed).choice(n_total, n, replace=False))``, or ``arange(n_total)``.
    """
    validate_params({"n": [Interval(int, 0, None), None], "seed": _SEED}, {"n": n, "seed": seed},
                    caller="subsample_indices")
    if n is None or int(n) >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, int(n), replace=False))


def data_starts(lmap, x: Any, *, what: str = "data", batch_size: int = 4096) -> np.ndarray:
    """``E(x)``: the latent starts of inputs ``x``.

    Parameters
    ----------
    lmap : LatentMap
    x : array-like of shape (N, *input_shape) (or flat (N, m)), finite
    what : str — names the inputs in error messages (e.g. ``"data in x.npy"``)
    batch_size : int, default 4096

    Returns
    -------
    z0 : ndarray of shape (N, *latent_shape), float32

    Raises
    ------
    DataError
        Inputs of the wrong shape, or containing NaN or Inf.
    """
    x = lmap.check_inputs(x, what)
    if not np.all(np.isfinite(x)):
        raise DataError(f"{what} contain NaN or Inf")
    return lmap.encode(x, batch_size=batch_size)


def given_latents(lmap, z: Any, *, what: str = "starts") -> np.ndarray:
    """Latent starts used as given: ndarray of shape (N, *latent_shape), float32 (flat (N, k) reshaped)."""
    return lmap.check_latents(z, what)


def latent_starts(lmap, kind: Any, *, x_train: Any = None, x_test: Any = None, n: int | None = None,
                  seed: int | np.random.Generator = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Start latents ``z_0`` for a named start set, and its description for the settings.

    Parameters
    ----------
    lmap : LatentMap
    kind : {"train", "test", "noise"} or array-like of shape (n, *latent_shape)
        "train"/"test": ``E(x)`` of ``n`` samples drawn without replacement (all when ``n`` is
        None or ≥ the set size). "noise": ``n`` draws of N(0, I) in latent space (``n``
        defaults to 1000). An array is used as given.
    x_train, x_test : array-like of shape (N, *input_shape), optional
        The inputs of the "train" / "test" sets.
    n : int, optional
    seed : int or numpy.random.Generator, default 0
        Seeds the one draw the set needs (the subsample, or the noise).

    Returns
    -------
    z0 : ndarray of shape (n, *latent_shape), float32
    desc : dict
        kind, size, seed (None for a Generator or an array).

    Raises
    ------
    DataError
        "train"/"test" without its inputs; ParameterError: an unknown ``kind``.
    """
    seed_rec = seed if isinstance(seed, int) else None
    if isinstance(kind, str):
        if kind == "noise":
            size = 1000 if n is None else int(n)
            z0 = noise_starts(lmap.latent_shape, size, seed=seed)
            return z0, {"kind": "noise", "distribution": "N(0, I) latent", "size": size, "seed": seed_rec}
        if kind in ("train", "test"):
            x = x_train if kind == "train" else x_test
            if x is None:
                raise DataError(f"starts={kind!r} needs x_{kind}")
            x = np.asarray(x)
            idx = subsample_indices(len(x), n, seed=seed)
            if len(idx) < len(x):
                x = x[idx]
            return data_starts(lmap, x, what=f"x_{kind}"), {"kind": kind, "size": len(x), "seed": seed_rec}
        raise ParameterError(f"starts must be 'train', 'test', 'noise' or an array, got {kind!r}")
    z0 = given_latents(lmap, kind, what="starts")
    return z0, {"kind": "array", "size": len(z0), "seed": None}


def parse_start_spec(spec: str) -> tuple[str, Any]:
    """Read a start spec: ``"noise:N"`` → ``("noise", N)``; anything else → ``("file", spec)``.

    Raises
    ------
    ParameterError
        ``noise:`` followed by something that is not an integer.
    """
    if spec.startswith("noise:"):
        try:
            return "noise", int(spec.split(":", 1)[1])
        except ValueError:
            raise ParameterError(f"--starts {spec!r}: expected noise:N with an integer N") from None
    return "file", spec


def starts_from_sources(lmap, *, data: str | None = None, latents: str | None = None, noise: int | None = None,
                        spec: str | None = None, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """The start set of the command line's ``--data`` / ``--latents`` / ``--noise`` / ``--starts``, in memory.

    Parameters
    ----------
    lmap : LatentMap
    data : str, optional — inputs file (``.npy``, ``.npz`` or ``.npz:KEY``) to encode
    latents : str, optional — latents file, used as given
    noise : int, optional — number of N(0, I) starts (≥ 1), drawn with ``seed``
    spec : str, optional — ``noise:N`` (as ``noise``) or a data file (as ``data``); wins over the others
    seed : int, default 0

    Returns
    -------
    z0 : ndarray of shape (N, *latent_shape), float32
        :func:`read_all` of :func:`open_start_source`'s source.
    desc : dict
        ``{"kind": "noise", "distribution", "n", "seed"}``, ``{"kind": "latents", "file", "n"}`` or
        ``{"kind": "data", "file", "n"}``.
    """
    source, desc = open_start_source(lmap, data=data, latents=latents, noise=noise, spec=spec, seed=seed)
    return read_all(source), desc


def open_start_source(lmap, *, data: str | None = None, latents: str | None = None, noise: int | None = None,
                      spec: str | None = None, seed: int = 0) -> tuple[StartSource, dict[str, Any]]:
    """The start set of ``--data`` / ``--latents`` / ``--noise`` / ``--starts`` as a lazy :class:`StartSource`.

    Same parameters and description as :func:`starts_from_sources`; ``.npy`` files are
    memory-mapped and read chunk by chunk, noise is drawn chunk by chunk.

    Returns
    -------
    source : NoiseStarts, LatentStarts or EncodedStarts
    desc : dict
    """
    if spec is not None:
        kind, value = parse_start_spec(spec)
        if kind == "noise":
            noise = value
        else:
            data = value
    if noise is not None:
        if noise < 1:
            raise ParameterError(f"--noise must be >= 1, got {noise}")
        source = NoiseStarts(lmap.latent_shape, noise, seed=seed)
        return source, {"kind": "noise", "distribution": "N(0, I) in latent space", "n": noise, "seed": seed}
    if latents is not None:
        source = LatentStarts(lmap, open_array(latents), what=f"latents in {latents}")
        _some_rows(source, latents)
        return source, {"kind": "latents", "file": latents, "n": len(source)}
    if data is None:
        raise ParameterError("no start set given: pass data, latents, noise or spec")
    source = EncodedStarts(lmap, open_array(data), what=f"data in {data}")
    _some_rows(source, data)
    return source, {"kind": "data", "file": data, "n": len(source)}


def _some_rows(source: StartSource, file: str) -> None:
    """One DataError line for a start file with 0 rows (there is nothing to iterate)."""
    if len(source) == 0:
        raise DataError(f"{file} holds 0 rows: no starts to iterate")
