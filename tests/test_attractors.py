"""Attractors from trajectories: known maps, basins, fractions, save/load."""

import numpy as np
import pytest

from flowcore.dynamics.attractors import Attractors, find_attractors
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.runtime.latent_map import LatentMap
from flowcore.dynamics.trajectories import iterate

from _graphs import linear_pair, two_attractors


def test_two_attractor_map(tmp_path):
    a, b, u = np.array([2.0, 1.0]), np.array([-1.0, -3.0]), np.array([1.0, 0.0])
    lmap = LatentMap(FlowBundle.write(tmp_path / "m", *two_attractors(a, b, u)), providers="cpu")
    g = np.linspace(-4, 4, 40)  # grid avoids x = 0 exactly
    z0 = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2).astype(np.float32)
    att = find_attractors(iterate(lmap, z0), metric="euclidean", threshold=1e-2)
    assert att.n_attractors == 2 and att.n_unassigned == 0
    found = {tuple(np.round(c, 2)) for c in att.centres}
    assert found == {(2.0, 1.0), (-1.0, -3.0)}
    right = z0[:, 0] > 0
    which = np.argmin(((att.centres[:, None, :] - a) ** 2).sum(-1)[:, 0])
    np.testing.assert_array_equal(att.labels == which, right)
    assert att.fractions.sum() == pytest.approx(1.0)
    assert att.fractions[which] == pytest.approx(right.mean())
    p = right.mean()
    np.testing.assert_allclose(att.fraction_se[which], np.sqrt(p * (1 - p) / len(z0)))


def test_unassigned_and_save(tmp_path):
    lmap = LatentMap(FlowBundle.write(tmp_path / "m", *linear_pair(0.5 * np.eye(2), np.ones(2))), providers="cpu")
    tr = iterate(lmap, np.array([[0.0, 0.0], [1.0, 5.0], [-3.0, 2.0]]))
    att = find_attractors(tr)
    assert att.n_attractors == 1 and att.counts.tolist() == [3]
    np.testing.assert_allclose(att.centres[0], [2.0, 2.0], atol=1e-3)
    assert att.settings["metric"] == "cosine" and att.settings["trajectory_tol"] == 1e-6
    att.save(tmp_path / "out")
    back = Attractors.load(tmp_path / "out")
    np.testing.assert_array_equal(back.labels, att.labels)
    assert back.settings["threshold"] == 0.99


def test_digits_attractors(digits_bundle, digits):
    lmap = LatentMap(digits_bundle, providers="cpu")
    tr = iterate(lmap, lmap.encode(digits["x_test"]))
    att = find_attractors(tr)
    assert att.n_attractors >= 1
    assert att.counts.sum() + att.n_unassigned == len(digits["x_test"])
    assert (att.labels[tr.status != 0] == -1).all()
    un = att.unassigned_fractions()
    total = att.fractions.sum() + un["max_steps"]["fraction"] + un["diverged"]["fraction"]
    assert total == pytest.approx(1.0)
    assert att.settings["trajectory_tol"] == 1e-6 and att.settings["metric"] == "cosine"
