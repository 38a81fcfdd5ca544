"""Batched latent trajectories with per-sample stopping, compaction and streaming refill.

``iterate(lmap, z0)`` runs ``z_{t+1} = f(z_t)`` for every start. Rows leave the active batch
the moment they stop (compaction) and fresh starts take their places (refill), so at most
``batch_size`` rows are ever in flight and memory stays bounded for any N.

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

from flowcore.dynamics._step_kernel import check_rows, retire_rows
from flowcore.errors import DataError, ParameterError
from flowcore.results import Array, Result
from flowcore.dynamics.features import FeatureRecorder

__all__ = ["Trajectories", "iterate", "CONVERGED", "MAX_STEPS", "DIVERGED", "STATUS_NAMES"]

CONVERGED, MAX_STEPS, DIVERGED = 0, 1, 2
STATUS_NAMES = ("converged", "max_steps", "diverged")


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
        return self.final.reshape(len(self.final), -1)

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
) -> Trajectories:
    """Iterate the latent map from every start until each row stops.

    Parameters
    ----------
    lmap : LatentMap
        Anything with ``check_latents(z)`` and ``step(z) -> (z_next, step_sq, norm_sq)``.
    z0 : array-like of shape (N, *latent_shape) or (N, k)
        Starts (float32 after conversion).
    tol : float, default 1e-6
        Stop a row when ``‖z_t − z_{t−1}‖² < tol`` (squared L2, as in the paper).
    max_steps : int, default 3000
        Most applications of f per row; a row still moving then ends ``max_steps``.
    batch_size : int, default 4096
        Rows in flight at once. Finished rows leave and fresh starts refill the batch, so peak
        memory is O(batch_size · k) beyond the N-row results, whatever N is.
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

    Returns
    -------
    Trajectories
        Per-row final state, steps, status, and the settings used.
    """
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
    z0 = lmap.check_latents(z0, "starts")
    if not np.all(np.isfinite(z0)):
        raise DataError("starts contain NaN or Inf")
    n = len(z0)
    shape = z0.shape[1:]
    max_steps, batch_size = int(max_steps), int(batch_size)
    limit_sq = np.float32(min(float(norm_limit) ** 2, np.finfo(np.float32).max))
    tol32 = np.float32(tol)

    final = np.empty_like(z0)
    steps = np.zeros(n, np.int32)
    status = np.zeros(n, np.int8)
    last_sq = np.zeros(n, np.float32)
    rec: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    every = int(record_every) if record_every else 0

    act_z = np.empty((0, *shape), np.float32)
    act_idx = np.empty(0, np.int64)
    act_steps = np.empty(0, np.int32)
    nxt = 0
    recorder = None
    if features or reference is not None:
        recorder = FeatureRecorder(n, reference)
    final_flat = final.reshape(n, int(np.prod(shape, dtype=np.int64)))
    done_buf = np.empty(min(batch_size, max(n, 1)), np.bool_)
    status_buf = np.empty(min(batch_size, max(n, 1)), np.int8)
    bar = _progress(n, progress)
    try:
        while True:
            if len(act_idx) < batch_size and nxt < n:
                take = min(batch_size - len(act_idx), n - nxt)
                new_idx = np.arange(nxt, nxt + take, dtype=np.int64)
                if every:
                    rec.append((new_idx, np.zeros(take, np.int32), z0[nxt : nxt + take].copy()))
                if recorder is not None:
                    recorder.start(new_idx, z0[nxt : nxt + take])
                if len(act_idx):
                    act_z = np.concatenate([act_z, z0[nxt : nxt + take]])
                    act_idx = np.concatenate([act_idx, new_idx])
                    act_steps = np.concatenate([act_steps, np.zeros(take, np.int32)])
                else:
                    act_z = z0[nxt : nxt + take]  # read only: the first step returns a fresh array
                    act_idx, act_steps = new_idx.copy(), np.zeros(take, np.int32)  # compacted in place
                nxt += take
            if not len(act_idx):
                break
            z_new, sq, nrm = lmap.step(act_z)
            m = len(act_idx)
            done, st = done_buf[:m], status_buf[:m]
            n_done = check_rows(sq, nrm, act_steps, tol32, limit_sq, max_steps, done, st)
            if recorder is not None:
                recorder.update(act_idx, z_new, sq, act_steps)
            if every:
                due = (act_steps % every == 0) & ~done
                if due.any():
                    rec.append((act_idx[due], act_steps[due], z_new[due]))
            if n_done:
                if every:
                    rec.append((act_idx[done], act_steps[done], z_new[done]))
                flat_new = z_new.reshape(m, final_flat.shape[1])
                w = retire_rows(flat_new, act_idx, act_steps, sq, done, st, final_flat, steps, last_sq, status)
                act_z = z_new[:w]
                act_idx = act_idx[:w]
                act_steps = act_steps[:w]
                if bar is not None:
                    bar.update(n_done)
            else:
                act_z = z_new
    finally:
        if bar is not None:
            bar.close()

    path = path_steps = None
    if every:
        path, path_steps = _assemble_path(rec, n, shape)
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
    }
    feats = recorder.finish(z0, final, steps, last_sq) if recorder is not None else None
    if recorder is not None:
        settings["features"] = sorted(feats)
        settings["reference_size"] = None if recorder.reference is None else len(recorder.reference)
    return Trajectories(final=final, steps=steps, status=status, last_step_sq=last_sq, settings=settings,
                        path=path, path_steps=path_steps, starts=z0, features=feats)


def _assemble_path(rec, n: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    if not rec:
        return np.empty((n, 0, *shape), np.float32), np.empty((n, 0), np.int32)
    rows = np.concatenate([r[0] for r in rec])
    st = np.concatenate([r[1] for r in rec])
    zs = np.concatenate([r[2] for r in rec])
    order = np.lexsort((st, rows))  # by row, then step
    rows, st, zs = rows[order], st[order], zs[order]
    counts = np.bincount(rows, minlength=n)
    length = int(counts.max()) if n else 0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if n else np.empty(0, np.int64)
    pos = np.arange(len(rows)) - np.repeat(starts, counts)
    path = np.full((n, length, *shape), np.nan, np.float32)
    path_steps = np.full((n, length), -1, np.int32)
    path[rows, pos] = zs
    path_steps[rows, pos] = st
    return path, path_steps
