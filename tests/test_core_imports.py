"""The core never imports a deep-learning framework, and works with them made unimportable."""

import json
import subprocess
import sys
import textwrap

import numpy as np

from flowcore.bundle.flowbundle import FlowBundle

from _graphs import two_attractors

BLOCK = textwrap.dedent(
    """
    import importlib.abc, sys
    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "tensorflow", "keras", "sklearn", "flowcore_torch"}:
                raise ImportError(f"{name} is blocked in this test", name=name)
    sys.meta_path.insert(0, _Block())
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_import_pulls_no_framework():
    proc = _run(
        "import sys, flowcore, flowcore.cli, flowcore.cli.demo\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch','tensorflow','keras','sklearn','matplotlib'})\n"
        "print(bad)"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_import_defers_numba_and_onnx():
    """``import flowcore`` stays cheap: numba, onnx and onnxruntime load on first use only."""
    proc = _run(
        "import sys, flowcore\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'numba', 'onnx', 'onnxruntime'}))"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_lazy_kernels_compile_and_load_onnx_on_first_use(tmp_path):
    """The deferred imports happen when needed: a kernel call loads numba, a bundle load onnx."""
    a, b, u = np.array([2.0, 1.0]), np.array([-1.0, -3.0]), np.array([1.0, 0.0])
    FlowBundle.write(tmp_path / "b", *two_attractors(a, b, u))
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import flowcore
        labels = flowcore.group_points(np.array([[0.0, 0.0], [0.0, 1e-6], [5.0, 5.0]]),
                                       metric="euclidean", threshold=1e-3)
        print(labels.tolist(), "numba" in sys.modules, "onnx" in sys.modules)
        flowcore.FlowBundle.load(r"{tmp_path / 'b'}")
        print("onnx" in sys.modules, "onnxruntime" in sys.modules)
        """
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.strip().splitlines()
    assert first == "[0, 0, 1] True False"
    assert second == "True False"


def test_runs_with_frameworks_unimportable(tmp_path):
    a, b, u = np.array([2.0, 1.0]), np.array([-1.0, -3.0]), np.array([1.0, 0.0])
    FlowBundle.write(tmp_path / "b", *two_attractors(a, b, u))
    code = BLOCK + textwrap.dedent(
        f"""
        from flowcore.cli.app import main
        rc = main(["attractors", r"{tmp_path / 'b'}", "--noise", "200", "--metric", "euclidean",
                   "--threshold", "0.01", "--out", r"{tmp_path / 'o'}", "--quiet"])
        import sys
        assert "torch" not in sys.modules
        raise SystemExit(rc)
        """
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    att = json.loads((tmp_path / "o" / "attractors.json").read_text())
    assert att["n_attractors"] == 2
