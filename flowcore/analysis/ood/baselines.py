"""OOD scorers on latents and reconstructions, plus the chunked nearest-neighbour search.

Every scorer maps :class:`flowcore.analysis.ood.Evidence` to scores, **higher = more OOD**, and
keeps its learned state as plain arrays (saved as NPZ, no pickle). Scoring needs NumPy only;
fitting the Mahalanobis scorers uses scikit-learn's Ledoit–Wolf shrinkage.

To add a scorer: subclass :class:`Scorer`, set ``name`` and ``needs``, implement ``fit``,
``score`` and the ``state``/``from_state`` pair.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from flowcore.errors import DataError

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
    if not 1 <= k <= m - int(exclude_self):
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
        from sklearn.covariance import LedoitWolf  # noqa: PLC0415
    except ImportError:
        raise DataError("fitting a Mahalanobis scorer needs scikit-learn: pip install 'flowcore[analysis]'") from None
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

    For developers: implement ``fit(ev)`` (learn from ID evidence, return self), ``score(ev)``
    ((N,) float64), ``state()`` → (params dict, arrays dict) and ``from_state``.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset] = frozenset()

    def fit(self, ev) -> "Scorer":
        return self

    def fit_scores(self, ev) -> np.ndarray:
        """Scores of the ID evidence it was fitted on (leave-one-out where a bank holds the sample)."""
        return self.score(ev)

    def score(self, ev) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {}

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return self.params(), {}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Scorer":
        return cls(**params)

    def describe(self) -> str:
        return self.name


class ReconstructionError(Scorer):
    """Mean squared reconstruction error ‖x − D(E(x))‖² / m."""

    name = "recon_error"
    needs = frozenset({"recon"})

    def score(self, ev) -> np.ndarray:
        return np.asarray(ev.recon_error, np.float64)

    def describe(self) -> str:
        return "reconstruction error: mean squared error of D(E(x))"


class LatentNorm(Scorer):
    """‖E(x)‖: latents far from the origin score higher."""

    name = "latent_norm"
    needs = frozenset({"latents"})

    def score(self, ev) -> np.ndarray:
        z = ev.latents.reshape(len(ev.latents), -1).astype(np.float64)
        return np.linalg.norm(z, axis=1)

    def describe(self) -> str:
        return "latent norm ||E(x)||"


class LatentKNN(Scorer):
    """Distance to the ID training latents (the bank).

    Parameters
    ----------
    k : int — neighbours
    reduce : {"kth", "mean"} — k-th distance (OpenOOD, pytorch-ood) or mean of the k nearest (paper)
    normalize : bool — L2-normalise latents first (OpenOOD)
    squared : bool — squared Euclidean (OpenOOD's faiss IndexFlatL2)
    """

    needs = frozenset({"latents"})

    def __init__(self, k: int = 50, reduce: str = "kth", normalize: bool = False, squared: bool = False):
        if reduce not in ("kth", "mean"):
            raise DataError(f"reduce must be 'kth' or 'mean', got {reduce!r}")
        self.k, self.reduce, self.normalize, self.squared = int(k), reduce, bool(normalize), bool(squared)
        self.bank_: np.ndarray | None = None

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"knn_{self.reduce}{self.k}" + ("_norm" if self.normalize else "") + ("_sq" if self.squared else "")

    def _prep(self, z: np.ndarray) -> np.ndarray:
        z = z.reshape(len(z), -1).astype(np.float64)
        if self.normalize:
            n = np.linalg.norm(z, axis=1, keepdims=True)
            z = np.divide(z, n, out=np.zeros_like(z), where=n > 0)
        return z

    def fit(self, ev) -> "LatentKNN":
        self.bank_ = self._prep(ev.latents)
        if self.k > len(self.bank_) - 1:
            raise DataError(f"k={self.k} needs more than {len(self.bank_)} ID samples")
        return self

    def _reduce(self, d: np.ndarray) -> np.ndarray:
        return d[:, -1] if self.reduce == "kth" else d.mean(1)

    def fit_scores(self, ev) -> np.ndarray:
        return self._reduce(knn_distances(self.bank_, self.bank_, self.k, squared=self.squared, exclude_self=True))

    def score(self, ev) -> np.ndarray:
        return self._reduce(knn_distances(self.bank_, self._prep(ev.latents), self.k, squared=self.squared))

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "reduce": self.reduce, "normalize": self.normalize, "squared": self.squared}

    def state(self):
        return self.params(), {"bank": self.bank_}

    @classmethod
    def from_state(cls, params, arrays):
        obj = cls(**params)
        obj.bank_ = arrays["bank"]
        return obj

    def describe(self) -> str:
        return (f"latent KNN ({'k-th' if self.reduce == 'kth' else 'mean of'} {self.k} nearest"
                f"{', L2-normalised' if self.normalize else ''}{', squared' if self.squared else ''})")


class LatentMahalanobis(Scorer):
    """Mahalanobis distance of E(x) to a single Gaussian fitted on ID latents (Ledoit–Wolf shrinkage)."""

    name = "latent_mahalanobis"
    needs = frozenset({"latents"})

    def __init__(self):
        self.location_ = self.precision_ = None
        self.shrinkage_ = None

    def fit(self, ev) -> "LatentMahalanobis":
        self.location_, self.precision_, self.shrinkage_ = fit_shrunk_gaussian(ev.latents.reshape(len(ev.latents), -1))
        return self

    def score(self, ev) -> np.ndarray:
        return mahalanobis(ev.latents.reshape(len(ev.latents), -1), self.location_, self.precision_)

    def state(self):
        return {}, {"location": self.location_, "precision": self.precision_, "shrinkage": np.array(self.shrinkage_)}

    def describe(self) -> str:
        return "Mahalanobis distance of E(x) to a Ledoit-Wolf Gaussian of the ID latents"

    @classmethod
    def from_state(cls, params, arrays):
        obj = cls()
        obj.location_, obj.precision_ = arrays["location"], arrays["precision"]
        obj.shrinkage_ = float(arrays["shrinkage"])
        return obj
