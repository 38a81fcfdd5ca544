"""Memorization coefficient, null levels, rank@variance and the memorization report."""

import json

import numpy as np
import pytest

from flowcore.analysis.memorization import (
    MemorizationReport,
    memorization_coefficient,
    memorization_report,
    null_levels,
    rank_at_variance,
)
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.errors import DataError, ParameterError
from flowcore.cli.app import main
from flowcore.io import save_npz
from flowcore.runtime.latent_map import LatentMap

from _graphs import two_attractors
from _trained import trained_digits_bundle


@pytest.fixture(scope="module")
def blank_model(digits, tmp_path_factory):
    """(bundle, x_train, x_test): the digits MLP AE (k = 8, 15 epochs) trained on 400 digits plus 400
    blank images, flattened to (N, 64); most noise starts flow to its blank attractor."""
    x = digits["x_train"][:400].reshape(400, -1)
    x_train = np.concatenate([x, np.zeros_like(x)])
    bundle = trained_digits_bundle(x_train.reshape(-1, 1, 8, 8), tmp_path_factory.mktemp("blank") / "b", k=8,
                                   epochs=15)
    return bundle, x_train, digits["x_test"][:100].reshape(100, -1)


def _brute(decoded, x_train, reduce):
    a = decoded.reshape(len(decoded), -1).astype(np.float64)
    b = x_train.reshape(len(x_train), -1).astype(np.float64)
    c = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    return c.max(1) if reduce == "max" else c.min(1)


def test_decoded_equal_to_train_rows_gives_one():
    rng = np.random.default_rng(0)
    x = rng.random((30, 1, 4, 4)).astype(np.float32)
    mem, idx = memorization_coefficient(x[[3, 7, 3]] * 2.0, x, return_index=True)  # scale-free
    np.testing.assert_allclose(mem, 1.0, atol=1e-12)
    np.testing.assert_array_equal(idx, [3, 7, 3])


def test_map_whose_attractors_are_training_points(tmp_path):
    # f = E (D = identity) with stable fixed points exactly at the two training points
    a, b, u = np.array([2.0, 1.0]), np.array([-1.0, -3.0]), np.array([1.0, 0.0])
    lmap = LatentMap(FlowBundle.write(tmp_path / "m", *two_attractors(a, b, u)), providers="cpu")
    x_train = np.stack([a, b]).astype(np.float32)
    x_test = np.array([[1.5, 0.5], [-2.0, -2.0]], np.float32)
    starts = np.array([[3.0, 2.0], [0.5, -1.0], [-0.5, 2.0], [-3.0, 1.0]], np.float32)
    rep = memorization_report(lmap, x_train, x_test, starts=starts, tol=1e-10, max_steps=200, n_noise=10,
                              metric="euclidean", threshold=1e-2, seed=3)
    assert rep.n_attractors == 2
    np.testing.assert_allclose(rep.mem, 1.0, atol=1e-6)
    assert rep.mem_mean == pytest.approx(1.0, abs=1e-6) and rep.mem_std == pytest.approx(0.0, abs=1e-6)
    assert sorted(rep.nearest_index.tolist()) == [0, 1]
    assert rep.rank == 1  # two points, centred: one direction
    assert rep.settings["starts"]["kind"] == "array" and rep.settings["seed"] == 3
    assert rep.test_mse == pytest.approx(float(np.mean((lmap.decode(lmap.encode(x_test)) - x_test) ** 2)))
    # copies of training points: nothing flagged, and mem 1 beats the test-image null
    assert not rep.blank.any() and not rep.mean_image.any() and rep.flagged_fraction == 0.0
    assert rep.verdict.startswith("memorizes: basin-weighted mem 1.000 above the test-image null")
    # noise starts in latent space flow to the same two training points
    rep_n = memorization_report(lmap, x_train, x_test, starts="noise", n_starts=40, tol=1e-10, max_steps=200,
                                n_noise=10, metric="euclidean", threshold=1e-2, seed=3)
    assert rep_n.n_attractors == 2 and rep_n.n_starts == 40
    np.testing.assert_allclose(rep_n.mem, 1.0, atol=1e-6)
    assert rep_n.settings["starts"] == {"kind": "noise", "distribution": "N(0, I) latent", "size": 40, "seed": 3}


def test_min_vs_max_as_documented():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 6))
    d = rng.standard_normal((9, 6))
    hi = memorization_coefficient(d, x)
    lo = memorization_coefficient(d, x, reduce="min")
    np.testing.assert_allclose(hi, _brute(d, x, "max"))
    np.testing.assert_allclose(lo, _brute(d, x, "min"))
    assert np.all(lo < hi)
    # a decoded training row: max is 1 (itself), min is its farthest training point
    assert memorization_coefficient(x[:1], x)[0] == pytest.approx(1.0)
    assert memorization_coefficient(x[:1], x, reduce="min")[0] < 1.0
    with pytest.raises(ParameterError):
        memorization_coefficient(d, x, reduce="mean")


@pytest.mark.parametrize("batch", [1, 3, 7, 64, 5000])
def test_chunked_equals_unchunked(batch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((101, 1, 3, 3))
    d = rng.standard_normal((23, 9))
    for reduce in ("max", "min"):
        v, i = memorization_coefficient(d, x, reduce=reduce, block_size=batch, return_index=True)
        v0, i0 = memorization_coefficient(d, x, reduce=reduce, block_size=10**6, return_index=True)
        np.testing.assert_allclose(v, v0, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(i, i0)


def test_shape_and_value_errors():
    with pytest.raises(DataError, match="features"):
        memorization_coefficient(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(DataError, match="NaN"):
        memorization_coefficient(np.array([[np.nan, 1.0]]), np.ones((4, 2)))
    with pytest.raises(DataError, match="empty"):
        memorization_coefficient(np.ones((2, 3)), np.ones((0, 3)))


def test_zero_rows_have_cosine_zero():
    assert memorization_coefficient(np.zeros((1, 3)), np.eye(3))[0] == 0.0


def test_rank_at_variance_known_rank():
    rng = np.random.default_rng(3)
    m = rng.standard_normal((50, 4)) @ rng.standard_normal((4, 30))  # rank 4, row mean ~ nonzero
    assert rank_at_variance(m, level=1.0) == 4
    assert rank_at_variance(m, level=1.0, center=False) == 4
    # an offset adds one direction to the uncentred SVD only
    assert rank_at_variance(m + 3.0, level=1.0) == 4
    assert rank_at_variance(m + 3.0, level=1.0, center=False) == 5
    # singular values 3, 2, 1 (squared 9, 4, 1 of 14): 90 % needs two, 64 % one
    diag = np.zeros((3, 5))
    diag[[0, 1, 2], [0, 1, 2]] = [3.0, 2.0, 1.0]
    assert rank_at_variance(diag, center=False) == 2
    assert rank_at_variance(diag, level=0.6, center=False) == 1
    assert rank_at_variance(diag, level=0.95, center=False) == 3
    assert rank_at_variance(np.ones((1, 4))) == 0  # one row, centred: nothing left
    with pytest.raises(ParameterError):
        rank_at_variance(diag, level=0.0)


def test_null_levels_seeded():
    rng = np.random.default_rng(4)
    x_train, x_test = rng.random((60, 8)), rng.random((10, 8))
    n1 = null_levels(x_test, x_train, n_noise=25, seed=7)
    n2 = null_levels(x_test, x_train, n_noise=25, seed=7)
    assert n1 == n2
    assert n1["test"]["n"] == 10 and n1["noise"]["n"] == 25
    assert n1["test"]["mean"] == pytest.approx(_brute(x_test, x_train, "max").mean())
    lo, hi = n1["noise_range"]
    assert lo == pytest.approx(x_train.min()) and hi == pytest.approx(x_train.max())


def test_report_on_digits_bundle(digits_bundle, digits, tmp_path):
    lmap = LatentMap(digits_bundle, providers="cpu")
    rep = memorization_report(lmap, digits["x_train"], digits["x_test"], n_starts=200, max_steps=1000,
                              n_noise=200, seed=0)
    k = rep.n_attractors
    assert k >= 1 and rep.n_starts == 200
    assert rep.mem.shape == (k,) and rep.decoded.shape == (k, 64) and rep.attractors.shape == (k, 8)
    assert np.all(np.isfinite(rep.mem)) and np.all((rep.mem > 0) & (rep.mem <= 1 + 1e-9))
    assert 0 <= rep.rank <= k and np.isfinite(rep.test_mse)
    assert rep.null["test"]["mean"] > rep.null["noise"]["mean"]  # digits look like digits, noise does not
    s = rep.settings
    assert (s["tol"], s["max_steps"], s["metric"], s["threshold"], s["reduce"], s["seed"]) == \
        (1e-6, 1000, "cosine", 0.99, "max", 0)
    assert s["starts"] == {"kind": "train", "size": 200, "seed": 0} and s["providers"]
    j = rep.to_json()
    assert j["rank_at_90"] == rep.rank and j["null_test"] == rep.null["test"]
    rep.save(tmp_path / "mem")
    back = MemorizationReport.load(tmp_path / "mem")
    np.testing.assert_array_equal(back.mem, rep.mem)
    assert back.rank == rep.rank and back.settings["starts"] == s["starts"]


def test_headline_weights_basins_and_flags_the_blank_attractor(blank_model, tmp_path, capsys):
    # Regression: the headline printed the unweighted mean over attractors while most starts flowed
    # to one blank attractor with a low mem (the basin-weighted mean sat unprinted in the JSON).
    bundle, x_train, x_test = blank_model
    lmap = LatentMap(bundle, providers="cpu")
    rep = memorization_report(lmap, x_train, x_test, starts="noise", n_starts=300, max_steps=1000, n_noise=200,
                              seed=0)
    top = int(np.argmax(rep.counts))
    w = rep.counts / rep.counts.sum()
    assert rep.largest_basin_fraction == pytest.approx(w[top]) and w[top] > 0.5  # one basin dominates
    assert rep.blank[top]  # and it is a blank image: pixel std a fraction of a training image's
    stds = x_train.std(axis=1)
    assert rep.decoded[top].std() < 0.1 * np.median(stds)
    assert rep.mem[top] < rep.mem_mean - 0.03  # a low mem the unweighted mean hides
    assert rep.mem_weighted_mean == pytest.approx(float(w @ rep.mem))
    assert rep.mem_weighted_mean < rep.mem_mean - 0.03
    assert rep.flagged_fraction == pytest.approx(float(w[rep.blank | rep.mean_image].sum()))
    assert rep.flagged_fraction >= w[top]
    mean_img = x_train.mean(0)
    cos = rep.decoded.astype(np.float64) @ mean_img / np.linalg.norm(rep.decoded, axis=1) / np.linalg.norm(mean_img)
    np.testing.assert_allclose(rep.mean_cosine, cos, rtol=1e-5)
    np.testing.assert_array_equal(rep.mean_image, rep.mean_cosine >= rep.mem - 1e-12)
    t = rep.null["test"]["mean"]
    assert rep.mem_weighted_mean < t
    assert rep.verdict.startswith(f"does not memorize: basin-weighted mem {rep.mem_weighted_mean:.3f} below the "
                                  f"test-image null {t:.3f}")
    assert f"caveat: {100 * rep.flagged_fraction:.1f} % of the converged starts flow to blank" in rep.verdict
    j = rep.to_json()
    assert (j["verdict"], j["flagged_fraction"], j["blank_attractors"]) == (rep.verdict, rep.flagged_fraction,
                                                                             int(rep.blank.sum()))
    rep.save(tmp_path / "mem")
    back = MemorizationReport.load(tmp_path / "mem")
    np.testing.assert_array_equal(back.blank, rep.blank)
    np.testing.assert_array_equal(back.mean_image, rep.mean_image)
    assert back.verdict == rep.verdict and back.flagged_fraction == rep.flagged_fraction

    # the CLI headline gives both means, the flagged share and the verdict
    save_npz(tmp_path / "train.npz", x=x_train)
    save_npz(tmp_path / "test.npz", x=x_test)
    capsys.readouterr()
    assert main(["memorization", str(bundle.path), "--train", str(tmp_path / "train.npz"), "--test",
                 str(tmp_path / "test.npz"), "--starts", "noise", "--n-starts", "300", "--max-steps", "1000",
                 "--out", str(tmp_path / "cli"), "--no-figures", "--quiet"]) == 0
    out = capsys.readouterr().out
    cli = json.loads((tmp_path / "cli" / "memorization.json").read_text())
    assert f"basin-weighted mean {cli['mem_weighted_mean']:.3f} over 300 converged of 300 noise starts" in out
    assert f"unweighted mean {cli['mem_mean']:.3f}" in out
    assert f"take {100 * cli['flagged_fraction']:.1f} % of the converged starts" in out
    assert f"verdict: {cli['verdict']}" in out and cli["verdict"].startswith("does not memorize")
