"""The core alone: a separate virtual environment with only flowcore[cpu] (no torch, no
tensorflow, no scikit-learn) loads bundles exported by the adapters, iterates, groups and scores,
and its numbers equal those of the full environment.

The environment lives in ``.venv-core`` at the repository root and is reused between runs
(rebuilt when pyproject.toml or constraints.txt change). Creating it takes ~30 s once.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowcore.analysis.ood.detector import OODDetector
from flowcore.dynamics.attractors import find_attractors
from flowcore.io import save_npz
from flowcore.runtime.latent_map import LatentMap
from flowcore.dynamics.trajectories import iterate

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("FLOWCORE_CORE_VENV", ROOT / ".venv-core"))
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}  # nothing leaks in


def _core_python() -> Path:
    """Create (or reuse) the core-only environment and return its python."""
    py = VENV / "bin" / "python"
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes()).hexdigest()
    stamp = VENV / ".flowcore-core-stamp"
    if py.exists() and stamp.is_file() and stamp.read_text() == key:
        return py
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, env=ENV)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-c",
                    str(ROOT / "constraints.txt"), "-e", f"{ROOT}[cpu]"], check=True, capture_output=True, env=ENV)
    stamp.write_text(key)
    return py


@pytest.fixture(scope="module")
def core_python() -> Path:
    py = _core_python()
    probe = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in ('torch','tensorflow','keras',"
                            "'sklearn','matplotlib','flowcore_torch') if u.find_spec(m)])"],
                           capture_output=True, text=True, check=True, env=ENV)
    assert probe.stdout.strip() == "[]", f"the core environment has frameworks installed: {probe.stdout}"
    return py


def _cli(py: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(py), "-m", "flowcore", *args], capture_output=True, text=True, timeout=600, env=ENV)


@pytest.fixture(scope="module")
def keras_bundle(torch_digits_ae, digits, tmp_path_factory):
    """The digits AE rebuilt in Keras (same weights) and exported with the TensorFlow adapter."""
    import flowcore_tensorflow

    from test_cross_framework import keras_twin

    enc, dec = keras_twin(*torch_digits_ae)
    return flowcore_tensorflow.export(enc, dec, digits["x_test"][:32], tmp_path_factory.mktemp("tf") / "bundle")


@pytest.mark.parametrize("which", ["torch", "tensorflow"])
def test_core_env_matches_full_env(core_python, which, request, digits, tmp_path):
    bundle = request.getfixturevalue("digits_bundle" if which == "torch" else "keras_bundle")
    assert bundle.manifest["source"]["framework"] == which
    digits_bundle = bundle
    lmap = LatentMap(digits_bundle, providers="cpu")
    save_npz(tmp_path / "x.npz", x=digits["x_test"])
    # full environment, in process
    traj = iterate(lmap, lmap.encode(digits["x_test"]))
    att = find_attractors(traj)
    # core-only environment, through the CLI
    proc = _cli(core_python, "attractors", str(digits_bundle.path), "--data", str(tmp_path / "x.npz"),
                "--out", str(tmp_path / "core"), "--json", "--quiet", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["attractors"]["n_attractors"] == att.n_attractors
    assert summary["attractors"]["counts"] == att.counts.tolist()
    got = np.load(tmp_path / "core" / "trajectories.npz")
    np.testing.assert_array_equal(got["steps"], traj.steps)
    np.testing.assert_array_equal(got["status"], traj.status)
    np.testing.assert_array_equal(got["final"], traj.final)


def test_core_env_scores_like_full_env(core_python, digits_bundle, digits, tmp_path):
    det = OODDetector(digits_bundle, methods=("trajectory", "features", "knn_mean50"), providers="cpu")
    det.fit(digits["x_train"]).save(tmp_path / "det")
    x = np.concatenate([digits["x_test"][:100], np.random.default_rng(0).uniform(0, 1, (50, 1, 8, 8)).astype(np.float32)])
    save_npz(tmp_path / "x.npz", x=x)
    proc = _cli(core_python, "ood", "score", str(tmp_path / "det"), "--data", str(tmp_path / "x.npz"),
                "--out", str(tmp_path / "s.csv"), "--all-methods", "--quiet", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    rows = np.genfromtxt(tmp_path / "s.csv", delimiter=",", names=True)
    expect = det.score_all(x)
    np.testing.assert_array_equal(rows["score"], expect["features"])
    np.testing.assert_array_equal(rows["score_trajectory"], expect["trajectory"])
    np.testing.assert_array_equal(rows["score_knn_mean50"], expect["knn_mean50"])
