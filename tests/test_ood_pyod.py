"""OODDetector under PyOD's and scikit-learn's conventions: flat X, fitted attributes, clone, PyOD utilities."""

from __future__ import annotations

import numpy as np
import pytest

from flowcore.analysis.ood.detector import OODDetector
from flowcore.analysis.ood.single import FeatureDetector, TrajectoryDetector
from flowcore.errors import NotFittedError, ParameterError

import pyod  # noqa: F401  (a dev dependency: missing must fail, never skip)
from pyod.models.base import BaseDetector
from pyod.models.knn import KNN
from pyod.utils.data import evaluate_print
from pyod.utils.utility import precision_n_scores, standardizer
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SkNotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.utils.validation import check_is_fitted

METHODS = ("trajectory", "features", "features_knn", "recon_error", "knn_kth50_norm")  # features_knn: the default


@pytest.fixture(scope="module")
def split(digits):
    """ID test digits and OOD (uniform noise, inverted digits), flat (N, 64) and image-shaped (N, 1, 8, 8)."""
    rng = np.random.default_rng(7)
    x_id = digits["x_test"][:150]
    x_ood = np.concatenate([rng.uniform(0, 1, size=(60, 1, 8, 8)).astype(np.float32),
                            1.0 - digits["x_test"][150:210]])
    x = np.concatenate([x_id, x_ood])
    y = np.r_[np.zeros(len(x_id), np.int64), np.ones(len(x_ood), np.int64)]
    return x, x.reshape(len(x), -1), y


@pytest.fixture(scope="module")
def fitted(digits_bundle, digits):
    # calibration_split=0: PyOD's in-sample threshold, which test_fitted_attributes_follow_pyod compares
    return OODDetector(digits_bundle, methods=METHODS, providers="cpu", calibration_split=0).fit(digits["x_train"])


def test_flat_and_image_shaped_x_give_identical_scores(digits_bundle, digits, fitted, split):
    x, x_flat, _ = split
    assert x_flat.shape == (len(x), 64)
    for m in METHODS:
        np.testing.assert_array_equal(fitted.decision_function(x_flat, method=m), fitted.decision_function(x, method=m))
    np.testing.assert_array_equal(fitted.predict(x_flat), fitted.predict(x))
    np.testing.assert_array_equal(fitted.predict_proba(x_flat), fitted.predict_proba(x))
    flat_all, img_all = fitted.score_all(x_flat), fitted.score_all(x)
    for m in METHODS:
        np.testing.assert_array_equal(flat_all[m], img_all[m])
    for k, v in fitted.features(x_flat[:20]).items():
        np.testing.assert_array_equal(v, fitted.features(x[:20])[k])
    # fitting on flat ID data gives the same detector
    flat_fit = OODDetector(digits_bundle, methods=METHODS, providers="cpu",
                           calibration_split=0).fit(digits["x_train"].reshape(-1, 64))
    np.testing.assert_array_equal(flat_fit.decision_scores_, fitted.decision_scores_)
    assert flat_fit.thresholds_ == fitted.thresholds_
    np.testing.assert_array_equal(flat_fit.decision_function(x_flat), fitted.decision_function(x))


class _PyODReference(BaseDetector):
    """PyOD's own BaseDetector over given score arrays: its threshold, labels and predict_proba code."""

    def __init__(self, fit_scores, test_scores, contamination):
        super().__init__(contamination=contamination)
        self.fit_scores, self.test_scores = fit_scores, test_scores

    def fit(self, X, y=None):
        self._set_n_classes(y)
        self.decision_scores_ = self.fit_scores
        self._process_decision_scores()
        return self

    def decision_function(self, X):
        return self.test_scores


def test_fitted_attributes_follow_pyod(fitted, split, digits):
    x, x_flat, _ = split
    s = fitted.decision_function(x)
    ref = _PyODReference(fitted.decision_scores_, s, fitted.contamination).fit(x_flat)
    assert fitted.decision_scores_.shape == (len(digits["x_train"]),)
    assert fitted.threshold_ == pytest.approx(ref.threshold_, rel=1e-12)
    np.testing.assert_array_equal(fitted.labels_, ref.labels_)
    assert fitted.labels_.dtype == np.int64 and 0 < fitted.labels_.mean() <= 0.06
    for method in ("linear", "unify"):
        p = fitted.predict_proba(x_flat, method=method)
        assert p.shape == (len(x), 2) and p.dtype == np.float64
        np.testing.assert_allclose(p, ref.predict_proba(x_flat, method=method), rtol=0, atol=1e-12)
        np.testing.assert_allclose(p.sum(1), 1.0)
    # the linear rule, written out: min-max against the fit scores, clipped to [0, 1]
    lo, hi = fitted.decision_scores_.min(), fitted.decision_scores_.max()
    np.testing.assert_allclose(fitted.predict_proba(x)[:, 1], np.clip((s - lo) / (hi - lo), 0, 1), atol=1e-12)
    assert fitted.predict_proba(x)[len(x) // 2:, 1].mean() > fitted.predict_proba(x)[:150, 1].mean()
    with pytest.raises(ParameterError, match="'linear' or 'unify'"):
        fitted.predict_proba(x, method="sigmoid")


def test_pyod_utilities_accept_the_detector(fitted, split, digits, capsys):
    x, x_flat, y = split
    scores = fitted.decision_function(x_flat)
    evaluate_print("flowcore", y, scores)
    out = capsys.readouterr().out
    assert out.startswith("flowcore ROC:") and "precision @ rank n:" in out
    auc = roc_auc_score(y, scores)
    assert float(out.split("ROC:")[1].split(",")[0]) == pytest.approx(round(auc, 4))
    assert auc > 0.9 and precision_n_scores(y, scores) > 0.8
    # next to a PyOD detector on the same flat split, combined with PyOD's own tools
    knn = KNN().fit(digits["x_train"].reshape(-1, 64))
    both = np.column_stack([scores, knn.decision_function(x_flat)])
    train = np.column_stack([fitted.decision_scores_, knn.decision_scores_])
    train_n, both_n = standardizer(train, both)
    combined = both_n.mean(1)  # pyod.models.combination.average (needs the extra `combo`)
    assert combined.shape == (len(x),) and roc_auc_score(y, combined) > 0.8
    np.testing.assert_allclose(train_n.mean(0), 0, atol=1e-9)


def test_clone_of_an_unfitted_detector(digits_bundle, digits, fitted):
    det = OODDetector(digits_bundle, methods=METHODS, contamination=0.1, seed=3, providers="cpu")
    with pytest.raises(SkNotFittedError):
        check_is_fitted(det)
    twin = clone(det)
    assert type(twin) is OODDetector and twin is not det
    p, q = det.get_params(), twin.get_params()
    assert p.keys() == q.keys() and p == q and p["contamination"] == 0.1 and p["seed"] == 3
    assert {"bundle", "methods", "default", "contamination", "tol", "providers"} <= set(p)
    with pytest.raises(NotFittedError):
        twin.decision_function(digits["x_test"][:2])
    # a clone of a fitted detector is unfitted, with the same parameters, and refits to the same scores
    fresh = clone(fitted)
    with pytest.raises(NotFittedError):
        fresh.threshold_
    fresh.fit(digits["x_train"])
    check_is_fitted(fresh)
    np.testing.assert_array_equal(fresh.decision_scores_, fitted.decision_scores_)
    # the single-method detectors clone with their own parameters
    fd = clone(FeatureDetector(digits_bundle, method="knn", providers="cpu"))
    assert fd.method == "knn" and fd.methods == ("features_knn",) and fd.default == "features_knn"
    td = clone(TrajectoryDetector(digits_bundle, max_steps=500))
    assert td.methods == ("trajectory",) and td.get_params()["max_steps"] == 500


def test_get_params_set_params_round_trip(digits_bundle, digits, tmp_path):
    det = OODDetector(digits_bundle, methods=("recon_error", "knn_kth50_norm"), default="recon_error", providers="cpu")
    params = det.get_params()
    assert params["methods"] == ("recon_error", "knn_kth50_norm") and params["bundle"] is digits_bundle
    assert det.set_params(**params) is det and det.get_params() == params
    det.set_params(contamination=0.2, default="knn_kth50_norm")
    assert det.get_params() == {**params, "contamination": 0.2, "default": "knn_kth50_norm"}
    det.fit(digits["x_train"])  # the default calibration: a 0.2 split of the 1437 rows, held out of the fit
    assert det.calibration_info_["source"] == "split" and det.n_fit_ == len(digits["x_train"]) - 287
    assert np.mean(det.calibration_scores_[det.default] > det.threshold_) == pytest.approx(0.2, abs=0.01)
    with pytest.raises(ParameterError, match="invalid parameter 'nope'"):
        det.set_params(nope=1)
    # a loaded detector reports the parameters it was saved with, and clones
    det.save(tmp_path / "det")
    back = OODDetector.load(tmp_path / "det", providers="cpu")
    for k in det.params():
        assert back.get_params()[k] == det.get_params()[k], k
    assert clone(back).get_params()["contamination"] == 0.2
