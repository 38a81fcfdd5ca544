"""OOD scoring on a Ray cluster: :func:`score_ray`.

Each actor loads the detector folder once (:meth:`~flowcore.analysis.ood.detector.OODDetector.load`,
checksums and bundle hash verified, its ONNX Runtime session built) and scores whole chunks of
``chunk_rows(batch_size)`` inputs, so its encode and decode batches are the rows one process
batches. One process scores all N inputs in one trajectory pass (rows refill the batch across the
whole set); a row's score therefore equals one process's bit for bit when a row's ``f`` does not
depend on which rows share its batch, which holds for the ONNX Runtime CPU kernels of the
shipped models (``tests/test_distributed.py`` checks bitwise equality on the demo detector).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Sequence

import numpy as np

from flowcore.analysis.ood.detector import OODDetector
from flowcore.distributed._pack import pack, unpack
from flowcore.distributed._ray import require_ray
from flowcore.distributed.pipeline import (CUDA, ActorBase, RayOptions, result_rows, run_chunks,
                                           worker_report)
from flowcore.distributed.trajectories import summarize_workers
from flowcore.dynamics.checkpointing import chunk_bounds, chunk_rows
from flowcore.errors import BackendError

__all__ = ["score_ray"]


class ScoreWorker(ActorBase):
    """A Ray actor holding one loaded detector; scores one chunk of inputs per call."""

    def setup(self, path: str, providers: Any, threads: int, need_cuda: bool, methods: list[str],
              all_methods: bool) -> None:
        self.det = OODDetector.load(path, providers=providers, intra_op_num_threads=threads)
        self.det.progress = False
        self.providers = list(self.det._lmap().providers)
        if need_cuda and CUDA not in self.providers:
            raise BackendError(f"a Ray actor asked for CUDA but its ONNX Runtime session runs on {self.providers}; "
                               "install flowcore[gpu] there")
        self.methods, self.all_methods = methods, all_methods

    def run(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        chunks, blobs, reports = [], [], []
        for chunk, blob in zip(batch["chunk"], batch["x"]):
            x = unpack(blob)["x"]
            if self.all_methods:
                scores = self.det.score_all(x)
            else:
                scores = {m: self.det.decision_function(x, method=m) for m in self.methods}
            chunks.append(int(chunk))
            blobs.append(pack(scores))
            reports.append(json.dumps(worker_report(self.providers)))
        return result_rows(chunks, blobs, reports)


def score_ray(path: str | os.PathLike, X: Any, *, method: str | None = None, all_methods: bool = False,
              providers: str | Sequence[str] = "auto", ray_options: RayOptions | None = None,
              detector: OODDetector | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Score ``X`` with the detector folder ``path`` on a pool of Ray actors.

    Needs a connected cluster (:func:`flowcore.distributed.connect_ray`); every node must reach ``path``.

    Parameters
    ----------
    path : path-like
        Detector folder written by ``OODDetector.save`` / ``flowcore ood fit``.
    X : array-like of shape (N, *input_shape) or (N, prod(input_shape)), float32
        Inputs; shape and finiteness are checked on the driver.
    method : str, optional
        The method scored (default: the detector's default).
    all_methods : bool, default False
        Every fitted method (``score_all``), sharing one trajectory pass per chunk.
    providers : str or list, default "auto"
        Execution providers of the actors' sessions (and of the driver's, which only checks inputs).
    ray_options : RayOptions, optional
    detector : OODDetector, optional
        The same folder already loaded on the driver (saves loading it again).

    Returns
    -------
    scores : dict of str to ndarray of shape (N,), float64
        Per method, **higher = more OOD**, in row order.
    info : dict
        Chunks, chunk size, actors (providers, chunks, peak RSS in MiB), wall time.
    """
    ray = require_ray()
    rays = ray_options if ray_options is not None else RayOptions()
    det = detector if detector is not None else OODDetector.load(path, providers=providers)
    lmap = det._lmap()
    x = lmap.check_inputs(X, "data")
    chosen = det._method(method)
    methods = list(det.methods) if all_methods else [chosen]
    size = chunk_rows(det.batch_size)  # whole encode/decode batches of one process
    bounds = chunk_bounds(len(x), size)
    gpu = rays.gpu if rays.gpu is not None else CUDA in list(lmap.providers)
    scores = {m: np.empty(len(x), np.float64) for m in methods}
    reports: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    items = [{"chunk": i, "x": pack({"x": x[lo:hi]})} for i, (lo, hi) in enumerate(bounds)]
    ctor = dict(path=str(path), providers=list(lmap.providers), threads=rays.threads, need_cuda=gpu,
                methods=methods, all_methods=all_methods)
    done = 0
    for row in run_chunks(ScoreWorker, ctor, items, options=rays, gpu=gpu):
        lo, hi = bounds[int(row["chunk"])]
        got = unpack(row["arrays"])
        for m in methods:
            scores[m][lo:hi] = got[m]
        reports.append(json.loads(row["worker"]))
        done += 1
    if done != len(bounds):
        raise BackendError(f"the Ray pipeline returned {done} of {len(bounds)} chunks")
    res = ray.cluster_resources()
    info = {"chunks": len(bounds), "chunk_size": size, "threads_per_actor": rays.threads, "gpu_per_actor": bool(gpu),
            "cluster_cpus": int(res.get("CPU", 0)), "ray": ray.__version__,
            "wall_s": round(time.perf_counter() - t0, 3), "actors": summarize_workers(reports)}
    return scores, info
