"""Finite-difference Jacobians, spectral radius/norm, stable vs unstable, the rate bound."""

import numpy as np
import pytest

from flowcore.dynamics.attractors import find_attractors
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.runtime.latent_map import LatentMap
from flowcore.dynamics.stability import jacobians, predicted_steps, rate_check, stability
from flowcore.dynamics.trajectories import iterate

from _graphs import linear_pair, repeller, two_attractors


def _map(tmp_path, pair, name="m"):
    return LatentMap(FlowBundle.write(tmp_path / name, *pair), providers="cpu")


def test_jacobian_matches_analytic(tmp_path):
    A = np.array([[0.5, 0.9, 0.0], [-0.1, 0.3, 0.2], [0.05, 0.0, -0.4]])
    lmap = _map(tmp_path, linear_pair(A, np.array([0.3, -0.2, 1.0])))
    pts = np.random.default_rng(0).normal(size=(5, 3))
    J = jacobians(lmap, pts)
    np.testing.assert_allclose(J, np.broadcast_to(A.T, J.shape), atol=2e-4)  # f(z) = z A + c → J = Aᵀ
    s = stability(lmap, pts)
    np.testing.assert_allclose(s.spectral_radius, np.abs(np.linalg.eigvals(A)).max(), atol=1e-3)
    np.testing.assert_allclose(s.spectral_norm, np.linalg.norm(A, 2), atol=1e-3)
    assert s.spectral_norm[0] > 1 > s.spectral_radius[0]  # expands in one step, yet an attractor
    assert s.stable.all()


def test_two_attractors_and_repeller(tmp_path):
    a, b, u = np.array([2.0, 1.0]), np.array([-1.0, -3.0]), np.array([1.0, 0.0])
    lmap = _map(tmp_path, two_attractors(a, b, u, rho=0.7))
    s = stability(lmap, np.stack([a, b]))
    np.testing.assert_allclose(s.spectral_radius, [0.7, 0.7], atol=1e-3)
    assert s.labels() == ["stable", "stable"]
    np.testing.assert_allclose(s.fixed_point_residual, 0, atol=1e-6)
    rep = stability(_map(tmp_path, repeller(np.array([1.0, 1.0]), 1.5), "r"), np.array([[1.0, 1.0]]))
    assert rep.labels() == ["unstable"]
    np.testing.assert_allclose(rep.spectral_radius, [1.5], atol=1e-3)


def test_rate_bound_tracks_measured_steps(tmp_path):
    a, b, u = np.array([2.0, 1.0]), np.array([-1.0, -3.0]), np.array([1.0, 0.0])
    lmap = _map(tmp_path, two_attractors(a, b, u, rho=0.8))
    z0 = np.random.default_rng(1).uniform(-6, 6, size=(400, 2)).astype(np.float32)
    tr = iterate(lmap, z0)
    att = find_attractors(tr, metric="euclidean", threshold=1e-2)
    s = stability(lmap, att.centres)
    for row in rate_check(att, tr, s):
        assert row["predicted_median_steps"] == pytest.approx(row["measured_median_steps"], abs=1.5)


def test_predicted_steps_formula():
    # step_t = (1 − ρ) ρ^(t−1) e0 → step_T² = tol exactly at T = 1 + log(√tol / ((1−ρ) e0)) / log ρ
    rho, e0, tol = 0.5, 3.0, 1e-6
    T = predicted_steps(rho, e0, tol)
    assert ((1 - rho) * rho ** (T - 1) * e0) ** 2 == pytest.approx(tol)
    assert np.isnan(predicted_steps(1.2, 1.0, tol))


def test_chunked_jacobians_equal(tmp_path):
    lmap = _map(tmp_path, two_attractors(np.array([2.0, 1.0]), np.array([-1.0, -3.0]), np.array([1.0, 0.0])))
    pts = np.random.default_rng(2).normal(size=(9, 2)) + 3
    np.testing.assert_array_equal(jacobians(lmap, pts, max_rows=4), jacobians(lmap, pts))
