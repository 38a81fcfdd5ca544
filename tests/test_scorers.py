"""Every OOD scorer in the house estimator style: __init__ stores, fit validates, NotFittedError before fit."""

import inspect

import numpy as np
import pytest

from flowcore.analysis.ood.baselines import LatentKNN, LatentMahalanobis, LatentNorm, ReconstructionError, Scorer
from flowcore.analysis.ood.scorers import _CLASSES, DEFAULT_FEATURES, METHODS, Evidence, FeatureScore, \
    TrajectoryScore, make_scorer
from flowcore.errors import BadInputError, NotFittedError, ParameterError

TRAJ_FEATURES = [f for f in DEFAULT_FEATURES if f not in ("recon_error", "latent_mahalanobis")]


def _evidence(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(n, 4)) + shift).astype(np.float32)
    feats = {f: np.abs(rng.normal(size=n)) + shift for f in TRAJ_FEATURES}
    return Evidence(latents=z, recon_error=np.abs(rng.normal(size=n)) + shift, features=feats)


ALL = [ReconstructionError(), LatentNorm(), LatentKNN(5), LatentKNN(5, reduce="mean", normalize=True, squared=True),
       LatentMahalanobis(), TrajectoryScore(), FeatureScore(), FeatureScore(method="knn", k=4)]
IDS = [f"{type(s).__name__}-{s.name}" for s in ALL]


def _fresh(s):
    return type(s)(**s.get_params())


@pytest.mark.parametrize("scorer", ALL, ids=IDS)
def test_unfitted_use_raises_not_fitted(scorer):
    s = _fresh(scorer)
    ev = _evidence(30, 0)
    for call, name in ((lambda: s.score(ev), "score"), (lambda: s.fit_scores(ev), "fit_scores"),
                       (lambda: s.state(), "state")):
        with pytest.raises(NotFittedError) as info:
            call()
        msg = str(info.value)
        assert msg.startswith(f"{type(s).__name__}.{name}: ") and "call fit" in msg and "\n" not in msg
    assert s.fit(ev) is s
    assert s.score(ev).shape == (30,) and s.n_samples_fit_ == 30


@pytest.mark.parametrize("scorer", ALL, ids=IDS)
def test_init_only_stores_and_get_params(scorer):
    s = _fresh(scorer)
    assert vars(s) == s.get_params()  # nothing learned, nothing derived before fit
    sig = inspect.signature(type(s).__init__)
    params = [p for p in sig.parameters.values()
              if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    assert all(p.kind == p.KEYWORD_ONLY for p in params[1:])  # options after the first are keyword-only
    assert set(s.get_params()) == {p.name for p in params}
    s.fit(_evidence(40, 1))
    learned = set(vars(s)) - set(s.get_params())
    assert learned and all(a.endswith("_") for a in learned)


def test_get_params_returns_constructor_arguments():
    assert LatentKNN(7, reduce="mean", squared=True).get_params() == {"k": 7, "reduce": "mean", "normalize": False,
                                                                      "squared": True}
    feats = ("steps", "path_length")
    assert FeatureScore(feats, method="knn", k=3).get_params() == {"features": feats, "method": "knn", "k": 3}
    assert LatentMahalanobis().get_params() == {} and TrajectoryScore().get_params() == {}
    with pytest.raises(TypeError):
        LatentKNN(5, "mean")  # reduce is keyword-only


@pytest.mark.parametrize("make,match", [
    (lambda: LatentKNN(0), "k must be an int"),
    (lambda: LatentKNN(2.5), "k must be an int"),
    (lambda: LatentKNN(5, reduce="max"), "reduce must be one of"),
    (lambda: LatentKNN(5, normalize="yes"), "normalize must be a bool"),
    (lambda: FeatureScore(method="svm"), "method must be one of"),
    (lambda: FeatureScore(k=0, method="knn"), "k must be an int"),
    (lambda: FeatureScore(features="steps"), "features must be a list"),
    (lambda: FeatureScore(features=[]), "features must be a list"),
])
def test_fit_checks_the_constraints_table(make, match):
    s = make()  # construction never validates
    with pytest.raises(ParameterError, match=match) as info:
        s.fit(_evidence(30, 2))
    assert isinstance(info.value, BadInputError) and str(info.value).startswith(type(s).__name__ + ": ")
    assert not hasattr(s, "n_samples_fit_")


def test_data_problems_stay_data_errors():
    from flowcore.errors import DataError

    with pytest.raises(DataError, match="knn_kth50 needs at least 51 ID samples to fit, got 20"):
        LatentKNN(50).fit(_evidence(20, 3))
    with pytest.raises(ParameterError, match="feature 'nope'"):
        FeatureScore(["nope"]).fit(_evidence(20, 3))


@pytest.mark.parametrize("scorer", ALL, ids=IDS)
def test_state_round_trip(scorer):
    s = _fresh(scorer).fit(_evidence(60, 4))
    ev = _evidence(25, 5, shift=0.5)
    params, arrays = s.state()
    back = type(s).from_state(params, dict(arrays))
    np.testing.assert_array_equal(back.score(ev), s.score(ev))
    assert back.name == s.name and back.describe() == s.describe()
    assert back.n_samples_fit_ is None  # restored, not fitted here


def test_saved_state_layout_unchanged():
    ev = _evidence(60, 6)
    params, arrays = LatentKNN(5, reduce="mean").fit(ev).state()
    assert params == {"k": 5, "reduce": "mean", "normalize": False, "squared": False} and list(arrays) == ["bank"]
    params, arrays = LatentMahalanobis().fit(ev).state()
    assert params == {} and list(arrays) == ["location", "precision", "shrinkage"] and arrays["shrinkage"].ndim == 0
    params, arrays = FeatureScore().fit(ev).state()
    assert params == {"features": list(DEFAULT_FEATURES), "method": "mahalanobis", "k": 10}
    assert list(arrays) == ["mean", "scale", "z_location", "z_precision", "location", "precision"]
    params, arrays = FeatureScore(["steps", "dist_mean"], method="knn").fit(ev).state()
    assert list(arrays) == ["mean", "scale", "bank"]
    assert ReconstructionError().fit(ev).state() == ({}, {})


def test_registry_scorers_are_house_style():
    for m in METHODS:
        s = make_scorer(m)
        assert isinstance(s, Scorer) and type(s).__name__ in _CLASSES and s.name == m
    with pytest.raises(ParameterError, match="unknown OOD method"):
        make_scorer("nope")
