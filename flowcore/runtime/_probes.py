"""The probes behind ``flowcore doctor``: a tiny real graph on each provider, node placement, CUDA graphs.

Every probe returns a plain dict (JSON types only) and never raises for a runtime failure: the
failure is the finding, reported as the first line of the error. Node placement comes from ONNX
Runtime's profiler: with ``SessionOptions.enable_profiling`` one ``run`` writes a JSON trace
whose ``cat == "Node"`` events carry ``args.provider`` (the execution provider that ran that
node) and ``args.op_name``. The trace is read as JSON and the one file ONNX Runtime wrote is
deleted.

Lines that run only when the build offers the CUDA execution provider are marked
``# CUDA-only: untested without a GPU``.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from typing import Any

import numpy as np

from flowcore.runtime._sessions import inference_session
from flowcore.runtime.providers import CPU, CUDA

__all__ = ["TINY_IN", "TINY_OUT", "tiny_model", "tiny_input", "tiny_expected", "cpu_info", "placement",
           "probe_provider", "probe_cuda_graph", "run_bound"]

#: The tiny graph's input (4, 8) and output (4, 4) names.
TINY_IN, TINY_OUT = "x", "y"
_TINY_SHAPE = (4, 8)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _tiny_weight() -> np.ndarray:
    """The tiny graph's weight: ndarray of shape (8, 4), float32, fixed (no RNG), mixed signs."""
    return (np.arange(32, dtype=np.float32).reshape(8, 4) / 16.0 - 1.0).astype(np.float32)


def tiny_input(shift: float = 0.0) -> np.ndarray:
    """A fixed input for the tiny graph: ndarray of shape (4, 8), float32, mixed signs."""
    return (np.linspace(-1.0, 1.0, 32, dtype=np.float32).reshape(_TINY_SHAPE) + np.float32(shift)).astype(np.float32)


def tiny_model():
    """``y = Relu(x @ W)``: an in-memory ONNX model, x (4, 8) float32 -> y (4, 4) float32."""
    import onnx  # lazy: import cost (onnx ~0.15 s)
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", [TINY_IN, "w"], ["h"], name="matmul"),
         helper.make_node("Relu", ["h"], [TINY_OUT], name="relu")],
        "flowcore_doctor_tiny",
        [helper.make_tensor_value_info(TINY_IN, TensorProto.FLOAT, list(_TINY_SHAPE))],
        [helper.make_tensor_value_info(TINY_OUT, TensorProto.FLOAT, [_TINY_SHAPE[0], 4])],
        [numpy_helper.from_array(_tiny_weight(), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every ONNX Runtime flowcore supports (>= 1.18)
    onnx.checker.check_model(model)
    return model


def tiny_expected(x: np.ndarray) -> np.ndarray:
    """NumPy reference of the tiny graph: ``max(x @ W, 0)``, x (4, 8) float32 -> (4, 4) float64."""
    return np.maximum(x.astype(np.float64) @ _tiny_weight().astype(np.float64), 0.0)


def _max_rel_error(y: np.ndarray, x: np.ndarray) -> float:
    ref = tiny_expected(x)
    return float(np.max(np.abs(np.asarray(y, dtype=np.float64) - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


def cpu_info() -> dict[str, Any]:
    """CPU model (``/proc/cpuinfo`` "model name", else :func:`platform.processor`) and two ISA flags.

    ``avx512f`` and ``amx_tile`` are the flags ONNX Runtime's MLAS kernels (and oneDNN in torch)
    can dispatch to; whether a given build uses them is not visible from Python, so only the
    flags are reported.
    """
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return {"model": model or platform.processor() or platform.machine() or "unknown",
            "source": "/proc/cpuinfo" if model else "platform",
            "avx512f": "avx512f" in flags, "amx_tile": "amx_tile" in flags,
            "flags_read": bool(flags)}


def _profiled_session(ort, model_bytes: bytes, providers: list, tmpdir: str):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tmpdir, "flowcore_doctor")
    return inference_session(model_bytes, options=so, providers=providers)


def _read_profile(sess) -> dict[str, Any]:
    """End the profiler, count the nodes of the trace per provider, delete the file it wrote."""
    path = sess.end_profiling()
    try:
        with open(path, encoding="utf-8") as fh:
            events = json.load(fh)
    finally:
        os.remove(path)  # only the one file this session's profiler wrote
    nodes: dict[str, str] = {}
    ops: dict[str, str] = {}
    for ev in events if isinstance(events, list) else []:
        args = ev.get("args") if isinstance(ev, dict) else None
        if ev.get("cat") != "Node" or not isinstance(args, dict) or "provider" not in args:
            continue
        name = str(ev.get("name", "")).removesuffix("_kernel_time")
        nodes[name] = str(args["provider"])
        ops[name] = str(args.get("op_name", ""))
    per_provider: dict[str, int] = {}
    for prov in nodes.values():
        per_provider[prov] = per_provider.get(prov, 0) + 1
    memcpy = sum(1 for op in ops.values() if op.startswith("Memcpy"))
    return {"nodes": len(nodes), "per_provider": dict(sorted(per_provider.items())), "memcpy_nodes": memcpy}


def placement(ort, model, *, feeds: dict[str, np.ndarray], providers: list) -> dict[str, Any]:
    """Run ``model`` once with profiling on; which provider ran each node.

    Parameters
    ----------
    ort : module
        ``onnxruntime``.
    model : onnx.ModelProto
        The graph.
    feeds : dict of str to ndarray
        One input batch.
    providers : list
        Providers, in order of preference, as for ``onnxruntime.InferenceSession``.

    Returns
    -------
    dict
        ``providers`` (the session's ``get_providers()``), ``nodes`` (nodes executed),
        ``per_provider`` (provider name -> node count), ``memcpy_nodes`` (Memcpy* nodes: each
        disables CUDA graphs), ``outputs`` (list of ndarray; dropped before the report is
        returned by the doctor), ``error`` (first line, or None).
    """
    with tempfile.TemporaryDirectory(prefix="flowcore_doctor_") as tmpdir:
        try:
            sess = _profiled_session(ort, model.SerializeToString(), providers, tmpdir)
            outputs = sess.run(None, feeds)
            found = _read_profile(sess)
        except Exception as exc:  # a provider that cannot load its libraries fails here: the finding
            return {"providers": [], "nodes": 0, "per_provider": {}, "memcpy_nodes": 0, "outputs": None,
                    "error": _first_line(exc)}
        return {"providers": list(sess.get_providers()), **found, "outputs": outputs, "error": None}


def probe_provider(ort, provider: str, *, rtol: float = 1e-5) -> dict[str, Any]:
    """Run the tiny graph with ``[provider]`` (+ CPU as fallback) and check it against NumPy.

    Returns
    -------
    dict
        ``provider``, ``providers`` (what the session uses), ``per_provider`` / ``nodes`` (node
        placement), ``max_rel_error`` (vs :func:`tiny_expected`), ``numeric_ok`` (within
        ``rtol``; CUDA runs with ``use_tf32`` "0": ORT's CUDA EP enables TF32 by default),
        ``ran_on_provider`` (``get_providers()`` starts with ``provider`` AND every node ran
        there), ``error``.
    """
    # CUDA: TF32 off (ORT's CUDA EP enables it by default; it rounds MatMul inputs to 10 mantissa
    # bits, ~1e-3 relative), so the numeric check can hold the float32 tolerance.
    providers = [provider] if provider == CPU else [(provider, {"use_tf32": "0"}), CPU]
    x = tiny_input()
    found = placement(ort, tiny_model(), feeds={TINY_IN: x}, providers=providers)
    outputs = found.pop("outputs")
    err = None if outputs is None else _max_rel_error(outputs[0], x)
    on = (bool(found["providers"]) and found["providers"][0] == provider and found["nodes"] >= 1
          and found["per_provider"].get(provider, 0) == found["nodes"])
    return {"provider": provider, **found, "max_rel_error": err,
            "numeric_ok": err is not None and err <= rtol, "ran_on_provider": bool(on)}


def run_bound(sess, *, device: str, runs: int = 3) -> dict[str, Any]:
    """``runs`` IOBinding runs of the tiny graph with OrtValues on ``device``, the input updated in place.

    Each run after the first reads a changed input through the same bound buffers, as a captured
    CUDA graph replays them (ORT's CUDA EP runs once normally, captures on the second run and
    replays from the third): every output is checked against NumPy.

    Parameters
    ----------
    sess : onnxruntime.InferenceSession
        A session of :func:`tiny_model`.
    device : {"cpu", "cuda"}
        Where the bound OrtValues live.
    runs : int, default 3
        Runs, each with input ``tiny_input(0.25 * i)``.

    Returns
    -------
    dict
        ``runs`` (how many ran), ``max_rel_error`` (worst of them), ``error`` (None).
    """
    import onnxruntime as ort  # lazy: optional extra onnxruntime (flowcore[cpu] / flowcore[gpu])

    xs = [tiny_input(0.25 * i) for i in range(runs)]
    xv = ort.OrtValue.ortvalue_from_numpy(xs[0], device, 0)
    yv = ort.OrtValue.ortvalue_from_shape_and_type((_TINY_SHAPE[0], 4), np.float32, device, 0)
    io = sess.io_binding()
    io.bind_ortvalue_input(TINY_IN, xv)
    io.bind_ortvalue_output(TINY_OUT, yv)
    worst, done = 0.0, 0
    for x in xs:
        if done:
            xv.update_inplace(x)
        sess.run_with_iobinding(io)
        worst = max(worst, _max_rel_error(yv.numpy(), x))
        done += 1
    return {"runs": done, "max_rel_error": worst, "error": None}


def probe_cuda_graph(ort, *, rtol: float = 1e-5) -> dict[str, Any]:
    """Capture and replay a CUDA graph of the tiny graph (``enable_cuda_graph`` = "1", IOBinding on cuda).

    Returns
    -------
    dict
        ``tried`` (False without a CUDA provider, with ``reason``), ``captured`` (the three bound
        runs, plain / capture / replay, ran and matched NumPy within ``rtol``), ``max_rel_error``,
        ``error`` (first line).
    """
    if CUDA not in ort.get_available_providers():
        return {"tried": False, "captured": False, "reason": "no CUDA provider", "error": None}
    providers = [(CUDA, {"enable_cuda_graph": "1", "use_tf32": "0"}), CPU]  # CUDA-only: untested without a GPU
    so = ort.SessionOptions()  # CUDA-only: untested without a GPU
    so.log_severity_level = 3  # CUDA-only: untested without a GPU
    try:  # CUDA-only: untested without a GPU
        sess = inference_session(tiny_model().SerializeToString(), options=so,  # CUDA-only: untested without a GPU
                                 providers=providers)  # CUDA-only: untested without a GPU
        found = run_bound(sess, device="cuda")  # CUDA-only: untested without a GPU
    except Exception as exc:  # CUDA-only: untested without a GPU
        return {"tried": True, "captured": False, "max_rel_error": None, "error": _first_line(exc)}  # CUDA-only: untested without a GPU
    ok = found["runs"] == 3 and found["max_rel_error"] <= rtol  # CUDA-only: untested without a GPU
    return {"tried": True, "captured": bool(ok), "max_rel_error": found["max_rel_error"],  # CUDA-only: untested without a GPU
            "error": None if ok else "replay output differs from NumPy"}  # CUDA-only: untested without a GPU
