"""OOD detectors: API conventions, persistence, tamper checks, and core-only scoring."""

import csv
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from flowcore.analysis.ood.detector import METHODS, OODDetector
from flowcore.analysis.ood.single import FeatureDetector, TrajectoryDetector
from flowcore.cli.app import main
from flowcore.errors import BadInputError, NotFittedError
from flowcore.io import save_npz

from test_core_imports import BLOCK


@pytest.fixture(scope="module")
def ood_data(digits):
    rng = np.random.default_rng(5)
    x = digits["x_test"][:120]
    uniform = rng.uniform(0, 1, size=(80, 1, 8, 8)).astype(np.float32)
    return x, uniform


@pytest.fixture(scope="module")
def fitted(digits_bundle, digits):
    return OODDetector(digits_bundle, providers="cpu").fit(digits["x_train"])


def test_api_conventions(fitted, ood_data, digits):
    x_id, x_ood = ood_data
    assert set(fitted.methods) == set(METHODS) and fitted.default == "features_knn"
    s_id, s_ood = fitted.decision_function(x_id), fitted.decision_function(x_ood)
    assert s_id.shape == (len(x_id),) and s_id.dtype == np.float64
    assert np.median(s_ood) > np.median(s_id)  # higher = more OOD
    pred = fitted.predict(np.concatenate([x_id, x_ood]))
    assert set(np.unique(pred)) <= {0, 1} and pred[len(x_id):].mean() > 0.9
    # the default calibration: a seeded 0.2 split of the 1437 rows, held out of the bank and the scorers,
    # whose scores the threshold keeps 95 % of
    assert fitted.calibration_ == "split 0.2 of the ID data (287 rows, seed 0)"
    assert len(fitted.decision_scores_) == fitted.n_fit_ == len(digits["x_train"]) - 287
    assert np.mean(fitted.calibration_scores_[fitted.default] <= fitted.threshold_) == pytest.approx(0.95, abs=0.01)
    feats = fitted.features(x_id[:5])
    assert {"dist_mean", "steps", "path_length", "v0_norm", "recon_error"} <= set(feats)
    np.testing.assert_allclose(fitted.decision_function(x_id[:5], method="trajectory"), feats["dist_mean"])


def test_score_all_equals_single_methods(fitted, ood_data):
    x = ood_data[1][:30]
    all_scores = fitted.score_all(x)
    for m in ("trajectory", "features", "knn_mean50", "recon_error"):
        np.testing.assert_array_equal(all_scores[m], fitted.decision_function(x, method=m))


def test_not_fitted_and_bad_params(digits_bundle, digits):
    with pytest.raises(NotFittedError):
        TrajectoryDetector(digits_bundle).decision_function(digits["x_test"][:3])
    with pytest.raises(BadInputError, match="unknown OOD method"):
        OODDetector(digits_bundle, methods=("nope",)).fit(digits["x_train"][:50])
    with pytest.raises(BadInputError, match="default method"):
        OODDetector(digits_bundle, methods=("trajectory",), default="features").fit(digits["x_train"][:50])


def test_single_method_detectors_and_noise_bank(digits_bundle, digits, ood_data):
    td = TrajectoryDetector(digits_bundle, providers="cpu").fit(digits["x_train"])
    assert td.methods == ("trajectory",) and td.bank_info_["source"] == "id"
    fd = FeatureDetector(digits_bundle, method="knn", providers="cpu").fit(digits["x_train"])
    assert fd.default == "features_knn"
    nd = TrajectoryDetector(digits_bundle, bank_source="noise", n_noise=300, providers="cpu").fit(digits["x_train"])
    assert nd.bank_info_["source"] == "noise" and nd.bank_info_["starts"] == 300
    assert np.isfinite(nd.decision_function(ood_data[1])).all()


def test_save_load_identical_and_tamper(fitted, ood_data, tmp_path, digits_bundle):
    x = np.concatenate(ood_data)
    fitted.save(tmp_path / "det")
    back = OODDetector.load(tmp_path / "det", providers="cpu")
    for m in fitted.methods:
        np.testing.assert_array_equal(back.decision_function(x, method=m), fitted.decision_function(x, method=m))
    assert back.thresholds_ == fitted.thresholds_
    # a modified file is refused
    meta = json.loads((tmp_path / "det" / "detector.json").read_text())
    meta["methods"]["features"]["threshold"] = 1e9
    (tmp_path / "det" / "detector.json").write_text(json.dumps(meta))
    with pytest.raises(BadInputError, match="does not match its checksum"):
        OODDetector.load(tmp_path / "det")


def test_refuses_other_bundle(fitted, tmp_path):
    from flowcore.bundle.flowbundle import FlowBundle

    from _graphs import contraction_to

    fitted.save(tmp_path / "det")
    other = FlowBundle.write(tmp_path / "other", *contraction_to(np.zeros(64), 0.5))
    with pytest.raises(BadInputError, match="not the one this detector was fitted on"):
        OODDetector.load(tmp_path / "det", bundle=other)


def test_cli_fit_score_and_core_only_subprocess(digits_bundle, digits, ood_data, tmp_path, capsys):
    save_npz(tmp_path / "id.npz", x=digits["x_train"])
    x = np.concatenate(ood_data)
    save_npz(tmp_path / "x.npz", x=x)
    assert main(["ood", "fit", str(digits_bundle.path), "--id", str(tmp_path / "id.npz"), "--out",
                 str(tmp_path / "det"), "--methods", "trajectory,features,recon_error", "--quiet", "--device", "cpu"]) == 0
    capsys.readouterr()
    det = OODDetector.load(tmp_path / "det", providers="cpu")
    assert det.default == "trajectory"  # no --default and no features_knn among --methods: the first one
    expect = det.decision_function(x)
    # score where torch, tensorflow and sklearn cannot be imported
    code = BLOCK + textwrap.dedent(
        f"""
        from flowcore.cli.app import main
        rc = main(["ood", "score", r"{tmp_path / 'det'}", "--data", r"{tmp_path / 'x.npz'}",
                   "--out", r"{tmp_path / 'scores.csv'}", "--all-methods", "--quiet", "--device", "cpu"])
        import sys
        assert not [m for m in sys.modules if m.split(".")[0] in ("torch", "tensorflow", "sklearn")]
        raise SystemExit(rc)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    got = np.array([float(r["score"]) for r in rows])
    np.testing.assert_array_equal(got, expect)
    np.testing.assert_array_equal([int(r["prediction"]) for r in rows], (expect > det.threshold_).astype(int))
    np.testing.assert_array_equal([float(r["score_features"]) for r in rows], det.decision_function(x, method="features"))


def test_cli_fit_default_is_features_knn_when_fitted(digits_bundle, digits, tmp_path, capsys):
    save_npz(tmp_path / "id.npz", x=digits["x_train"][:200])
    assert main(["ood", "fit", str(digits_bundle.path), "--id", str(tmp_path / "id.npz"), "--out", str(tmp_path / "det"),
                 "--methods", "recon_error,features_knn", "--quiet", "--device", "cpu"]) == 0
    assert "default features_knn" in capsys.readouterr().out
    assert OODDetector.load(tmp_path / "det", providers="cpu").default == "features_knn"  # not the first listed


def test_cli_tampered_detector_one_line(fitted, tmp_path, capsys):
    fitted.save(tmp_path / "det")
    arr = tmp_path / "det" / "arrays.npz"
    data = bytearray(arr.read_bytes())
    data[100] ^= 1
    arr.write_bytes(bytes(data))
    save_npz(tmp_path / "x.npz", x=np.zeros((2, 1, 8, 8), np.float32))
    code = main(["ood", "score", str(tmp_path / "det"), "--data", str(tmp_path / "x.npz"), "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 3 and err.startswith("error:") and len(err.strip().splitlines()) == 1 and "checksum" in err
    assert not (tmp_path / "s.csv").exists()


def test_cli_eval_writes_report(fitted, digits, ood_data, tmp_path, capsys):
    fitted.save(tmp_path / "det")
    save_npz(tmp_path / "id.npz", x=digits["x_test"][:120])
    save_npz(tmp_path / "u.npz", x=ood_data[1])
    save_npz(tmp_path / "inv.npz", x=1.0 - digits["x_test"][:80])
    code = main(["ood", "eval", str(tmp_path / "det"), "--id", str(tmp_path / "id.npz"), "--ood",
                 f"uniform={tmp_path / 'u.npz'}", f"inverted={tmp_path / 'inv.npz'}", "--out", str(tmp_path / "rep"),
                 "--quiet", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "uniform" in out and "inverted" in out and "trajectory" in out and "features" in out
    with open(tmp_path / "rep" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["ood_set"] for r in rows} >= {"uniform", "inverted"}
    assert {r["method"] for r in rows} == set(fitted.methods)
    assert list((tmp_path / "rep").glob("hist_*.png")) and list((tmp_path / "rep").glob("roc*.png"))
    code = main(["ood", "eval", str(tmp_path / "det"), "--id", str(tmp_path / "id.npz"), "--ood", "broken",
                 "--out", str(tmp_path / "rep2")])
    err = capsys.readouterr().err
    assert code == 3 and err.startswith("error:") and "NAME=PATH" in err
