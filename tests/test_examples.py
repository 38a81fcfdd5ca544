"""The copyable scripts in examples/ run as a user runs them: a fresh process, in an empty folder.

Each script is run with ``python examples/NAME.py`` from a temporary working directory (so it
writes only there) and its printed lines are checked for what the script promises. The long
studies live in ``studies/`` and run under ``make bench`` (marker ``slow``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run(name: str, *args: str, cwd: Path, timeout: int = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_every_example_is_tested():
    tested = {"quickstart.py", "edge_scoring.py", "own_keras_model.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_quickstart(tmp_path):
    out = _run("quickstart.py", cwd=tmp_path)
    assert "data  starts 360: converged 360" in out
    assert "noise starts 360:" in out
    assert "attractors; largest basins" in out and "stable (spectral radius < 1)" in out
    assert "decoded attractors: (" in out
    assert list(tmp_path.iterdir()) == []  # writes nothing


def test_edge_scoring(tmp_path):
    out = _run("edge_scoring.py", "det", cwd=tmp_path)
    assert (tmp_path / "det" / "detector.json").is_file()
    lines = {ln.split(" median")[0].strip(): ln for ln in out.splitlines() if "median score" in ln}
    clean, noise = lines["unseen clean digits"], lines["uniform noise"]
    rate = lambda ln: int(ln.rsplit("flagged ", 1)[1].split("%")[0])  # noqa: E731
    assert "threshold calibrated on 100 held-out ID rows" in out
    assert rate(noise) == 100 and rate(clean) <= 15


def test_own_keras_model(tmp_path):
    out = _run("own_keras_model.py", "kb", cwd=tmp_path, timeout=600)
    assert (tmp_path / "kb" / "flow.json").is_file()
    assert "converged;" in out and "attractors" in out
    mse = float(out.split("test MSE ", 1)[1].split()[0])
    assert mse < 0.03
    assert "memorization: basin-weighted" in out and "null levels: test images" in out
    assert "\nverdict: " in out
