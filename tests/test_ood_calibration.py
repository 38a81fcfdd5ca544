"""OOD thresholds calibrated on held-out ID rows, and ``ood fit`` failures that leave ``--out`` as it was.

The regression test trains a small digits autoencoder on 200 digits (the detector's ID data too),
so that, as with any model, the rows it was trained on score lower than new digits: a threshold
set on those rows (in-sample) flags far more than its nominal 5 % of new clean digits, a
threshold set on 500 held-out digits flags about 5 %.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from _cli import signal_after_first_chunk
from flowcore.analysis.ood.detector import IN_SAMPLE, METHODS, OODDetector
from flowcore.cli._guard import report
from flowcore.cli.app import main
from flowcore.dynamics.checkpointing import PARTIAL_DIR, RunCheckpoint, chunk_rows
from flowcore.errors import BadInputError, DataError, FlowcoreWarning, ParameterError
from flowcore.io import save_npz

N_AE = 200  # rows the overfit model is trained on (and the detector fitted on)
N_CAL = 500  # held-out calibration rows
NOMINAL = 0.05


def _snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (files by sha256, folders by name); {} when absent."""
    if not os.path.lexists(folder):
        return {}
    out = {".": "dir"}
    for p in sorted(folder.rglob("*")):
        out[p.relative_to(folder).as_posix()] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ------------------------------------------------------------------------------------- calibration
@pytest.fixture(scope="module")
def overfit(digits, tmp_path_factory):
    """A digits AE trained on 200 train digits (~1 s), its bundle, and the rows: fit, calibration, new."""
    import flowcore_torch  # noqa: PLC0415  (torch: a dev dependency, fails loudly when missing)
    from _models import train_digits_ae  # noqa: PLC0415

    x = digits["x_train"]
    fit, cal = x[:N_AE], x[N_AE:N_AE + N_CAL]
    new = np.concatenate([x[N_AE + N_CAL:], digits["x_test"]])  # 1097 clean digits neither model nor detector saw
    enc, dec = train_digits_ae(fit, k=8, seed=0)
    bundle = flowcore_torch.export(enc, dec, fit[:64], tmp_path_factory.mktemp("overfit") / "bundle",
                                   real_inputs=new[:100])
    return bundle, fit, cal, new


def test_in_sample_threshold_over_flags_new_digits_held_out_calibration_does_not(overfit):
    bundle, fit, cal, new = overfit
    kw = dict(methods=("features_knn", "recon_error"), default="features_knn", providers="cpu")
    in_sample = OODDetector(bundle, calibration_split=0, **kw).fit(fit)
    held_out = OODDetector(bundle, **kw).fit(fit, X_calib=cal)
    assert in_sample.calibration_ == IN_SAMPLE and held_out.calibration_ == f"{N_CAL} held-out ID rows (X_calib / --calibrate)"
    assert in_sample.n_fit_ == held_out.n_fit_ == N_AE  # same fit rows, same bank: only the threshold differs
    rate_in = float(np.mean(in_sample.predict(new)))
    rate_cal = float(np.mean(held_out.predict(new)))
    # measured: in-sample 0.141, held-out 0.044 (features_knn, 1097 new digits; recon_error 0.210 and 0.042)
    assert rate_in > 0.10, rate_in  # twice the nominal rate and more
    # the realised rate of a quantile threshold: sd ≈ sqrt(p(1-p)(1/n_cal + 1/n_new)) ≈ 0.0118; 3 sd ≈ 0.035
    sd = math.sqrt(NOMINAL * (1 - NOMINAL) * (1 / N_CAL + 1 / len(new)))
    assert abs(rate_cal - NOMINAL) < 3 * sd, (rate_cal, 3 * sd)
    assert rate_in - NOMINAL > 3 * sd  # the old threshold fails the same band
    # every method's threshold is its own calibration quantile
    for m in held_out.methods:
        assert np.mean(held_out.calibration_scores_[m] > held_out.thresholds_[m]) == pytest.approx(NOMINAL, abs=2 / N_CAL)


def test_default_holds_back_a_seeded_split_not_used_for_the_fit(digits_bundle, digits):
    x = digits["x_train"]
    kw = dict(methods=("recon_error", "knn_mean50"), default="recon_error", providers="cpu")
    det = OODDetector(digits_bundle, **kw).fit(x)  # default calibration_split="auto": 1437 rows are enough
    n_cal = round(0.2 * len(x))
    assert det.calibration_ == f"split 0.2 of the ID data ({n_cal} rows, seed 0)" and det.n_fit_ == len(x) - n_cal
    rows = np.sort(np.random.default_rng(0).permutation(len(x))[:n_cal])
    rest = np.setdiff1d(np.arange(len(x)), rows)
    # the calibration rows are scored as new data: their KNN scores match decision_function, the bank holds the rest
    np.testing.assert_array_equal(det.calibration_scores_["knn_mean50"],
                                  det.decision_function(x[rows], method="knn_mean50"))
    np.testing.assert_array_equal(det.scorers_["knn_mean50"].bank_.shape, (len(rest), 8))
    assert det.thresholds_["recon_error"] == float(np.quantile(det.calibration_scores_["recon_error"], 0.95))
    again = OODDetector(digits_bundle, **kw).fit(x)
    assert again.thresholds_ == det.thresholds_  # seeded
    other = OODDetector(digits_bundle, seed=1, **kw).fit(x)
    assert other.thresholds_ != det.thresholds_


def test_small_id_data_falls_back_to_in_sample_with_a_warning(digits_bundle, digits):
    kw = dict(methods=("recon_error",), default="recon_error", providers="cpu")
    with pytest.warns(FlowcoreWarning, match="in-sample.*40 of 200 rows, under the 100"):
        det = OODDetector(digits_bundle, **kw).fit(digits["x_train"][:200])
    assert det.calibration_ == IN_SAMPLE and det.n_fit_ == 200 and det.calibration_scores_ == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit split is what was asked for: no warning
        det = OODDetector(digits_bundle, calibration_split=0.25, **kw).fit(digits["x_train"][:200])
    assert det.calibration_ == "split 0.25 of the ID data (50 rows, seed 0)"


def test_row_counts_are_checked_before_any_work(digits_bundle):
    det = OODDetector(digits_bundle, providers="cpu")  # all methods: the 50-NN baselines need 51 rows
    with pytest.raises(DataError, match=r"the ID data: 1 row; method knn_kth50 needs at least 51"):
        det.calibration_plan(1)
    with pytest.raises(DataError, match=r"the calibration data: 5 rows; .* at least 20 \(1 / contamination\)"):
        det.calibration_plan(500, 5)
    with pytest.raises(DataError, match="leaves 40 to fit"):
        OODDetector(digits_bundle, calibration_split=0.8).calibration_plan(200)
    with pytest.raises(ParameterError, match="give one calibration"):
        OODDetector(digits_bundle, calibration_split=0.3).calibration_plan(500, 100)
    with pytest.raises(ParameterError, match="calibration_split must be"):
        OODDetector(digits_bundle, calibration_split=1.0).calibration_plan(500)
    assert OODDetector(digits_bundle, methods=("recon_error",), default="recon_error").min_fit_rows() == 1


def test_saved_calibration_round_trips_and_format_1_folders_read_as_in_sample(digits_bundle, digits, tmp_path):
    kw = dict(methods=("recon_error", "latent_mahalanobis"), default="recon_error", providers="cpu")
    det = OODDetector(digits_bundle, **kw).fit(digits["x_train"], X_calib=digits["x_test"][:100])
    det.save(tmp_path / "det")
    back = OODDetector.load(tmp_path / "det", providers="cpu")
    assert back.calibration_ == det.calibration_ == "100 held-out ID rows (X_calib / --calibrate)" and back.thresholds_ == det.thresholds_
    np.testing.assert_array_equal(back.calibration_scores_["recon_error"], det.calibration_scores_["recon_error"])
    # a folder written before the calibration record (format 1): read, its thresholds called in-sample
    old = OODDetector(digits_bundle, calibration_split=0, **kw).fit(digits["x_train"][:300])
    old.save(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "detector.json").read_text())
    meta["format_version"] = 1
    del meta["calibration"], meta["params"]["calibration_split"]
    _rewrite(tmp_path / "old", meta)
    back = OODDetector.load(tmp_path / "old", providers="cpu")
    assert back.calibration_ == IN_SAMPLE and back.thresholds_ == old.thresholds_
    meta["format_version"] = 3
    _rewrite(tmp_path / "old", meta)
    with pytest.raises(BadInputError, match="reads versions 1, 2"):
        OODDetector.load(tmp_path / "old", providers="cpu")


def _rewrite(folder: Path, meta: dict) -> None:
    (folder / "detector.json").write_text(json.dumps(meta))
    sums = json.loads((folder / "checksums.json").read_text())
    sums["detector.json"] = hashlib.sha256((folder / "detector.json").read_bytes()).hexdigest()
    (folder / "checksums.json").write_text(json.dumps(sums))


def test_cli_fit_prints_which_calibration(digits_bundle, digits, tmp_path, capsys):
    b = str(digits_bundle.path)
    save_npz(tmp_path / "id.npz", x=digits["x_train"][:300])
    save_npz(tmp_path / "cal.npz", x=digits["x_test"][:120])
    common = ["--methods", "recon_error,latent_norm", "--default", "recon_error", "--quiet", "--device", "cpu"]
    assert main(["ood", "fit", b, "--id", str(tmp_path / "id.npz"), "--calibrate", str(tmp_path / "cal.npz"),
                 "--out", str(tmp_path / "d1"), *common]) == 0
    assert "threshold calibrated on: 120 held-out ID rows (X_calib / --calibrate)" in capsys.readouterr().out
    assert main(["ood", "fit", b, "--id", str(tmp_path / "id.npz"), "--out", str(tmp_path / "d2"), *common]) == 0
    out, err = capsys.readouterr()
    assert f"threshold calibrated on: {IN_SAMPLE}; a split of 0.2 would hold 60 of 300 rows" in out
    assert "--calibrate FILE" in out and "Warning" not in err  # said once, on stdout
    assert main(["ood", "fit", b, "--id", str(tmp_path / "id.npz"), "--calibration-split", "0.4",
                 "--out", str(tmp_path / "d3"), "--json", *common]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["calibration"] == "split 0.4 of the ID data (120 rows, seed 0)" and summary["n_fit"] == 180
    assert OODDetector.load(tmp_path / "d3", providers="cpu").calibration_ == summary["calibration"]
    code = main(["ood", "fit", b, "--id", str(tmp_path / "id.npz"), "--calibrate", str(tmp_path / "cal.npz"),
                 "--calibration-split", "0.2", "--out", str(tmp_path / "d4")])
    assert code == 2 and "not allowed with" in _one_error_line(capsys.readouterr().err)


# ------------------------------------------------------------------------------- --methods
def test_methods_help_lists_the_registry_and_unknown_names_get_one_line(digits_bundle, tmp_path, capsys):
    assert main(["ood", "fit", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(m in help_text for m in METHODS)
    save_npz(tmp_path / "id.npz", x=np.zeros((60, 1, 8, 8), np.float32))
    for spec, what in (("recon_error,nope", "unknown method 'nope'"), (",", "no method named"),
                       ("recon_error,recon_error", "method 'recon_error' named twice")):
        code = main(["ood", "fit", str(digits_bundle.path), "--id", str(tmp_path / "id.npz"), "--methods", spec,
                     "--out", str(tmp_path / "det")])
        line = _one_error_line(capsys.readouterr().err)
        assert code == 3 and what in line and "valid methods: " + ", ".join(METHODS) in line, line
        assert not (tmp_path / "det").exists()


# ------------------------------------------------------------------- a failed fit leaves --out as it was
@pytest.mark.parametrize("before", ["absent", "empty", "detector"])
def test_single_row_fit_fails_in_one_line_and_leaves_out_as_it_was(digits_bundle, digits, tmp_path, capsys, before):
    b = str(digits_bundle.path)
    save_npz(tmp_path / "one.npz", x=digits["x_train"][:1])
    out = tmp_path / "det"
    if before == "empty":
        out.mkdir()
    elif before == "detector":  # an earlier successful fit (with its marker), refit on one row
        save_npz(tmp_path / "id.npz", x=digits["x_train"][:60])
        assert main(["ood", "fit", b, "--id", str(tmp_path / "id.npz"), "--methods", "recon_error,latent_norm",
                     "--default", "recon_error", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
        capsys.readouterr()
    snap = _snapshot(out)
    code = main(["ood", "fit", b, "--id", str(tmp_path / "one.npz"), "--out", str(out), "--device", "cpu"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 3 and "one.npz: 1 row" in line and "knn_kth50 needs at least 51" in line, line
    assert _snapshot(out) == snap  # absent stays absent; no .flowcore-partial anywhere


def test_bad_input_met_after_chunks_were_written_leaves_no_partial_area(digits_bundle, digits, tmp_path, capsys):
    """--max-steps 1: no bank start converges, found after the bank's chunk was written; a rerun would meet it again."""
    save_npz(tmp_path / "id.npz", x=digits["x_train"][:64])
    code = main(["ood", "fit", str(digits_bundle.path), "--id", str(tmp_path / "id.npz"), "--methods", "trajectory",
                 "--max-steps", "1", "--out", str(tmp_path / "det"), "--device", "cpu", "--quiet"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 3 and "converged" in line and "--resume" not in line, line
    assert not (tmp_path / "det").exists()


def test_checkpoint_keeps_chunks_only_for_failures_a_rerun_can_pass(tmp_path):
    spec = {"command": "trajectories", "chunk_size": 8}
    chunk = {"final": np.zeros((8, 2), np.float32)}
    with pytest.raises(DataError) as info:
        with RunCheckpoint(tmp_path / "bad", spec) as ck:
            ck.stage("trajectories", 8).save(0, chunk)
            raise DataError("bad rows")
    assert not (tmp_path / "bad").exists() and report(info.value) == (3, "error: bad rows")
    with pytest.raises(KeyboardInterrupt) as info:
        with RunCheckpoint(tmp_path / "cut", spec) as ck:
            ck.stage("trajectories", 8).save(0, chunk)
            raise KeyboardInterrupt
    assert (tmp_path / "cut" / PARTIAL_DIR / "trajectories" / "chunk-000000.npz").is_file()
    code, line = report(info.value)
    assert code == 130 and line == (f"error: interrupted; completed chunks kept in {tmp_path / 'cut' / PARTIAL_DIR}: "
                                    "rerun the same command with --resume to continue")


def test_interrupted_fit_keeps_its_chunks_says_so_and_resumes(tmp_path):
    """SIGINT (Ctrl-C) to ``flowcore ood fit`` after its first chunk: one line naming --resume, exit 130; the resume
    completes the detector."""
    from _graphs import two_attractors  # noqa: PLC0415
    from flowcore.bundle.flowbundle import FlowBundle  # noqa: PLC0415

    bundle = FlowBundle.write(tmp_path / "bundle", *two_attractors(np.array([2.0, 1.0]), np.array([-1.0, -3.0]),
                                                                    np.array([1.0, 0.0]), 0.98)).path
    x = np.random.default_rng(1).uniform(-4, 4, size=(8 * chunk_rows(16), 2)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "det"
    argv = ["ood", "fit", str(bundle), "--id", str(tmp_path / "x.npy"),
            "--methods", "trajectory,recon_error", "--default", "trajectory", "--batch-size", "16", "--out", str(out),
            "--quiet", "--device", "cpu", "--threads", "1"]
    proc = signal_after_first_chunk(argv, out, signal.SIGINT, stderr=subprocess.PIPE)
    assert proc.wait(timeout=120) == 130
    line = _one_error_line(proc.stderr.read())
    assert line == (f"error: interrupted; completed chunks kept in {out / PARTIAL_DIR}: rerun the same command "
                    "with --resume to continue")
    again = subprocess.run([sys.executable, "-m", "flowcore", *argv, "--resume"], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert not (out / PARTIAL_DIR).exists() and (out / "detector.json").is_file()
