"""Checkpoints and --resume: SIGKILL mid-run, then --resume, gives byte-identical output files.

Each command (``trajectories``, ``attractors``, ``ood fit``) runs in a subprocess on a map that
converges slowly (two attractors, contraction 0.98: ~170 steps a row) in chunks of 16 × 16 starts;
the test waits for the first chunk file, kills the process by its pid with SIGKILL, reruns the same
command with ``--resume`` and compares every file with an uninterrupted run's. The engine-level
tests show that completed chunks are read back (not recomputed) and that a damaged chunk is
computed again.
"""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.dynamics.checkpointing import PARTIAL_DIR, ChunkStore, RunCheckpoint, chunk_rows
from flowcore.dynamics.sources import NoiseStarts
from flowcore import IterateOptions, iterate
from flowcore.errors import ParameterError
from flowcore.io import load_npz, save_npz
from flowcore.runtime.latent_map import LatentMap

from _graphs import two_attractors
from _cli import signal_after_first_chunk

MARKER = ".flowcore-output.json"
BATCH = 16
CHUNKS = 8
N = CHUNKS * chunk_rows(BATCH)


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    root = tmp_path_factory.mktemp("slow")
    bundle = FlowBundle.write(root / "bundle", *two_attractors(np.array([2.0, 1.0]), np.array([-1.0, -3.0]),
                                                                np.array([1.0, 0.0]), 0.98)).path
    x = np.random.default_rng(1).uniform(-4, 4, size=(N, 2)).astype(np.float32)
    np.save(root / "x.npy", x)
    return Path(bundle), root / "x.npy"


def _argv(command: str, slow, out: Path) -> list[str]:
    bundle, x = slow
    common = ["--batch-size", str(BATCH), "--out", str(out), "--quiet", "--device", "cpu", "--threads", "1"]
    if command == "ood fit":
        return ["ood", "fit", str(bundle), "--id", str(x), "--methods", "trajectory,recon_error",
                "--default", "trajectory", *common]
    return [command, str(bundle), "--noise", str(N), "--seed", "3", *common]


def _cli(argv, **kw):
    return subprocess.run([sys.executable, "-m", "flowcore", *argv], capture_output=True, text=True, timeout=600, **kw)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _marker_without_times(data: bytes) -> dict:
    m = json.loads(data)
    m.pop("written_at", None)
    for run in m.get("runs", {}).values():
        run.pop("written_at", None)
    return m


def _kill_after_first_chunk(argv, out: Path) -> None:
    proc = signal_after_first_chunk(argv, out, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


@pytest.mark.parametrize("command", ["trajectories", "attractors", "ood fit"])
def test_sigkill_then_resume_is_byte_identical(slow, tmp_path, command):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = subprocess.Popen([sys.executable, "-m", "flowcore", *_argv(command, slow, whole)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _kill_after_first_chunk(_argv(command, slow, killed), killed)
    chunks = sorted((killed / PARTIAL_DIR).rglob("chunk-*.npz"))
    assert chunks and (killed / PARTIAL_DIR / "run.json").is_file()
    visible = [p.name for p in killed.iterdir() if not p.name.startswith(".flowcore-")]
    assert visible == [], f"the killed run left result files: {visible}"
    assert len(chunks) < CHUNKS * (2 if command == "ood fit" else 1), "the kill came after the last chunk"

    # a resume with other settings is refused in one line, and leaves the partial run alone
    other = _cli(_argv(command, slow, killed) + ["--resume", "--max-steps", "100"])
    assert other.returncode in (2, 3), other.stderr
    lines = other.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --resume") and "max_steps" in lines[0], other.stderr
    assert sorted((killed / PARTIAL_DIR).rglob("chunk-*.npz")) == chunks

    again = _cli(_argv(command, slow, killed) + ["--resume"])
    assert again.returncode == 0, again.stderr
    assert uninterrupted.wait(timeout=600) == 0, uninterrupted.stderr.read()
    assert not (whole / PARTIAL_DIR).exists()  # removed after success
    assert not (killed / PARTIAL_DIR).exists()
    a, b = _files(whole), _files(killed)
    assert sorted(a) == sorted(b)
    for name in a:
        if name == MARKER:  # flowcore's bookkeeping: equal but for its write times
            assert _marker_without_times(a[name]) == _marker_without_times(b[name])
        else:
            assert a[name] == b[name], f"{name} differs after --resume"


# --------------------------------------------------------------------------- engine level
def _lmap(slow):
    return LatentMap(slow[0], providers="cpu", intra_op_num_threads=1)


def test_completed_chunks_are_read_back_not_recomputed(slow, tmp_path):
    lmap = _lmap(slow)
    src = NoiseStarts(lmap.latent_shape, 300, seed=5)
    store = ChunkStore(tmp_path / "p", 100)
    opts = IterateOptions(chunk_size=100, checkpoint=store)
    first = iterate(lmap, src, batch_size=16, reference=np.zeros((1, 2)), options=opts)
    assert sorted(p.name for p in store.folder.iterdir()) == [f"chunk-00000{i}.npz" for i in range(3)]
    # alter the stored chunk 1: a rerun on the same store must take its rows from the file
    path = store.folder / "chunk-000001.npz"
    arrays = load_npz(path)
    arrays["final"] = arrays["final"] + 1.0
    arrays["feature_dist_mean"] = arrays["feature_dist_mean"] * 0 + 7.0
    save_npz(path, **arrays)
    again = iterate(lmap, src, batch_size=16, reference=np.zeros((1, 2)), options=opts)
    np.testing.assert_array_equal(again.final[100:200], first.final[100:200] + 1.0)
    assert np.all(again.features["dist_mean"][100:200] == 7.0)
    np.testing.assert_array_equal(again.final[:100], first.final[:100])
    np.testing.assert_array_equal(again.final[200:], first.final[200:])
    # a damaged chunk file is computed again (and equals the first run)
    (store.folder / "chunk-000002.npz").write_bytes(b"not a zip")
    third = iterate(lmap, src, batch_size=16, reference=np.zeros((1, 2)), options=opts)
    np.testing.assert_array_equal(third.final[200:], first.final[200:])
    np.testing.assert_array_equal(third.features["dist_mean"][200:], first.features["dist_mean"][200:])


def test_chunks_with_paths_resume_to_the_same_result(slow, tmp_path):
    lmap = _lmap(slow)
    z0 = np.random.default_rng(2).uniform(-3, 3, size=(250, 2)).astype(np.float32)
    whole = iterate(lmap, z0, batch_size=16, record_every=50, options=IterateOptions(chunk_size=64))
    store = ChunkStore(tmp_path / "p", 64)
    iterate(lmap, z0, batch_size=16, record_every=50, options=IterateOptions(chunk_size=64, checkpoint=store))
    for extra in ("chunk-000002.npz", "chunk-000003.npz"):  # as if killed after chunk 1
        (store.folder / extra).unlink()
    resumed = iterate(lmap, z0, batch_size=16, record_every=50, options=IterateOptions(chunk_size=64, checkpoint=store))
    for name in ("final", "steps", "status", "last_step_sq", "path", "path_steps"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name))


def test_run_checkpoint_resume_rules(tmp_path):
    spec = {"command": "trajectories", "settings": {"tol": 1e-6, "max_steps": 3000}, "chunk_size": 64}
    ck = RunCheckpoint(tmp_path / "out", spec)
    ck.stage("trajectories", 64).save(0, {"final": np.zeros((64, 2), np.float32)})
    assert (tmp_path / "out" / PARTIAL_DIR / "run.json").is_file()
    RunCheckpoint(tmp_path / "out", spec, resume=True)  # same run: accepted, chunks kept
    assert (tmp_path / "out" / PARTIAL_DIR / "trajectories" / "chunk-000000.npz").is_file()
    other = {**spec, "settings": {"tol": 1e-6, "max_steps": 10}}
    with pytest.raises(ParameterError) as info:
        RunCheckpoint(tmp_path / "out", other, resume=True)
    msg = str(info.value)
    assert "\n" not in msg and "settings.max_steps = 3000" in msg and "10" in msg and "without --resume" in msg
    RunCheckpoint(tmp_path / "out", other)  # not resumed: the old partial run is discarded
    assert not (tmp_path / "out" / PARTIAL_DIR).exists()
    ck = RunCheckpoint(tmp_path / "out", spec)
    ck.stage("x", 8).save(0, {"a": np.zeros(8)})
    ck.remove()
    assert not (tmp_path / "out" / PARTIAL_DIR).exists() and (tmp_path / "out").is_dir()


def test_a_failed_run_keeps_completed_chunks_and_leaves_no_trace_without(tmp_path):
    spec = {"command": "trajectories", "chunk_size": 8}
    with pytest.raises(RuntimeError):
        with RunCheckpoint(tmp_path / "new", spec) as ck:
            ck.stage("trajectories", 8).folder.mkdir(parents=True)
            raise RuntimeError("failed before the first chunk")
    assert not (tmp_path / "new").exists()  # created by the run, empty again: removed
    with pytest.raises(RuntimeError):
        with RunCheckpoint(tmp_path / "new", spec) as ck:
            ck.stage("trajectories", 8).save(0, {"final": np.zeros((8, 2), np.float32)})
            raise RuntimeError("failed after a chunk")
    assert (tmp_path / "new" / PARTIAL_DIR / "trajectories" / "chunk-000000.npz").is_file()  # kept for --resume
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError):
        with RunCheckpoint(tmp_path / "user", spec):
            raise RuntimeError("failed")
    assert sorted(p.name for p in (tmp_path / "user").iterdir()) == ["notes.txt"]
