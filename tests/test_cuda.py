"""CUDA-only checks (marker ``cuda``): the doctor's CUDA probe, the CUDA map against the CPU map.

Skipped, with the reason shown, where this ONNX Runtime build has no CUDA execution provider
(``pytest -rs`` lists them); ``tools/gpu_check.sh`` runs them with ``-m cuda`` on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from flowcore.runtime import _probes
from flowcore.runtime.doctor import diagnose
from flowcore.runtime.latent_map import LatentMap

CUDA = "CUDAExecutionProvider"
DEMO = Path(__file__).resolve().parents[1] / "flowcore" / "data" / "demo" / "bundle"

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(CUDA not in ort.get_available_providers(),
                       reason=f"no CUDA execution provider in this ONNX Runtime build "
                              f"({ort.__version__}: {ort.get_available_providers()}); install onnxruntime-gpu"),
]


def test_doctor_tiny_graph_really_runs_on_cuda():
    report = diagnose(bundle=DEMO)
    check = report["cuda_check"]
    assert check["tried"] is True and check["error"] is None, check
    assert check["providers"][0] == CUDA
    assert check["per_provider"] == {CUDA: check["nodes"]} and check["nodes"] >= 1
    assert check["ran_on_provider"] and check["numeric_ok"]
    assert report["ok"] is True, report["problems"]
    assert report["bundle"]["error"] is None and report["bundle"]["nodes"] >= 1


def test_cuda_map_equals_cpu_map_on_demo_bundle():
    # ORT's CUDA EP computes float32 MatMul in TF32 by default (use_tf32=1, ~1e-3 relative):
    # LatentMap turns TF32 off (flowcore.runtime._sessions.provider_options)
    z = np.random.default_rng(0).standard_normal((512, 8), dtype=np.float32)
    gpu = LatentMap(DEMO, providers="cuda")
    cpu = LatentMap(DEMO, providers="cpu")
    assert gpu.providers[0] == CUDA
    f_gpu, f_cpu = gpu(z), cpu(z)
    rel = float(np.max(np.abs(f_gpu - f_cpu)) / np.max(np.abs(f_cpu)))
    assert rel <= 1e-5, rel


def test_io_binding_on_cuda_ortvalues():
    providers = [(CUDA, {"use_tf32": "0"}), "CPUExecutionProvider"]  # TF32 (ORT's default) is not float32
    sess = ort.InferenceSession(_probes.tiny_model().SerializeToString(), providers=providers)
    found = _probes.run_bound(sess, device="cuda")
    assert found["runs"] == 3 and found["max_rel_error"] <= 1e-5


def test_cuda_graph_captured_and_replayed():
    graph = _probes.probe_cuda_graph(ort)
    assert graph["tried"] is True and graph["captured"] is True, graph


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_engines_on_cuda_agree(cuda_graph):
    """On one CUDA map every engine gives the python engine's results, CUDA graphs included."""
    from flowcore import IterateOptions, iterate

    lmap = LatentMap(DEMO, providers="cuda")
    z0 = np.random.default_rng(1).standard_normal((3000, 8)).astype(np.float32)
    ref = iterate(lmap, z0, batch_size=1024, options=IterateOptions(engine="python"))
    runs = [iterate(lmap, z0, batch_size=1024, options=IterateOptions(engine="iobinding", cuda_graph=cuda_graph))]
    for tr in runs:
        for f in ("final", "steps", "status", "last_step_sq"):
            np.testing.assert_array_equal(getattr(tr, f), getattr(ref, f), err_msg=f"{tr.settings['engine']}: {f}")
    if cuda_graph:
        assert runs[0].settings["engine_options"]["graph_ids"] >= 2  # both directions of a bucket
