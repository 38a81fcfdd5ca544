"""studies/ood_digits.py --quick: the far-OOD benchmark of docs/ood-benchmark.md runs end to end and checks the
detector's default. Slow (minutes): marked ``slow``, run by ``make bench``, deselected by ``make test``."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "studies") not in sys.path:
    sys.path.insert(0, str(ROOT / "studies"))

from ood_digits import BASELINES  # noqa: E402


@pytest.mark.slow
def test_quick_run_writes_reports_and_checks_the_default(tmp_path):
    out = tmp_path / "ood_digits"
    proc = subprocess.run([sys.executable, str(ROOT / "studies" / "ood_digits.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (out / "docs_section.md").read_text()
    assert text.rstrip("\n") in proc.stdout
    assert "Target check: is the default `features_knn` the best method" in text
    run = json.loads((out / "run.json").read_text())
    sets = list(run["ood_sets"])
    assert len(sets) == 5 and {c["ood_set"] for c in run["target_check"]} == set(sets)
    rows = list(csv.DictReader((out / "id_bank" / "metrics.csv").open()))
    auroc = {(r["method"], r["ood_set"]): float(r["auroc"]) for r in rows}
    for c in run["target_check"]:
        # the check reads the detector's default method, and its best baseline is really the best of them
        assert c["default"] == "features_knn"
        assert c["default_auroc"] == pytest.approx(auroc[("features_knn", c["ood_set"])], abs=1e-9)
        assert "features_knn" not in BASELINES and "recon_error" in BASELINES
        assert c["best_baseline_auroc"] == pytest.approx(max(auroc[(b, c["ood_set"])] for b in BASELINES), abs=1e-9)
    noise = {r["method"] for r in csv.DictReader((out / "noise_bank" / "metrics.csv").open())}
    assert noise == {"trajectory", "features"}
