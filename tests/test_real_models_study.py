"""Smoke run of studies/real_models.py --quick (TAEF2 on real images; minutes): the page and figures it writes.

Marked ``slow``: ``make bench`` runs it, ``make test`` deselects it and says so.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = Path(os.environ.get("FLOWCORE_TAEF2", ROOT.parent / "shared" / "models" / "taef2"))


@pytest.mark.slow
def test_quick_study_writes_the_page(tmp_path):
    if not (WEIGHTS / "taef2_encoder.npz").is_file():
        pytest.skip(f"TAEF2 weights not found at {WEIGHTS} (set FLOWCORE_TAEF2)")
    docs = tmp_path / "docs"
    proc = subprocess.run([sys.executable, str(ROOT / "studies" / "real_models.py"), "--quick",
                           "--out", str(tmp_path / "out"), "--docs", str(docs)],
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (docs / "real-models.md").read_text()
    for heading in ("## a. Trajectories", "## b. Data-free probing", "## c. OOD on real images",
                    "## d. Residual-norm diagnostic", "## e. One photo at the paper's scale", "## f. A pretrained encoder"):
        assert heading in page
    for fig in ("real_taef2_endpoints.png", "real_residuals.png", "real_photo256.png", "real_photo256_norms.png"):
        assert (docs / fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ood_rows = [line for line in page.splitlines() if line.startswith("| trajectory |")]
    assert ood_rows and all(re.search(r"\d+\.\d", cell) for cell in ood_rows[0].split("|")[2:-1])
    assert (tmp_path / "out" / "results.json").is_file()
