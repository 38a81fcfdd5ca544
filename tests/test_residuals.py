"""The residual-norm diagnostic: ‖z_{t+1} − z_t‖ and ‖z_t‖ per step without storing trajectories.

The norms equal a hand loop over LatentMap on the trained digits bundle; the result round-trips
through write/load; ``flowcore residuals`` writes its four files and prints the medians; bad
input exits 3 (one line, nothing written) and a bad --steps exits 2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from flowcore import ResidualReport, residual_norms
from flowcore.runtime.latent_map import LatentMap

from _cli import one_line, run


@pytest.fixture(scope="module")
def lmap(digits_bundle):
    return LatentMap(digits_bundle.path, providers="cpu", intra_op_num_threads=1)


def hand_loop(lmap, z0, steps):
    """Iterate f one start at a time with the trajectory kept, then take norms."""
    step_norm = np.empty((len(z0), steps))
    state_norm = np.empty((len(z0), steps))
    for i, z in enumerate(np.asarray(z0, np.float32)):
        path = [z[None]]
        for _ in range(steps):
            path.append(lmap(path[-1]))
        path = np.concatenate(path).reshape(steps + 1, -1).astype(np.float64)
        step_norm[i] = np.sqrt(((path[1:] - path[:-1]) ** 2).sum(axis=1))
        state_norm[i] = np.sqrt((path[:-1] ** 2).sum(axis=1))
    return step_norm, state_norm


def test_norms_equal_a_hand_loop_and_quartiles_are_numpys(lmap):
    z0 = np.random.default_rng(3).standard_normal((7, lmap.latent_dim)).astype(np.float32)
    rep = residual_norms(lmap, z0, 6, batch_size=3)  # batches of 3, 3, 1: batching must not change values
    sn, nn = hand_loop(lmap, z0, 6)
    assert rep.step_norm.shape == rep.state_norm.shape == (7, 6) and rep.step_norm.dtype == np.float64
    np.testing.assert_allclose(rep.state_norm, nn, rtol=1e-6)
    np.testing.assert_allclose(rep.step_norm, sn, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(rep.state_norm[:, 0], np.linalg.norm(z0.astype(np.float64), axis=1), rtol=1e-12)
    np.testing.assert_allclose(rep.quartiles("step_norm")[1], np.median(rep.step_norm, axis=0))
    rows = rep.summary()
    assert [r["step"] for r in rows] == [0, 1, 2, 5]
    assert rows[-1]["state_norm_median"] == pytest.approx(float(np.median(nn[:, 5])), rel=1e-6)


def test_write_load_round_trip(lmap, tmp_path):
    z0 = np.random.default_rng(0).standard_normal((4, lmap.latent_dim))
    rep = residual_norms(lmap, z0, 3, settings={"starts": "test"})
    rep.save(tmp_path / "r")
    back = ResidualReport.load(tmp_path / "r")
    np.testing.assert_array_equal(back.step_norm, rep.step_norm)
    np.testing.assert_array_equal(back.state_norm, rep.state_norm)
    assert back.latent_shape == rep.latent_shape and back.settings["starts"] == "test"


def test_cli_writes_files_and_prints_medians(digits_bundle, lmap, tmp_path, capsys):
    out = tmp_path / "res"
    code, text, err = run(["residuals", digits_bundle.path, "--noise", 5, "--seed", 1, "--steps", 4,
                           "--device", "cpu", "--out", out, "--quiet"], capsys)
    assert code == 0, err
    for name in ("residuals.npz", "residuals.json", "residuals.png", "residuals.csv"):
        assert (out / name).is_file(), name
    assert (out / "residuals.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads((out / "residuals.json").read_text())
    assert meta["n"] == 5 and meta["steps"] == 4
    rep = ResidualReport.load(out)
    assert f"{rep.summary()[0]['step_norm_median']:.3g}" in text and "t =     3" in text
    assert len((out / "residuals.csv").read_text().strip().splitlines()) == 1 + 4


def test_bad_input_exits_3_with_one_line(digits_bundle, tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 5), np.float32))  # wrong latent size
    out = tmp_path / "res"
    code, _, err = run(["residuals", digits_bundle.path, "--latents", bad, "--steps", 2, "--device", "cpu",
                        "--out", out], capsys)
    one_line(code, err, 3)
    assert not out.exists()
    code, _, err = run(["residuals", tmp_path / "missing_bundle", "--noise", 2, "--out", out], capsys)
    one_line(code, err, 3)
    code, _, err = run(["residuals", digits_bundle.path, "--noise", 2, "--steps", 0, "--out", out], capsys)
    one_line(code, err, 2)
    assert not out.exists()
