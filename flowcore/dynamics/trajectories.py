"""Batched latent trajectories with per-sample stopping, compaction and streaming refill.

``iterate(lmap, z0)`` runs ``z_{t+1} = f(z_t)`` for every start. Rows leave the active batch
the moment they stop (compaction) and fresh starts take their places (refill), so at most
``batch_size`` rows are ever in flight and memory stays bounded for any N. Starts may be a lazy
:class:`~flowcore.dynamics.sources.StartSource` (seeded noise drawn per chunk, memory-mapped
``.npy`` files), read chunk by chunk; the N-row results are checked against the available memory
before anything is allocated (:mod:`flowcore.dynamics.memory`). How the work is driven is one
:class:`~flowcore.dynamics.iterate_options.IterateOptions`: the engine, and with ``chunk_size`` each
chunk of starts is its own pass (refilled only from itself), and with a ``checkpoint`` each
completed chunk is written and read back by a resumed run (:mod:`flowcore.dynamics.checkpointing`).

Stopping rule (paper, App. D): a row stops after the first application of f whose step is
small, ``‖z_t − z_{t−1}‖² < tol`` (since ``z_t = f(z_{t−1})`` this is the paper's
``‖f(z_{t}) − f(z_{t−1})‖² < tol`` with the index shifted by one), or when t reaches
``max_steps``. ``steps`` counts applications of f; ``final`` is ``z_t`` at the stop.
A row whose step or norm is NaN/Inf, or whose norm passes ``norm_limit``, is ``diverged``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowcore.dynamics._pass import PassSettings, join_paths, restore_chunk
from flowcore.dynamics.checkpointing import chunk_bounds
from flowcore.dynamics.engines import resolve_engine, run_engine
from flowcore.dynamics.iterate_options import IterateOptions, options_from_keywords
from flowcore.errors import DataError, ParameterError
from flowcore.results import Array, Result
from flowcore.dynamics.features import FeatureRecorder
from flowcore.dynamics.memory import check_result_memory
from flowcore.dynamics.sources import ArrayStarts, as_start_source

__all__ = ["Trajectories", "iterate", "CONVERGED", "MAX_STEPS", "DIVERGED", "STATUS_NAMES", "STOP_RULES"]

CONVERGED, MAX_STEPS, DIVERGED = 0, 1, 2
STATUS_NAMES = ("converged", "max_steps", "diverged")

#: The paper's stopping rules (App. D) by name, as keywords of :func:`iterate`:
#: ``iterate(lmap, z0, **STOP_RULES["foundation"])``. ``small``: small autoencoders (Figs 2, 3, 14;
#: flowcore's defaults); ``foundation``: Stable Diffusion's AE and ViT-MAE (§4.1, §4.2). The CLI's
#: ``--preset`` reads this table.
STOP_RULES: dict[str, dict[str, float | int]] = {
    "small": {"tol": 1e-6, "max_steps": 3000},
    "foundation": {"tol": 1e-5, "max_steps": 500},
}


@dataclass(frozen=True)
class Trajectories(Result):
    """Result of :func:`iterate`.

    Attributes
    ----------
    final : ndarray of shape (N, *latent_shape), float32
        Where each row stopped.
    steps : ndarray of shape (N,), int32
        Applications of f until the stop.
    status : ndarray of shape (N,), int8
        0 converged, 1 max_steps, 2 diverged (see ``STATUS_NAMES``).
    last_step_sq : ndarray of shape (N,), float32
        ``‖z_T − z_{T−1}‖²`` at the stop.
    path : ndarray of shape (N, L, *latent_shape), float32, or None
        Recorded states at steps 0, s, 2s, … and the final step, NaN-padded (``record_every=s``).
    path_steps : ndarray of shape (N, L), int32, or None
        The step of each recorded state, −1 in padding.
    starts : ndarray of shape (N, *latent_shape), float32, or None
        The starts z_0.
    features : dict of str to ndarray of shape (N,), float64, or None
        Streaming trajectory features (see :mod:`flowcore.dynamics.features`) when asked for.
    settings : dict
        tol, max_steps, norm_limit, batch_size, record_every, n_starts, providers, …

    Saved as ``trajectories.npz`` + ``trajectories.json`` (:class:`flowcore.results.Result`).
    """

    final: np.ndarray
    steps: np.ndarray
    status: np.ndarray
    last_step_sq: np.ndarray
    settings: dict[str, Any]
    path: np.ndarray | None = field(default=None, repr=False)
    path_steps: np.ndarray | None = field(default=None, repr=False)
    starts: np.ndarray | None = field(default=None, repr=False)
    features: dict[str, np.ndarray] | None = field(default=None, repr=False)

    kind: ClassVar[str] = "trajectories"
    schema: ClassVar[dict[str, Array]] = {
        "final": Array("f", min_ndim=2, dims=("n",)),
        "steps": Array("iu", 1, dims=("n",)),
        "status": Array("iu", 1, dims=("n",)),
        "last_step_sq": Array("f", 1, dims=("n",)),
        "path": Array("f", min_ndim=3, dims=("n", "recorded"), optional=True),
        "path_steps": Array("iu", 2, dims=("n", "recorded"), optional=True),
        "starts": Array("f", min_ndim=2, dims=("n",), optional=True),
        "feature_*": Array("f", 1, dims=("n",)),
    }

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def converged(self) -> np.ndarray:
        """ndarray of shape (N,), bool: rows that met the stopping rule."""
        return self.status == CONVERGED

    @property
    def flat_final(self) -> np.ndarray:
        """``final`` flattened to (N, k), float32."""
        return self.final.reshape(len(self.final), int(np.prod(self.final.shape[1:], dtype=np.int64)))

    def counts(self) -> dict[str, int]:
        """How many rows ended converged / max_steps / diverged."""
        return {name: int(np.sum(self.status == code)) for code, name in enumerate(STATUS_NAMES)}

    def summary(self) -> dict[str, Any]:
        """Counts, step statistics and the settings that produced them (plain JSON)."""
        conv = self.steps[self.converged]
        return {
            "n_starts": len(self),
            **self.counts(),
            "median_steps_converged": float(np.median(conv)) if len(conv) else None,
            "median_steps_all": float(np.median(self.steps)) if len(self) else None,
            "max_steps_seen": int(self.steps.max()) if len(self) else None,
            "settings": dict(self.settings),
        }

    def to_json(self) -> dict[str, Any]:
        return self.summary()

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = dict(final=self.final, steps=self.steps, status=self.status, last_step_sq=self.last_step_sq)
        if self.path is not None:
            arrays.update(path=self.path, path_steps=self.path_steps)
        if self.starts is not None:
            arrays["starts"] = self.starts
        for name, values in (self.features or {}).items():
            arrays[f"feature_{name}"] = values
        return arrays

    @classmethod
    def _from_files(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], folder: Path) -> "Trajectories":
        if ("path" in arrays) != ("path_steps" in arrays):
            raise DataError(f"{folder / 'trajectories.npz'}: field 'path' and 'path_steps' come together")
        return cls(final=arrays["final"], steps=arrays["steps"], status=arrays["status"],
                   last_step_sq=arrays["last_step_sq"], settings=meta.get("settings", {}),
                   path=arrays.get("path"), path_steps=arrays.get("path_steps"), starts=arrays.get("starts"),
                   features={k[8:]: v for k, v in arrays.items() if k.startswith("feature_")} or None)


def _progress(total: int, enabled: bool | None):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm  # lazy: import cost (tqdm.auto ~0.09 s); only progress bars need it
    except ImportError:
        return None
    return tqdm(total=total, unit="traj", file=sys.stderr, leave=False, desc="trajectories", delay=1.0)


def iterate(
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
    progress: bool | None = None,
    options: IterateOptions | None = None,
    **deprecated: Any,
) -> Trajectories:
    """Iterate the latent map from every start until each row stops.

    Parameters
    ----------
    lmap : LatentMap
        Anything with ``check_latents(z)`` and ``step(z) -> (z_next, step_sq, norm_sq)``.
    z0 : array-like of shape (N, *latent_shape) or (N, k), or a StartSource
        Starts (float32 after conversion), or a lazy source read chunk by chunk
        (:mod:`flowcore.dynamics.sources`: seeded noise, memory-mapped ``.npy`` files).
    tol : float, default 1e-6
        Stop a row when ``‖z_t − z_{t−1}‖² < tol`` (squared L2, as in the paper).
    max_steps : int, default 3000
        Most applications of f per row; a row still moving then ends ``max_steps``.
    batch_size : int, default 4096
        Rows in flight at once. Finished rows leave and fresh starts refill the batch, so peak
        memory is O(batch_size · k) beyond the N-row results, whatever N is. A
        :class:`~flowcore.runtime.latent_map.LatentMap` lowers it to its :meth:`max_rows` (the rows
        whose activations fit its ``activation_budget``; e.g. 34 for TAEF2 at 256²):
        ``settings["batch_size"]`` is the number used, ``settings["batch_size_asked"]`` the one given.
    norm_limit : float, default 1e8
        A row whose ``‖z_t‖`` exceeds this (or becomes NaN/Inf) ends ``diverged``.
    record_every : int, optional
        Record ``z`` at steps 0, s, 2s, … and at the stop (memory N · L · k floats).
    features : bool, default False
        Compute the streaming trajectory features of :mod:`flowcore.dynamics.features` while iterating.
    reference : array-like of shape (M, k), optional
        Reference attractors; adds the distance-to-nearest-attractor features (implies features).
    progress : bool, optional
        Progress bar on stderr; default: only when stderr is a TTY.
    options : IterateOptions, optional
        How the work is driven, never what it gives: ``engine``, ``chunk_size``, ``checkpoint``,
        ``cuda_graph`` (:class:`~flowcore.dynamics.iterate_options.IterateOptions`; default
        ``IterateOptions()``: engine ``auto``, one pass). ``settings["engine"]`` names the engine
        that ran.
    **deprecated
        ``engine``, ``chunk_size``, ``checkpoint``, ``cuda_graph`` (and ``segment_steps``, now
        without effect) as keywords still work for one release with a
        :class:`~flowcore.errors.FlowcoreDeprecationWarning`; pass them in ``options``.

    Returns
    -------
    Trajectories
        Per-row final state, steps, status, and the settings used.

    Raises
    ------
    ParameterError
        A setting out of range (``options`` included), or N rows whose results cannot fit in the
        available memory (:func:`flowcore.dynamics.memory.check_result_memory`, checked before allocating).
    DataError
        Starts of the wrong shape, or containing NaN or Inf.

    Examples
    --------
    >>> lmap = LatentMap("bundle/", providers="cpu")                                # doctest: +SKIP
    >>> tr = iterate(lmap, z0, tol=1e-6, options=IterateOptions(engine="python"))  # doctest: +SKIP
    """
    opts = options_from_keywords(options, deprecated) if deprecated or options is not None else IterateOptions()
    engine, chunk_size, checkpoint, cuda_graph = opts.engine, opts.chunk_size, opts.checkpoint, opts.cuda_graph
    if not (tol > 0):
        raise ParameterError(f"tol must be > 0, got {tol}")
    if int(max_steps) < 1:
        raise ParameterError(f"max_steps must be >= 1, got {max_steps}")
    if int(batch_size) < 1:
        raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
    if not (norm_limit > 0):
        raise ParameterError(f"norm_limit must be > 0, got {norm_limit}")
    if record_every is not None and int(record_every) < 1:
        raise ParameterError(f"record_every must be >= 1, got {record_every}")
    source = as_start_source(lmap, z0)
    given = source.array if isinstance(source, ArrayStarts) else None
    n = len(source)
    shape = tuple(source.latent_shape)
    every = int(record_every) if record_every else 0
    with_features = bool(features) or reference is not None
    engine_name = resolve_engine(engine, lmap, record_every=every, features=with_features, cuda_graph=cuda_graph)
    engine_info: dict[str, Any] = {}
    check_result_memory(n, shape, keep_starts=given is None, record_every=every or None, features=with_features,
                        reference=reference is not None)
    max_steps, batch_size = int(max_steps), int(batch_size)
    asked = batch_size
    in_flight = getattr(lmap, "rows_in_flight", None)  # a LatentMap caps rows by activation memory
    if in_flight is not None:
        batch_size = in_flight(batch_size)
    cfg = PassSettings(np.float32(tol), np.float32(min(float(norm_limit) ** 2, np.finfo(np.float32).max)),
                        max_steps, batch_size, every)
    if with_features:
        FeatureRecorder(0, reference)  # checks the reference before any work
    final = np.empty((n, *shape), np.float32)
    steps = np.zeros(n, np.int32)
    status = np.zeros(n, np.int8)
    last_sq = np.zeros(n, np.float32)
    starts = given if given is not None else np.empty((n, *shape), np.float32)
    feats: dict[str, np.ndarray] | None = None
    paths: list[tuple[np.ndarray, np.ndarray]] = []
    size = n if chunk_size is None else int(chunk_size)
    bounds = chunk_bounds(n, size) or [(0, 0)]
    bar = _progress(n, progress)
    try:
        for index, (lo, hi) in enumerate(bounds):
            out = dict(final=final[lo:hi], steps=steps[lo:hi], status=status[lo:hi], last_step_sq=last_sq[lo:hi],
                       starts=starts[lo:hi])
            done = checkpoint.load(index, hi - lo) if checkpoint is not None else None
            if done is not None and not restore_chunk(done, out, every):
                done = None
            if done is None:
                rows = source.rows(lo, hi) if given is None else given[lo:hi]
                if given is None:
                    out["starts"][...] = rows
                recorder = FeatureRecorder(hi - lo, reference) if with_features else None
                path_c, engine_info = run_engine(engine_name, lmap, rows, out, cfg, recorder, bar, cuda_graph=cuda_graph)
                chunk_feats = recorder.finish(rows, out["final"], out["steps"], out["last_step_sq"]) if recorder else {}
                if checkpoint is not None:
                    extra = {} if path_c is None else {"path": path_c[0], "path_steps": path_c[1]}
                    checkpoint.save(index, {**out, **{f"feature_{k}": v for k, v in chunk_feats.items()}, **extra})
            else:
                chunk_feats = {k[8:]: v for k, v in done.items() if k.startswith("feature_")}
                path_c = (done["path"], done["path_steps"]) if every else None
                if bar is not None:
                    bar.update(hi - lo)
            if with_features and len(bounds) == 1:
                feats = chunk_feats
            elif with_features:
                feats = feats if feats is not None else {k: np.empty(n) for k in chunk_feats}
                for k, v in chunk_feats.items():
                    feats[k][lo:hi] = v
            if every:
                paths.append(path_c)
    finally:
        if bar is not None:
            bar.close()

    path = path_steps = None
    if every:
        path, path_steps = paths[0] if len(paths) == 1 else join_paths(paths, shape)
    providers = getattr(lmap, "providers", None)
    settings = {
        "n_starts": n,
        "tol": float(tol),
        "max_steps": max_steps,
        "norm_limit": float(norm_limit),
        "batch_size": batch_size,
        "record_every": every or None,
        "stop_rule": "||z_t - z_(t-1)||^2 < tol; steps = applications of f",
        "providers": list(providers) if providers is not None else None,
        "engine": engine_name,
    }
    if engine_name != "python":
        settings["engine_options"] = engine_info
    sub = getattr(lmap, "subnormals", None)
    if isinstance(sub, dict) and "fused" in sub:  # the map iterated: subnormal weights found / flushed
        settings["subnormal_weights"] = {"count": sub["fused"]["count"], "flushed": sub["fused"]["flushed"]}
    if batch_size != asked:  # lowered to fit the activation budget (LatentMap.max_rows)
        settings["batch_size_asked"] = asked
    if chunk_size is not None:
        settings["chunk_size"] = int(chunk_size)
    if with_features:
        settings["features"] = sorted(feats)
        settings["reference_size"] = None if reference is None else len(np.asarray(reference))
    return Trajectories(final=final, steps=steps, status=status, last_step_sq=last_sq, settings=settings,
                        path=path, path_steps=path_steps, starts=starts, features=feats)
