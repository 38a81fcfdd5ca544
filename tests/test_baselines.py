"""Chunked nearest neighbours and the latent baselines."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from flowcore.analysis.ood.baselines import LatentKNN, knn_distances
from flowcore.analysis.ood.detector import Evidence


def test_knn_matches_sklearn_chunked():
    rng = np.random.default_rng(0)
    bank, x = rng.normal(size=(500, 6)), rng.normal(size=(130, 6))
    ours = knn_distances(bank, x, 7, block_x=16, block_bank=37)
    ref, _ = NearestNeighbors(n_neighbors=7).fit(bank).kneighbors(x)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(knn_distances(bank, x, 7, squared=True), ref**2, rtol=1e-9, atol=1e-9)


def test_knn_exclude_self_is_leave_one_out():
    bank = np.random.default_rng(1).normal(size=(300, 4))
    ours = knn_distances(bank, bank, 5, exclude_self=True, block_x=64, block_bank=50)
    ref, _ = NearestNeighbors(n_neighbors=6).fit(bank).kneighbors(bank)
    np.testing.assert_allclose(ours, ref[:, 1:], rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("reduce", ["kth", "mean"])
@pytest.mark.parametrize("normalize", [False, True])
def test_latent_knn_variants(reduce, normalize):
    rng = np.random.default_rng(2)
    z_id, z = rng.normal(size=(200, 5)).astype(np.float32), rng.normal(size=(20, 5)).astype(np.float32) * 3
    s = LatentKNN(10, reduce=reduce, normalize=normalize).fit(Evidence(latents=z_id))
    got = s.score(Evidence(latents=z))
    b = z_id / np.linalg.norm(z_id, axis=1, keepdims=True) if normalize else z_id
    q = z / np.linalg.norm(z, axis=1, keepdims=True) if normalize else z
    d, _ = NearestNeighbors(n_neighbors=10).fit(b.astype(np.float64)).kneighbors(q.astype(np.float64))
    np.testing.assert_allclose(got, d[:, -1] if reduce == "kth" else d.mean(1), rtol=1e-6)
