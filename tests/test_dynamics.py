"""Chamfer similarity, distinct-attractor fraction and per-checkpoint dynamics metrics."""

import json

import numpy as np
import pytest

from flowcore.analysis.checkpoints import chamfer_similarity, checkpoint_metrics, distinct_fraction
from flowcore.analysis.ood.metrics import fpr95_id_positive
from flowcore.dynamics.attractors import find_attractors
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.errors import DataError, ParameterError
from flowcore.io import to_jsonable
from flowcore.runtime.latent_map import LatentMap
from flowcore.dynamics.trajectories import iterate

from _graphs import two_attractors


def _brute_chamfer(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    s = a @ b.T
    return 0.5 * (s.max(1).mean() + s.max(0).mean())


def test_chamfer_of_a_set_with_itself_is_one():
    x = np.random.default_rng(0).standard_normal((37, 2, 3))
    assert chamfer_similarity(x, x) == pytest.approx(1.0)
    assert chamfer_similarity(x, x[::-1] * 3.0, block_size=4) == pytest.approx(1.0)  # order and scale free
    assert chamfer_similarity(x, x, metric="euclidean") == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("batch", [1, 5, 1000])
def test_chamfer_matches_brute_force_and_is_symmetric(batch):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((19, 5)), rng.standard_normal((8, 5))
    v = chamfer_similarity(a, b, block_size=batch)
    assert v == pytest.approx(_brute_chamfer(a, b), abs=1e-12)
    assert v == pytest.approx(chamfer_similarity(b, a, block_size=batch), abs=1e-12)
    assert v < 1.0


def test_block_size_old_name_batch_warns_and_gives_the_same_value():
    """``batch=`` (the nearest-neighbour block size, easy to mistake for ``batch_size=``, the rows per
    ONNX Runtime call) is now ``block_size=``; the old name works for one release with a warning."""
    from flowcore import FlowcoreDeprecationWarning, null_levels  # noqa: PLC0415
    from flowcore.analysis.memorization import memorization_coefficient  # noqa: PLC0415

    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((19, 5)), rng.standard_normal((8, 5))
    calls = [(chamfer_similarity, (a, b)), (memorization_coefficient, (a, b)), (null_levels, (a, b))]
    for fn, args in calls:
        new = fn(*args, block_size=3)
        with pytest.warns(FlowcoreDeprecationWarning, match=rf"{fn.__name__}\(batch=\.\.\.\) is deprecated; use block_size"):
            old = fn(*args, batch=3)
        assert str(old) == str(new)
        with pytest.raises(ParameterError, match="same setting"), pytest.warns(FlowcoreDeprecationWarning):
            fn(*args, batch=3, block_size=5)


def test_chamfer_orthogonal_sets_and_errors():
    assert chamfer_similarity(np.eye(4)[:2], np.eye(4)[2:]) == pytest.approx(0.0)
    with pytest.raises(DataError, match="non-empty"):
        chamfer_similarity(np.ones((0, 3)), np.ones((2, 3)))
    with pytest.raises(DataError):
        chamfer_similarity(np.ones((2, 3)), np.ones((2, 4)))


def test_distinct_fraction_on_known_map(tmp_path):
    a, b, u = np.array([2.0, 1.0]), np.array([-1.0, -3.0]), np.array([1.0, 0.0])
    lmap = LatentMap(FlowBundle.write(tmp_path / "m", *two_attractors(a, b, u)), providers="cpu")
    z0 = np.random.default_rng(2).uniform(-4, 4, (50, 2)).astype(np.float32)
    att = find_attractors(iterate(lmap, z0), metric="euclidean", threshold=1e-2)
    assert distinct_fraction(att) == pytest.approx(2 / 50)


@pytest.fixture(scope="module")
def two_checkpoints(digits_bundle, digits):
    return checkpoint_metrics([digits_bundle, LatentMap(digits_bundle, providers="cpu")], digits["x_train"],
                              digits["x_test"], n_starts=150, seed=0, max_steps=1000, names=["a", "b"])


def test_checkpoint_metrics_smoke(two_checkpoints):
    assert [r["checkpoint"] for r in two_checkpoints] == ["a", "b"]
    for r in two_checkpoints:
        for key in ("mem_mean", "mem_std", "test_mse", "chamfer_noise_train", "fpr95_id_positive",
                    "fpr95_ood_positive", "auroc"):
            assert np.isfinite(r[key]), key
        assert set(r["distinct_fraction"]) == {"train", "test", "noise"}
        assert all(0 < v <= 1 for v in r["distinct_fraction"].values())
        assert r["distinct_fraction"]["train"] == pytest.approx(r["n_attractors"]["train"] / 150)
        assert 0 <= r["fpr95_id_positive"] <= 1 and 0 <= r["fpr95_ood_positive"] <= 1
        assert -1 <= r["chamfer_noise_train"] <= 1
        s = r["settings"]
        assert (s["n_starts"], s["seed"], s["tol"], s["max_steps"], s["metric"], s["threshold"]) == \
            (150, 0, 1e-6, 1000, "cosine", 0.99)
        assert s["noise"]["kind"] == "noise" and s["providers"]
        json.dumps(to_jsonable(r))  # plain-JSON-able
    # same model, same seeded starts: identical numbers
    a, b = two_checkpoints
    for key in ("mem_mean", "test_mse", "chamfer_noise_train", "fpr95_id_positive", "distinct_fraction"):
        assert a[key] == b[key], key


def test_checkpoint_fpr95_matches_manual_score(digits_bundle, digits, two_checkpoints):
    # recompute the trajectory score by hand for checkpoint "a"
    lmap = LatentMap(digits_bundle, providers="cpu")
    idx = np.sort(np.random.default_rng(0).choice(len(digits["x_train"]), 150, replace=False))
    z_tr = lmap.encode(digits["x_train"][idx])
    att = find_attractors(iterate(lmap, z_tr, max_steps=1000))
    ref = att.centres.reshape(att.n_attractors, -1)
    s_tr = iterate(lmap, z_tr, max_steps=1000, reference=ref).features["dist_mean"]
    z_n = np.random.default_rng(2).standard_normal((150, 8)).astype(np.float32)
    s_n = iterate(lmap, z_n, max_steps=1000, reference=ref).features["dist_mean"]
    assert two_checkpoints[0]["fpr95_id_positive"] == pytest.approx(fpr95_id_positive(s_tr, s_n))


def test_checkpoint_metrics_errors(digits_bundle, digits):
    with pytest.raises(DataError):
        checkpoint_metrics([], digits["x_train"], digits["x_test"])
    with pytest.raises(ParameterError):
        checkpoint_metrics([digits_bundle], digits["x_train"], digits["x_test"], names=["a", "b"])


def test_checkpoint_metrics_save_load_rows(two_checkpoints, tmp_path):
    from flowcore.analysis.checkpoints import CheckpointMetrics  # noqa: PLC0415

    back = CheckpointMetrics.load(two_checkpoints.save(tmp_path / "c"))
    assert back.rows() == two_checkpoints.rows() == list(two_checkpoints)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["checkpoints.json", "checkpoints.npz"]
