"""Trajectory engine: stopping rule, compaction, divergence, chunking, determinism, paths."""

import math

import numpy as np
import pytest

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.errors import DataError, ParameterError
from flowcore.runtime.latent_map import LatentMap
from flowcore import IterateOptions
from flowcore.dynamics.trajectories import CONVERGED, DIVERGED, MAX_STEPS, Trajectories, iterate

from _graphs import contraction_to, linear_pair, nan_map, rotation


def _map(tmp_path, pair, name="b"):
    return LatentMap(FlowBundle.write(tmp_path / name, *pair), providers="cpu")


def predicted_steps(e0: float, rho: float, tol: float) -> int:
    """First t >= 1 with ‖z_t − z_{t−1}‖² = (rho^(t−1) (1 − rho) e0)² < tol."""
    t = 1
    while (rho ** (t - 1) * (1 - rho) * e0) ** 2 >= tol:
        t += 1
    return t


@pytest.mark.parametrize("rho", [0.5, 0.9, 0.97])
def test_stopping_rule_predicted_steps(tmp_path, rho):
    a = np.array([1.0, -2.0, 0.5], np.float32)
    lmap = _map(tmp_path, contraction_to(a, rho))
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(6, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    radii = np.array([0.37, 1.3, 2.9, 5.1, 11.7, 23.0])
    z0 = (a + dirs * radii[:, None]).astype(np.float32)
    tol = 1e-6
    tr = iterate(lmap, z0, tol=tol)
    assert (tr.status == CONVERGED).all()
    e0 = np.linalg.norm(z0 - a, axis=1)
    expected = np.array([predicted_steps(float(e), rho, tol) for e in e0])
    # float32 arithmetic may move a boundary case by one step, never more
    assert np.abs(tr.steps - expected).max() <= 1
    assert (tr.steps == expected).mean() >= 0.8
    err = np.linalg.norm(tr.final - a, axis=1)
    # paper bound: T >= log(eps / ‖e0‖) / log rho for the error eps actually reached
    assert np.all(tr.steps >= np.floor(np.log(err / e0) / np.log(rho)) - 1e-9)
    # a step-size stop leaves the endpoint about step/(1 − rho) from z*
    assert np.all(err <= math.sqrt(tol) * rho / (1 - rho) * 1.01 + 1e-6)


def test_compaction_equals_naive_loop(digits_bundle, digits):
    lmap = LatentMap(digits_bundle, providers="cpu")
    z0 = lmap.encode(digits["x_test"][:200])
    tol, max_steps = 1e-6, 800
    tr = iterate(lmap, z0, tol=tol, max_steps=max_steps)
    # naive: the whole batch every step, no compaction; remember each row's first stop
    z = z0.copy()
    final = np.full_like(z0, np.nan)
    steps = np.zeros(len(z0), int)
    for t in range(1, max_steps + 1):
        z_new = lmap(z)
        sq = ((z_new - z) ** 2).sum(1)
        fresh = (steps == 0) & ((sq < tol) | (t == max_steps))
        final[fresh], steps[fresh] = z_new[fresh], t
        z = z_new
        if (steps > 0).all():
            break
    np.testing.assert_array_equal(tr.steps, steps)
    np.testing.assert_allclose(tr.final, final, rtol=0, atol=1e-6)


def test_expanding_map_diverges(tmp_path):
    lmap = _map(tmp_path, linear_pair(2.0 * np.eye(2), np.zeros(2)))
    tr = iterate(lmap, np.ones((5, 2)), norm_limit=1e4)
    assert (tr.status == DIVERGED).all()
    assert tr.counts() == {"converged": 0, "max_steps": 0, "diverged": 5}
    assert np.all(tr.steps == math.ceil(math.log2(1e4 / math.sqrt(2))))


def test_nan_map_diverges(tmp_path):
    tr = iterate(_map(tmp_path, nan_map(2)), np.zeros((3, 2)))
    assert (tr.status == DIVERGED).all() and (tr.steps == 1).all()


def test_rotation_hits_max_steps(tmp_path):
    tr = iterate(_map(tmp_path, rotation(0.3)), np.ones((4, 2)), max_steps=50)
    assert (tr.status == MAX_STEPS).all() and (tr.steps == 50).all()


def test_chunked_equals_unchunked_and_repeatable(digits_bundle, digits):
    lmap = LatentMap(digits_bundle, providers="cpu")
    z0 = lmap.encode(digits["x_test"])
    big = iterate(lmap, z0, batch_size=4096)
    small = iterate(lmap, z0, batch_size=37)
    again = iterate(LatentMap(digits_bundle, providers="cpu"), z0, batch_size=4096)
    for other in (small, again):
        np.testing.assert_array_equal(other.steps, big.steps)
        np.testing.assert_array_equal(other.status, big.status)
        np.testing.assert_array_equal(other.final, big.final)  # bit-identical


def test_record_path(tmp_path):
    a = np.array([3.0, -1.0], np.float32)
    lmap = _map(tmp_path, contraction_to(a, 0.8))
    z0 = np.array([[0.0, 0.0], [10.0, 10.0], [3.0, -0.999]], np.float32)
    tr = iterate(lmap, z0, record_every=5)
    for i in range(3):
        valid = tr.path_steps[i] >= 0
        st = tr.path_steps[i][valid]
        assert st[0] == 0 and st[-1] == tr.steps[i]
        assert np.all(np.diff(st) > 0) and np.all(st[:-1] % 5 == 0)
        np.testing.assert_array_equal(tr.path[i][valid][0], z0[i])
        np.testing.assert_array_equal(tr.path[i][valid][-1], tr.final[i])
        # recorded states follow the analytic orbit z_t = a + 0.8^t (z0 − a)
        expect = a + (0.8 ** st)[:, None] * (z0[i] - a)
        np.testing.assert_allclose(tr.path[i][valid], expect, rtol=1e-4, atol=1e-4)


def test_save_load_and_edges(tmp_path):
    lmap = _map(tmp_path, contraction_to(np.zeros(2), 0.5))
    tr = iterate(lmap, np.ones((3, 2)))
    tr.save(tmp_path / "out")
    back = Trajectories.load(tmp_path / "out")
    np.testing.assert_array_equal(back.final, tr.final)
    assert back.settings["tol"] == 1e-6
    empty = iterate(lmap, np.zeros((0, 2)))
    assert len(empty) == 0 and empty.counts()["converged"] == 0
    with pytest.raises(DataError, match="NaN"):
        iterate(lmap, np.array([[np.nan, 0.0]]))
    with pytest.raises(ParameterError, match="tol"):
        iterate(lmap, np.ones((1, 2)), tol=0)


def test_kernels_in_python_mode_match(tmp_path):
    """The step kernels run as plain Python (NUMBA_DISABLE_JIT=1) give the same trajectories."""
    import json
    import os
    import subprocess
    import sys

    from _graphs import two_attractors

    FlowBundle.write(tmp_path / "m", *two_attractors(np.array([2.0, 1.0]), np.array([-1.0, -3.0]), np.array([1.0, 0.0]), 0.8))
    z0 = np.random.default_rng(4).uniform(-5, 5, size=(300, 2)).astype(np.float32)
    np.save(tmp_path / "z0.npy", z0)
    code = (
        "import json, numpy as np\n"
        "from flowcore import LatentMap, iterate\n"
        f"tr = iterate(LatentMap(r'{tmp_path / 'm'}', providers='cpu'), np.load(r'{tmp_path / 'z0.npy'}'), "
        "batch_size=37, reference=np.array([[2.0, 1.0]], np.float32))\n"
        "print(json.dumps({'steps': tr.steps.tolist(), 'final': tr.final.tolist(), "
        "'dist_mean': tr.features['dist_mean'].tolist()}))\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    tr = iterate(LatentMap(tmp_path / "m", providers="cpu"), z0, batch_size=37, reference=np.array([[2.0, 1.0]], np.float32))
    np.testing.assert_array_equal(got["steps"], tr.steps)
    np.testing.assert_array_equal(np.array(got["final"], np.float32), tr.final)
    np.testing.assert_allclose(got["dist_mean"], tr.features["dist_mean"], rtol=1e-12)


def test_empty_starts_with_paths_and_features(tmp_path):
    lmap = _map(tmp_path, contraction_to(np.zeros(2), 0.5))
    tr = iterate(lmap, np.zeros((0, 2)), record_every=2, reference=np.zeros((1, 2)))
    assert tr.path.shape == (0, 0, 2) and tr.path_steps.shape == (0, 0)
    assert all(len(v) == 0 for v in tr.features.values())
    with pytest.raises(ParameterError, match="norm_limit"):
        iterate(lmap, np.ones((1, 2)), norm_limit=-1)


def test_chunk_passes_equal_one_pass(digits_bundle, digits):
    """Each chunk iterated as its own pass gives the one-pass rows bit for bit (features and paths too)."""
    lmap = LatentMap(digits_bundle, providers="cpu")
    z0 = lmap.encode(digits["x_test"])
    ref_att = z0[:3]
    one = iterate(lmap, z0, batch_size=64, record_every=7, reference=ref_att)
    for chunk in (1, 50, 64, 1000):
        tr = iterate(lmap, z0, batch_size=64, record_every=7, reference=ref_att, options=IterateOptions(chunk_size=chunk))
        for name in ("final", "steps", "status", "last_step_sq", "starts", "path", "path_steps"):
            np.testing.assert_array_equal(getattr(tr, name), getattr(one, name))
        assert sorted(tr.features) == sorted(one.features)
        for k in one.features:
            np.testing.assert_array_equal(tr.features[k], one.features[k])
        assert tr.settings["chunk_size"] == chunk
    with pytest.raises(ParameterError, match="chunk_size"):
        IterateOptions(chunk_size=0)


def test_results_that_cannot_fit_are_refused_before_allocating(tmp_path):
    import resource  # noqa: PLC0415

    from flowcore.dynamics.memory import check_result_memory, result_bytes  # noqa: PLC0415
    from flowcore.dynamics.sources import NoiseStarts  # noqa: PLC0415

    lmap = _map(tmp_path, contraction_to(np.zeros(2), 0.5))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ParameterError, match="fewer starts") as info:
        iterate(lmap, NoiseStarts((2,), 10**15))  # 8e15 bytes of results: no machine has them
    msg = str(info.value)
    assert "\n" not in msg and "batch" not in msg and "record" not in msg
    with pytest.raises(ParameterError, match="drop --record-every"):
        iterate(lmap, NoiseStarts((2,), 10**15), record_every=5)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # kB: nothing N-sized allocated
    assert result_bytes(10, (2, 3)) == 10 * (24 + 9 + 24)
    assert result_bytes(10, (4,), keep_starts=False, features=True) == 10 * (16 + 9 + 48)
    assert check_result_memory(10**6, (8,), available=10**9) == result_bytes(10**6, (8,))
    with pytest.raises(ParameterError, match="1000000 starts need at least 73.0 MB"):
        check_result_memory(10**6, (8,), available=10**6)


def test_noise_1e9_refused_by_the_cli_before_allocating(tmp_path):
    """`--noise 10**9`: exit 3, one line, and the child's own peak RSS stays under 500 MB."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    # k = 64: 10**9 starts need ~0.5 TB of results, more than any machine this runs on has available
    bundle = FlowBundle.write(tmp_path / "b", *contraction_to(np.zeros(64), 0.5)).path
    # a fresh parent, so RUSAGE_CHILDREN holds the CLI's peak alone (not an earlier test's child)
    probe = (
        "import json, resource, subprocess, sys\n"
        f"p = subprocess.run([sys.executable, '-m', 'flowcore', 'trajectories', r'{bundle}', '--noise', "
        "'1000000000', '--quiet', '--device', 'cpu'], capture_output=True, text=True, timeout=120)\n"
        "print(json.dumps({'rc': p.returncode, 'stderr': p.stderr, "
        "'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
    )
    import json  # noqa: PLC0415

    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    lines = got["stderr"].strip().splitlines()
    assert got["rc"] == 3, got
    assert len(lines) == 1 and lines[0].startswith("error: --noise 1000000000: 1000000000 starts need") and "fewer starts" in lines[0]
    assert "batch" not in lines[0] and "Traceback" not in got["stderr"]
    assert got["maxrss_kb"] < 500 * 1024, got["maxrss_kb"]
    big = subprocess.run([sys.executable, "-m", "flowcore", "trajectories", str(bundle), "--noise",
                          "100000000000000000000", "--quiet", "--device", "cpu"], capture_output=True, text=True,
                         timeout=300)
    assert big.returncode in (2, 3) and len(big.stderr.strip().splitlines()) == 1, big.stderr
    assert big.stderr.startswith("error:") and "Traceback" not in big.stderr


DEMO = "flowcore/data/demo/bundle"
_MOVED_KEYWORDS = {"engine", "chunk_size", "checkpoint", "cuda_graph", "segment_steps"}


def test_old_iterate_keywords_warn_and_give_the_same_result(tmp_path):
    """engine= / chunk_size= / checkpoint= / segment_steps= still work for one release: a
    FlowcoreDeprecationWarning naming IterateOptions, and the new spelling's result bit for bit."""
    from flowcore import FlowcoreDeprecationWarning  # noqa: PLC0415
    from flowcore.dynamics.checkpointing import ChunkStore  # noqa: PLC0415

    lmap = LatentMap(DEMO, providers="cpu")  # the shipped trained digits model
    z0 = np.random.default_rng(4).standard_normal((300, *lmap.latent_shape)).astype(np.float32)
    new = iterate(lmap, z0, max_steps=400, batch_size=64,
                  options=IterateOptions(engine="iobinding", chunk_size=128,
                                         checkpoint=ChunkStore(tmp_path / "new", 128)))
    with pytest.warns(FlowcoreDeprecationWarning) as caught:
        old = iterate(lmap, z0, max_steps=400, batch_size=64, engine="iobinding", chunk_size=128,
                      checkpoint=ChunkStore(tmp_path / "old", 128))
    texts = sorted(str(w.message) for w in caught)
    assert len(texts) == 3 and all("IterateOptions" in t for t in texts)
    assert all(w.filename == __file__ for w in caught)  # points at the caller's line
    for name in ("final", "steps", "status", "last_step_sq", "starts"):
        np.testing.assert_array_equal(getattr(old, name), getattr(new, name), err_msg=name)
    assert old.settings == new.settings and new.settings["engine"] == "iobinding"
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == sorted(p.name for p in (tmp_path / "new").iterdir())
    with pytest.warns(FlowcoreDeprecationWarning, match="segment_steps.*no effect"):
        same = iterate(lmap, z0, max_steps=400, segment_steps=8)
    np.testing.assert_array_equal(same.steps, new.steps)
    with pytest.raises(TypeError, match="unexpected keyword argument 'chunks'"):
        iterate(lmap, z0, chunks=3)
    with pytest.raises(ParameterError, match="both as a keyword and in options"), pytest.warns(FlowcoreDeprecationWarning):
        iterate(lmap, z0, engine="python", options=IterateOptions(engine="iobinding"))
    with pytest.raises(ParameterError, match="options must be an IterateOptions"):
        iterate(lmap, z0, options={"engine": "python"})


def test_iterate_options_are_validated():
    assert IterateOptions() == IterateOptions(engine="AUTO")
    for bad, match in [(dict(engine="fast"), "engine must be one of"), (dict(engine=3), "engine must be"),
                       (dict(chunk_size=0), "chunk_size must be"), (dict(chunk_size=2.5), "chunk_size must be"),
                       (dict(cuda_graph="yes"), "cuda_graph must be a bool"),
                       (dict(checkpoint="folder/", chunk_size=4), "checkpoint must be"),
                       (dict(engine="python", cuda_graph=True), "cuda_graph needs engine 'iobinding'")]:
        with pytest.raises(ParameterError, match=match):
            IterateOptions(**bad)
    from flowcore.dynamics.checkpointing import ChunkStore  # noqa: PLC0415

    with pytest.raises(ParameterError, match="a checkpoint needs a chunk_size"):
        IterateOptions(checkpoint=ChunkStore("unused", 4))


def test_no_in_repo_caller_passes_the_old_iterate_keywords():
    """Every caller in the repository (library, CLI, tests, tools, examples, studies) uses options=,
    so the suite and the shipped scripts emit no FlowcoreDeprecationWarning."""
    import ast  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    root = Path(__file__).resolve().parents[1]
    files = [p for d in ("flowcore", "tests", "tools", "examples", "studies", "adapters") if (root / d).is_dir()
             for p in (root / d).rglob("*.py")]
    assert len(files) > 50
    found = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef) and fn.name == "test_old_iterate_keywords_warn_and_give_the_same_result":
                fn.body = []  # the one test that must use the old spelling
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name != "iterate":
                continue
            old = sorted(k.arg for k in node.keywords if k.arg in _MOVED_KEYWORDS)
            if old:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {', '.join(old)}")
    assert not found, "callers still passing the deprecated iterate keywords:\n" + "\n".join(found)
