"""studies/ood_benchmark.py: the --quick smoke run's outputs (marked ``slow``: minutes; ``make bench`` runs them,
``make test`` deselects them), and the OOD set builders of studies/_ood_sets.py (quick, in ``make test``)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"
if str(STUDIES) not in sys.path:
    sys.path.insert(0, str(STUDIES))

import _ood_sets as S  # noqa: E402


@pytest.fixture(scope="module")
def mnist():
    x, y = S.load_mnist_labelled()
    return x, y


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("ood_benchmark")
    proc = subprocess.run([sys.executable, str(STUDIES / "ood_benchmark.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.mark.slow
def test_quick_outputs_exist_and_are_well_formed(quick):
    out, proc = quick
    for name in ("tables.md", "results.csv", "results.json", "paper_failure.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "paper_failure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "tables.md").read_text()
    assert text == proc.stdout.rstrip("\n") or text in proc.stdout
    for head in ("## far-OOD", "## near-OOD", "## novelty", "## Selection protocol", "## Default rule", "## Target check",
                 "## The paper's trajectory score, studied", "## Per-set AUROC"):
        assert head in text, head
    assert "wall time" in text and "**" in text  # the best per column is marked

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert rows and set(rows[0]) == {"model", "seed", "family", "set", "split", "group", "method", "auroc",
                                     "fpr95_id_positive", "fpr95_ood_positive"}
    for r in rows:
        for k in ("auroc", "fpr95_id_positive", "fpr95_ood_positive"):
            assert 0.0 <= float(r[k]) <= 1.0
    assert {r["family"] for r in rows} == {"far", "near", "novelty"}
    assert {r["split"] for r in rows} == {"val", "test"}
    assert {r["group"] for r in rows} == {"flowcore", "pyod", "paper"}
    methods = {r["method"] for r in rows if r["group"] == "flowcore"}
    assert {"features", "combined", "combined_max", "trajectory", "knn_kth50_norm"} <= methods
    peers = {r["method"] for r in rows if r["group"] == "pyod"}
    assert {"pyod AutoEncoder", "pyod AutoEncoder/raw", "pyod VAE", "pyod VAE/raw", "pyod DeepSVDD",
            "pyod KNN", "pyod IForest", "pyod LOF", "pyod ECOD"} <= peers
    # every (method, set) has a val and a test row: nothing is reported that was not also validated
    tests = {(r["method"], r["set"]) for r in rows if r["split"] == "test" and r["group"] != "paper"}
    vals = {(r["method"], r["set"]) for r in rows if r["split"] == "val"}
    assert tests == vals

    res = json.loads((out / "results.json").read_text())
    assert res["config"]["quick"] is True and res["wall_seconds"] > 0
    assert len(res["records"]) == len(rows)
    sel = res["selection"]
    assert {r["held_out_family"] for r in sel["rows"]} == {"far", "near", "novelty"}
    assert all(r["chosen"] in sel["candidates"] for r in sel["rows"])
    assert sum(sel["counts"].values()) == len(sel["rows"])
    # the choice for a family is the best on the OTHER families' validation rows (recomputed here)
    val = {}
    for r in res["records"]:
        if r["split"] == "val" and r["group"] == "flowcore":
            val.setdefault((r["method"], r["family"]), []).append(r["auroc"])
    for r in sel["rows"]:
        others = [f for f in ("far", "near", "novelty") if f != r["held_out_family"]]
        score = {m: np.mean([np.mean(val[(m, f)]) for f in others]) for m in sel["candidates"]}
        assert score[r["chosen"]] == pytest.approx(max(score.values()))
        assert r["val_auroc_other_families"] == pytest.approx(score[r["chosen"]])

    # the one default: smallest worst-case regret against the best method on validation rows (recomputed here;
    # far / near: mean over the sets, novelty: mean over the held-out classes), test rows never choose
    rule = res["default_rule"]
    allval = {}
    for r in res["records"]:
        if r["split"] == "val" and r["group"] in ("flowcore", "pyod"):
            allval.setdefault((r["method"], r["family"]), []).append(r["auroc"])
    regret = {m: [100 * (max(np.mean(v) for (mm, ff), v in allval.items() if ff == f) - np.mean(allval[(m, f)]))
                  for f in ("far", "near", "novelty")] for m in rule["candidates"]}
    worst = min(max(v) for v in regret.values())
    assert max(regret[rule["chosen"]]) == pytest.approx(worst)
    assert [row["method"] for row in rule["table"]][0] == rule["chosen"]
    assert {row["held_out_family"] for row in rule["lofo"]} == {"far", "near", "novelty"}
    for row in rule["lofo"]:
        others = [i for i, f in enumerate(("far", "near", "novelty")) if f != row["held_out_family"]]
        assert max(regret[row["chosen"]][i] for i in others) == pytest.approx(
            min(max(v[i] for i in others) for v in regret.values()))


def test_split_indices_disjoint_and_seeded():
    a = S.split_indices(5000, 300, 100, 100, seed=1)
    b = S.split_indices(5000, 300, 100, 100, seed=1)
    c = S.split_indices(5000, 300, 100, 100, seed=2)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["train"], c["train"])
    allrows = np.concatenate(list(a.values()))
    assert len(np.unique(allrows)) == 500
    with pytest.raises(ValueError):
        S.split_indices(10, 5, 5, 5, seed=0)


def test_novelty_split_never_trains_on_the_held_out_class(mnist):
    x, y = mnist
    idx = S.split_indices(len(x), 1000, 300, 300, seed=0)
    for c in range(10):
        nv = S.novelty_split(y, idx, c)
        assert not np.any(y[nv["train"]] == c) and not np.any(y[nv["id_val"]] == c)
        assert not np.any(y[nv["id_test"]] == c)
        assert np.all(y[nv["ood_val"]] == c) and np.all(y[nv["ood_test"]] == c) and len(nv["ood_test"]) > 0
        # the OOD rows never reach the ID splits, val OOD and test OOD are disjoint
        assert not set(nv["ood_val"]) & set(nv["ood_test"])
        assert not set(nv["ood_test"]) & (set(nv["train"]) | set(nv["id_val"]) | set(nv["id_test"]))
        assert len(nv["train"]) + (y[idx["train"]] == c).sum() == 1000


def test_near_and_far_sets_shapes_range_determinism(mnist):
    x, y = mnist
    idx = S.split_indices(len(x), 300, 100, 100, seed=0)
    x_tr, x_te, y_te = x[idx["train"]], x[idx["test"]], y[idx["test"]]
    style = S.style_digits(x_tr, seed=0)
    assert style["val"].shape[1:] == (1, 28, 28) and len(style["val"]) + len(style["test"]) == 1797
    near = S.near_ood_sets(x_te, y_te, style["test"], 80, seed=0)
    far, desc = S.far_sets(x_te, x_tr, 80, seed=0)
    assert tuple(near) == S.NEAR and tuple(far) == S.FAR and set(desc) == set(S.FAR)
    for name, v in {**near, **far}.items():
        assert v.dtype == np.float32 and v.ndim == 4 and v.shape[1:] == (1, 28, 28), name
        assert v.min() >= 0.0 and v.max() <= 1.0 and len(v) > 0, name
        assert len(v) <= 80
    assert len(near["rotated 180"]) == 80
    assert len(near["rotated 180 (no 0/1/6/8/9)"]) == int((~np.isin(y_te[:80], S.SYMMETRIC_180)).sum())
    again = S.near_ood_sets(x_te, y_te, S.style_digits(x_tr, seed=0)["test"], 80, seed=0)
    for name in near:
        np.testing.assert_array_equal(near[name], again[name])
    far2, _ = S.far_sets(x_te, x_tr, 80, seed=0)
    for name in far:
        np.testing.assert_array_equal(far[name], far2[name])
    other = S.near_ood_sets(x_te, y_te, style["test"], 80, seed=1)
    assert not np.array_equal(other["occluded half"], near["occluded half"])
    # the transforms do what they say
    np.testing.assert_array_equal(near["rotated 180"], x_te[:80, :, ::-1, ::-1])
    occ = near["occluded half"]
    assert np.all((occ == 0) | (occ == x_te[:80]))
    assert np.all(occ.reshape(80, -1).sum(1) <= x_te[:80].reshape(80, -1).sum(1))
    blur = near["blurred digits"]
    np.testing.assert_allclose(blur.reshape(80, -1).max(1), x_te[:80].reshape(80, -1).max(1), rtol=1e-5)
    # style digits are contrast-matched: their pooled pixel quantiles follow MNIST's
    q = [0.5, 0.8, 0.9, 0.95, 0.99]
    np.testing.assert_allclose(np.quantile(style["test"], q), np.quantile(x_tr, q), atol=0.06)


def test_peer_scores_are_fitted_once_per_training_set_and_reused(digits_bundle, digits):
    """PyOD's peers see raw pixels only: the same train rows and scored rows (another model, another
    k) reuse the first fit's scores; other train rows fit again."""
    pytest.importorskip("pyod")
    import _ood_run as R  # noqa: PLC0415
    from flowcore.analysis.ood.detector import OODDetector  # noqa: PLC0415

    x_tr, x_te = digits["x_train"][:300], digits["x_test"][:80]
    det = OODDetector(digits_bundle, methods=("features", "recon_error"), default="features", providers="cpu", calibration_split=0).fit(x_tr)
    blocks = {"ID test": x_te[:40], "test:other": x_te[40:]}
    cfg = {"names": ["pyod KNN", "pyod ECOD"], "epochs": 1}
    R._PEER_SCORES.clear()
    t1, t2, t3 = {}, {}, {}
    fc1, p1 = R._score(det, cfg, x_tr, blocks, 0, t1, "a")
    fc2, p2 = R._score(det, cfg, x_tr, blocks, 0, t2, "b")
    assert "a pyod fit+score" in t1 and t2 == {"b flowcore score": t2["b flowcore score"], "b pyod reused": 0.0}
    for b in blocks:
        for m in cfg["names"]:
            assert np.array_equal(p1[b][m], p2[b][m])
            assert p1[b][m].shape == (len(blocks[b]),)
        assert np.array_equal(fc1[b]["features"], fc2[b]["features"])
    _, p3 = R._score(det, cfg, x_tr[:200], blocks, 0, t3, "c")  # another training set: fitted again
    assert "c pyod fit+score" in t3 and len(R._PEER_SCORES) == 2
    assert not np.array_equal(p3["ID test"]["pyod KNN"], p1["ID test"]["pyod KNN"])
    R._PEER_SCORES.clear()


@pytest.mark.slow
def test_combine_merges_finished_runs(quick, tmp_path):
    out, _ = quick
    merged = tmp_path / "merged"
    proc = subprocess.run([sys.executable, str(STUDIES / "ood_benchmark.py"), "--combine", str(out), "--out",
                           str(merged)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    part, res = json.loads((out / "results.json").read_text()), json.loads((merged / "results.json").read_text())
    assert res["records"] == part["records"] and res["default_rule"] == part["default_rule"]
    assert res["config"]["parts"] == [[part["config"]["command"], part["wall_seconds"]]]
    text = (merged / "tables.md").read_text()
    assert f"Part 1: `{part['config']['command']}`" in text and "wall time of the longest part" in text
    assert (merged / "paper_failure.png").read_bytes() == (out / "paper_failure.png").read_bytes()
