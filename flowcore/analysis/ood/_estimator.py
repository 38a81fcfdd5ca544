"""scikit-learn and PyOD estimator conventions for the OOD detectors, without importing either.

- :class:`ParamsMixin` — ``get_params`` / ``set_params`` read from the constructor's signature,
  so ``sklearn.base.clone`` works on an unfitted detector (the constructor stores each argument
  unchanged under its own name), and ``__sklearn_tags__`` for ``check_is_fitted``;
- :class:`PyODMixin` — PyOD's ``labels_``, ``predict_proba`` and ``fit_predict``, read from a
  detector's ``decision_scores_``, ``threshold_``, ``decision_function`` and ``fit``;
- :func:`outlier_proba` — PyOD's ``BaseDetector.predict_proba`` rule on score arrays.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from flowcore.errors import ParameterError

__all__ = ["ParamsMixin", "PyODMixin", "outlier_proba"]


class ParamsMixin:
    """``get_params`` / ``set_params`` as in scikit-learn's ``BaseEstimator``.

    The parameter names are the named arguments of ``type(self).__init__``; a subclass whose
    ``__init__`` takes ``**kwargs`` (passed on to its parent) also has its parents' names.
    """

    @classmethod
    def _param_defaults(cls) -> dict[str, Any]:
        """Constructor argument name → default (``inspect.Parameter.empty`` where none), in order."""
        out: dict[str, Any] = {}
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters.values()
            for p in params:
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    out.setdefault(p.name, p.default)
            if not any(p.kind == p.VAR_KEYWORD for p in params):
                break
        return out

    @classmethod
    def _get_param_names(cls) -> list[str]:
        return list(cls._param_defaults())

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments as stored: dict of name → value (``deep`` has no effect).

        An argument an object does not hold (one built by ``load``) reads as its default.

        Parameters
        ----------
        deep : bool, default True
            Accepted for scikit-learn compatibility; no parameter is itself an estimator.
        """
        return {name: getattr(self, name, default) for name, default in self._param_defaults().items()}

    def set_params(self, **params: Any):
        """Set constructor arguments by name; returns self. Fitted state is kept until the next ``fit``.

        Raises
        ------
        ParameterError
            For a name that is not a constructor argument.
        """
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ParameterError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                     f"valid parameters: {', '.join(valid)}")
            setattr(self, name, value)
        self.__dict__.pop("_lmap_cache", None)  # bundle or runtime settings may have changed
        return self

    def __sklearn_tags__(self):
        """scikit-learn's tags (an unsupervised outlier detector), for ``check_is_fitted`` and the like.

        Called by scikit-learn only, so its import here never runs without scikit-learn loaded.
        """
        from sklearn.utils import Tags, TargetTags  # noqa: PLC0415

        return Tags(estimator_type="outlier_detector", target_tags=TargetTags(required=False), requires_fit=True)


class PyODMixin:
    """PyOD's ``BaseDetector`` conventions over a detector's own ``decision_scores_``, ``threshold_``,
    ``decision_function(X)`` and ``fit(X)`` (which the class using the mixin defines)."""

    @property
    def labels_(self) -> np.ndarray:
        """ndarray of shape (n_fit,), int64: 1 where a fit score is above ``threshold_`` (PyOD)."""
        return (self.decision_scores_ > self.threshold_).astype(np.int64)

    def predict_proba(self, X: Any, method: str = "linear") -> np.ndarray:
        """[P(ID), P(OOD)] per sample of ``X``: ndarray of shape (N, 2), float64 (PyOD's rule).

        ``method="linear"`` scales the default method's score min-max against
        ``decision_scores_`` and clips to [0, 1]; ``"unify"`` uses the error function of the
        score standardised by the fit scores (see :func:`outlier_proba`).
        """
        return outlier_proba(self.decision_scores_, self.decision_function(X), method)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit on ``X`` and return ``labels_``: ndarray of shape (N,), int64 (1 = OOD)."""
        return self.fit(X).labels_


_erf = np.frompyfunc(math.erf, 1, 1)


def outlier_proba(train_scores: np.ndarray, test_scores: np.ndarray, method: str = "linear") -> np.ndarray:
    """PyOD's conversion of outlier scores to [P(inlier), P(outlier)].

    Parameters
    ----------
    train_scores : ndarray of shape (n_fit,), float
        The scores of the fit data (``decision_scores_``).
    test_scores : ndarray of shape (n,), float
        The scores to convert.
    method : {"linear", "unify"}, default "linear"
        ``"linear"``: min-max scaling against the fit scores, clipped to [0, 1] (a constant fit
        score range scales by 1, as scikit-learn's ``MinMaxScaler``); ``"unify"``:
        ``erf((s − mean) / (std · √2))`` clipped to [0, 1] (Kriegel et al. 2011).

    Returns
    -------
    ndarray of shape (n, 2), float64
        Column 0 is the probability of ID (inlier), column 1 of OOD (outlier); rows sum to 1.
    """
    train = np.asarray(train_scores, np.float64).ravel()
    test = np.asarray(test_scores, np.float64).ravel()
    if method == "linear":
        lo, span = train.min(), train.max() - train.min()
        p = (test - lo) / (span if span > 0 else 1.0)
    elif method == "unify":
        sigma = train.std()
        p = _erf((test - train.mean()) / ((sigma if sigma > 0 else 1.0) * math.sqrt(2))).astype(np.float64)
    else:
        raise ParameterError(f"method must be 'linear' or 'unify', got {method!r}")
    p = np.clip(p, 0.0, 1.0)
    return np.stack([1.0 - p, p], axis=1)
