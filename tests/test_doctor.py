"""flowcore.runtime.doctor: the CPU probe, node placement from ORT's profiler, the decision, the CLI.

The CUDA probes run in tests/test_cuda.py (skipped, with a reason, without a CUDA provider).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from flowcore.cli import main
from flowcore.runtime import _probes
from flowcore.runtime.doctor import _bundle_placement, decide, diagnose, format_report
from flowcore.runtime.latent_map import LatentMap

DEMO = Path(__file__).resolve().parents[1] / "flowcore" / "data" / "demo" / "bundle"
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def _optimized_node_count(model: onnx.ModelProto, tmp_path: Path) -> int:
    """Nodes of the graph ORT executes: its optimised model written to disk, counted by onnx."""
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=[CPU])
    return len(onnx.load(str(tmp_path / "optimized.onnx")).graph.node)


def test_cpu_check_passes_and_report_has_new_keys():
    report = diagnose()
    for key in ("ort_version", "ort_builds", "providers_available", "cpu", "cpu_check", "cuda_check",
                "cuda_graph", "numpy", "onnx", "numba", "problems", "notes", "ok"):
        assert key in report, key
    check = report["cpu_check"]
    assert check["error"] is None
    assert check["ran_on_provider"] and check["numeric_ok"]
    assert check["providers"][0] == CPU
    assert check["per_provider"] == {CPU: 2}  # MatMul + Relu (ORT does not fuse them on the CPU)
    assert check["max_rel_error"] <= 1e-5
    assert set(report["cpu"]) >= {"model", "avx512f", "amx_tile"}
    assert isinstance(report["cpu"]["avx512f"], bool) and report["cpu"]["model"]
    if CUDA not in ort.get_available_providers():
        assert report["cuda_check"] == {"tried": False, "reason": "no CUDA provider"}
        assert report["cuda_graph"]["tried"] is False
        assert "cuda graph         not tried (no CUDA provider)" in format_report(report)
    json.dumps(report)  # plain JSON types only
    assert report["ok"] is (not report["problems"])


def test_cpu_flags_match_proc_cpuinfo():
    info = _probes.cpu_info()
    if not os.path.exists("/proc/cpuinfo"):
        pytest.skip("no /proc/cpuinfo on this OS: the platform.processor() fallback is used")
    text = Path("/proc/cpuinfo").read_text(errors="replace")
    flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
    assert info["avx512f"] == ("avx512f" in flags)
    assert info["amx_tile"] == ("amx_tile" in flags)


def test_tiny_graph_matches_numpy_reference():
    sess = ort.InferenceSession(_probes.tiny_model().SerializeToString(), providers=[CPU])
    x = _probes.tiny_input(0.25)
    y = sess.run(None, {_probes.TINY_IN: x})[0]
    assert y.shape == (4, 4) and y.dtype == np.float32
    np.testing.assert_allclose(y, _probes.tiny_expected(x), rtol=1e-5, atol=1e-6)
    assert (y == 0).any() and (y > 0).any()  # the Relu cuts: the check is not trivially positive


def test_demo_fused_graph_placement_counts_only_cpu_nodes(tmp_path):
    before = set(os.listdir(tempfile.gettempdir()))
    bundle = _bundle_placement(ort, DEMO, [CPU])  # what diagnose(bundle=...) reports without CUDA
    assert bundle["error"] is None
    assert set(bundle["per_provider"]) == {CPU}
    executed = _optimized_node_count(LatentMap(DEMO, providers="cpu").fused_model, tmp_path)
    assert bundle["nodes"] == executed >= 1
    assert bundle["per_provider"][CPU] == bundle["nodes"]
    assert bundle["memcpy_nodes"] == 0
    assert bundle["latent_shape"] == [8]
    if CUDA not in ort.get_available_providers():
        assert diagnose(bundle=DEMO)["bundle"] == bundle
    leftover = {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("flowcore_doctor")}
    assert not leftover  # the profile file and its folder are removed


def test_io_binding_runs_on_cpu_ortvalues():
    """The IOBinding path of the CUDA-graph probe, on the CPU EP: the in-place update is read."""
    sess = ort.InferenceSession(_probes.tiny_model().SerializeToString(), providers=[CPU])
    found = _probes.run_bound(sess, device="cpu")
    assert found["runs"] == 3 and found["max_rel_error"] <= 1e-5 and found["error"] is None


def test_cuda_graph_not_tried_without_cuda():
    if CUDA in ort.get_available_providers():
        pytest.skip("this ONNX Runtime offers CUDA: tests/test_cuda.py checks the capture")
    assert _probes.probe_cuda_graph(ort) == {"tried": False, "captured": False,
                                             "reason": "no CUDA provider", "error": None}


def _good(**over):
    report = {"ort_builds": {"onnxruntime": "1.20.0"}, "ort_version": "1.20.0",
              "cpu_check": {"provider": CPU, "providers": [CPU], "per_provider": {CPU: 2}, "nodes": 2,
                            "error": None, "ran_on_provider": True, "numeric_ok": True, "max_rel_error": 1e-7},
              "cuda_check": {"tried": False, "reason": "no CUDA provider"},
              "cuda_graph": {"tried": False, "captured": False, "reason": "no CUDA provider", "error": None}}
    report.update(over)
    return report


def _cuda(**over):
    check = {"tried": True, "provider": CUDA, "providers": [CUDA, CPU], "per_provider": {CUDA: 2}, "nodes": 2,
             "error": None, "ran_on_provider": True, "numeric_ok": True, "max_rel_error": 1e-7}
    check.update(over)
    return check


def test_decide_ok_on_a_clean_cpu_build():
    assert decide(_good()) == {"ok": True, "problems": [], "notes": []}


def test_decide_cuda_listed_but_cannot_load_its_libraries():
    # what ORT reports when libcudnn is missing: the session falls back to the CPU provider
    fallback = _cuda(providers=[CPU], per_provider={CPU: 2}, ran_on_provider=False)
    out = decide(_good(cuda_check=fallback))
    assert out["ok"] is False and "did not run on CUDAExecutionProvider" in out["problems"][0]
    failed = _cuda(providers=[], per_provider={}, nodes=0, ran_on_provider=False, numeric_ok=False,
                   error="RuntimeError: libcudnn.so.9: cannot open shared object file")
    out = decide(_good(cuda_check=failed))
    assert out["ok"] is False and "libcudnn.so.9" in out["problems"][0]


def test_decide_cuda_partial_placement_and_wrong_numbers():
    partial = _cuda(per_provider={CUDA: 1, CPU: 1}, ran_on_provider=False)
    assert decide(_good(cuda_check=partial))["ok"] is False
    wrong = _cuda(numeric_ok=False, max_rel_error=0.3)
    out = decide(_good(cuda_check=wrong))
    assert out["ok"] is False and "differs from NumPy" in out["problems"][0]
    assert decide(_good(cuda_check=_cuda()))["ok"] is True


def test_decide_cpu_failures_and_conflicts():
    bad_cpu = dict(_good()["cpu_check"], numeric_ok=False, max_rel_error=1.0)
    assert decide(_good(cpu_check=bad_cpu))["ok"] is False
    assert decide(_good(cpu_check=None))["ok"] is False
    both = _good(ort_builds={"onnxruntime": "1.20.0", "onnxruntime-gpu": "1.20.0"})
    assert "both onnxruntime and onnxruntime-gpu" in decide(both)["problems"][0]
    assert decide({"ort_builds": {}, "ort_version": None})["ok"] is False


def test_decide_notes_do_not_fail():
    graph = {"tried": True, "captured": False, "error": "RuntimeError: capture failed"}
    bundle = {"providers": [CUDA, CPU], "per_provider": {CUDA: 9, CPU: 2}, "nodes": 11, "memcpy_nodes": 2,
              "error": None}
    out = decide(_good(cuda_check=_cuda(), cuda_graph=graph, bundle=bundle))
    assert out["ok"] is True and out["problems"] == []
    assert len(out["notes"]) == 3 and any("Memcpy" in n for n in out["notes"])


def test_cli_doctor_exit_code_and_json():
    buf = io.StringIO()
    assert main(["doctor", "--json"], stdout=buf) == 0
    report = json.loads(buf.getvalue())
    assert report["ok"] is True and report["cpu_check"]["ran_on_provider"] is True
    text = io.StringIO()
    assert main(["doctor", "--bundle", str(DEMO)], stdout=text) == 0
    out = text.getvalue()
    assert "tiny graph on CPU  ran there" in out and "fused graph" in out and "ok                 True" in out
