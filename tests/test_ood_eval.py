"""flowcore.analysis.ood.evaluation: evaluate() over methods × OOD sets, the table, the saved folder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from flowcore.errors import BadInputError, DataError
from flowcore.analysis.ood.evaluation import MEAN, OODReport, evaluate
from flowcore.plots.ood import write_report

import sklearn  # noqa: F401  (the analysis extra: a missing one must fail, never skip)


class FakeDetector:
    """Minimal detector: ``score_all`` only (what evaluate requires), plus ``methods``."""

    methods = ("mean_pixel", "neg_mean_pixel", "constant")

    def score_all(self, x):
        s = np.asarray(x, np.float64).reshape(len(x), -1).mean(1)
        return {"mean_pixel": s, "neg_mean_pixel": -s, "constant": np.zeros(len(x))}


@pytest.fixture(scope="module")
def separable():
    rng = np.random.default_rng(0)
    x_id = rng.uniform(0.0, 0.4, (50, 1, 4, 4)).astype(np.float32)
    ood = {"bright": rng.uniform(0.6, 1.0, (30, 1, 4, 4)).astype(np.float32),
           "brighter set": rng.uniform(0.7, 1.0, (20, 1, 4, 4)).astype(np.float32)}
    return evaluate(FakeDetector(), x_id, ood)


def test_separable_case_gives_exact_metrics(separable):
    rep = separable
    assert len(rep.rows) == 3 * (2 + 1)
    for s in ("bright", "brighter set", MEAN):
        r = rep.row("mean_pixel", s)
        got = (r.auroc, r.aupr_in, r.aupr_out, r.fpr95_id_positive, r.fpr95_ood_positive)
        assert got == pytest.approx((1, 1, 1, 0, 0), abs=1e-12)  # AUPRs are trapezoid sums
        assert rep.row("neg_mean_pixel", s).auroc == 0.0
        assert rep.row("constant", s).auroc == 0.5
        assert rep.best(s) == ("mean_pixel",)
    assert rep.row("mean_pixel", MEAN).n_ood == 50 and rep.row("mean_pixel", "bright").n_id == 50
    # the minimal detector leaves the optional settings out
    assert rep.settings["params"] is None and rep.settings["bank"] is None
    assert rep.descriptions["constant"] == "constant"
    assert "higher score = more OOD" in rep.settings["conventions"]["score_direction"]


def test_table_formats(separable):
    text = separable.table()
    assert "100.0*" in text and "FPR95 ID+" in text and "brighter set" in text
    md = separable.table("markdown")
    assert "| **100.0** |" in md and md.splitlines()[1].startswith("|---")
    wide = separable.table("markdown", layout="wide")
    assert "**100.0 / 0.0 / 0.0**" in wide
    with pytest.raises(BadInputError):
        separable.table("html")


def test_methods_subset_and_bad_inputs():
    x = np.zeros((5, 3), np.float32)
    rep = evaluate(FakeDetector(), x, {"ones": np.ones((4, 3), np.float32)}, methods=["constant"])
    assert [r.method for r in rep.rows] == ["constant", "constant"]
    with pytest.raises(BadInputError, match="among the detector"):
        evaluate(FakeDetector(), x, {"ones": x + 1}, methods=["nope"])
    with pytest.raises(BadInputError, match="reserved"):
        evaluate(FakeDetector(), x, {MEAN: x + 1})
    with pytest.raises(BadInputError, match="same file name"):
        evaluate(FakeDetector(), x, {"a b": x + 1, "a/b": x + 2})
    with pytest.raises(BadInputError, match="non-empty"):
        evaluate(FakeDetector(), x, {})
    with pytest.raises(BadInputError, match="score_all"):
        evaluate(object(), x, {"ones": x + 1})

    class NaNDetector(FakeDetector):
        def score_all(self, x):
            out = super().score_all(x)
            out["constant"] = np.full(len(x), np.nan)
            return out

    with pytest.raises(DataError, match="NaN"):
        evaluate(NaNDetector(), x, {"ones": x + 1})


def test_save_without_figures_round_trips(separable, tmp_path):
    separable.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "report.json", "scores.npz"]
    back = OODReport.load(tmp_path)
    assert back.rows == separable.rows and back.methods == separable.methods
    np.testing.assert_array_equal(back.ood_scores["brighter set"]["mean_pixel"],
                                  separable.ood_scores["brighter set"]["mean_pixel"])
    # a folder whose scores do not match report.json is refused
    arrays = dict(np.load(tmp_path / "scores.npz"))
    del arrays["id/constant"]
    np.savez(tmp_path / "scores.npz", **arrays)
    with pytest.raises(DataError, match="lacks"):
        OODReport.load(tmp_path)
    with pytest.raises(BadInputError, match="not an OOD report"):
        OODReport.load(tmp_path / "nowhere")


@pytest.fixture(scope="module")
def digits_report(digits, digits_bundle):
    from flowcore.analysis.ood.detector import METHODS, OODDetector  # noqa: PLC0415

    det = OODDetector(digits_bundle, methods=METHODS).fit(digits["x_train"])
    x = digits["x_test"]
    rng = np.random.default_rng(1)
    flat = x.reshape(len(x), -1)
    permuted = rng.permuted(flat, axis=1).reshape(x.shape)
    noise = rng.uniform(0.0, 1.0, x.shape).astype(np.float32)
    return evaluate(det, x, {"uniform noise": noise, "permuted": permuted})


def test_digits_report(digits_report, digits):
    from flowcore.analysis.ood.detector import METHODS  # noqa: PLC0415

    rep = digits_report
    assert rep.methods == METHODS and rep.ood_sets == ("uniform noise", "permuted")
    assert len(rep.rows) == len(METHODS) * (2 + 1)
    assert sum(r.ood_set == MEAN for r in rep.rows) == len(METHODS)
    for r in rep.rows:
        for k in ("auroc", "aupr_in", "aupr_out", "fpr95_id_positive", "fpr95_ood_positive"):
            assert 0.0 <= getattr(r, k) <= 1.0
        assert r.n_id == len(digits["x_test"])
    # the settings say what was run
    assert rep.settings["bank"]["size"] >= 1 and rep.settings["params"]["tol"] == 1e-6
    assert set(rep.settings["thresholds"]) == set(METHODS)
    assert rep.descriptions["trajectory"].startswith("trajectory score")
    # uniform noise on 8x8 digits is easy for the reconstruction error
    assert rep.row("recon_error", "uniform noise").auroc > 0.9


def test_digits_report_files(digits_report, tmp_path):
    rep = digits_report
    out = write_report(rep, tmp_path / "rep")
    names = {p.name for p in out.iterdir()}
    assert {"metrics.csv", "report.json", "scores.npz", "roc.png", "roc.csv",
            "hist_uniform_noise.png", "hist_uniform_noise.csv", "hist_permuted.png", "hist_permuted.csv"} <= names
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "metrics.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rep.rows)
    for line, r in zip(table, rep.rows):
        assert (line["method"], line["ood_set"]) == (r.method, r.ood_set)
        assert int(line["n_id"]) == r.n_id and int(line["n_ood"]) == r.n_ood
        for k in ("auroc", "aupr_in", "aupr_out", "fpr95_id_positive", "fpr95_ood_positive"):
            assert float(line[k]) == getattr(r, k)
    meta = json.loads((out / "report.json").read_text())
    assert meta["rows"] == [r.as_dict() for r in rep.rows]
    assert meta["settings"]["conventions"]["fpr95_id_positive"].startswith("share of OOD accepted")
    assert meta["files"]["hist"]["uniform noise"]["png"] == "hist_uniform_noise.png"
    # histogram CSV: per method and population, the counts add up to the sample counts
    with open(out / "hist_permuted.csv", newline="") as fh:
        hist = list(csv.DictReader(fh))
    counts = sum(int(h["count"]) for h in hist if h["method"] == "trajectory" and h["population"] == "ood")
    assert counts == rep.row("trajectory", "permuted").n_ood
    back = OODReport.load(out)
    assert back.rows == rep.rows
    np.testing.assert_array_equal(back.id_scores["features"], rep.id_scores["features"])


def test_import_is_light_and_missing_matplotlib_is_one_line(separable, tmp_path, monkeypatch):
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    proc = subprocess.run([sys.executable, "-c", "import sys, flowcore.analysis.ood.evaluation\n"
                           "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                           "{'torch', 'sklearn', 'matplotlib'}))"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"

    from flowcore.errors import BackendError  # noqa: PLC0415

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    with pytest.raises(BackendError, match=r"flowcore\[analysis\]") as info:
        write_report(separable, tmp_path / "rep")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "rep").exists()  # nothing written
