"""``flowcore doctor``: which ONNX Runtime build is installed, its providers, and conflicts."""

from __future__ import annotations

from importlib import metadata
from typing import Any

__all__ = ["diagnose"]

_ORT_DISTS = ("onnxruntime", "onnxruntime-gpu")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def diagnose() -> dict[str, Any]:
    """Return a plain dict: versions, ORT builds installed, providers available, problems, ok."""
    report: dict[str, Any] = {
        "flowcore": _version("flowcore"),
        "numpy": _version("numpy"),
        "onnx": _version("onnx"),
        "numba": _version("numba"),
    }
    builds = {d: _version(d) for d in _ORT_DISTS}
    report["ort_builds"] = {d: v for d, v in builds.items() if v}
    problems = []
    if all(builds.values()):
        problems.append("both onnxruntime and onnxruntime-gpu are installed: CUDA silently disappears; "
                        "pip uninstall -y onnxruntime onnxruntime-gpu, then install one extra")
    try:
        import onnxruntime as ort  # lazy: optional extra onnxruntime (flowcore[cpu] / flowcore[gpu]); also import cost

        report["ort_version"] = ort.__version__
        report["providers_available"] = ort.get_available_providers()
        report["cuda_available"] = "CUDAExecutionProvider" in report["providers_available"]
    except ImportError:
        problems.append("ONNX Runtime is not installed: pip install 'flowcore[cpu]' (or 'flowcore[gpu]')")
    report["problems"] = problems
    report["ok"] = not problems
    return report
