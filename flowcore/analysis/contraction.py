"""Contraction at initialization: how much one application of f shrinks N(0, I) latents (PAPER Fig. 6).

:func:`contraction_ratio` draws ``n`` latents ``z ~ N(0, I)`` (seeded, the same draw as
:func:`flowcore.dynamics.starts.noise_starts`), applies ``f = E∘D`` once and compares the spread
of ``f(z)`` with the spread of ``z``. The paper reports "the ratio σ_out / σ_in" for 1,000 inputs
from N(0, I) at random init, 10 seeds, without defining σ further (PAPER §4.2). flowcore's
definition, used for :attr:`ContractionReport.ratio`:

- per latent coordinate j (latents flattened to k coordinates), ``s_j`` = the standard deviation
  over the ``n`` samples (ddof = 0);
- ``σ = sqrt(mean_j s_j²)``, the root mean square of the per-coordinate stds (equivalently
  ``sqrt(trace(Cov) / k)``), for the inputs and for the outputs;
- ``ratio = σ_out / σ_in``.

The RMS is chosen over the plain mean of the ``s_j`` because it does not depend on the basis of
the latent space (a rotation of the latents leaves it unchanged). Two other views are reported
beside it: the median over coordinates of ``s_j(out) / s_j(in)``, and the ratio of mean norms
``mean ‖f(z)‖ / mean ‖z‖`` (which, unlike σ, also counts a shift of the mean). For the linear map
``f(z) = a + ρ (z − a)`` all three equal ``|ρ|`` up to sampling error; a ratio < 1 means f
contracts the spread of N(0, I) inputs. NumPy only.

:func:`contraction_seeds` repeats :func:`contraction_ratio` over seeds (the paper: 10) and
summarises each ratio by its mean and sample std over seeds (:class:`ContractionSeeds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from flowcore.dynamics.starts import noise_starts
from flowcore.errors import DataError, ParameterError
from flowcore.results import Array, Result
from flowcore.validation import Interval, SequenceOf, validate_params

__all__ = ["contraction_ratio", "ContractionReport", "contraction_seeds", "ContractionSeeds"]

_CONSTRAINTS = {
    "n": [Interval(int, 2, None)],
    "seed": [Interval(int, 0, None)],
    "batch_size": [Interval(int, 1, None)],
}
_SEEDS_CONSTRAINTS = {
    "n": [Interval(int, 2, None)],
    "seeds": [Interval(int, 1, None), SequenceOf(int)],
    "batch_size": [Interval(int, 1, None)],
}
_RATIOS = ("ratio", "median_coordinate_ratio", "norm_ratio")
_PER_SEED = (*_RATIOS, "sigma_in", "sigma_out")


@dataclass(frozen=True)
class ContractionReport(Result):
    """Spread of f(z) against the spread of z ~ N(0, I) (see the module docstring for σ).

    Attributes
    ----------
    ratio : float
        ``σ_out / σ_in`` with ``σ = sqrt(mean_j s_j²)`` (RMS of the per-coordinate stds).
    median_coordinate_ratio : float
        Median over the k coordinates of ``s_j(out) / s_j(in)``.
    norm_ratio : float
        ``mean_i ‖f(z_i)‖ / mean_i ‖z_i‖``.
    sigma_in, sigma_out : float
        The two σ of ``ratio``.
    coord_std_in, coord_std_out : ndarray of shape (k,), float64
        The per-coordinate stds ``s_j`` of the inputs and of the outputs.
    settings : dict
        ``n``, ``seed``, ``batch_size``, ``latent_shape``, the input distribution and the
        definition of σ.
    """

    ratio: float
    median_coordinate_ratio: float
    norm_ratio: float
    sigma_in: float
    sigma_out: float
    coord_std_in: np.ndarray
    coord_std_out: np.ndarray
    settings: dict[str, Any]

    kind: ClassVar[str] = "contraction"
    version: ClassVar[int] = 1
    title: ClassVar[str] = "a contraction report"
    schema: ClassVar[dict[str, Array]] = {
        "coord_std_in": Array("f", ndim=1, dims=("k",)),
        "coord_std_out": Array("f", ndim=1, dims=("k",)),
    }

    @property
    def contracts(self) -> bool:
        """True when ``ratio < 1``."""
        return bool(self.ratio < 1.0)

    def to_json(self) -> dict[str, Any]:
        """Plain types: the three ratios, the two σ, whether f contracts, and the settings."""
        return {"ratio": float(self.ratio), "median_coordinate_ratio": float(self.median_coordinate_ratio),
                "norm_ratio": float(self.norm_ratio), "sigma_in": float(self.sigma_in),
                "sigma_out": float(self.sigma_out), "contracts": self.contracts, "settings": dict(self.settings)}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"coord_std_in": self.coord_std_in, "coord_std_out": self.coord_std_out}

    @classmethod
    def _from_files(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], folder: Path) -> "ContractionReport":
        return cls(ratio=float(meta["ratio"]), median_coordinate_ratio=float(meta["median_coordinate_ratio"]),
                   norm_ratio=float(meta["norm_ratio"]), sigma_in=float(meta["sigma_in"]),
                   sigma_out=float(meta["sigma_out"]), coord_std_in=arrays["coord_std_in"],
                   coord_std_out=arrays["coord_std_out"], settings=dict(meta["settings"]))


def _rms(s: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(s))))


def contraction_ratio(lmap, *, n: int = 1000, seed: int = 0, batch_size: int = 4096) -> ContractionReport:
    """Ratio σ_out / σ_in of one application of f to ``n`` latents drawn from N(0, I).

    Parameters
    ----------
    lmap : LatentMap or callable
        The map f: called as ``lmap(z, batch_size=...)`` on (n, *latent_shape) float32 and
        returning the same shape; must have ``latent_shape``.
    n : int ≥ 2, default 1000
        Number of samples (the paper: 1,000).
    seed : int ≥ 0, default 0
        ``np.random.default_rng(seed)`` draws ``z`` (as :func:`~flowcore.dynamics.starts.noise_starts`).
    batch_size : int ≥ 1, default 4096
        Rows per call of f.

    Returns
    -------
    ContractionReport
        ``ratio`` (RMS definition), ``median_coordinate_ratio``, ``norm_ratio``, the per-coordinate
        stds (k,) float64 and the settings (``n``, ``seed`` included).

    Raises
    ------
    ParameterError
        ``n`` < 2, a negative or non-integer ``seed``, or a bad ``batch_size``.
    DataError
        f returns non-finite values, or a constant coordinate of the inputs (cannot happen for
        n ≥ 2 draws of N(0, 1) in practice).
    """
    validate_params(_CONSTRAINTS, {"n": n, "seed": seed, "batch_size": batch_size}, caller="contraction_ratio")
    shape = tuple(int(s) for s in lmap.latent_shape)
    z = noise_starts(shape, int(n), seed=int(seed))
    fz = np.asarray(lmap(z, batch_size=int(batch_size)))
    if fz.shape != z.shape:
        raise DataError(f"contraction_ratio: f returned shape {fz.shape} for inputs of shape {z.shape}")
    zin = z.reshape(len(z), -1).astype(np.float64)
    zout = fz.reshape(len(fz), -1).astype(np.float64)
    if not np.isfinite(zout).all():
        bad = int((~np.isfinite(zout).all(axis=1)).sum())
        raise DataError(f"contraction_ratio: f returned non-finite values for {bad} of {n} N(0, I) inputs")
    s_in, s_out = zin.std(axis=0), zout.std(axis=0)
    if not (s_in > 0).all():
        raise DataError("contraction_ratio: an input coordinate has zero spread; use a larger n")
    sigma_in, sigma_out = _rms(s_in), _rms(s_out)
    norm_in = float(np.linalg.norm(zin, axis=1).mean())
    norm_out = float(np.linalg.norm(zout, axis=1).mean())
    settings = {"n": int(n), "seed": int(seed), "batch_size": int(batch_size), "latent_shape": list(shape),
                "inputs": "N(0, I), numpy default_rng(seed).standard_normal, float32",
                "sigma": "sqrt(mean over coordinates of the per-coordinate variance over samples, ddof=0)"}
    return ContractionReport(ratio=sigma_out / sigma_in, median_coordinate_ratio=float(np.median(s_out / s_in)),
                             norm_ratio=norm_out / norm_in, sigma_in=sigma_in, sigma_out=sigma_out,
                             coord_std_in=s_in, coord_std_out=s_out, settings=settings)


@dataclass(frozen=True)
class ContractionSeeds(Result):
    """:func:`contraction_ratio` seed by seed, with each ratio's mean and sample std over seeds.

    Attributes
    ----------
    seeds : ndarray of shape (S,), int64
        The seeds, in the order run.
    ratio, median_coordinate_ratio, norm_ratio : ndarray of shape (S,), float64
        The three ratios of each seed's :class:`ContractionReport` (< 1: f contracts).
    sigma_in, sigma_out : ndarray of shape (S,), float64
        The two σ of each seed's ``ratio``.
    n : int
        N(0, I) latents per seed.
    latent_shape : tuple of int
    settings : dict
        ``providers``, the input distribution and the definitions of σ, of the std over seeds
        and of "contracts".
    """

    seeds: np.ndarray
    ratio: np.ndarray
    median_coordinate_ratio: np.ndarray
    norm_ratio: np.ndarray
    sigma_in: np.ndarray
    sigma_out: np.ndarray
    n: int
    latent_shape: tuple[int, ...]
    settings: dict[str, Any]

    kind: ClassVar[str] = "contraction_seeds"
    version: ClassVar[int] = 1
    title: ClassVar[str] = "a contraction-over-seeds report"
    schema: ClassVar[dict[str, Array]] = {
        "seeds": Array("iu", ndim=1, dims=("s",)),
        **{name: Array("f", ndim=1, dims=("s",)) for name in _PER_SEED},
    }

    @property
    def contracts(self) -> np.ndarray:
        """ndarray of shape (S,), bool: ``ratio < 1`` per seed."""
        return self.ratio < 1.0

    @property
    def mean(self) -> dict[str, float]:
        """Mean over seeds of each of the three ratios."""
        return {k: float(np.mean(getattr(self, k))) for k in _RATIOS}

    @property
    def std(self) -> dict[str, float | None]:
        """Sample std (ddof = 1) over seeds of each ratio; None for a single seed."""
        return {k: (float(np.std(getattr(self, k), ddof=1)) if len(self.seeds) > 1 else None) for k in _RATIOS}

    @property
    def contracting_seeds(self) -> int:
        """Seeds whose ``ratio`` < 1."""
        return int(self.contracts.sum())

    def per_seed(self) -> list[dict[str, Any]]:
        """One plain row per seed: ``seed``, the three ratios, the two σ and ``contracts``."""
        return [{"seed": int(s), **{k: float(getattr(self, k)[i]) for k in _PER_SEED},
                 "contracts": bool(self.contracts[i])} for i, s in enumerate(self.seeds)]

    def to_json(self) -> dict[str, Any]:
        """n, seed count, latent size, mean and std of each ratio, contracting seeds, per-seed rows, settings."""
        n_seeds = len(self.seeds)
        return {"n": int(self.n), "seeds": n_seeds,
                "latent_dim": int(np.prod(self.latent_shape, dtype=np.int64)), "latent_shape": list(self.latent_shape),
                "mean": self.mean, "std": self.std, "contracting_seeds": self.contracting_seeds,
                "contracting_fraction": self.contracting_seeds / n_seeds, "per_seed": self.per_seed(),
                "settings": dict(self.settings)}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"seeds": self.seeds, **{k: getattr(self, k) for k in _PER_SEED}}

    @classmethod
    def _from_files(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], folder: Path) -> "ContractionSeeds":
        return cls(**{k: arrays[k] for k in ("seeds", *_PER_SEED)}, n=int(meta["n"]),
                   latent_shape=tuple(int(s) for s in meta["latent_shape"]), settings=dict(meta["settings"]))


def contraction_seeds(lmap, *, seeds: int | Sequence[int] = 10, n: int = 1000,
                      batch_size: int = 4096) -> ContractionSeeds:
    """:func:`contraction_ratio` over several seeds (the paper: 1,000 N(0, I) latents, 10 seeds).

    Parameters
    ----------
    lmap : LatentMap or callable
        As for :func:`contraction_ratio`.
    seeds : int ≥ 1 or sequence of int ≥ 0, default 10
        ``S`` runs seeds 0 … S−1; a sequence runs those seeds in order.
    n : int ≥ 2, default 1000
        N(0, I) latents per seed.
    batch_size : int ≥ 1, default 4096
        Rows per call of f.

    Returns
    -------
    ContractionSeeds
        Per seed the three ratios and the two σ, ndarray of shape (S,), float64 each — the
        numbers of ``contraction_ratio(lmap, n=n, seed=s)`` — with ``mean``, ``std`` (ddof = 1,
        None for one seed), ``contracts`` (ratio < 1) and ``contracting_seeds``.

    Raises
    ------
    ParameterError
        ``seeds`` < 1 or a negative seed, ``n`` < 2, a bad ``batch_size``.
    DataError
        As :func:`contraction_ratio`.

    Examples
    --------
    >>> rep = flowcore.contraction_seeds(lmap, seeds=10, n=1000)    # doctest: +SKIP
    >>> rep.mean["ratio"], rep.std["ratio"], rep.contracting_seeds  # doctest: +SKIP
    """
    if isinstance(seeds, np.ndarray):
        seeds = seeds.tolist()
    validate_params(_SEEDS_CONSTRAINTS, {"n": n, "seeds": seeds, "batch_size": batch_size}, caller="contraction_seeds")
    as_range = not isinstance(seeds, (list, tuple))
    if not as_range and min(seeds) < 0:
        raise ParameterError(f"contraction_seeds: seeds must be integers >= 0, got {list(seeds)!r}")
    seed_list = list(range(int(seeds))) if as_range else [int(s) for s in seeds]
    reps = [contraction_ratio(lmap, n=n, seed=s, batch_size=batch_size) for s in seed_list]
    providers = getattr(lmap, "providers", None)
    which = "seeds 0 .. S-1" if as_range else "the seeds listed in per_seed"
    settings = {"inputs": f"N(0, I), numpy default_rng(seed).standard_normal, float32, {which}",
                "sigma": "sqrt(mean over coordinates of the per-coordinate variance over samples, ddof=0)",
                "std": "sample std over seeds (ddof=1); null for one seed",
                "contracts": "ratio < 1", "providers": list(providers) if providers is not None else None}
    return ContractionSeeds(seeds=np.asarray(seed_list, np.int64),
                            **{k: np.array([getattr(r, k) for r in reps], np.float64) for k in _PER_SEED},
                            n=int(n), latent_shape=tuple(int(s) for s in lmap.latent_shape), settings=settings)
