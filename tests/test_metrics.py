"""OOD metrics against hand-computed values, and the two FPR95 conventions."""

import numpy as np
import pytest
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from flowcore.analysis.ood.metrics import (
    aupr_in,
    aupr_out,
    auroc,
    fpr95_id_positive,
    fpr95_ood_positive,
    ood_metrics,
)
from flowcore.errors import DataError

ID = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
OOD = [0.35, 0.75, 0.95, 1.1, 1.2]


def test_hand_computed():
    # AUROC: OOD-above-ID pairs 3 + 7 + 9 + 10 + 10 = 39 of 50
    assert auroc(ID, OOD) == pytest.approx(0.78)
    # keep 95 % of ID → threshold 1.0 (9/10 < 0.95) → OOD at or below it accepted: 0.35, 0.75, 0.95
    assert fpr95_id_positive(ID, OOD) == pytest.approx(3 / 5)
    # catch 95 % of OOD → threshold 0.35 (4/5 < 0.95) → ID at or above it flagged: 0.4 … 1.0
    assert fpr95_ood_positive(ID, OOD) == pytest.approx(7 / 10)


def test_conventions_swap_under_role_swap():
    """Swapping which set is ID and negating scores turns one convention into the other."""
    a, b = np.array(ID), np.array(OOD)
    assert fpr95_id_positive(a, b) == pytest.approx(fpr95_ood_positive(-b, -a))
    assert fpr95_ood_positive(a, b) == pytest.approx(fpr95_id_positive(-b, -a))


def test_aupr_follows_openood_recipe():
    y = np.r_[np.zeros(len(ID)), np.ones(len(OOD))]
    s = np.r_[ID, OOD]
    p, r, _ = precision_recall_curve(1 - y, -s)
    assert aupr_in(ID, OOD) == pytest.approx(auc(r, p))
    p, r, _ = precision_recall_curve(y, s)
    assert aupr_out(ID, OOD) == pytest.approx(auc(r, p))
    fpr, tpr, _ = roc_curve(y, s)
    assert auroc(ID, OOD) == pytest.approx(auc(fpr, tpr))


def test_perfect_inverted_and_ties():
    m = ood_metrics([0, 0, 0], [1, 1])
    assert m["auroc"] == 1.0 and m["fpr95_id_positive"] == 0.0 and m["fpr95_ood_positive"] == 0.0
    assert auroc([1, 1], [0, 0, 0]) == 0.0  # reported as computed, never flipped
    tied = ood_metrics([0.5] * 4, [0.5] * 4)
    assert tied["auroc"] == 0.5 and tied["fpr95_id_positive"] == 1.0 and tied["fpr95_ood_positive"] == 1.0


def test_bad_scores():
    with pytest.raises(DataError, match="NaN"):
        auroc([0.1, np.nan], [1.0])
    with pytest.raises(DataError, match="at least one"):
        auroc([], [1.0])
