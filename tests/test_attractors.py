"""Grouping (single linkage at a tolerance) and attractors from trajectories."""

import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from flowcore.attractors import Attractors, find_attractors
from flowcore.bundle import FlowBundle
from flowcore.errors import DataError
from flowcore.grouping import group_points
from flowcore.runtime import LatentMap
from flowcore.trajectories import iterate

from _graphs import linear_pair, two_attractors


def _clustered(seed, n=2000, k=16, centres=15, spread=0.2):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, k)) * 3
    return c[rng.integers(0, centres, n)] + rng.normal(size=(n, k)) * spread


@pytest.mark.parametrize("seed", range(3))
def test_grouping_equals_dbscan(seed):
    x = _clustered(seed)
    for eps in (0.5, 1.0, 2.0):
        ours = group_points(x, metric="euclidean", threshold=eps)
        ref = DBSCAN(eps=eps, min_samples=1).fit_predict(x)
        assert adjusted_rand_score(ours, ref) == 1.0
    for thr in (0.99, 0.95):
        ours = group_points(x, metric="cosine", threshold=thr)
        ref = DBSCAN(eps=1 - thr, min_samples=1, metric="cosine").fit_predict(x)
        assert adjusted_rand_score(ours, ref) == 1.0


def test_grouping_edges():
    assert group_points(np.zeros((0, 3))).shape == (0,)
    assert group_points(np.ones((1, 3))).tolist() == [0]
    assert group_points(np.ones((50, 3)), metric="euclidean", threshold=0.0).tolist() == [0] * 50
    # zero rows have no direction: one group of their own under cosine
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    assert group_points(x).tolist() == [0, 1, 0, 1]
    with pytest.raises(DataError, match="NaN"):
        group_points(np.array([[1.0, np.nan]]))
    with pytest.raises(DataError, match="unknown metric"):
        group_points(np.ones((2, 2)), metric="manhattan")


def test_relative_tolerance_scales():
    x = _clustered(0, spread=0.05)
    a = group_points(x, metric="euclidean", threshold=0.1, relative=True)
    b = group_points(x * 1000, metric="euclidean", threshold=0.1, relative=True)
    assert adjusted_rand_score(a, b) == 1.0


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
