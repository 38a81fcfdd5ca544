"""Engines (python / iobinding): the same endpoints, step counts, statuses and last steps.

Every engine runs here on the CPU execution provider, the iobinding one with OrtValues on "cpu"
(its CUDA-only lines are marked in flowcore/runtime/binding.py). Maps: the trained digits MLP
autoencoder, the shipped demo bundle, an untrained conv autoencoder (latents (C, H, W)), the
hand-built 2-D maps (contraction, two attractors, rotation = max_steps), an expanding map and a
NaN map (diverged), tensor latents.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.dynamics._binding_pass import run_bound
from flowcore.dynamics._pass import PassSettings
from flowcore import IterateOptions, iterate
from flowcore.dynamics.engines import ENGINES, resolve_engine
from flowcore.errors import BackendError, ParameterError
from flowcore.runtime.binding import BoundMap, bucket_sizes
from flowcore.runtime.latent_map import LatentMap

from _graphs import contraction_to, linear_pair, nan_map, rotation, scaled_tensor_map, two_attractors

FIELDS = ("final", "steps", "status", "last_step_sq")
DEMO = "flowcore/data/demo/bundle"


def _map(tmp_path, pair, name="b"):
    return LatentMap(FlowBundle.write(tmp_path / name, *pair), providers="cpu")


def _all_engines(lmap, z0, **kw):
    out = {}
    for engine in ENGINES:
        tr = iterate(lmap, z0, options=IterateOptions(engine=engine), **kw)
        assert tr.settings["engine"] == engine
        out[engine] = tr
    return out


def _assert_same(runs):
    ref = runs["python"]
    for name, tr in runs.items():
        for f in FIELDS:
            np.testing.assert_array_equal(getattr(tr, f), getattr(ref, f), err_msg=f"{name}: {f}")


@pytest.mark.parametrize("batch_size", [1, 37, 4096])
def test_digits_model_engines_equal(digits_bundle, digits, batch_size):
    lmap = LatentMap(digits_bundle, providers="cpu")
    z0 = lmap.encode(digits["x_test"][: 120 if batch_size == 1 else 360])
    runs = _all_engines(lmap, z0, batch_size=batch_size, max_steps=400)
    _assert_same(runs)
    counts = runs["python"].counts()
    assert counts["converged"] > 0 and counts["max_steps"] > 0  # both ways to stop are exercised


def test_demo_bundle_engines_equal_with_noise_starts():
    lmap = LatentMap(DEMO, providers="cpu")
    z0 = np.random.default_rng(3).standard_normal((700, *lmap.latent_shape)).astype(np.float32)
    _assert_same(_all_engines(lmap, z0, batch_size=256))


def test_conv_latents_engines_equal(tmp_path):
    torch = pytest.importorskip("torch", reason="the conv autoencoder is built with torch (dev extra)")
    import flowcore_torch
    from _models import ConvDecoder, ConvEncoder

    torch.manual_seed(0)
    enc, dec = ConvEncoder().eval(), ConvDecoder().eval()
    x = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    path = flowcore_torch.export(enc, dec, x, tmp_path / "conv")
    lmap = LatentMap(path, providers="cpu")
    assert len(lmap.latent_shape) == 3
    z0 = lmap.encode(np.random.default_rng(1).random((90, 1, 8, 8), dtype=np.float32))
    _assert_same(_all_engines(lmap, z0, batch_size=32, max_steps=200))


@pytest.mark.parametrize("case", ["contraction", "two_attractors", "rotation", "expanding", "nan", "tensor"])
def test_hand_built_maps_engines_equal(tmp_path, case):
    rng = np.random.default_rng(0)
    if case == "contraction":
        pair, z0 = contraction_to(np.array([1.0, -2.0], np.float32), 0.8), rng.normal(size=(50, 2)) * 5
    elif case == "two_attractors":
        pair = two_attractors(np.array([2.0, 0.0]), np.array([-2.0, 0.0]), np.array([1.0, 0.0]), rho=0.7)
        z0 = rng.normal(size=(80, 2)) * 3
    elif case == "rotation":
        pair, z0 = rotation(0.3), rng.normal(size=(10, 2))
    elif case == "expanding":
        pair, z0 = linear_pair(2.0 * np.eye(2), np.zeros(2)), rng.normal(size=(10, 2)) + 0.1
    elif case == "nan":
        pair, z0 = nan_map(2), rng.normal(size=(6, 2))
    else:
        pair, z0 = scaled_tensor_map((2, 3), 0.5), rng.normal(size=(20, 2, 3))
    lmap = _map(tmp_path, pair)
    runs = _all_engines(lmap, z0.astype(np.float32), batch_size=16, max_steps=150, norm_limit=1e4)
    _assert_same(runs)
    expected = {"rotation": "max_steps", "expanding": "diverged", "nan": "diverged"}.get(case, "converged")
    assert runs["python"].counts()[expected] == len(z0)


def test_chunks_and_edge_sizes(digits_bundle, digits):
    lmap = LatentMap(digits_bundle, providers="cpu")
    z0 = lmap.encode(digits["x_test"][:150])
    for engine in ENGINES:
        chunked = iterate(lmap, z0, batch_size=40, max_steps=300,
                          options=IterateOptions(engine=engine, chunk_size=60))
        ref = iterate(lmap, z0, batch_size=40, max_steps=300, options=IterateOptions(engine="python", chunk_size=60))
        _assert_same({"python": ref, engine: chunked})
        one = iterate(lmap, z0[:1], max_steps=300, options=IterateOptions(engine=engine))
        assert len(one) == 1 and one.steps[0] == ref.steps[0]
        empty = iterate(lmap, z0[:0], options=IterateOptions(engine=engine))
        assert len(empty) == 0 and empty.settings["engine"] == engine


def test_auto_and_refusals(tmp_path):
    lmap = LatentMap(DEMO, providers="cpu")
    assert resolve_engine("auto", lmap, record_every=0, features=False) in ENGINES
    assert resolve_engine("auto", lmap, record_every=5, features=False) == "python"
    assert resolve_engine("auto", lmap, record_every=0, features=True) == "python"
    z0 = np.zeros((3, *lmap.latent_shape), np.float32)
    iob = IterateOptions(engine="iobinding")
    with pytest.raises(ParameterError, match="does not record paths"):
        iterate(lmap, z0, record_every=2, options=iob)
    with pytest.raises(ParameterError, match="streaming features"):
        iterate(lmap, z0, features=True, options=iob)
    with pytest.raises(ParameterError, match="engine must be one of"):
        IterateOptions(engine="fast")
    with pytest.raises(ParameterError, match="cuda_graph needs engine 'iobinding'"):
        IterateOptions(engine="python", cuda_graph=True)
    with pytest.raises(BackendError, match="CUDA graphs need the CUDA execution provider"):
        iterate(lmap, z0, options=IterateOptions(engine="iobinding", cuda_graph=True))
    auto = iterate(lmap, z0, record_every=1)
    assert auto.settings["engine"] == "python" and auto.path is not None

    class StepOnly:  # a map with step() only (no ONNX sessions): python engine only
        latent_shape = (2,)

        def check_latents(self, z, what="latents"):
            return np.ascontiguousarray(z, np.float32)

        def step(self, z):
            z1 = 0.5 * z
            return z1, ((z1 - z) ** 2).sum(1), (z1 ** 2).sum(1)

    assert iterate(StepOnly(), np.ones((4, 2), np.float32)).settings["engine"] == "python"
    with pytest.raises(ParameterError, match="needs an ONNX Runtime LatentMap"):
        iterate(StepOnly(), np.ones((4, 2), np.float32), options=IterateOptions(engine="iobinding"))


def test_bucket_sizes():
    assert bucket_sizes(4096) == (256, 512, 1024, 2048, 4096)
    assert bucket_sizes(300) == (256, 300)
    assert bucket_sizes(100) == (100,)


def test_bucketed_binding_equals_python_and_registry_refuses_mismatch(digits_bundle, digits):
    """The CUDA-graph bookkeeping (padding to buckets, one id per bucket and direction) on the CPU."""
    lmap = LatentMap(digits_bundle, providers="cpu")
    z0 = lmap.encode(np.concatenate([digits["x_test"]] * 2))
    n = len(z0)
    ref = iterate(lmap, z0, batch_size=600, max_steps=300, options=IterateOptions(engine="python"))
    out = {"final": np.empty_like(z0), "steps": np.zeros(n, np.int32), "status": np.zeros(n, np.int8),
           "last_step_sq": np.zeros(n, np.float32)}
    cfg = PassSettings(np.float32(1e-6), np.float32(1e16), 300, 600, 0)
    info = run_bound(lmap, z0, out, cfg, None, buckets=True)
    for f in FIELDS:
        np.testing.assert_array_equal(out[f], getattr(ref, f), err_msg=f)
    assert info["buckets"] == [256, 512, 600] and info["device"] == "cpu"

    bound = BoundMap(lmap, 600, buckets=True)
    bound.compact(0, np.empty(0, np.int64), np.empty(0, np.int64), z0[:300])
    src = bound.current  # the compaction wrote the other buffer: the step reads it
    sq, nrm = bound.step(300)  # padded to bucket 512
    assert sq.shape == (300,) and np.isfinite(sq).all() and bound.current == 1 - src
    gid = 2 * bound.buckets.index(512) + src
    assert set(bound.captured) == {gid} and bound.captured[gid][0] == 512
    bound.captured[gid] = (512, 1, 2)  # as if id gid had been captured on other buffers
    bound.current = src
    with pytest.raises(BackendError, match="refusing"):
        bound.step(300)
    with pytest.raises(BackendError, match="capacity"):
        bound.step(601)


def test_binding_compaction_moves_rows(digits_bundle, digits):
    lmap = LatentMap(digits_bundle, providers="cpu")
    z0 = lmap.encode(digits["x_test"][:10])
    bound = BoundMap(lmap, 10)
    bound.compact(0, np.empty(0, np.int64), np.empty(0, np.int64), z0[:6])
    stopped = bound.compact(6, np.array([0, 2, 5]), np.array([1, 4]), z0[6:9])
    np.testing.assert_array_equal(stopped, z0[[1, 4]])
    # the kept rows then the new ones, in order, are what the next step reads
    sq, _ = bound.step(6)
    expected = ((lmap(z0[[0, 2, 5, 6, 7, 8]]) - z0[[0, 2, 5, 6, 7, 8]]) ** 2).reshape(6, -1).sum(1)
    np.testing.assert_allclose(sq, expected, rtol=1e-5, atol=1e-7)


def test_cli_engine_flag_gives_the_same_files(tmp_path):
    from flowcore.cli.app import main

    arrays = {}
    for engine in ("python", "iobinding", "auto"):
        out = tmp_path / engine
        assert main(["trajectories", DEMO, "--noise", "300", "--engine", engine, "--out", str(out), "--quiet"]) == 0
        with np.load(out / "trajectories.npz", allow_pickle=False) as z:
            arrays[engine] = {k: z[k] for k in z.files}
        meta = json.loads((out / "trajectories.json").read_text())
        assert meta["settings"]["engine"] in ENGINES
    for engine, got in arrays.items():
        assert got.keys() == arrays["python"].keys()
        for k, v in got.items():
            np.testing.assert_array_equal(v, arrays["python"][k], err_msg=f"{engine}: {k}")
    assert main(["trajectories", DEMO, "--noise", "3", "--engine", "warp", "--out", str(tmp_path / "x")]) == 2


def test_segment_engine_is_refused_with_one_line_naming_python(tmp_path, capsys):
    """The removed segment engine: the API and the CLI say so and name the engine with the same results."""
    from flowcore.cli.app import main

    lmap = LatentMap(DEMO, providers="cpu")
    z0 = np.zeros((3, *lmap.latent_shape), np.float32)
    for make in (lambda: IterateOptions(engine="segment"), lambda: IterateOptions(engine="Segment"),
                 lambda: resolve_engine("segment", lmap, record_every=0, features=False)):
        with pytest.raises(ParameterError, match="'segment' was removed.*'python' gives the same results"):
            make()
    assert "segment" not in ENGINES
    out = tmp_path / "seg"
    assert main(["trajectories", DEMO, "--noise", "3", "--engine", "segment", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --engine:") and "removed" in err[0] and "python" in err[0]
    assert not out.exists()
