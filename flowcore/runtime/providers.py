"""Execution providers: which ONNX Runtime build, which device (session options: :mod:`flowcore.runtime._sessions`).

No silent fallback: ``cuda`` fails when the build has no CUDA provider, and the providers a session
really uses are reported by :class:`~flowcore.runtime.latent_map.LatentMap`.
"""

from __future__ import annotations

from typing import Sequence

from flowcore.errors import BackendError

__all__ = ["CPU", "CUDA", "import_onnxruntime", "resolve_providers"]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def import_onnxruntime():
    """Import ONNX Runtime or fail with one line naming the two extras."""
    try:
        import onnxruntime as ort  # lazy: optional extra onnxruntime (flowcore[cpu] / flowcore[gpu]); also import cost
    except ImportError:
        raise BackendError(
            "ONNX Runtime is not installed: pip install 'flowcore[cpu]' (or 'flowcore[gpu]' on a CUDA machine)"
        ) from None
    return ort


def resolve_providers(providers: str | Sequence[str] = "auto") -> list[str]:
    """Turn ``"auto" | "cpu" | "cuda"`` or an explicit list into an ONNX Runtime provider list.

    ``auto`` means the CUDA execution provider when this ONNX Runtime build offers it, else CPU.
    ``cuda`` fails when the build has no CUDA provider (no silent fallback).
    """
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    if isinstance(providers, str):
        choice = providers.lower()
        if choice == "auto":
            return [CUDA, CPU] if CUDA in available else [CPU]
        if choice == "cpu":
            return [CPU]
        if choice in ("cuda", "gpu"):
            if CUDA not in available:
                raise BackendError(
                    f"device 'cuda' asked for, but this ONNX Runtime build offers {available}; "
                    "install flowcore[gpu] (onnxruntime-gpu) and remove onnxruntime"
                )
            return [CUDA, CPU]
        raise BackendError(f"unknown device {providers!r}; expected auto, cpu or cuda")
    out = list(providers)
    unknown = [p for p in out if p not in available]
    if unknown:
        raise BackendError(f"providers {unknown} are not in this ONNX Runtime build; available: {available}")
    return out
