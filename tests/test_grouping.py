"""Grouping kernel vs NumPy reference vs sklearn DBSCAN(min_samples=1): identical partitions."""

import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from flowcore.errors import DataError, ParameterError
from flowcore.dynamics.grouping import group_points, group_points_ref


def _clustered(seed, n=2000, k=16, centres=15, spread=0.2, dtype=np.float64):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, k)) * 3
    return (c[rng.integers(0, centres, n)] + rng.normal(size=(n, k)) * spread).astype(dtype)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_euclidean_partition_equals_dbscan(seed, dtype):
    x = _clustered(seed, dtype=dtype)
    for eps in (0.3, 1.0, 2.5):  # 0.3 splits clusters, 2.5 chains some together
        ours = group_points(x, metric="euclidean", threshold=eps)
        ref = group_points_ref(x, metric="euclidean", threshold=eps)
        sk = DBSCAN(eps=eps, min_samples=1).fit_predict(x.astype(np.float64))
        np.testing.assert_array_equal(ours, ref)  # same labels, not only the same partition
        assert adjusted_rand_score(ours, sk) == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_cosine_partition_equals_dbscan(seed):
    x = _clustered(seed, k=8, centres=25, spread=0.1)
    for thr in (0.99, 0.9):
        ours = group_points(x, metric="cosine", threshold=thr)
        ref = group_points_ref(x, metric="cosine", threshold=thr)
        sk = DBSCAN(eps=1 - thr, min_samples=1, metric="cosine").fit_predict(x)
        np.testing.assert_array_equal(ours, ref)
        assert adjusted_rand_score(ours, sk) == 1.0


def test_chaining_needs_union_find():
    # points on a line 0.9 apart: leaders (radius 1) skip every other point, yet all are linked
    x = np.arange(200, dtype=np.float64)[:, None] * 0.9 * np.array([[1.0, 0.0]])
    x = x[np.random.default_rng(0).permutation(len(x))]
    assert set(group_points(x, metric="euclidean", threshold=1.0)) == {0}
    assert set(group_points_ref(x, metric="euclidean", threshold=1.0)) == {0}
    assert len(set(group_points(x, metric="euclidean", threshold=0.8))) == 200


@pytest.mark.parametrize("fn", [group_points, group_points_ref])
def test_edge_inputs(fn):
    assert fn(np.zeros((0, 3))).shape == (0,)
    assert fn(np.ones((1, 3))).tolist() == [0]
    assert fn(np.ones((50, 3)), metric="euclidean", threshold=0.0).tolist() == [0] * 50
    assert fn(np.ones((50, 3))).tolist() == [0] * 50
    # zero rows have no direction: one group of their own under cosine
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    assert fn(x).tolist() == [0, 1, 0, 1]
    with pytest.raises(DataError, match="NaN"):
        fn(np.array([[1.0, 0.0], [1.0, np.nan]]))
    with pytest.raises(DataError, match="Inf"):
        fn(np.array([[np.inf, 0.0]]))
    with pytest.raises(ParameterError, match="unknown metric"):
        fn(np.ones((2, 2)), metric="manhattan")
    with pytest.raises(DataError, match=r"shape \(N, k\)"):
        fn(np.ones(3))


def test_relative_tolerance_is_scale_free():
    x = _clustered(0, spread=0.05)
    a = group_points(x, metric="euclidean", threshold=0.1, relative=True)
    b = group_points(x * 1000, metric="euclidean", threshold=0.1, relative=True)
    np.testing.assert_array_equal(a, b)


def test_python_mode_matches_jit():
    """The kernel run as plain Python (NUMBA_DISABLE_JIT=1) gives the same labels."""
    code = (
        "import numpy as np\n"
        "from flowcore.dynamics.grouping import group_points\n"
        "rng = np.random.default_rng(3)\n"
        "x = rng.normal(size=(300, 4)) * 0.2 + rng.integers(0, 5, size=(300, 1))\n"
        "print(' '.join(map(str, group_points(x, metric='euclidean', threshold=0.4))))\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4)) * 0.2 + rng.integers(0, 5, size=(300, 1))
    assert proc.stdout.split() == list(map(str, group_points(x, metric="euclidean", threshold=0.4)))


def test_exact_far_from_origin_float32():
    """Leaders 2.8 eps apart far from the origin: the projection window must still pair them."""
    x = np.array([[-27286.092, -96205.35], [-27286.1, -96205.375], [-27286.094, -96205.36], [-27286.098, -96205.37]],
                 np.float32)
    ref = DBSCAN(eps=0.0089, min_samples=1).fit_predict(x.astype(np.float64))
    assert adjusted_rand_score(group_points(x, metric="euclidean", threshold=0.0089), ref) == 1.0


def test_cosine_huge_and_tiny_norms():
    for scale in (1e200, 1e-200):
        x = np.array([[scale, 0.0], [0.0, scale], [1.0, 0.0]])
        assert group_points(x).tolist() == [0, 1, 0]
        assert group_points_ref(x).tolist() == [0, 1, 0]
