"""The vector field V(z) = f(z) − z at points and on a 2-D grid."""

import numpy as np
import pytest

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.errors import DataError
from flowcore.dynamics.field import field_grid, vector_field
from flowcore.runtime.latent_map import LatentMap

from _graphs import linear_pair


def _lin(tmp_path, A, c, name="m"):
    return LatentMap(FlowBundle.write(tmp_path / name, *linear_pair(A, c)), providers="cpu")


def test_vector_field_at_points(tmp_path):
    A = np.array([[0.5, 0.2], [-0.1, 0.8]], np.float32)
    c = np.array([1.0, -2.0], np.float32)
    lmap = _lin(tmp_path, A, c)
    z = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    np.testing.assert_allclose(vector_field(lmap, z), z @ A + c - z, rtol=1e-5, atol=1e-6)


def test_grid_2d_matches_analytic(tmp_path):
    A = np.array([[0.5, 0.2], [-0.1, 0.8]], np.float32)
    c = np.array([1.0, -2.0], np.float32)
    g = field_grid(_lin(tmp_path, A, c), xlim=(-3, 3), ylim=(-2, 2), n=7)
    gx, gy = np.meshgrid(g.xs, g.ys)
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    v = pts @ A + c - pts
    np.testing.assert_allclose(g.u, v[:, 0].reshape(7, 7), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g.v, v[:, 1].reshape(7, 7), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g.speed, np.linalg.norm(v, axis=1).reshape(7, 7), rtol=1e-5, atol=1e-5)
    assert g.u.shape == (7, 7) and g.xs[0] == -3 and g.ys[-1] == 2


def test_grid_on_a_plane_of_a_higher_dimensional_latent(tmp_path):
    k = 5
    A = np.diag(np.linspace(0.1, 0.9, k)).astype(np.float32)
    lmap = _lin(tmp_path, A, np.zeros(k), "k5")
    basis = np.zeros((2, k))
    basis[0, 0], basis[1, 3] = 2.0, 1.0  # orthogonal directions, rescaled to unit length inside
    origin = np.ones(k)
    g = field_grid(lmap, n=5, xlim=(-1, 1), ylim=(-1, 1), origin=origin, basis=basis)
    np.testing.assert_allclose(np.linalg.norm(g.basis, axis=1), 1.0, rtol=1e-6)
    gx, gy = np.meshgrid(g.xs, g.ys)
    pts = origin + gx.reshape(-1, 1) * np.eye(k)[0] + gy.reshape(-1, 1) * np.eye(k)[3]
    v = pts @ A - pts
    np.testing.assert_allclose(g.u.ravel(), v[:, 0], rtol=1e-5, atol=1e-5)  # in-plane components
    np.testing.assert_allclose(g.v.ravel(), v[:, 3], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g.speed.ravel(), np.linalg.norm(v, axis=1), rtol=1e-5, atol=1e-5)  # full ‖V‖
    with pytest.raises(DataError, match="basis"):
        field_grid(lmap, n=5)
    with pytest.raises(DataError, match="linearly dependent"):
        field_grid(lmap, n=5, basis=np.ones((2, k)))
