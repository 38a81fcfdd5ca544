"""OMP probing: exact recoveries on known dictionaries, the bases, and the digits smoke test."""

import numpy as np
import pytest

import sklearn  # noqa: F401  (the analysis extra: a missing one must fail, never skip)

from flowcore.analysis.probing import (  # noqa: E402
    ProbeReport,
    noise_dictionary,
    omp_reconstruct,
    orthobasis,
    pca_basis,
    probe,
)
from flowcore.bundle.flowbundle import FlowBundle  # noqa: E402
from flowcore.errors import DataError, ParameterError  # noqa: E402
from flowcore.runtime.latent_map import LatentMap  # noqa: E402

from _graphs import two_attractors  # noqa: E402


def test_omp_dictionary_containing_target_is_exact():
    rng = np.random.default_rng(0)
    dic = rng.standard_normal((16, 40))
    targets = np.stack([3.0 * dic[:, 5], -0.5 * dic[:, 31]])  # scaled atoms: normalisation must not matter
    recon, coef = omp_reconstruct(dic, targets, 1)
    np.testing.assert_allclose(recon, targets, atol=1e-10)
    assert coef.shape == (2, 40)
    np.testing.assert_array_equal(np.flatnonzero(coef[0]), [5])
    np.testing.assert_array_equal(np.flatnonzero(coef[1]), [31])
    # a 3-sparse combination is recovered with 3 atoms (exact, more atoms than needed is fine too)
    t = dic[:, [2, 9, 20]] @ np.array([1.0, -2.0, 0.5])
    for s in (3, 6):
        np.testing.assert_allclose(omp_reconstruct(dic, t[None], s)[0][0], t, atol=1e-9)


def test_omp_clamps_and_validates():
    dic = np.eye(3)
    dic = np.concatenate([dic, np.zeros((3, 1))], axis=1)  # a zero column is dropped
    t = np.array([[1.0, 2.0, 3.0]])
    recon, coef = omp_reconstruct(dic, t, 99)  # clamped to 3
    np.testing.assert_allclose(recon, t, atol=1e-12)
    assert coef[0, 3] == 0.0
    with pytest.raises(DataError, match="columns"):
        omp_reconstruct(dic, np.ones((1, 4)), 1)
    with pytest.raises(ParameterError):
        omp_reconstruct(dic, t, 0)
    with pytest.raises(DataError, match="nonzero"):
        omp_reconstruct(np.zeros((3, 2)), t, 1)


def test_orthobasis_is_orthonormal_and_seeded():
    q = orthobasis(7, seed=3)
    np.testing.assert_allclose(q.T @ q, np.eye(7), atol=1e-12)
    np.testing.assert_array_equal(q, orthobasis(7, seed=3))
    assert not np.allclose(q, orthobasis(7, seed=4))


def test_pca_basis_with_all_components_reconstructs_exactly():
    rng = np.random.default_rng(1)
    z_train = rng.standard_normal((200, 6)) @ rng.standard_normal((6, 6)) + 4.0
    comps, mean = pca_basis(z_train)
    assert comps.shape == (6, 6) and mean.shape == (6,)
    np.testing.assert_allclose(comps.T @ comps, np.eye(6), atol=1e-10)
    z = rng.standard_normal((25, 6)) * 3.0
    recon = omp_reconstruct(comps, z - mean, 6)[0] + mean
    np.testing.assert_allclose(recon, z, atol=1e-9)
    # first component = direction of largest variance (matches sklearn PCA up to sign)
    from sklearn.decomposition import PCA  # noqa: PLC0415

    ref = PCA().fit(z_train).components_[0]
    assert abs(float(comps[:, 0] @ ref)) == pytest.approx(1.0, abs=1e-8)


def test_noise_dictionary_on_two_attractor_map(tmp_path):
    a, b, u = np.array([2.0, 1.0]), np.array([-1.0, -3.0]), np.array([1.0, 0.0])
    lmap = LatentMap(FlowBundle.write(tmp_path / "m", *two_attractors(a, b, u)), providers="cpu")
    d, info = noise_dictionary(lmap, 20, seed=0, tol=1e-10, max_steps=200)
    assert d.shape == (2, 20) and info["n_atoms"] == 20 and info["seed"] == 0
    # every atom is one of the two attractors
    dist = np.minimum(np.linalg.norm(d.T - a, axis=1), np.linalg.norm(d.T - b, axis=1))
    assert dist.max() < 1e-3
    dd, info2 = noise_dictionary(lmap, 20, seed=0, tol=1e-10, max_steps=200, dedupe=True, metric="euclidean",
                                 threshold=1e-2)
    assert dd.shape == (2, 2) and info2["dedupe"]
    assert noise_dictionary(lmap, seed=0)[0].shape == (2, 2)  # default n = latent dim


def test_probe_on_digits(digits_bundle, digits, tmp_path):
    lmap = LatentMap(digits_bundle, providers="cpu")
    rep = probe(lmap, digits["x_test"][:100], digits["x_train"], atoms=(1, 4, 8, 32), seed=0, max_steps=1000)
    assert rep.atoms.tolist() == [1, 4, 8, 32]
    assert set(rep.mse_latent) == {"noise", "orthobasis", "pca"}
    for b in rep.mse_latent:
        assert rep.mse_latent[b].shape == (4,) and rep.mse_input[b].shape == (4,)
        assert np.all(np.isfinite(rep.mse_latent[b])) and np.all(np.isfinite(rep.mse_input[b]))
        assert rep.effective_atoms[b].tolist() == [1, 4, 8, 8]  # clamped to k = 8
    # complete bases (k atoms) give back E(x) exactly, hence the plain reconstruction
    for b in ("orthobasis", "pca"):
        assert rep.mse_latent[b][-1] == pytest.approx(0.0, abs=1e-8)
        assert rep.mse_input[b][-1] == pytest.approx(rep.reference_mse_input, rel=1e-4)
        assert rep.mse_latent[b][0] >= rep.mse_latent[b][-1]
    s = rep.settings
    assert (s["seed"], s["max_steps"], s["n_noise"], s["latent_dim"], s["n_heldout"]) == (0, 1000, 8, 8, 100)
    assert s["noise_dictionary"]["n_starts"] == 8 and s["providers"]
    j = rep.to_json()
    assert j["bases"]["pca"]["mse_input"] == rep.mse_input["pca"].tolist()
    rep.save(tmp_path / "probe")
    back = ProbeReport.load(tmp_path / "probe")
    np.testing.assert_array_equal(back.mse_input["noise"], rep.mse_input["noise"])
    assert back.settings == j["settings"] and back.dictionary_sizes == rep.dictionary_sizes
    with pytest.raises(ParameterError):
        probe(lmap, digits["x_test"][:5], digits["x_train"], bases=("nope",))


def test_missing_sklearn_is_one_line_error(monkeypatch):
    import sys  # noqa: PLC0415

    from flowcore.analysis.checkpoints import checkpoint_metrics  # noqa: PLC0415
    from flowcore.errors import BackendError  # noqa: PLC0415

    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(BackendError, match=r"flowcore\[analysis\]"):
        omp_reconstruct(np.eye(2), np.ones((1, 2)), 1)
    with pytest.raises(BackendError, match=r"flowcore\[analysis\]"):
        checkpoint_metrics(["unused"], np.ones((2, 2)), np.ones((2, 2)))


def test_imports_do_not_load_sklearn():
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = ("import sys, flowcore.analysis.memorization, flowcore.analysis.checkpoints, flowcore.analysis.probing; "
            "assert 'sklearn' not in sys.modules, 'sklearn imported at module level'")
    subprocess.run([sys.executable, "-c", code], check=True)
