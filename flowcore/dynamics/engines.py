"""Trajectory engines: how :func:`flowcore.dynamics.trajectories.iterate` drives ONNX Runtime.

Every engine runs the same algorithm (per-row stopping, compaction, refill from the chunk's
starts) and gives the same final states, step counts, statuses and last squared steps, row for
row; they differ only in how many ONNX Runtime calls a step costs and where the latents live:

``python``
    One ``session.run`` of the fused map per step (:mod:`flowcore.dynamics._pass`). Records paths
    (``record_every``) and streaming features; works with any object that has ``step(z)``.
``iobinding``
    Latents stay in two device buffers used in turn; only two floats per row cross to the host
    per step; compaction on the device (:mod:`flowcore.runtime.binding`,
    :mod:`flowcore.dynamics._binding_pass`). Optional CUDA graphs (``cuda_graph=True``).
``auto``
    ``python`` when paths or features are asked for or the map is not an ONNX Runtime map;
    otherwise ``iobinding`` on the CUDA execution provider and ``AUTO_CPU`` on the CPU one
    (chosen from the benchmark, docs/benchmarks.md, "Engines").

A ``segment`` engine (an ONNX ``Loop`` of up to K steps per call) existed in 0.1.0: no rule picked
it reliably in the benchmark (0.75–1.18× the python engine's time on the CPU) and it lost on the
small model, so it was removed; ``engine="segment"`` is refused with a line saying so
(:data:`flowcore.dynamics.iterate_options.REMOVED_ENGINES`).

For developers: to add an engine, write a ``run_*(lmap, z0, out, cfg, bar, **options)`` pass that
fills ``out`` as :func:`flowcore.dynamics._pass.run_pass` does, add its name to ``ENGINES`` and its
branch to :func:`run_engine`, and add it to the engine-equality tests (tests/test_engines.py).
"""

from __future__ import annotations

from typing import Any

from flowcore.dynamics._binding_pass import run_bound
from flowcore.dynamics._pass import run_pass
from flowcore.dynamics.iterate_options import REMOVED_ENGINES
from flowcore.errors import ParameterError

__all__ = ["ENGINES", "AUTO_CPU", "resolve_engine", "run_engine"]

ENGINES = ("python", "iobinding")

#: The engine ``auto`` picks on the CPU execution provider (from ``make bench``; see docs/benchmarks.md).
AUTO_CPU = "python"

_CUDA = "CUDAExecutionProvider"


def _is_onnx_map(lmap) -> bool:
    return callable(getattr(lmap, "fused_session", None)) and callable(getattr(lmap, "helper_session", None))


def resolve_engine(engine: str, lmap, *, record_every: int, features: bool, cuda_graph: bool = False) -> str:
    """The engine that will run: ``engine`` checked against the map and the options, or ``auto``'s pick.

    Raises
    ------
    ParameterError
        Unknown or removed engine; an engine that cannot record paths or features asked to;
        ``iobinding`` on a map that is not an ONNX Runtime :class:`~flowcore.runtime.LatentMap`;
        ``cuda_graph`` without the ``iobinding`` engine.
    """
    if isinstance(engine, str) and engine.lower() in REMOVED_ENGINES:
        raise ParameterError(REMOVED_ENGINES[engine.lower()])
    if not isinstance(engine, str) or engine.lower() not in (*ENGINES, "auto"):
        raise ParameterError(f"engine must be one of {', '.join((*ENGINES, 'auto'))}; got {engine!r}")
    name = engine.lower()
    if name == "auto":
        if cuda_graph:
            return "iobinding"
        if record_every or features or not _is_onnx_map(lmap):
            return "python"
        providers = getattr(lmap, "providers", None) or []
        return "iobinding" if providers and providers[0] == _CUDA else AUTO_CPU
    if cuda_graph and name != "iobinding":
        raise ParameterError(f"cuda_graph needs engine 'iobinding', not {name!r}")
    if name != "python":
        if record_every or features:
            what = "paths (record_every)" if record_every else "streaming features"
            raise ParameterError(f"engine {name!r} does not record {what}; use engine 'python' (or 'auto')")
        if not _is_onnx_map(lmap):
            raise ParameterError(f"engine {name!r} needs an ONNX Runtime LatentMap; {type(lmap).__name__} "
                                 "has only step(z): use engine 'python'")
    return name


def run_engine(name: str, lmap, z0, out, cfg, recorder, bar, *, cuda_graph: bool = False) -> tuple[Any, dict[str, Any]]:
    """Run one pass with engine ``name``; returns (recorded path or None, engine details for the settings)."""
    if name == "python":
        return run_pass(lmap, z0, out, cfg, recorder, bar), {}
    return None, run_bound(lmap, z0, out, cfg, bar, cuda_graph=cuda_graph)
