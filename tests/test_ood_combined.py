"""CombinedScore (``combined``, ``combined_max``): z-normalised components, registry, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flowcore.analysis.ood.detector import METHODS, OODDetector
from flowcore.analysis.ood.scorers import COMBINED_COMPONENTS, CombinedScore, make_scorer
from flowcore.errors import BadInputError, ParameterError

DET_METHODS = ("combined", "combined_max", *COMBINED_COMPONENTS)


@pytest.fixture(scope="module")
def fitted(digits_bundle, digits):
    return OODDetector(digits_bundle, methods=DET_METHODS, default="combined", providers="cpu").fit(digits["x_train"])


@pytest.fixture(scope="module")
def x_eval(digits):
    rng = np.random.default_rng(3)
    noise = rng.uniform(0, 1, size=(40, 1, 8, 8)).astype(np.float32)
    return np.concatenate([digits["x_test"][:80], noise, 1.0 - digits["x_test"][80:120]])


def test_registered():
    assert "combined" in METHODS and "combined_max" in METHODS
    assert make_scorer("combined").name == "combined" and make_scorer("combined_max").name == "combined_max"
    assert make_scorer("combined").needs == frozenset({"trajectory", "recon", "latents"})
    assert make_scorer("recon_error").needs <= make_scorer("combined").needs


def test_combination_is_mean_or_max_of_id_fit_z_scores(fitted, x_eval):
    """Recompute the combination from the separately fitted component methods of the same detector."""
    comps = {c: fitted.decision_function(x_eval, method=c) for c in COMBINED_COMPONENTS}
    fit = {c: fitted.fit_scores_[c] for c in COMBINED_COMPONENTS}
    z = np.stack([(comps[c] - fit[c].mean()) / fit[c].std() for c in COMBINED_COMPONENTS], axis=1)
    np.testing.assert_allclose(fitted.decision_function(x_eval, method="combined"), z.mean(1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fitted.decision_function(x_eval, method="combined_max"), z.max(1), rtol=1e-10,
                               atol=1e-10)
    # on the fit data each component's z-scores have mean 0 and std 1, so the mean combination has mean 0
    zf = np.stack([(fit[c] - fit[c].mean()) / fit[c].std() for c in COMBINED_COMPONENTS], axis=1)
    np.testing.assert_allclose(fitted.fit_scores_["combined"], zf.mean(1), atol=1e-10)
    assert abs(fitted.fit_scores_["combined"].mean()) < 1e-9
    # higher = more OOD: uniform noise scores above the ID digits
    s = fitted.decision_function(x_eval)
    assert np.median(s[80:120]) > np.quantile(s[:80], 0.95)


def test_save_load_scores_identical(fitted, x_eval, tmp_path):
    fitted.save(tmp_path / "det")
    meta = json.loads((tmp_path / "det" / "detector.json").read_text())
    assert meta["methods"]["combined"]["class"] == "CombinedScore"
    assert meta["methods"]["combined"]["params"] == {"components": list(COMBINED_COMPONENTS), "reduce": "mean"}
    back = OODDetector.load(tmp_path / "det", providers="cpu")
    for m in ("combined", "combined_max"):
        np.testing.assert_array_equal(back.decision_function(x_eval, method=m), fitted.decision_function(x_eval, method=m))
        np.testing.assert_array_equal(back.fit_scores_[m], fitted.fit_scores_[m])
    assert back.threshold_ == fitted.threshold_


def test_bad_components_refused(digits_bundle, digits, fitted, tmp_path):
    from flowcore.analysis.ood.baselines import Scorer  # noqa: PLC0415

    with pytest.raises(ParameterError, match="combined components"):
        CombinedScore(["combined"]).needs  # noqa: B018
    with pytest.raises(ParameterError, match="combined components"):
        CombinedScore(["recon_error", "recon_error"]).needs  # noqa: B018
    ev = fitted.evidence(digits["x_test"][:60])
    with pytest.raises(ParameterError):
        CombinedScore(["nope"]).fit(ev)
    with pytest.raises(ParameterError):
        CombinedScore(reduce="median").fit(ev)
    assert isinstance(CombinedScore(["recon_error"]).fit(ev), Scorer)
    with pytest.raises(BadInputError, match="combined"):
        CombinedScore.from_state({"components": ["nope"], "reduce": "mean"}, {})
    with pytest.raises(BadInputError, match="loc"):
        CombinedScore.from_state({"components": ["recon_error"], "reduce": "mean"}, {"loc": np.zeros(2)})
