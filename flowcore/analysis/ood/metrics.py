"""OOD metrics, with the conventions named (ANCHORS.md §1).

Scores: **higher = more out-of-distribution**, everywhere in flowcore.

- ``auroc`` — area under the ROC curve with OOD as the positive class (threshold-free).
- ``aupr_in`` / ``aupr_out`` — OpenOOD v1.5's recipe: ``precision_recall_curve`` then
  ``auc(recall, precision)`` (trapezoid area, not ``average_precision_score``); AUPR-In takes
  ID as positive with score −s, AUPR-Out takes OOD as positive with score s.
- ``fpr95_id_positive`` — the paper / KNN-OOD convention: the threshold keeps 95 % of ID
  (ID-positive TPR = 0.95); the FPR is the share of OOD **accepted as ID** there.
- ``fpr95_ood_positive`` — OpenOOD v1.5 / pytorch-ood: the threshold catches 95 % of OOD
  (``roc_curve(ood, s)``, first point with TPR ≥ 0.95); the FPR is the share of ID
  **flagged as OOD** there.

Both FPR95s are lower-is-better; they are different points of the ROC curve. All values are
fractions in [0, 1] (multiply by 100 for the paper's tables). Requires scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowcore.errors import DataError

__all__ = ["auroc", "aupr_in", "aupr_out", "fpr95_id_positive", "fpr95_ood_positive", "ood_metrics", "METRICS"]

METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95_id_positive", "fpr95_ood_positive")


def _split(id_scores: Any, ood_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(id_scores, np.float64).ravel()
    b = np.asarray(ood_scores, np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        raise DataError("metrics need at least one ID and one OOD score")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise DataError("scores contain NaN or Inf")
    return a, b


def _labels(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([np.zeros(len(a)), np.ones(len(b))]), np.concatenate([a, b])


def auroc(id_scores, ood_scores) -> float:
    """Area under ROC, OOD positive, score higher = OOD. 0.5 = chance; < 0.5 = inverted."""
    from sklearn.metrics import roc_auc_score  # lazy: optional extra scikit-learn (flowcore[analysis])

    y, s = _labels(*_split(id_scores, ood_scores))
    return float(roc_auc_score(y, s))


def aupr_in(id_scores, ood_scores) -> float:
    """AUPR with ID as the positive class (score −s), OpenOOD's trapezoid recipe."""
    from sklearn.metrics import auc, precision_recall_curve  # lazy: optional extra scikit-learn (flowcore[analysis])

    y, s = _labels(*_split(id_scores, ood_scores))
    precision, recall, _ = precision_recall_curve(1 - y, -s)
    return float(auc(recall, precision))


def aupr_out(id_scores, ood_scores) -> float:
    """AUPR with OOD as the positive class (score s), OpenOOD's trapezoid recipe."""
    from sklearn.metrics import auc, precision_recall_curve  # lazy: optional extra scikit-learn (flowcore[analysis])

    y, s = _labels(*_split(id_scores, ood_scores))
    precision, recall, _ = precision_recall_curve(y, s)
    return float(auc(recall, precision))


def fpr95_id_positive(id_scores, ood_scores) -> float:
    """Share of OOD accepted as ID at the threshold that keeps 95 % of ID (paper, KNN-OOD).

    ID is positive with confidence −s; on ``roc_curve(is_id, −s)`` take the first point with
    TPR ≥ 0.95 and return its FPR (OOD samples scoring at or below the threshold).
    """
    from sklearn.metrics import roc_curve  # lazy: optional extra scikit-learn (flowcore[analysis])

    y, s = _labels(*_split(id_scores, ood_scores))
    fpr, tpr, _ = roc_curve(1 - y, -s)
    return float(fpr[np.searchsorted(tpr, 0.95, side="left")])


def fpr95_ood_positive(id_scores, ood_scores) -> float:
    """Share of ID flagged as OOD at the threshold that catches 95 % of OOD (OpenOOD v1.5, pytorch-ood)."""
    from sklearn.metrics import roc_curve  # lazy: optional extra scikit-learn (flowcore[analysis])

    y, s = _labels(*_split(id_scores, ood_scores))
    fpr, tpr, _ = roc_curve(y, s)
    return float(fpr[np.searchsorted(tpr, 0.95, side="left")])


def ood_metrics(id_scores, ood_scores) -> dict[str, float]:
    """All five metrics (fractions) for one ID/OOD pair; higher score = more OOD."""
    return {name: globals()[name](id_scores, ood_scores) for name in METRICS}
