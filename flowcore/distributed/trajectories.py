"""Trajectories on a Ray cluster, equal bit for bit to one process: :func:`iterate_ray`.

One process (``iterate`` with ``chunk_size=C``, as every CLI run) iterates its starts chunk by
chunk, each chunk its own pass, refilled only from itself: a row's result depends on its chunk and
the settings, never on another chunk. ``iterate_ray`` sends each chunk whole to one actor, which
runs exactly that pass (same rows, same batches, same engine) and returns the arrays one process
would checkpoint for it; the driver stores them in a :class:`~flowcore.dynamics.checkpointing.ChunkStore`
(the run's ``--out`` partial area, so ``--resume`` works as in one process, or memory) and
assembles the result with ``iterate`` itself reading every chunk back. Endpoints, steps,
statuses, features and paths are therefore those of one process; ``settings["ray"]`` records the
cluster, the actors, their providers and peak memory.

Grouping the endpoints (:func:`~flowcore.dynamics.attractors.find_attractors`) runs on the
driver over all N × k endpoints at once: single linkage does not decompose over per-worker
leaders (two endpoints of different workers may link although neither worker's leader does),
and the relative Euclidean tolerance needs every endpoint's norm. Gathering is exact.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any, Mapping

import numpy as np

from flowcore.distributed._pack import pack, unpack
from flowcore.distributed._ray import require_ray
from flowcore.distributed.pipeline import (CUDA, ActorBase, RayOptions, result_rows, run_chunks,
                                           worker_report)
from flowcore.dynamics.checkpointing import ChunkStore, chunk_bounds, chunk_rows
from flowcore.dynamics.iterate_options import IterateOptions
from flowcore.dynamics.sources import ArrayStarts, as_start_source
from flowcore.dynamics.trajectories import Trajectories, iterate
from flowcore.errors import BackendError

__all__ = ["iterate_ray", "MemoryChunks"]


class MemoryChunks(ChunkStore):
    """A :class:`~flowcore.dynamics.checkpointing.ChunkStore` held in memory (a run without ``--out``)."""

    def __init__(self, chunk_size: int) -> None:
        super().__init__("<memory>", chunk_size)
        self._chunks: dict[int, dict[str, np.ndarray]] = {}

    def load(self, index: int, n_rows: int) -> dict[str, np.ndarray] | None:
        arrays = self._chunks.get(index)
        if arrays is None or any(a.ndim < 1 or len(a) != n_rows for a in arrays.values()):
            return None
        return arrays

    def save(self, index: int, arrays: Mapping[str, np.ndarray]):
        self._chunks[index] = {k: np.asarray(v) for k, v in arrays.items()}
        return None


class TrajectoryWorker(ActorBase):
    """A Ray actor: one :class:`~flowcore.runtime.latent_map.LatentMap`, iterating whole chunks.

    Each call gets one chunk (``starts`` packed, shape (n, *latent_shape) float32) and returns the
    arrays ``iterate`` checkpoints for it (final, steps, status, last_step_sq, starts, features,
    paths), packed, with the chunk id and the actor's report.
    """

    def setup(self, bundle: str, providers: Any, threads: int, need_cuda: bool, kwargs: dict[str, Any],
              engine: str, cuda_graph: bool, reference: bytes | None) -> None:
        from flowcore.runtime.latent_map import LatentMap

        self.lmap = LatentMap(bundle, providers=providers, intra_op_num_threads=threads)
        self.providers = list(self.lmap.providers)
        if need_cuda and CUDA not in self.providers:
            raise BackendError(f"a Ray actor on {worker_report(self.providers)['host']} asked for CUDA but its ONNX "
                               f"Runtime session runs on {self.providers}; install flowcore[gpu] there")
        self.kwargs = dict(kwargs)
        if reference is not None:
            self.kwargs["reference"] = unpack(reference)["reference"]
        self.engine, self.cuda_graph = engine, cuda_graph

    def run(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        chunks, blobs, reports = [], [], []
        for chunk, blob in zip(batch["chunk"], batch["starts"]):
            z = unpack(blob)["z"]
            store = MemoryChunks(max(len(z), 1))
            iterate(self.lmap, z, progress=False, **self.kwargs,
                    options=IterateOptions(engine=self.engine, chunk_size=max(len(z), 1), checkpoint=store,
                                           cuda_graph=self.cuda_graph))
            chunks.append(int(chunk))
            blobs.append(pack(store.load(0, len(z))))
            reports.append(json.dumps(worker_report(self.providers)))
        return result_rows(chunks, blobs, reports)


def summarize_workers(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per actor (pid, host): providers, chunks done, peak RSS in MiB."""
    actors: dict[tuple[str, int], dict[str, Any]] = {}
    for r in reports:
        a = actors.setdefault((r["host"], r["pid"]), {"host": r["host"], "pid": r["pid"], "chunks": 0,
                                                      "providers": r["providers"].split(","), "peak_rss_mib": 0.0})
        a["chunks"] += 1
        a["peak_rss_mib"] = max(a["peak_rss_mib"], round(float(r["peak_rss_mib"]), 1))
    return sorted(actors.values(), key=lambda a: (a["host"], a["pid"]))


def iterate_ray(
    lmap,
    z0: Any,
    *,
    tol: float = 1e-6,
    max_steps: int = 3000,
    batch_size: int = 4096,
    norm_limit: float = 1e8,
    record_every: int | None = None,
    features: bool = False,
    reference: Any = None,
    options: IterateOptions | None = None,
    ray_options: RayOptions | None = None,
) -> Trajectories:
    """:func:`~flowcore.dynamics.trajectories.iterate` with the chunks run by a pool of Ray actors.

    Needs a connected cluster (:func:`flowcore.distributed.connect_ray`). Every actor loads the
    bundle from ``lmap.bundle.path`` (a path each node must reach) with ``lmap``'s providers.

    Parameters
    ----------
    lmap : LatentMap
        The driver's map: start checks, the bundle path and providers for the actors.
    z0 : array-like of shape (N, *latent_shape), or a StartSource
        Starts, read chunk by chunk on the driver and shipped to the actors.
    tol, max_steps, batch_size, norm_limit, record_every, features, reference :
        As :func:`~flowcore.dynamics.trajectories.iterate`.
    options : IterateOptions, optional
        ``chunk_size`` (default ``chunk_rows(batch_size)``: the CLI's chunks), ``checkpoint``
        (completed chunks are read back and not sent again: ``--resume``), ``engine``, ``cuda_graph``.
    ray_options : RayOptions, optional
        Actors, threads per actor, GPUs.

    Returns
    -------
    Trajectories
        Arrays equal bit for bit to ``iterate(lmap, z0, ..., options=IterateOptions(chunk_size=C))``;
        ``settings["ray"]`` adds the cluster, the actors (providers, chunks, peak RSS) and the wall time.

    Raises
    ------
    RayMissingError
        Ray is not installed.
    BackendError
        An actor or the pipeline failed, or an actor's session is not on CUDA when asked to be.
    """
    ray = require_ray()
    opts = options if options is not None else IterateOptions()
    rays = ray_options if ray_options is not None else RayOptions()
    size = opts.chunk_size or chunk_rows(batch_size)
    store = opts.checkpoint if opts.checkpoint is not None else MemoryChunks(size)
    opts = replace(opts, chunk_size=size, checkpoint=store)
    kwargs = dict(tol=tol, max_steps=max_steps, batch_size=batch_size, norm_limit=norm_limit,
                  record_every=record_every, features=features)
    source = as_start_source(lmap, z0)
    given = source.array if isinstance(source, ArrayStarts) else None
    bounds = chunk_bounds(len(source), size)
    todo = [(i, lo, hi) for i, (lo, hi) in enumerate(bounds) if store.load(i, hi - lo) is None]
    gpu = rays.gpu if rays.gpu is not None else CUDA in list(getattr(lmap, "providers", []) or [])
    t0 = time.perf_counter()
    reports: list[dict[str, Any]] = []
    if todo:
        items = [{"chunk": i, "starts": pack({"z": given[lo:hi] if given is not None else source.rows(lo, hi)})}
                 for i, lo, hi in todo]
        ref = None if reference is None else pack({"reference": np.asarray(reference)})
        ctor = dict(bundle=str(lmap.bundle.path), providers=list(lmap.providers), threads=rays.threads,
                    need_cuda=gpu, kwargs=kwargs, engine=opts.engine, cuda_graph=opts.cuda_graph, reference=ref)
        for row in run_chunks(TrajectoryWorker, ctor, items, options=rays, gpu=gpu):
            store.save(int(row["chunk"]), unpack(row["arrays"]))
            reports.append(json.loads(row["worker"]))
    wall = time.perf_counter() - t0
    traj = iterate(lmap, source, reference=reference, progress=False, options=opts, **kwargs)
    res = ray.cluster_resources()
    info = {"chunks": len(bounds), "chunks_run": len(todo), "chunks_resumed": len(bounds) - len(todo),
            "chunk_size": size, "threads_per_actor": rays.threads, "gpu_per_actor": bool(gpu),
            "cluster_cpus": int(res.get("CPU", 0)), "cluster_gpus": int(res.get("GPU", 0)),
            "ray": ray.__version__, "wall_s": round(wall, 3), "actors": summarize_workers(reports)}
    return replace(traj, settings={**traj.settings, "ray": info})
