"""OOD scorers on latents and reconstructions, plus the chunked nearest-neighbour search.

Every scorer maps :class:`flowcore.analysis.ood.Evidence` to scores, **higher = more OOD**, and
keeps its learned state as plain arrays (saved as NPZ, no pickle). Scoring needs NumPy only;
fitting the Mahalanobis scorers uses scikit-learn's Ledoit–Wolf shrinkage.

Scorers follow the house estimator style: ``__init__`` only stores its arguments (options after
the first are keyword-only), ``fit`` checks them against the class's ``_parameter_constraints``
table (:func:`flowcore.validation.validate_params`) and returns ``self``, learned state ends in
``_``, and scoring before ``fit`` raises :class:`flowcore.errors.NotFittedError`.

To add a scorer: subclass :class:`Scorer`, set ``name``, ``needs`` and the constraints table,
implement ``_fit`` and ``_score`` (and ``_fit_scores`` when a bank holds the fitted samples), and
list the learned arrays to save in ``_state_arrays``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import inspect

import numpy as np

from flowcore.errors import BackendError, DataError, ParameterError
from flowcore.validation import Interval, Options, check_is_fitted, validate_params

__all__ = [
    "Scorer",
    "ReconstructionError",
    "LatentNorm",
    "LatentKNN",
    "LatentMahalanobis",
    "knn_distances",
    "mahalanobis",
    "fit_shrunk_gaussian",
]


def knn_distances(bank: np.ndarray, x: np.ndarray, k: int, *, squared: bool = False, exclude_self: bool = False,
                  block_x: int = 1024, block_bank: int = 8192) -> np.ndarray:
    """Distances from each row of ``x`` to its ``k`` nearest rows of ``bank``, ascending.

    Blocked over both arrays, so memory is O(block_x · (block_bank + k)), never N × N.

    Parameters
    ----------
    bank : ndarray of shape (M, d)
    x : ndarray of shape (N, d)
    k : int, 1 ≤ k ≤ M (− 1 with ``exclude_self``)
    squared : bool — return squared Euclidean distances
    exclude_self : bool — ``x`` is ``bank`` (same order): drop each row's match with itself

    Returns
    -------
    ndarray of shape (N, k), float64
    """
    bank = np.asarray(bank, np.float64)
    x = np.asarray(x, np.float64)
    m = len(bank)
    if exclude_self and len(x) != m:
        raise DataError("exclude_self needs x to be the bank itself")
    if k < 1:
        raise ParameterError(f"k must be >= 1 nearest neighbours, got {k}")
    if k > m - int(exclude_self):
        raise DataError(f"k={k} nearest neighbours asked for, but the bank holds {m} rows")
    bsq = (bank * bank).sum(1)
    out = np.empty((len(x), k))
    for s in range(0, len(x), block_x):
        xb = x[s : s + block_x]
        xsq = (xb * xb).sum(1)[:, None]
        best = np.full((len(xb), 0), np.inf)
        for t in range(0, m, block_bank):
            d = np.maximum(xsq + bsq[None, t : t + block_bank] - 2.0 * xb @ bank[t : t + block_bank].T, 0.0)
            if exclude_self:
                rows = np.arange(s, s + len(xb))
                inside = (rows >= t) & (rows < t + block_bank)
                d[np.flatnonzero(inside), rows[inside] - t] = np.inf
            cand = np.concatenate([best, d], axis=1)
            kk = min(k, cand.shape[1])
            idx = np.argpartition(cand, kk - 1, axis=1)[:, :kk]
            best = np.take_along_axis(cand, idx, axis=1)
        best.sort(axis=1)
        out[s : s + len(xb)] = best
    return out if squared else np.sqrt(out)


def fit_shrunk_gaussian(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, precision matrix and shrinkage of a Ledoit–Wolf Gaussian fit (scikit-learn).

    Returns
    -------
    location : ndarray of shape (d,), precision : ndarray of shape (d, d), shrinkage : float
    """
    try:
        from sklearn.covariance import LedoitWolf  # lazy: optional extra scikit-learn (flowcore[analysis])
    except ImportError:
        raise BackendError("fitting a Mahalanobis scorer needs scikit-learn: pip install 'flowcore[analysis]'") from None
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        raise DataError("a Gaussian fit needs at least two samples")
    lw = LedoitWolf().fit(x)
    return lw.location_, lw.precision_, float(lw.shrinkage_)


def mahalanobis(x: np.ndarray, location: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """√((x − μ)ᵀ P (x − μ)) per row: (N, d) → (N,) float64."""
    c = np.asarray(x, np.float64) - location
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", c, precision, c), 0.0))


class Scorer:
    """Base: evidence in, OOD scores out (higher = more OOD).

    To add one, implement ``_fit(ev)`` (learn from ID :class:`~flowcore.analysis.ood.Evidence`;
    the parameters are already validated against ``_parameter_constraints``) and ``_score(ev)``
    (ndarray of shape (N,), float64, higher = more OOD); override ``_fit_scores(ev)`` when the
    fitted samples must be scored leave-one-out, and map saved array names to learned
    attributes in ``_state_arrays``. The public ``fit``/``score``/``fit_scores``/``state``/
    ``from_state`` wrap those and are not overridden.

    Attributes
    ----------
    n_samples_fit_ : int or None
        ID samples seen by ``fit`` (None for a scorer restored with :meth:`from_state`).
    """

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset] = frozenset()
    _parameter_constraints: ClassVar[dict[str, list]] = {}
    _state_arrays: ClassVar[dict[str, str]] = {}  # saved array name -> learned attribute

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, by name, as given."""
        sig = inspect.signature(type(self).__init__)
        names = [p.name for p in sig.parameters.values()
                 if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return {n: getattr(self, n) for n in names}

    @property
    def min_fit_rows(self) -> int:
        """Fewest ID samples ``fit`` accepts (1 unless the scorer needs neighbours or a covariance)."""
        return 1

    def fit(self, ev) -> "Scorer":
        """Validate the parameters, learn from ID evidence ``ev`` (N samples) and return self.

        Raises
        ------
        DataError
            Fewer than :attr:`min_fit_rows` samples.
        """
        validate_params(self._parameter_constraints, self.get_params(), caller=type(self).__name__)
        if len(ev) < self.min_fit_rows:
            raise DataError(f"{self.name} needs at least {self.min_fit_rows} ID samples to fit, got {len(ev)}")
        self._fit(ev)
        self.n_samples_fit_ = len(ev)
        return self

    def fit_scores(self, ev) -> np.ndarray:
        """Scores of the ID evidence it was fitted on (leave-one-out where a bank holds the sample)."""
        check_is_fitted(self, "n_samples_fit_", method="fit_scores")
        return self._fit_scores(ev)

    def score(self, ev) -> np.ndarray:
        """OOD score per sample: ndarray of shape (N,), float64, higher = more OOD."""
        check_is_fitted(self, "n_samples_fit_", method="score")
        return self._score(ev)

    def _fit(self, ev) -> None:
        """Learn from ID evidence (nothing to learn by default)."""

    def _fit_scores(self, ev) -> np.ndarray:
        return self._score(ev)

    def _score(self, ev) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _saved_params(self) -> dict[str, Any]:
        """The constructor arguments as plain JSON types (what :meth:`state` records)."""
        return {}

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(parameters as JSON types, learned arrays by saved name) of a fitted scorer."""
        check_is_fitted(self, "n_samples_fit_", method="state")
        arrays = {}
        for key, attr in self._state_arrays.items():
            value = getattr(self, attr, None)
            if value is not None:
                arrays[key] = value if isinstance(value, np.ndarray) else np.array(value)
        return self._saved_params(), arrays

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Scorer":
        """A fitted scorer rebuilt from :meth:`state` output (extra arrays are ignored)."""
        obj = cls(**params)
        for key, attr in cls._state_arrays.items():
            if key in arrays:
                value = arrays[key]
                setattr(obj, attr, value.item() if value.ndim == 0 else value)
        obj.n_samples_fit_ = None
        return obj

    def describe(self) -> str:
        return self.name


class ReconstructionError(Scorer):
    """Mean squared reconstruction error ‖x − D(E(x))‖² / m (nothing to learn)."""

    name = "recon_error"
    needs = frozenset({"recon"})

    def _score(self, ev) -> np.ndarray:
        return np.asarray(ev.recon_error, np.float64)

    def describe(self) -> str:
        return "reconstruction error: mean squared error of D(E(x))"


class LatentNorm(Scorer):
    """‖E(x)‖: latents far from the origin score higher (nothing to learn)."""

    name = "latent_norm"
    needs = frozenset({"latents"})

    def _score(self, ev) -> np.ndarray:
        z = ev.latents.reshape(len(ev.latents), -1).astype(np.float64)
        return np.linalg.norm(z, axis=1)

    def describe(self) -> str:
        return "latent norm ||E(x)||"


class LatentKNN(Scorer):
    """Distance to the ID training latents (the bank).

    Parameters
    ----------
    k : int, default 50 — neighbours, ≥ 1 and below the number of ID samples
    reduce : {"kth", "mean"}, default "kth"
        k-th distance (OpenOOD, pytorch-ood) or mean of the k nearest (paper).
    normalize : bool, default False — L2-normalise latents first (OpenOOD)
    squared : bool, default False — squared Euclidean (OpenOOD's faiss IndexFlatL2)

    Attributes
    ----------
    bank_ : ndarray of shape (n_samples_fit, k_latent), float64 — the (prepared) ID latents
    """

    needs = frozenset({"latents"})
    _parameter_constraints = {"k": [Interval(int, 1, None)], "reduce": [Options(str, {"kth", "mean"})],
                              "normalize": [bool], "squared": [bool]}
    _state_arrays = {"bank": "bank_"}

    def __init__(self, k: int = 50, *, reduce: str = "kth", normalize: bool = False, squared: bool = False):
        self.k = k
        self.reduce = reduce
        self.normalize = normalize
        self.squared = squared

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"knn_{self.reduce}{self.k}" + ("_norm" if self.normalize else "") + ("_sq" if self.squared else "")

    def _prep(self, z: np.ndarray) -> np.ndarray:
        z = z.reshape(len(z), -1).astype(np.float64)
        if self.normalize:
            n = np.linalg.norm(z, axis=1, keepdims=True)
            z = np.divide(z, n, out=np.zeros_like(z), where=n > 0)
        return z

    @property
    def min_fit_rows(self) -> int:
        """k + 1: each fit sample's score leaves itself out of its k neighbours."""
        return int(self.k) + 1

    def _fit(self, ev) -> None:
        bank = self._prep(ev.latents)
        if self.k > len(bank) - 1:
            raise DataError(f"k={self.k} needs more than {len(bank)} ID samples")
        self.bank_ = bank

    def _reduce(self, d: np.ndarray) -> np.ndarray:
        return d[:, -1] if self.reduce == "kth" else d.mean(1)

    def _fit_scores(self, ev) -> np.ndarray:
        return self._reduce(knn_distances(self.bank_, self.bank_, int(self.k), squared=bool(self.squared),
                                          exclude_self=True))

    def _score(self, ev) -> np.ndarray:
        return self._reduce(knn_distances(self.bank_, self._prep(ev.latents), int(self.k), squared=bool(self.squared)))

    def _saved_params(self) -> dict[str, Any]:
        return {"k": int(self.k), "reduce": self.reduce, "normalize": bool(self.normalize),
                "squared": bool(self.squared)}

    def describe(self) -> str:
        return (f"latent KNN ({'k-th' if self.reduce == 'kth' else 'mean of'} {self.k} nearest"
                f"{', L2-normalised' if self.normalize else ''}{', squared' if self.squared else ''})")


class LatentMahalanobis(Scorer):
    """Mahalanobis distance of E(x) to a single Gaussian fitted on ID latents (Ledoit–Wolf shrinkage).

    Attributes
    ----------
    location_ : ndarray of shape (k,), float64
    precision_ : ndarray of shape (k, k), float64
    shrinkage_ : float
    """

    name = "latent_mahalanobis"
    needs = frozenset({"latents"})
    _state_arrays = {"location": "location_", "precision": "precision_", "shrinkage": "shrinkage_"}
    min_fit_rows = 2  # a covariance

    def _fit(self, ev) -> None:
        self.location_, self.precision_, self.shrinkage_ = fit_shrunk_gaussian(ev.latents.reshape(len(ev.latents), -1))

    def _score(self, ev) -> np.ndarray:
        return mahalanobis(ev.latents.reshape(len(ev.latents), -1), self.location_, self.precision_)

    def describe(self) -> str:
        return "Mahalanobis distance of E(x) to a Ledoit-Wolf Gaussian of the ID latents"
