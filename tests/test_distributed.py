"""flowcore.distributed and ``--ray``: a local 2-CPU Ray cluster gives one process's results, bit for bit.

One cluster for the module (started here, shut down at the end). Endpoints, steps, statuses,
paths and features of ``iterate_ray`` equal ``iterate``'s with the same chunks; the CLI's
``trajectories.npz`` / ``attractors.npz`` (labels from the gathered endpoints) and ``ood score``
CSV are byte-identical with and without ``--ray``; ``--resume`` reads back completed chunks;
without ``--ray`` nothing imports Ray, and a missing Ray is one line (exit 4).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from _cli import signal_after_first_chunk
import flowcore
from flowcore import LatentMap, find_attractors, iterate
from flowcore.cli.app import main
from flowcore.dynamics.checkpointing import PARTIAL_DIR, ChunkStore, chunk_rows
from flowcore.dynamics.iterate_options import IterateOptions
from flowcore.io import save_npz

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray", reason="the ray extra (flowcore[ray]) is not installed")  # dev installs it

from flowcore import RayOptions, connect_ray, iterate_ray, score_ray  # noqa: E402

BUNDLE, DIGITS = flowcore.demo_paths()
ARRAYS = ("final", "steps", "status", "last_step_sq", "starts")


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    info = connect_ray(num_cpus=2, object_store_memory=80 * 2**20)
    yield info
    ray.shutdown()


@pytest.fixture(scope="module")
def lmap():
    return LatentMap(BUNDLE, providers="cpu", intra_op_num_threads=1)


def _z(n: int, seed: int = 0) -> np.ndarray:
    return (2.0 * np.random.default_rng(seed).standard_normal((n, 8))).astype(np.float32)


def test_iterate_ray_equals_one_process(cluster, lmap):
    z = _z(2100)  # 3 chunks of 16 × 64 rows, the last one short
    kw = dict(tol=1e-6, max_steps=100, batch_size=64, record_every=25, features=True)
    one = iterate(lmap, z, options=IterateOptions(chunk_size=chunk_rows(64)), **kw)
    dist = iterate_ray(lmap, z, ray_options=RayOptions(actors=2, threads=1), **kw)
    for name in (*ARRAYS, "path", "path_steps"):
        assert np.array_equal(getattr(one, name), getattr(dist, name), equal_nan=True), name
    assert sorted(one.features) == sorted(dist.features)
    for name in one.features:
        assert np.array_equal(one.features[name], dist.features[name], equal_nan=True), name
    assert one.counts() == dist.counts() and one.counts()["max_steps"] > 0  # a mix of statuses, not all converged
    info = dist.settings["ray"]
    assert info["chunks"] == 3 and info["chunks_run"] == 3
    assert sum(a["chunks"] for a in info["actors"]) == 3
    assert all(a["providers"] == ["CPUExecutionProvider"] and a["peak_rss_mib"] > 0 for a in info["actors"])
    # grouping the gathered endpoints is grouping them all at once: the same partition and labels
    a1, a2 = find_attractors(one), find_attractors(dist)
    assert a1.n_attractors > 1
    assert np.array_equal(a1.labels, a2.labels) and np.array_equal(a1.centres, a2.centres)


def test_resume_reads_back_completed_chunks(cluster, lmap, tmp_path):
    z = _z(2100, seed=1)
    size = chunk_rows(64)
    store = ChunkStore(tmp_path / "partial", size)
    one = iterate(lmap, z, batch_size=64, max_steps=100, options=IterateOptions(chunk_size=size, checkpoint=store))
    for i in (0, 2):  # an interrupted run: only chunk 1 completed
        (tmp_path / "partial" / f"chunk-{i:06d}.npz").unlink()
    dist = iterate_ray(lmap, z, batch_size=64, max_steps=100, options=IterateOptions(chunk_size=size, checkpoint=store))
    assert (dist.settings["ray"]["chunks_run"], dist.settings["ray"]["chunks_resumed"]) == (2, 1)
    for name in ARRAYS:
        assert np.array_equal(getattr(one, name), getattr(dist, name)), name
    assert sorted(p.name for p in (tmp_path / "partial").iterdir()) == [f"chunk-{i:06d}.npz" for i in range(3)]


def test_cli_attractors_files_identical_with_ray(cluster, tmp_path, capsys):
    common = ["attractors", str(BUNDLE), "--noise", "2100", "--seed", "3", "--batch-size", "64", "--max-steps", "100",
              "--device", "cpu", "--threads", "1", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "ray"), "--ray", "--ray-actors", "2"]) == 0
    # the actors that got chunks: both, unless one finished all three before the other started
    assert re.search(r"on Ray \(local\): 3 chunks of 1024 run on [12] actors, 0 read back", capsys.readouterr().out)
    for name in ("trajectories.npz", "attractors.npz"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name
    assert not (tmp_path / "ray" / ".flowcore-partial").exists()  # removed once the result is written
    assert ray.is_initialized()  # a session the command did not start is left running


def test_cli_resume_with_ray_after_a_killed_run(cluster, tmp_path):
    """A one-process run killed after its first chunk, resumed with --ray: the arrays of an uninterrupted run."""
    common = ["trajectories", str(BUNDLE), "--noise", "8192", "--seed", "4", "--batch-size", "32", "--max-steps", "100",
              "--device", "cpu", "--threads", "1", "--quiet"]
    killed = tmp_path / "killed"
    proc = signal_after_first_chunk([*common, "--out", str(killed)], killed, signal.SIGKILL, timeout=60)
    proc.wait(timeout=60)
    done = len(list((killed / PARTIAL_DIR).rglob("chunk-*.npz")))
    assert 1 <= done < 16
    assert main([*common, "--out", str(killed), "--resume", "--ray", "--json"]) == 0
    assert main([*common, "--out", str(tmp_path / "whole")]) == 0
    assert (killed / "trajectories.npz").read_bytes() == (tmp_path / "whole" / "trajectories.npz").read_bytes()
    assert not (killed / PARTIAL_DIR).exists()
    meta = json.loads((killed / "trajectories.json").read_text())
    assert meta["settings"]["ray"]["chunks_resumed"] == done and meta["settings"]["ray"]["chunks_run"] == 16 - done


def test_cli_ood_score_identical_with_ray(cluster, tmp_path, capsys):
    x = np.load(DIGITS)["x"]
    save_npz(tmp_path / "id.npz", x=x[:200])
    rng = np.random.default_rng(0)
    test = np.concatenate([x[200:], rng.uniform(0, 1, (900, *x.shape[1:])).astype(np.float32)])  # 1060 rows
    save_npz(tmp_path / "test.npz", x=test)
    assert main(["ood", "fit", str(BUNDLE), "--id", str(tmp_path / "id.npz"), "--out", str(tmp_path / "det"),
                 "--methods", "trajectory,features,recon_error,knn_mean50", "--default", "trajectory",
                 "--batch-size", "32", "--max-steps", "300", "--device", "cpu", "--quiet"]) == 0
    score = ["ood", "score", str(tmp_path / "det"), "--data", str(tmp_path / "test.npz"), "--all-methods",
             "--device", "cpu", "--threads", "1", "--quiet"]
    assert main([*score, "--out", str(tmp_path / "one.csv")]) == 0
    assert main([*score, "--out", str(tmp_path / "ray.csv"), "--ray", "--json"]) == 0
    one, dist = (tmp_path / "one.csv").read_text(), (tmp_path / "ray.csv").read_text()
    assert one == dist and len(one.splitlines()) == 1061
    assert '"chunks": 3' in capsys.readouterr().out  # 1060 rows in chunks of 16 × 32


def test_score_ray_api_matches_decision_function(cluster, tmp_path):
    from flowcore import OODDetector

    x = np.load(DIGITS)["x"]
    det = OODDetector(BUNDLE, methods=("trajectory", "recon_error"), default="trajectory", providers="cpu",
                      batch_size=16, max_steps=300, calibration_split=0).fit(x[:120])
    det.save(tmp_path / "det")
    scores, info = score_ray(tmp_path / "det", x[120:], providers="cpu", ray_options=RayOptions(actors=2))
    assert np.array_equal(scores["trajectory"], det.decision_function(x[120:]))
    assert info["chunks"] == 1  # 240 rows fit one chunk of 16 × 16


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_without_ray_flag_nothing_imports_ray():
    code = ("import sys; from flowcore.cli.app import main; "
            f"rc = main(['attractors', {str(BUNDLE)!r}, '--noise', '50', '--max-steps', '50', '--json', '--quiet']); "
            "print(rc, sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    res = _python(code)
    assert res.stdout.strip().splitlines()[-1] == "0 []", res.stderr


def test_missing_ray_is_one_line_exit_4(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from flowcore.cli.app import main; "
            f"sys.exit(main(['trajectories', {str(BUNDLE)!r}, '--noise', '50', '--ray', '--out', {str(tmp_path / 'o')!r}]))")
    res = _python(code)
    assert res.returncode == 4, res.stderr
    assert res.stderr.strip() == "error: --ray needs the ray extra: pip install 'flowcore[ray]'"
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_ray_actors_out_of_range_is_usage_error(capsys):
    assert main(["trajectories", str(BUNDLE), "--noise", "10", "--ray", "--ray-actors", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--ray-actors" in err and "\n" not in err


def test_gpu_run_on_a_cluster_without_gpu_fails_at_once(cluster, lmap):
    from flowcore import BackendError

    with pytest.raises(BackendError, match="has no GPU"):
        iterate_ray(lmap, _z(100), batch_size=64, ray_options=RayOptions(gpu=True))


def test_a_flowcore_error_in_an_actor_reaches_the_driver_as_itself(cluster, lmap):
    from flowcore import DataError

    with pytest.raises(DataError, match="reference attractors have k=3, latents k=8"):
        iterate(lmap, _z(300), reference=np.zeros((2, 3)))  # one process says this
    with pytest.raises(DataError, match="reference attractors have k=3, latents k=8"):
        iterate_ray(lmap, _z(300), batch_size=64, reference=np.zeros((2, 3)))  # raised in an actor


def test_unreachable_cluster_address_is_one_line_exit_4(tmp_path):
    code = ("import sys; from flowcore.cli.app import main; "
            f"sys.exit(main(['trajectories', {str(BUNDLE)!r}, '--noise', '50', '--ray', '127.0.0.1:1', "
            f"'--out', {str(tmp_path / 'o')!r}]))")
    res = _python(code)
    assert res.returncode == 4, res.stderr
    assert res.stderr.strip().startswith("error: cannot reach the Ray cluster at '127.0.0.1:1'")
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
