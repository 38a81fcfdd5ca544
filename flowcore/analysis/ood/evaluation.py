"""OOD evaluation: every method × every OOD set, with the metric conventions named.

``evaluate(detector, x_id, {"noise": x_noise, ...})`` scores the ID data once and each OOD set
once with ``detector.score_all`` (one encoding and one trajectory pass per dataset, all methods
together), computes :func:`flowcore.analysis.ood.metrics.ood_metrics` for every method × set and
returns an :class:`~flowcore.analysis.ood.report.OODReport`: one row per method × set plus a
per-method mean row, the raw scores, the method descriptions and the settings (detector
parameters, attractor bank, the metric conventions in words). Saving it and drawing its figures
are the report's and the face's business (:meth:`OODReport.save`,
:func:`flowcore.plots.ood.write_report`).

Scores are **higher = more OOD** everywhere. Needs scikit-learn (metrics): the ``analysis`` extra.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping, Sequence

import numpy as np

from flowcore.analysis.ood.metrics import METRICS, ood_metrics
from flowcore.analysis.ood.report import CONVENTIONS, MEAN, OODReport, OODRow, _frozen, _stem
from flowcore.errors import BackendError, DataError, ParameterError
from flowcore.io import to_jsonable

__all__ = ["OODRow", "OODReport", "evaluate", "CONVENTIONS", "MEAN"]


# ------------------------------------------------------------------------ evaluate
def evaluate(detector: Any, x_id: Any, ood_sets: Mapping[str, Any], *,
             methods: Sequence[str] | None = None) -> OODReport:
    """Score ID data and every OOD set once, and compute all metrics for every method × set.

    Parameters
    ----------
    detector : fitted OODDetector, or any object with ``score_all``
        Required: ``score_all(X) -> dict[str, ndarray of shape (N,)]``, higher = more OOD.
        Read when present (else left out of the settings): ``methods`` (order of the rows;
        default: ``score_all``'s key order), ``params()``, ``bank_info_``, ``thresholds_``,
        ``scorers_[m].describe()`` (default description: the method name).
    x_id : array-like of shape (n_id, *input_shape)
        ID evaluation data (held out from the detector's fit data).
    ood_sets : dict of str to array-like of shape (n_ood, *input_shape)
        OOD data sets by name, in report order. ``"mean"`` is reserved.
    methods : sequence of str, optional
        Report these methods only (each must be among the detector's); default all.

    Returns
    -------
    OODReport
        ``len(methods) * (len(ood_sets) + 1)`` rows (the last ``len(methods)`` are the means).

    Raises
    ------
    ParameterError
        No OOD sets, a bad set name, an unknown method, or ``detector`` without ``score_all``.
    DataError
        A method returned scores of the wrong length or with NaN/Inf.

    Examples
    --------
    >>> det = OODDetector(bundle).fit(x_train)                       # doctest: +SKIP
    >>> rep = evaluate(det, x_test, {"noise": x_noise})              # doctest: +SKIP
    >>> print(rep.table()); rep.save("ood_report/")                  # doctest: +SKIP
    """
    if not callable(getattr(detector, "score_all", None)):
        raise ParameterError(f"{type(detector).__name__} has no score_all(X); pass a fitted OODDetector")
    try:
        import sklearn  # noqa: F401  # lazy: optional extra scikit-learn (flowcore[analysis])
    except ImportError:
        raise BackendError("OOD metrics need scikit-learn: pip install 'flowcore[analysis]'") from None
    if not isinstance(ood_sets, Mapping) or not ood_sets:
        raise ParameterError("ood_sets must be a non-empty dict of name -> array")
    stems: dict[str, str] = {}
    for name in ood_sets:
        if not isinstance(name, str) or not name.strip():
            raise ParameterError(f"OOD set names must be non-empty strings, got {name!r}")
        if name == MEAN:
            raise ParameterError(f"the OOD set name {MEAN!r} is reserved for the mean rows; rename that set")
        if _stem(name) in stems.values():
            raise ParameterError(f"OOD set names {name!r} and {next(k for k, v in stems.items() if v == _stem(name))!r} "
                                "give the same file name; rename one")
        stems[name] = _stem(name)

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    id_all = detector.score_all(x_id)
    seconds["id"] = time.perf_counter() - t0
    available = tuple(getattr(detector, "methods", None) or tuple(id_all))
    chosen = available if methods is None else tuple(methods)
    unknown = [m for m in chosen if m not in id_all]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise ParameterError(f"methods {list(chosen)} must be distinct and among the detector's: {list(id_all)}")

    def checked(scores: dict, m: str, what: str, n: int | None) -> np.ndarray:
        a = np.asarray(scores[m], np.float64)
        if a.ndim != 1 or (n is not None and len(a) != n):
            raise DataError(f"method {m!r} returned scores of shape {a.shape} on {what}; expected ({n},)")
        if not np.all(np.isfinite(a)):
            raise DataError(f"method {m!r} returned NaN or Inf scores on {what}")
        return _frozen(a)

    n_id_in = len(x_id) if hasattr(x_id, "__len__") else None
    id_scores = {m: checked(id_all, m, "the ID data", n_id_in) for m in chosen}
    ood_scores: dict[str, dict[str, np.ndarray]] = {}
    for name, x in ood_sets.items():
        t0 = time.perf_counter()
        got = detector.score_all(x)
        seconds[name] = time.perf_counter() - t0
        missing = [m for m in chosen if m not in got]
        if missing:
            raise DataError(f"score_all returned no scores for {missing} on OOD set {name!r}")
        ood_scores[name] = {m: checked(got, m, f"OOD set {name!r}", len(x) if hasattr(x, "__len__") else None)
                            for m in chosen}

    n_id = len(next(iter(id_scores.values())))
    rows = [OODRow(m, s, n_id, len(ood_scores[s][m]), **ood_metrics(id_scores[m], ood_scores[s][m]))
            for s in ood_sets for m in chosen]
    for m in chosen:
        mine = [r for r in rows if r.method == m]
        means = {k: float(np.mean([getattr(r, k) for r in mine])) for k in METRICS}
        rows.append(OODRow(m, MEAN, n_id, int(sum(r.n_ood for r in mine)), **means))

    scorers = getattr(detector, "scorers_", None) or {}
    descriptions = {m: (scorers[m].describe() if m in scorers and hasattr(scorers[m], "describe") else m)
                    for m in chosen}
    params = detector.params() if callable(getattr(detector, "params", None)) else None
    thresholds = getattr(detector, "thresholds_", None)
    settings = {
        "methods": list(chosen), "ood_sets": list(ood_sets), "n_id": n_id,
        "n_ood": {s: len(next(iter(v.values()))) for s, v in ood_scores.items()},
        "detector": type(detector).__name__, "params": params, "bank": getattr(detector, "bank_info_", None),
        "thresholds": {m: float(thresholds[m]) for m in chosen if m in thresholds} if thresholds else None,
        "providers": _providers(detector), "conventions": dict(CONVENTIONS),
        "score_seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    settings = json.loads(json.dumps(to_jsonable(settings), default=str))
    return OODReport(rows=tuple(rows), id_scores=id_scores, ood_scores=ood_scores, descriptions=descriptions,
                     settings=settings)


def _providers(detector: Any) -> list[str] | None:
    """ONNX Runtime providers in use, when the detector exposes them (``providers_`` or its LatentMap)."""
    got = getattr(detector, "providers_", None)
    if got is None:
        lmap = getattr(detector, "_lmap_cache", None)
        try:
            got = lmap.providers if lmap is not None else None
        except Exception:  # a closed or failed session: leave it out
            got = None
    return list(got) if got is not None else None
