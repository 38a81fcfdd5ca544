"""One Ray Data pipeline for every distributed run: chunks in, one actor pool, chunks out.

A run is cut into fixed chunks of rows (``[lo, hi)``, the chunks one process uses too), each one
row of a Ray dataset with its arrays packed (:mod:`flowcore.distributed._pack`) and its chunk id,
one block per chunk so every actor gets work. ``map_batches`` sends each chunk, whole and alone
(``batch_size=1``), to a pool of callable-class actors; each actor builds its ONNX Runtime
sessions once, in its constructor. Output order is not kept: each result row names its chunk,
and the driver puts it in place. A result row also reports the actor (pid, host), the providers
its session really uses and its peak resident memory (``ru_maxrss``).

:class:`RayOptions` says how many actors, threads per actor and GPUs: one GPU per actor only
when the run is on CUDA (``num_gpus=1``); a CPU run asks for none (``num_gpus=None``: some Ray
versions count ``0`` as a GPU request).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

import flowcore.errors as flowcore_errors
from flowcore.distributed._ray import actor_pool, cluster_cpus, require_ray
from flowcore.errors import BackendError, FlowcoreError, ParameterError

__all__ = ["RayOptions", "ActorBase", "run_chunks", "worker_report", "result_rows", "error_row", "CUDA"]

CUDA = "CUDAExecutionProvider"


@dataclass(frozen=True)
class RayOptions:
    """How a distributed run uses the cluster (never what it computes).

    Parameters
    ----------
    actors : int, optional
        Actors in the pool, each holding its own ONNX Runtime sessions. Default: the cluster's
        CPUs // ``threads`` (GPUs on a CUDA run), capped by the number of chunks.
    threads : int, default 1
        ONNX Runtime intra-op threads per actor (and the CPUs each actor reserves).
    gpu : bool, optional
        One GPU per actor. Default: when the driver's map runs on the CUDA execution provider.
        An actor whose session then does not list ``CUDAExecutionProvider`` fails the run
        (ONNX Runtime falls back to the CPU silently).

    Raises
    ------
    ParameterError
        ``actors`` or ``threads`` below 1.
    """

    actors: int | None = None
    threads: int = 1
    gpu: bool | None = None

    def __post_init__(self) -> None:
        if self.actors is not None and (not isinstance(self.actors, int) or self.actors < 1):
            raise ParameterError(f"RayOptions: actors must be an int >= 1, got {self.actors!r}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ParameterError(f"RayOptions: threads must be an int >= 1, got {self.threads!r}")

    def pool_size(self, n_chunks: int, gpu: bool) -> int:
        """Actors for ``n_chunks`` chunks: as asked, else what the cluster holds; never more than the chunks."""
        if self.actors is not None:
            want = self.actors
        elif gpu:
            want = max(1, int(require_ray().cluster_resources().get("GPU", 1)))
        else:
            want = max(1, cluster_cpus() // self.threads)
        return max(1, min(want, n_chunks))


def worker_report(providers: Sequence[str]) -> dict[str, Any]:
    """What a result row says about its actor: pid, host, providers, peak RSS in MiB (``ru_maxrss``)."""
    import resource  # lazy: import cost; only an actor reports
    import socket

    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"pid": os.getpid(), "host": socket.gethostname(), "providers": ",".join(providers),
            "peak_rss_mib": rss_kib / 1024.0}


def result_rows(chunks: list[int], blobs: list[bytes], reports: list[str]) -> dict[str, np.ndarray]:
    """The result batch every actor returns: ``chunk`` (int64), ``arrays`` (packed bytes), ``worker`` (JSON), ``error`` ("")."""
    return {"chunk": np.asarray(chunks, np.int64), "arrays": np.asarray(blobs, dtype=object),
            "worker": np.asarray(reports, dtype=object), "error": np.asarray([""] * len(chunks), dtype=object)}


def error_row(exc: FlowcoreError) -> dict[str, np.ndarray]:
    """A result row that carries a flowcore error raised in an actor (Ray would wrap it beyond recognition)."""
    row = result_rows([-1], [b""], [""])
    row["error"] = np.asarray([json.dumps({"type": type(exc).__name__, "message": str(exc)})], dtype=object)
    return row


def _raise_error_row(row: dict[str, Any]) -> None:
    """Re-raise the flowcore error of an :func:`error_row` on the driver: its class by name, from flowcore.errors only."""
    err = json.loads(row["error"])
    cls = getattr(flowcore_errors, err["type"], None)
    if not (isinstance(cls, type) and issubclass(cls, FlowcoreError)):
        cls = BackendError
    raise cls(err["message"])


class ActorBase:
    """Base of the callable classes: a flowcore error in the constructor or a call travels back as a row.

    For developers: implement ``setup(**ctor)`` (build sessions) and ``run(batch) -> dict of arrays``.
    """

    def __init__(self, **ctor: Any) -> None:
        self._error: FlowcoreError | None = None
        try:
            self.setup(**ctor)
        except FlowcoreError as exc:  # e.g. a bundle this node cannot read: said on the first call
            self._error = exc

    def setup(self, **ctor: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._error is not None:
            return error_row(self._error)
        try:
            return self.run(batch)
        except FlowcoreError as exc:
            return error_row(exc)


def run_chunks(worker: type, ctor: dict[str, Any], items: list[dict[str, Any]], *, options: RayOptions,
               gpu: bool) -> Iterator[dict[str, Any]]:
    """Run ``worker`` (a callable class) over ``items`` (one dict per chunk) on a pool of actors.

    Parameters
    ----------
    worker : type
        ``worker(**ctor)`` builds an actor's state; ``worker(batch)`` maps a numpy batch of one
        item to a batch of one result row.
    items : list of dict
        One per chunk: ``chunk`` (int) plus packed arrays (``bytes``).
    options : RayOptions
    gpu : bool
        One GPU per actor.

    Yields
    ------
    dict
        One result row per chunk, in completion order (not chunk order).

    Raises
    ------
    BackendError
        An actor or the pipeline failed (a flowcore error raised in an actor is re-raised as it is),
        or ``gpu`` on a cluster without a GPU.
    """
    if not items:
        return
    ray = require_ray()
    if gpu and int(ray.cluster_resources().get("GPU", 0)) < 1:  # Ray would wait for a GPU forever
        raise BackendError("the run is on CUDA (one GPU per Ray actor) but the Ray cluster has no GPU; "
                           "add GPU nodes, or run with --device cpu")
    ds = ray.data.from_items(items, override_num_blocks=len(items))  # one block per chunk: work for every actor
    mapped = ds.map_batches(worker, batch_size=1, batch_format="numpy", fn_constructor_kwargs=ctor,
                            num_cpus=options.threads, num_gpus=1 if gpu else None,
                            **actor_pool(options.pool_size(len(items), gpu)))
    rows = iter(mapped.iter_rows())
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # Ray wraps what failed in an actor beyond a flowcore error
            text = str(exc).strip()
            first = text.splitlines()[0] if text else ""
            raise BackendError(f"the Ray pipeline failed: {type(exc).__name__}: {first}") from None
        if row.get("error"):
            _raise_error_row(row)
        yield row
