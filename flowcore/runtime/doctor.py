"""``flowcore doctor``: the ONNX Runtime build, its providers, and whether they really run a graph.

:func:`diagnose` reports versions, the ORT distribution(s) installed (``onnxruntime`` and
``onnxruntime-gpu`` together is a problem: CUDA silently disappears), the CPU model and its
AVX-512 / AMX flags, and runs a tiny real graph (``Relu(x @ W)``, x of shape (4, 8)) on the CPU
execution provider, checked against NumPy. When the build offers CUDA it runs the same graph
with ``[CUDA, CPU]`` and reports whether it REALLY ran on CUDA (``get_providers()`` first AND
every node placed there, read from ONNX Runtime's profiler), and whether a CUDA graph can be
captured and replayed. With a bundle it reports the node placement of the fused latent map.
:func:`decide` turns the findings into ``ok`` / ``problems`` / ``notes`` (a pure function).
"""

from __future__ import annotations

import os
from importlib import metadata
from typing import Any

import numpy as np

from flowcore.runtime._probes import cpu_info, placement, probe_cuda_graph, probe_provider
from flowcore.runtime.fusion import FUSED_INPUT
from flowcore.runtime.latent_map import LatentMap
from flowcore.runtime.providers import CPU, CUDA

__all__ = ["diagnose", "decide", "format_report"]

_ORT_DISTS = ("onnxruntime", "onnxruntime-gpu")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _bundle_placement(ort, path: str | os.PathLike, providers: list[str]) -> dict[str, Any]:
    """Node placement of a bundle's fused latent map: one run on a (2, *latent_shape) zero batch."""
    lmap = LatentMap(path, providers=providers)
    z = np.zeros((2, *lmap.latent_shape), dtype=np.float32)
    found = placement(ort, lmap.fused_model, feeds={FUSED_INPUT: z}, providers=providers)
    found.pop("outputs")
    return {"path": str(path), "latent_shape": list(lmap.latent_shape), **found}


def diagnose(*, bundle: str | os.PathLike | None = None) -> dict[str, Any]:
    """Probe the installed ONNX Runtime; return a plain-JSON report.

    Parameters
    ----------
    bundle : path-like, optional
        Also report the node placement of this bundle's fused latent map (providers per node,
        Memcpy nodes), on ``[CUDA, CPU]`` when CUDA is offered, else on the CPU.

    Returns
    -------
    dict
        ``flowcore``, ``numpy``, ``onnx``, ``numba`` (versions or None); ``ort_builds`` (dist ->
        version); ``ort_version``; ``providers_available``; ``cuda_available``; ``cpu`` (model,
        ``avx512f``, ``amx_tile``); ``cpu_check`` / ``cuda_check`` (the tiny graph:
        ``providers``, ``per_provider``, ``nodes``, ``max_rel_error``, ``numeric_ok``,
        ``ran_on_provider``, ``error``; ``cuda_check`` is ``{"tried": False, ...}`` without CUDA);
        ``cuda_graph`` (``tried``, ``captured``, ``error``); ``bundle`` when asked; ``problems``,
        ``notes`` (lists of str) and ``ok`` (bool) from :func:`decide`.
    """
    report: dict[str, Any] = {
        "flowcore": _version("flowcore"),
        "numpy": _version("numpy"),
        "onnx": _version("onnx"),
        "numba": _version("numba"),
    }
    builds = {d: _version(d) for d in _ORT_DISTS}
    report["ort_builds"] = {d: v for d, v in builds.items() if v}
    report["cpu"] = cpu_info()
    try:
        import onnxruntime as ort  # lazy: optional extra onnxruntime (flowcore[cpu] / flowcore[gpu]); also import cost
    except ImportError:
        report["ort_version"] = None
        return {**report, **decide(report)}
    report["ort_version"] = ort.__version__
    available = list(ort.get_available_providers())
    report["providers_available"] = available
    report["cuda_available"] = CUDA in available
    report["cpu_check"] = probe_provider(ort, CPU)
    if report["cuda_available"]:
        report["cuda_check"] = {"tried": True, **probe_provider(ort, CUDA)}  # CUDA-only: untested without a GPU
    else:
        report["cuda_check"] = {"tried": False, "reason": "no CUDA provider"}
    report["cuda_graph"] = probe_cuda_graph(ort)
    if bundle is not None:
        providers = [CUDA, CPU] if report["cuda_available"] else [CPU]
        report["bundle"] = _bundle_placement(ort, bundle, providers)
    return {**report, **decide(report)}


def decide(report: dict[str, Any]) -> dict[str, Any]:
    """Turn probe findings into ``ok``, ``problems`` and ``notes`` (pure: plain dicts in and out).

    Problems (``ok`` False, exit code 4): no ONNX Runtime; both ``onnxruntime`` and
    ``onnxruntime-gpu`` installed; the tiny graph did not run on the CPU or disagreed with NumPy;
    CUDA offered but the tiny graph did not run there (session failed, ``get_providers()`` not
    CUDA first, or a node placed elsewhere) or disagreed with NumPy. Notes (still ok): a CUDA
    graph could not be captured; a bundle's fused graph has nodes off the first provider or
    Memcpy nodes (each disables CUDA graphs).

    Parameters
    ----------
    report : dict
        As built by :func:`diagnose` (the keys it reads may be missing).

    Returns
    -------
    dict
        ``{"ok": bool, "problems": list of str, "notes": list of str}``.
    """
    problems: list[str] = []
    notes: list[str] = []
    builds = report.get("ort_builds") or {}
    if all(d in builds for d in _ORT_DISTS):
        problems.append("both onnxruntime and onnxruntime-gpu are installed: CUDA silently disappears; "
                        "pip uninstall -y onnxruntime onnxruntime-gpu, then install one extra")
    if report.get("ort_version") is None:
        problems.append("ONNX Runtime is not installed: pip install 'flowcore[cpu]' (or 'flowcore[gpu]')")
        return {"ok": False, "problems": problems, "notes": notes}
    for key, name in (("cpu_check", "CPU"), ("cuda_check", "CUDA")):
        check = report.get(key)
        if key == "cpu_check" and check is None:
            problems.append("the tiny-graph check on the CPU did not run")
            continue
        if not check or check.get("tried") is False:
            continue
        problem = _check_problem(check, name)
        if problem:
            problems.append(problem)
    graph = report.get("cuda_graph") or {}
    if graph.get("tried") and not graph.get("captured"):
        notes.append(f"a CUDA graph could not be captured: {graph.get('error')}")
    bundle = report.get("bundle")
    if bundle:
        if bundle.get("error"):
            problems.append(f"the bundle's fused graph did not run: {bundle['error']}")
        first = (bundle.get("providers") or [None])[0]
        off = {p: n for p, n in (bundle.get("per_provider") or {}).items() if p != first}
        if first and off:
            notes.append(f"the bundle's fused graph has nodes off {first}: {off}")
        if bundle.get("memcpy_nodes"):
            notes.append(f"the bundle's fused graph has {bundle['memcpy_nodes']} Memcpy nodes (they disable CUDA graphs)")
    return {"ok": not problems, "problems": problems, "notes": notes}


def _check_problem(check: dict[str, Any], name: str) -> str | None:
    provider = check.get("provider", name)
    if check.get("error"):
        return f"the tiny graph did not run with the {name} provider: {check['error']}"
    if not check.get("ran_on_provider"):
        return (f"the tiny graph did not run on {provider}: session providers {check.get('providers')}, "
                f"nodes per provider {check.get('per_provider')}")
    if not check.get("numeric_ok"):
        return (f"the tiny graph's output on {provider} differs from NumPy "
                f"(max relative error {check.get('max_rel_error')})")
    return None


def _check_text(check: dict[str, Any] | None) -> str:
    if not check:
        return "not run"
    if check.get("tried") is False:
        return f"not tried ({check.get('reason')})"
    if check.get("error"):
        return f"FAILED: {check['error']}"
    ran = "ran there" if check.get("ran_on_provider") else "did NOT run there"
    return (f"{ran}; session {check.get('providers')}; nodes {check.get('per_provider')}; "
            f"max rel error {check.get('max_rel_error'):.2e}")


def format_report(report: dict[str, Any]) -> str:
    """The report as text lines (what ``flowcore doctor`` prints without ``--json``)."""
    cpu = report.get("cpu") or {}
    graph = report.get("cuda_graph") or {}
    if graph.get("tried"):
        graph_text = "captured" if graph.get("captured") else f"NOT captured: {graph.get('error')}"
    else:
        graph_text = f"not tried ({graph.get('reason', 'no ONNX Runtime')})"
    builds = report.get("ort_builds") or {}
    lines = [
        f"flowcore           {report.get('flowcore')}",
        f"numpy / onnx / numba  {report.get('numpy')} / {report.get('onnx')} / {report.get('numba')}",
        f"onnxruntime        {report.get('ort_version')} "
        f"(dist: {', '.join(f'{d} {v}' for d, v in builds.items()) or 'none'})",
        f"providers          {report.get('providers_available')}",
        f"cpu                {cpu.get('model')}",
        f"cpu flags          avx512f={'yes' if cpu.get('avx512f') else 'no'} amx_tile={'yes' if cpu.get('amx_tile') else 'no'}"
        " (ISA flags ONNX Runtime's MLAS could dispatch to; whether this build does is not visible)",
        f"tiny graph on CPU  {_check_text(report.get('cpu_check'))}",
        f"tiny graph on CUDA {_check_text(report.get('cuda_check'))}",
        f"cuda graph         {graph_text}",
    ]
    bundle = report.get("bundle")
    if bundle:
        lines.append(f"bundle             {bundle.get('path')} (latent {tuple(bundle.get('latent_shape') or ())})")
        lines.append(f"  fused graph      {bundle.get('nodes')} nodes {bundle.get('per_provider')}; "
                     f"memcpy nodes {bundle.get('memcpy_nodes')}; session {bundle.get('providers')}"
                     + (f"; error {bundle['error']}" if bundle.get("error") else ""))
    lines += [f"problem            {p}" for p in report.get("problems") or []]
    lines += [f"note               {n}" for n in report.get("notes") or []]
    lines.append(f"ok                 {report.get('ok')}")
    return "\n".join(lines)
