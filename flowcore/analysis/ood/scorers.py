"""OOD scorers that read trajectories, the method registry, and the evidence they share.

:class:`Evidence` holds what the scorers read about N samples (latents, reconstruction error,
trajectory features against the ID attractor bank). :class:`TrajectoryScore` is the paper's
score; :class:`FeatureScore` the two-sided trajectory-feature detector; :class:`CombinedScore`
the z-normalised combination of complementary scorers. ``METHODS`` /
:func:`make_scorer` name every scorer :class:`flowcore.analysis.ood.OODDetector` can fit.
Scores: higher = more OOD.

Methods (``METHODS``):

``trajectory``       the paper's score: mean over the trajectory (z_0 included, run to the stop)
                     of the Euclidean distance to the nearest ID attractor.
``features``         two-sided: Mahalanobis distance (Ledoit–Wolf) of the standardised
                     log-features (steps, path length, ‖V(z_0)‖, distance to the ID attractors
                     at start / mean / end, latent norm, reconstruction error, Mahalanobis
                     distance of z_0 to the ID latents) from the ID ones.
``features_knn``     the same features, mean distance to the 10 nearest ID feature vectors.
``recon_error``, ``latent_norm``, ``latent_mahalanobis``, ``knn_kth50``, ``knn_mean50``,
``knn_kth50_norm``   baselines (:mod:`flowcore.analysis.ood.baselines`).
``combined``,        mean (``combined_max``: max) of the z-scores of ``features``, ``recon_error``,
``combined_max``     ``knn_kth50_norm`` and ``latent_mahalanobis``, each standardised by its own
                     ID fit scores (:class:`~flowcore.analysis.ood.scorers.CombinedScore`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from flowcore.errors import BadInputError, ParameterError
from flowcore.validation import Interval, Options, SequenceOf
from flowcore.analysis.ood.baselines import (
    LatentKNN,
    LatentMahalanobis,
    LatentNorm,
    ReconstructionError,
    Scorer,
    fit_shrunk_gaussian,
    knn_distances,
    mahalanobis,
)

__all__ = ["Evidence", "TrajectoryScore", "FeatureScore", "CombinedScore", "METHODS", "DEFAULT_METHOD",
           "DEFAULT_FEATURES", "COMBINED_COMPONENTS", "make_scorer"]

DEFAULT_FEATURES = ("steps", "path_length", "v0_norm", "dist_start", "dist_mean", "dist_final",
                    "latent_norm", "recon_error", "latent_mahalanobis")
COMBINED_COMPONENTS = ("features", "recon_error", "knn_kth50_norm", "latent_mahalanobis")


@dataclass(frozen=True)
class Evidence:
    """What the scorers read about N samples.

    Attributes
    ----------
    latents : ndarray of shape (N, *latent_shape), float32 — z_0 = E(x)
    recon_error : ndarray of shape (N,), float64, or None — mean((x − D(E(x)))²)
    features : dict of str to ndarray of shape (N,), or None — trajectory features against the bank
    status : ndarray of shape (N,), int8, or None — trajectory status
    """

    latents: np.ndarray
    recon_error: np.ndarray | None = None
    features: dict[str, np.ndarray] | None = None
    status: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.latents)

    def feature_matrix(self, names: Sequence[str], extra: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """(N, len(names)) float64: named features (``extra`` holds ones computed by the caller)."""
        cols = []
        for n in names:
            if extra and n in extra:
                cols.append(extra[n])
            elif n == "recon_error":
                cols.append(self.recon_error)
            elif self.features is not None and n in self.features:
                cols.append(self.features[n])
            else:
                raise ParameterError(f"feature {n!r} is not available")
        return np.stack(cols, axis=1).astype(np.float64)


class TrajectoryScore(Scorer):
    """The paper's trajectory score: ``dist_mean`` against the ID attractor bank (nothing to learn here;
    the bank belongs to the detector)."""

    name = "trajectory"
    needs = frozenset({"trajectory"})

    def _score(self, ev) -> np.ndarray:
        return np.asarray(ev.features["dist_mean"], np.float64)

    def describe(self) -> str:
        return "trajectory score (paper): mean distance to the nearest ID attractor"


class FeatureScore(Scorer):
    """Two-sided density score on standardised log trajectory features.

    Parameters
    ----------
    features : sequence of str, default ``DEFAULT_FEATURES`` — feature names
    method : {"mahalanobis", "knn"}, default "mahalanobis"
        Ledoit–Wolf Mahalanobis or mean k-NN distance.
    k : int, default 10 — neighbours for ``knn``

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_features,), float64 — standardisation of the log-features
    z_location_, z_precision_ : ndarray of shape (k,) and (k, k), float64
        Gaussian of the ID latents (only when ``"latent_mahalanobis"`` is a feature).
    location_, precision_ : ndarray of shape (n_features,) and (n_features, n_features), float64
        ``method="mahalanobis"``: Gaussian of the standardised ID features.
    bank_ : ndarray of shape (n_samples_fit, n_features), float64
        ``method="knn"``: the standardised ID features.
    """

    needs = frozenset({"trajectory", "recon", "latents"})
    _parameter_constraints = {"features": [SequenceOf(str)], "method": [Options(str, {"mahalanobis", "knn"})],
                              "k": [Interval(int, 1, None)]}
    _state_arrays = {"mean": "mean_", "scale": "scale_", "z_location": "z_location_", "z_precision": "z_precision_",
                     "location": "location_", "precision": "precision_", "bank": "bank_"}

    def __init__(self, features: Sequence[str] = DEFAULT_FEATURES, *, method: str = "mahalanobis", k: int = 10):
        self.features = features
        self.method = method
        self.k = k

    @property
    def name(self) -> str:  # type: ignore[override]
        return "features" if self.method == "mahalanobis" else "features_knn"

    @property
    def min_fit_rows(self) -> int:
        """2 for a covariance; k + 1 for ``knn`` (each fit sample leaves itself out)."""
        return max(2, int(self.k) + 1) if self.method == "knn" else 2

    def _raw(self, ev) -> np.ndarray:
        extra = {}
        if "latent_mahalanobis" in self.features:
            extra["latent_mahalanobis"] = mahalanobis(ev.latents.reshape(len(ev.latents), -1), self.z_location_,
                                                      self.z_precision_)
        f = ev.feature_matrix(tuple(self.features), extra)
        return np.log1p(np.maximum(np.nan_to_num(f, nan=0.0, posinf=1e300), 0.0))

    def _transform(self, ev) -> np.ndarray:
        return (self._raw(ev) - self.mean_) / self.scale_

    def _fit(self, ev) -> None:
        if "latent_mahalanobis" in self.features:
            self.z_location_, self.z_precision_, _ = fit_shrunk_gaussian(ev.latents.reshape(len(ev.latents), -1))
        raw = self._raw(ev)
        self.mean_ = raw.mean(0)
        sd = raw.std(0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        f = (raw - self.mean_) / self.scale_
        if self.method == "mahalanobis":
            self.location_, self.precision_, _ = fit_shrunk_gaussian(f)
        else:
            self.bank_ = f

    def _fit_scores(self, ev) -> np.ndarray:
        if self.method == "knn":
            return knn_distances(self.bank_, self.bank_, int(self.k), exclude_self=True).mean(1)
        return self._score(ev)

    def _score(self, ev) -> np.ndarray:
        f = self._transform(ev)
        if self.method == "mahalanobis":
            return mahalanobis(f, self.location_, self.precision_)
        return knn_distances(self.bank_, f, int(self.k)).mean(1)

    def _saved_params(self) -> dict[str, Any]:
        return {"features": list(self.features), "method": self.method, "k": int(self.k)}

    def describe(self) -> str:
        how = "Mahalanobis (Ledoit-Wolf)" if self.method == "mahalanobis" else f"mean {self.k}-NN distance"
        return f"trajectory-feature detector: {how} on {len(self.features)} standardised log-features"


class CombinedScore(Scorer):
    """Complementary scorers, each z-normalised by its ID fit scores, then averaged (or maximised).

    For each component method c (a name of ``METHODS``), ``z_c(x) = (s_c(x) − μ_c) / σ_c`` with μ_c,
    σ_c the mean and standard deviation of c's scores on the ID fit data (leave-one-out for the
    KNN components, in-sample for the others, exactly the scores ``OODDetector`` thresholds);
    the score is ``mean_c z_c`` (``reduce="mean"``) or ``max_c z_c`` (``reduce="max"``). No OOD
    data and nothing but the fit data is used: robust by construction, not tuned on a benchmark.
    Higher = more OOD.

    Parameters
    ----------
    components : sequence of str, default ``COMBINED_COMPONENTS``
        Method names (each built by :func:`make_scorer`); the default combines the two-sided
        trajectory features, reconstruction error, L2-normalised latent KNN and latent Mahalanobis.
    reduce : {"mean", "max"}, default "mean"

    Attributes
    ----------
    components_ : dict of str to Scorer — the fitted component scorers
    loc_, scale_ : ndarray of shape (n_components,), float64 — μ_c and σ_c (σ_c = 1 where 0)
    """

    _parameter_constraints = {"components": [SequenceOf(str)], "reduce": [Options(str, {"mean", "max"})]}

    def __init__(self, components: Sequence[str] = COMBINED_COMPONENTS, *, reduce: str = "mean"):
        self.components = components
        self.reduce = reduce

    @property
    def name(self) -> str:  # type: ignore[override]
        return "combined" if self.reduce == "mean" else "combined_max"

    @property
    def needs(self) -> frozenset:  # type: ignore[override]
        return frozenset().union(*(make_scorer(c).needs for c in _check_components(self.components)))

    @property
    def min_fit_rows(self) -> int:
        """The most any component needs."""
        return max(make_scorer(c).min_fit_rows for c in _check_components(self.components))

    def _matrix(self, ev, fit: bool = False) -> np.ndarray:
        """(N, n_components) float64: the raw component scores (fit scores when ``fit``)."""
        return np.stack([s.fit_scores(ev) if fit else s.score(ev) for s in self.components_.values()], axis=1)

    def _combine(self, raw: np.ndarray) -> np.ndarray:
        z = (raw - self.loc_) / self.scale_
        return z.mean(1) if self.reduce == "mean" else z.max(1)

    def _fit(self, ev) -> None:
        self.components_ = {c: make_scorer(c).fit(ev) for c in _check_components(self.components)}
        raw = self._matrix(ev, fit=True)
        self.loc_ = raw.mean(0)
        sd = raw.std(0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        self._fit_cache = (ev, raw)

    def _fit_scores(self, ev) -> np.ndarray:
        cached = self.__dict__.pop("_fit_cache", None)
        raw = cached[1] if cached is not None and cached[0] is ev else self._matrix(ev, fit=True)
        return self._combine(raw)

    def _score(self, ev) -> np.ndarray:
        return self._combine(self._matrix(ev))

    def _saved_params(self) -> dict[str, Any]:
        return {"components": list(self.components), "reduce": self.reduce}

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(parameters, arrays): ``loc``, ``scale`` and each component's arrays as ``<component>.<name>``."""
        params, _ = super().state()
        arrays = {"loc": self.loc_, "scale": self.scale_}
        for c, s in self.components_.items():
            arrays.update({f"{c}.{k}": v for k, v in s.state()[1].items()})
        return params, arrays

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> "CombinedScore":
        """A fitted combination rebuilt from :meth:`state` output (components built by their method name)."""
        obj = cls(**params)
        try:
            names = _check_components(obj.components)
        except ParameterError as exc:
            raise BadInputError(f"saved combined scorer: {exc}") from None
        if "loc" not in arrays or "scale" not in arrays or arrays["loc"].shape != (len(names),) \
                or arrays["scale"].shape != (len(names),):
            raise BadInputError(f"saved combined scorer: arrays 'loc' and 'scale' of shape ({len(names)},) are required")
        obj.components_ = {}
        for c in names:
            proto = make_scorer(c)
            own = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith(c + ".")}
            obj.components_[c] = type(proto).from_state(proto._saved_params(), own)
        obj.loc_, obj.scale_ = np.asarray(arrays["loc"], np.float64), np.asarray(arrays["scale"], np.float64)
        obj.n_samples_fit_ = None
        return obj

    def describe(self) -> str:
        how = "mean" if self.reduce == "mean" else "max"
        return f"{how} of the ID-fit z-scores of {', '.join(self.components)}"


def _check_components(components: Sequence[str]) -> tuple[str, ...]:
    names = tuple(components)
    bad = [c for c in names if c not in _FACTORIES or c in ("combined", "combined_max")]
    if not names or bad or len(set(names)) != len(names):
        raise ParameterError(f"combined components must be distinct, non-combined method names ({', '.join(_BASE)}); "
                             f"got {list(names)}")
    return names


_FACTORIES = {
    "trajectory": lambda: TrajectoryScore(),
    "features": lambda: FeatureScore(method="mahalanobis"),
    "features_knn": lambda: FeatureScore(method="knn"),
    "recon_error": lambda: ReconstructionError(),
    "latent_norm": lambda: LatentNorm(),
    "latent_mahalanobis": lambda: LatentMahalanobis(),
    "knn_kth50": lambda: LatentKNN(50, reduce="kth"),
    "knn_mean50": lambda: LatentKNN(50, reduce="mean"),
    "knn_kth50_norm": lambda: LatentKNN(50, reduce="kth", normalize=True),
}
_BASE = tuple(_FACTORIES)
_FACTORIES["combined"] = lambda: CombinedScore(reduce="mean")
_FACTORIES["combined_max"] = lambda: CombinedScore(reduce="max")
METHODS = tuple(_FACTORIES)
#: the method ``OODDetector`` and ``flowcore ood fit`` score with when none is named (chosen on validation rows
#: by ``studies/ood_benchmark.py``'s default rule; docs/ood-benchmark.md, "Which default?")
DEFAULT_METHOD = "features_knn"
_CLASSES = {c.__name__: c for c in (TrajectoryScore, FeatureScore, ReconstructionError, LatentNorm,
                                     LatentMahalanobis, LatentKNN, CombinedScore)}


def make_scorer(name: str) -> Scorer:
    """A fresh scorer by method name (see ``METHODS``)."""
    if name not in _FACTORIES:
        raise ParameterError(f"unknown OOD method {name!r}; choose from {', '.join(METHODS)}")
    return _FACTORIES[name]()
