"""Streaming trajectory features equal the same features computed from stored full paths."""

import numpy as np
import pytest

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.dynamics.features import DISTANCE_FEATURES, FEATURES, features_from_paths
from flowcore.runtime.latent_map import LatentMap
from flowcore.dynamics.trajectories import Trajectories, iterate

from _graphs import two_attractors


@pytest.fixture
def lmap(tmp_path):
    a, b, u = np.array([2.0, 1.0, 0.0]), np.array([-1.0, -3.0, 0.5]), np.array([1.0, 0.0, 0.0])
    return LatentMap(FlowBundle.write(tmp_path / "m", *two_attractors(a, b, u, rho=0.85)), providers="cpu")


@pytest.mark.parametrize("batch_size", [4096, 17])
def test_streaming_equals_full_paths(lmap, batch_size):
    z0 = np.random.default_rng(0).uniform(-5, 5, size=(250, 3)).astype(np.float32)
    ref = np.array([[2.0, 1.0, 0.0], [-1.0, -3.0, 0.5], [4.0, 4.0, 4.0]], np.float32)
    tr = iterate(lmap, z0, reference=ref, record_every=1, batch_size=batch_size)
    expect = features_from_paths(tr.path, tr.path_steps, ref)
    assert set(tr.features) == set(FEATURES) | set(DISTANCE_FEATURES)
    for name in tr.features:
        np.testing.assert_allclose(tr.features[name], expect[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert np.all(tr.features["dist_min"] <= tr.features["dist_mean"] + 1e-12)
    assert np.all(tr.features["dist_mean"] <= tr.features["dist_max"] + 1e-12)


def test_features_without_reference_and_save(lmap, tmp_path):
    z0 = np.random.default_rng(1).normal(size=(20, 3)).astype(np.float32)
    tr = iterate(lmap, z0, features=True)
    assert set(tr.features) == set(FEATURES)
    np.testing.assert_array_equal(tr.features["steps"], tr.steps)
    tr.save(tmp_path / "t")
    back = Trajectories.load(tmp_path / "t")
    for name, v in tr.features.items():
        np.testing.assert_array_equal(back.features[name], v)
    np.testing.assert_array_equal(back.starts, z0)


def test_diverged_rows_are_infinitely_far(tmp_path):
    from _graphs import nan_map

    lm = LatentMap(FlowBundle.write(tmp_path / "nan", *nan_map(2)), providers="cpu")
    ref = np.zeros((1, 2), np.float32)
    tr = iterate(lm, np.zeros((3, 2), np.float32), reference=ref, record_every=1)
    expect = features_from_paths(tr.path, tr.path_steps, ref)
    for name in DISTANCE_FEATURES:
        np.testing.assert_array_equal(tr.features[name], expect[name], err_msg=name)
    assert np.isinf(tr.features["dist_mean"]).all() and np.isfinite(tr.features["dist_min"]).all()
