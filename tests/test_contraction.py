"""contraction_ratio: σ_out / σ_in of f on N(0, I) latents (PAPER Fig. 6)."""

import numpy as np
import pytest

import flowcore
from flowcore.analysis import ContractionReport, contraction_ratio
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.errors import ParameterError
from flowcore.runtime.latent_map import LatentMap

from _graphs import contraction_to, linear_pair, repeller


def _map(tmp_path, pair, name="m"):
    return LatentMap(FlowBundle.write(tmp_path / name, *pair), providers="cpu")


@pytest.mark.parametrize("rho", [0.5, -0.3, 0.9])
def test_linear_contraction_gives_abs_rho(tmp_path, rho):
    a = np.array([2.0, -1.0, 0.5, 3.0])
    rep = contraction_ratio(_map(tmp_path, contraction_to(a, rho)), n=2000, seed=3)
    # f(z) − a = ρ (z − a): every per-coordinate std scales by exactly |ρ|, whatever the sample
    assert rep.ratio == pytest.approx(abs(rho), rel=1e-5)
    assert rep.median_coordinate_ratio == pytest.approx(abs(rho), rel=1e-5)
    np.testing.assert_allclose(rep.coord_std_out / rep.coord_std_in, abs(rho), rtol=1e-5)
    assert rep.sigma_in == pytest.approx(1.0, abs=0.05)  # N(0, I), n = 2000: σ within a few 1/sqrt(2n)
    assert rep.contracts
    # the mean norm also counts the shift to a: ‖a + ρ(z − a)‖ vs ‖z‖, checked against NumPy
    z = np.random.default_rng(3).standard_normal((2000, 4)).astype(np.float32)
    fz = a + rho * (z - a)
    want = np.linalg.norm(fz, axis=1).mean() / np.linalg.norm(z, axis=1).mean()
    assert rep.norm_ratio == pytest.approx(want, rel=1e-4)
    assert rep.settings["n"] == 2000 and rep.settings["seed"] == 3


def test_fixed_point_at_origin_norm_ratio_is_rho(tmp_path):
    rep = contraction_ratio(_map(tmp_path, contraction_to(np.zeros(3), 0.25)), n=500, seed=0)
    assert rep.norm_ratio == pytest.approx(0.25, rel=1e-5)
    assert rep.ratio == pytest.approx(0.25, rel=1e-5)


def test_expanding_map_ratio_above_one(tmp_path):
    rep = contraction_ratio(_map(tmp_path, repeller(np.array([1.0, -2.0]), gain=1.5)), n=1000)
    assert rep.ratio == pytest.approx(1.5, rel=1e-5)
    assert rep.ratio > 1 and not rep.contracts


def test_anisotropic_linear_map_rms_definition(tmp_path):
    # f(z) = z @ diag(0.2, 2.0): RMS σ ratio = sqrt((0.2² s1² + 2² s2²) / (s1² + s2²)) ≈ sqrt(2.02);
    # the median of the per-coordinate ratios is (0.2 + 2.0) / 2 (two coordinates)
    A = np.diag([0.2, 2.0])
    rep = contraction_ratio(_map(tmp_path, linear_pair(A, np.zeros(2))), n=4000, seed=1)
    s = rep.coord_std_in
    want = np.sqrt((0.04 * s[0] ** 2 + 4.0 * s[1] ** 2) / (s[0] ** 2 + s[1] ** 2))
    assert rep.ratio == pytest.approx(want, rel=1e-5)
    assert rep.ratio == pytest.approx(np.sqrt(2.02), rel=0.05)
    assert rep.median_coordinate_ratio == pytest.approx(1.1, rel=1e-5)


def test_seed_and_batch_size(tmp_path):
    lm = _map(tmp_path, linear_pair(np.array([[0.5, 0.3], [-0.2, 0.7]]), np.zeros(2)))
    r1 = contraction_ratio(lm, n=300, seed=7)
    r2 = contraction_ratio(lm, n=300, seed=7, batch_size=64)
    r3 = contraction_ratio(lm, n=300, seed=8)
    assert r1.ratio == r2.ratio and r1.norm_ratio == r2.norm_ratio
    np.testing.assert_array_equal(r1.coord_std_out, r2.coord_std_out)
    assert r3.ratio != r1.ratio


def test_save_load_round_trip(tmp_path):
    rep = contraction_ratio(_map(tmp_path, contraction_to(np.ones(3), 0.4)), n=200, seed=2)
    back = ContractionReport.load(rep.save(tmp_path / "out"))
    assert back.to_json() == rep.to_json()
    np.testing.assert_array_equal(back.coord_std_in, rep.coord_std_in)
    np.testing.assert_array_equal(back.coord_std_out, rep.coord_std_out)


@pytest.mark.parametrize("kw", [{"n": 1}, {"n": 0}, {"n": -5}, {"n": 10.5}, {"n": True}, {"seed": -1},
                                {"seed": 1.5}, {"seed": None}, {"batch_size": 0}])
def test_bad_parameters_refused(tmp_path, kw):
    lm = _map(tmp_path, contraction_to(np.zeros(2), 0.5))
    with pytest.raises(ParameterError, match="contraction_ratio"):
        contraction_ratio(lm, **kw)


def test_random_init_torch_mlp_autoencoder(tmp_path):
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    import flowcore_torch  # noqa: PLC0415

    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 8))
    dec = nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Linear(128, 64), nn.Sigmoid())
    bundle = flowcore_torch.export(enc.eval(), dec.eval(), torch.rand(8, 64), tmp_path / "mlp")
    lm = LatentMap(bundle, providers="cpu")
    r1 = contraction_ratio(lm, n=1000, seed=0)
    r2 = contraction_ratio(lm, n=1000, seed=0)
    assert np.isfinite(r1.ratio) and r1.ratio > 0
    assert np.isfinite(r1.norm_ratio) and r1.norm_ratio > 0
    assert r1.to_json() == r2.to_json()
    np.testing.assert_array_equal(r1.coord_std_out, r2.coord_std_out)
    # the same thing computed in torch: f(z) = E(D(z)) on the same N(0, I) draw
    z = np.random.default_rng(0).standard_normal((1000, 8)).astype(np.float32)
    with torch.no_grad():
        fz = enc(dec(torch.from_numpy(z))).numpy().astype(np.float64)
    s_in, s_out = z.astype(np.float64).std(0), fz.std(0)
    want = np.sqrt(np.mean(s_out ** 2)) / np.sqrt(np.mean(s_in ** 2))
    assert r1.ratio == pytest.approx(want, rel=1e-4)


# --------------------------------------------------------------------------- contraction over seeds
def test_seeds_are_contraction_ratio_seed_by_seed(tmp_path):
    # an anisotropic map: the ratio differs from seed to seed, so the mean and std are not trivial
    lm = _map(tmp_path, linear_pair(np.diag([0.2, 0.9, 1.4]), np.zeros(3)))
    rep = flowcore.contraction_seeds(lm, seeds=4, n=150)
    want = [contraction_ratio(lm, n=150, seed=s) for s in range(4)]
    np.testing.assert_array_equal(rep.seeds, [0, 1, 2, 3])
    for name in ("ratio", "median_coordinate_ratio", "norm_ratio", "sigma_in", "sigma_out"):
        values = np.array([getattr(r, name) for r in want])
        np.testing.assert_array_equal(getattr(rep, name), values)
        if name in rep.mean:
            assert rep.mean[name] == float(np.mean(values)) and rep.std[name] == float(np.std(values, ddof=1))
    assert rep.std["ratio"] > 0
    np.testing.assert_array_equal(rep.contracts, [r.contracts for r in want])
    j = rep.to_json()
    assert (j["n"], j["seeds"], j["latent_dim"], j["latent_shape"]) == (150, 4, 3, [3])
    assert j["contracting_seeds"] == sum(r.contracts for r in want) == rep.contracting_seeds
    assert [row["seed"] for row in j["per_seed"]] == [0, 1, 2, 3]
    assert all(row["ratio"] == r.ratio for row, r in zip(j["per_seed"], want))
    assert j["settings"]["providers"] == ["CPUExecutionProvider"]
    back = flowcore.ContractionSeeds.load(rep.save(tmp_path / "seeds"))
    assert back.to_json() == j


def test_seeds_listed_and_one_seed(tmp_path):
    lm = _map(tmp_path, contraction_to(np.array([1.0, -1.0]), 0.3))
    rep = flowcore.contraction_seeds(lm, seeds=[5, 2], n=100)
    np.testing.assert_array_equal(rep.seeds, [5, 2])
    assert rep.ratio[0] == contraction_ratio(lm, n=100, seed=5).ratio
    np.testing.assert_allclose(rep.ratio, 0.3, rtol=1e-5)  # linear contraction: |rho| on every seed
    assert rep.contracting_seeds == 2 and "listed" in rep.settings["inputs"]
    one = flowcore.contraction_seeds(lm, seeds=1, n=100)
    assert one.std == {"ratio": None, "median_coordinate_ratio": None, "norm_ratio": None}
    assert one.mean["ratio"] == float(one.ratio[0])


@pytest.mark.parametrize("kw", [{"seeds": 0}, {"seeds": -2}, {"seeds": []}, {"seeds": [1, -1]}, {"seeds": 2.5},
                                {"n": 1}, {"batch_size": 0}])
def test_seeds_bad_parameters_refused(tmp_path, kw):
    lm = _map(tmp_path, contraction_to(np.zeros(2), 0.5))
    with pytest.raises(ParameterError, match="contraction_seeds"):
        flowcore.contraction_seeds(lm, **kw)
