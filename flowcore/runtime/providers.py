"""Execution providers and session options: which ONNX Runtime build, which device, which threads.

No silent fallback: ``cuda`` fails when the build has no CUDA provider, and the providers a session
really uses are reported by :class:`~flowcore.runtime.latent_map.LatentMap`.
"""

from __future__ import annotations

from typing import Any, Sequence

from flowcore.errors import BackendError

__all__ = ["CPU", "CUDA", "import_onnxruntime", "resolve_providers", "default_session_options", "provider_options"]

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


#: Options flowcore gives each provider: TF32 off on CUDA (ONNX Runtime's CUDA provider turns it on
#: by default, ~1e-3 relative error on float32 MatMul, enough to move a row's stopping step).
_PROVIDER_OPTIONS = {CUDA: {"use_tf32": "0"}}


def provider_options(providers: Sequence[str], extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    """The ``provider_options`` list for ``providers``: flowcore's defaults, plus ``extra`` for the first one."""
    out = [dict(_PROVIDER_OPTIONS.get(p, {})) for p in providers]
    if extra and out:
        out[0].update(extra)
    return out


def default_session_options(threads: int | None = None) -> Any:
    """flowcore's ONNX Runtime session options.

    ``intra_op_num_threads`` = ``threads`` (None: ONNX Runtime's default, the physical cores),
    intra-op spinning off (spinning threads slow a process that also runs torch, several-fold on
    2 cores), denormals flushed to zero (``session.set_denormal_as_zero``), warnings off.
    """
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return so
