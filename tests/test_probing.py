"""OMP probing: exact recoveries on known dictionaries, the bases, and the digits smoke test."""

import numpy as np
import pytest

import sklearn  # noqa: F401  (the analysis extra: a missing one must fail, never skip)

from flowcore.analysis.probing import (  # noqa: E402
    ProbeReport,
    dictionary_rank,
    noise_dictionary,
    omp_reconstruct,
    orthobasis,
    pca_basis,
    probe,
)
from flowcore.bundle.flowbundle import FlowBundle  # noqa: E402
from flowcore.errors import DataError, ParameterError, ProbeDictionaryWarning  # noqa: E402
from flowcore.runtime.latent_map import LatentMap  # noqa: E402

from _graphs import two_attractors  # noqa: E402
from _trained import trained_digits_bundle  # noqa: E402


@pytest.fixture(scope="module")
def collapsed_bundle(digits, tmp_path_factory):
    """The digits MLP AE (k = 16) after 3 epochs: every noise start flows to one blurry attractor."""
    return trained_digits_bundle(digits["x_train"], tmp_path_factory.mktemp("collapsed") / "b", k=16, epochs=3)


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
    # default: one atom per distinct attractor, largest basin first
    d, info = noise_dictionary(lmap, 20, seed=0, tol=1e-10, max_steps=200, metric="euclidean", threshold=1e-2)
    assert d.shape == (2, 2) and info["seed"] == 0 and info["dedupe"]
    counts = (info["n_endpoints"], info["n_distinct"], info["n_atoms"], info["n_refused"], info["rank"])
    assert counts == (20, 2, 2, 0, 2)
    assert sum(info["basin_counts"]) == 20 and info["basin_counts"][0] >= info["basin_counts"][1]
    dist = np.minimum(np.linalg.norm(d.T - a, axis=1), np.linalg.norm(d.T - b, axis=1))
    assert dist.max() < 1e-3  # every atom is one of the two attractors
    # every endpoint: the repeats of an attractor are near-duplicates of its first copy and are refused
    de, info2 = noise_dictionary(lmap, 20, seed=0, tol=1e-10, max_steps=200, dedupe=False)
    assert de.shape == (2, 2) and info2["n_refused"] == 18 and not info2["dedupe"]
    assert noise_dictionary(lmap, seed=0)[0].shape[0] == 2  # default n = latent dim


def test_dictionary_rank_counts_independent_directions():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((6, 3))
    assert dictionary_rank(a) == 3
    assert dictionary_rank(np.concatenate([a, 2.5 * a[:, :1], np.zeros((6, 1))], axis=1)) == 3  # parallel, zero
    near = a[:, :1] + 1e-9 * rng.standard_normal((6, 1))  # a float32-rounding-level duplicate
    assert dictionary_rank(np.concatenate([a, near], axis=1)) == 3
    assert dictionary_rank(np.zeros((4, 2))) == 0


def test_probe_on_digits(digits_bundle, digits, tmp_path):
    lmap = LatentMap(digits_bundle, providers="cpu")
    with pytest.warns(ProbeDictionaryWarning, match="atom count"):  # 32 > k = 8 atoms in every basis
        rep = probe(lmap, digits["x_test"][:100], digits["x_train"], atoms=(1, 4, 8, 32), seed=0, max_steps=1000)
    assert rep.atoms.tolist() == [1, 4, 8, 32]
    assert set(rep.mse_latent) == {"noise", "orthobasis", "pca"}
    for b in rep.mse_latent:
        assert rep.mse_latent[b].shape == (4,) and rep.mse_input[b].shape == (4,)
        assert np.all(np.isfinite(rep.mse_latent[b])) and np.all(np.isfinite(rep.mse_input[b]))
        size = rep.dictionary_sizes[b]
        assert rep.effective_atoms[b].tolist() == np.minimum([1, 4, 8, 32], min(size, 8)).tolist()
        assert rep.capped[b].tolist() == (rep.effective_atoms[b] < rep.atoms).tolist() and rep.capped[b][-1]
        assert rep.dictionary_ranks[b] == min(size, 8)
        assert np.all(np.diff(rep.mse_latent[b]) <= 1e-12 * rep.mse_latent[b][0])  # OMP: non-increasing
    assert (rep.dictionary_sizes["pca"], rep.distinct_atoms["pca"]) == (8, 8)
    n_distinct = rep.settings["noise_dictionary"]["n_distinct"]
    assert rep.distinct_atoms["noise"] == n_distinct >= rep.dictionary_sizes["noise"]
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
    assert j["bases"]["noise"]["dictionary_rank"] == rep.dictionary_ranks["noise"]
    assert j["bases"]["noise"]["capped"] == rep.capped["noise"].tolist()
    rep.save(tmp_path / "probe")
    back = ProbeReport.load(tmp_path / "probe")
    np.testing.assert_array_equal(back.mse_input["noise"], rep.mse_input["noise"])
    assert back.settings == j["settings"] and back.dictionary_sizes == rep.dictionary_sizes
    assert back.dictionary_ranks == rep.dictionary_ranks and back.distinct_atoms == rep.distinct_atoms
    with pytest.raises(ParameterError):
        probe(lmap, digits["x_test"][:5], digits["x_train"], bases=("nope",))


def test_probe_collapsed_model_caps_instead_of_fitting_rounding_noise(collapsed_bundle, digits):
    # Regression: 16 noise starts reaching one attractor gave a 16-column dictionary of near-duplicates;
    # OMP fitted their float32 rounding differences (coefficients ~1e8) and the latent MSE fell from
    # 0.19 to 0.0025 at 8 atoms, then rose at 16. One atom per attractor: capped rows, a warning.
    lmap = LatentMap(collapsed_bundle, providers="cpu")
    x_test = digits["x_test"][:100].reshape(100, -1)
    atoms = (1, 2, 4, 8, 16)
    with pytest.warns(ProbeDictionaryWarning, match=r"noise dictionary has \d+ atoms? \(rank \d+, \d+ distinct"):
        rep = probe(lmap, x_test, digits["x_train"][:300].reshape(300, -1), atoms=atoms, n_noise=16, seed=0,
                    bases=("noise", "pca"))
    info = rep.settings["noise_dictionary"]
    n = rep.dictionary_sizes["noise"]
    assert info["n_endpoints"] == 16 and 1 <= info["n_distinct"] <= 2  # the collapse this model shows
    assert rep.distinct_atoms["noise"] == info["n_distinct"]
    assert rep.dictionary_ranks["noise"] == n <= info["n_distinct"]
    np.testing.assert_array_equal(rep.effective_atoms["noise"], np.minimum(atoms, n))
    np.testing.assert_array_equal(rep.capped["noise"], np.asarray(atoms) > n)
    for b in ("noise", "pca"):  # a fixed dictionary: OMP's residual cannot grow with the atom count
        assert np.all(np.diff(rep.mse_latent[b]) <= 1e-12 * rep.mse_latent[b][0]), (b, rep.mse_latent[b])
    # with all its atoms OMP is least squares on the dictionary: no count can beat the projection onto its span
    d, _ = noise_dictionary(lmap, 16, seed=0)
    z = lmap.encode(x_test).astype(np.float64)
    proj = d @ np.linalg.lstsq(d, z.T, rcond=None)[0]
    floor = float(np.mean((proj.T - z) ** 2))
    np.testing.assert_allclose(rep.mse_latent["noise"][rep.capped["noise"]], floor, rtol=1e-9)
    assert floor > 0.01  # one or two atoms leave a real error (the old curve claimed 0.0025 at 8 atoms)
    coef = omp_reconstruct(d, z, 16)[1]
    assert np.abs(coef).max() <= 10 * np.linalg.norm(z, axis=1).max()  # no blown-up coefficients (old: ~1e8)


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
