"""Smoke test of tools/bench_engines.py on the shipped demo bundle (no torch, no timing asserts).

Checks that ``--quick --no-torch`` writes engines.json / engines.md with every engine's row, that
the engines agree with the python engine bit for bit, and that the raw-ORT replay schedule the
benchmark rebuilds from step counts is the one the python engine really ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
DEMO = ROOT / "flowcore" / "data" / "demo" / "bundle"

pytestmark = pytest.mark.skipif(not DEMO.is_dir(), reason="shipped demo bundle missing")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    p = subprocess.run([sys.executable, str(TOOLS / "bench_engines.py"), "--quick", "--no-torch", "--no-import",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return out, json.loads((out / "engines.json").read_text()), p.stdout


def test_rows_and_engines_agree(report):
    out, payload, stdout = report
    rows = payload["rows"]
    assert [(r["model"], r["batch_size"]) for r in rows] == [("demo", 256), ("demo", 4096)]
    for r in rows:
        assert r["row_steps"] >= r["n_starts"] and r["step_calls"] >= r["steps"]["max"]
        assert r["steps"]["max"] <= payload["config"]["max_steps"]
        assert "segment" not in r["columns"] and "segment" not in r["engines_available"]  # the engine was removed
        for e in ("python", "iobinding", "auto"):
            if r["engines_available"][e] is not None:  # an engine this flowcore lacks is reported, not run
                assert r["engines_available"][e].startswith("not available")
                continue
            col = r["columns"][e]
            assert col["agreement_vs_python"]["identical"], (e, col["agreement_vs_python"])
            assert col["seconds"]["median"] > 0 and col["vs_raw"] > 0
        assert r["columns"]["raw"]["seconds"]["median"] > 0
        assert "torch_per_row" not in r["columns"] and "torch_batch_global" not in r["columns"]
    env = payload["environment"]
    assert env["cpu"] and env["onnxruntime"] and "cpu_flags" in env
    md = (out / "engines.md").read_text()
    assert "| demo (8) | 256 |" in md and "**Machine**" in md and md.strip() in stdout


def test_subnormal_rows(report):
    _, payload, _ = report
    sub = payload["subnormal"]
    assert sub["subnormal_weights"]["encoder"] > 0  # the shipped demo bundle has subnormal weights
    cfgs = sub["configs"]
    assert set(cfgs) == {"flowcore", "flowcore_no_flush", "raw_flushed", "raw_unflushed_daz", "raw_trap"}
    assert cfgs["flowcore"]["subnormal_weights"]["flushed"] is True
    assert not (cfgs["flowcore_no_flush"]["subnormal_weights"] or {}).get("flushed")
    assert cfgs["flowcore"]["steps_agree_vs_reference"] == 1.0
    assert cfgs["raw_trap"]["daz_after"] is False and cfgs["raw_flushed"]["daz_after"] is True
    assert cfgs["raw_trap"]["subnormals_in_graph"] == sub["subnormal_weights"]["encoder"] + sub["subnormal_weights"]["decoder"]


def test_schedule_matches_python_engine():
    sys.path.insert(0, str(TOOLS))
    try:
        from _bench_timing import schedule_of, tile_with_jitter
    finally:
        sys.path.remove(str(TOOLS))
    from flowcore import IterateOptions, iterate
    from flowcore.runtime.latent_map import LatentMap

    lmap = LatentMap(DEMO, providers="cpu", intra_op_num_threads=1)
    with np.load(DEMO.parent / "digits_test.npz", allow_pickle=False) as f:
        z0 = tile_with_jitter(lmap.encode(f["x"]), 700, seed=0)

    class Recorder:  # a map with only step(z): the python engine drives it, sizes are recorded
        def __init__(self):
            self.sizes = []
            self.latent_shape = lmap.latent_shape

        def check_latents(self, z, what="latents"):
            return lmap.check_latents(z, what)

        def step(self, z):
            self.sizes.append(len(z))
            return lmap.step(z)

    rec = Recorder()
    tr = iterate(rec, z0, tol=1e-6, max_steps=80, batch_size=128, progress=False,
                 options=IterateOptions(engine="python"))
    sched = schedule_of(tr.steps, 128)
    assert sched.tolist() == rec.sizes
    assert sched.sum() == tr.steps.sum()
