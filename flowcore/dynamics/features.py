"""Trajectory features, computed while iterating (full paths need not be stored).

Per start (all float64 arrays of shape (N,)):

``steps``            applications of f until the stop
``path_length``      Σ_t ‖z_t − z_{t−1}‖
``v0_norm``          ‖V(z_0)‖ = ‖f(z_0) − z_0‖
``vfinal_norm``      ‖V‖ at the stop, ‖z_T − z_{T−1}‖
``displacement``     ‖z_T − z_0‖
``latent_norm``      ‖z_0‖

Given reference attractors A (e.g. the ID attractor bank), also the distance to the nearest
reference attractor d_t = min_a ‖z_t − a‖ along the trajectory, t = 0 … T:

``dist_mean``        mean_t d_t — the paper's OOD score (z_0 included, run to the stop);
``dist_min``, ``dist_max``, ``dist_start`` (d_0), ``dist_final`` (d_T).

Higher distance = farther from the learned modes = more out-of-distribution. A diverged state
(NaN/Inf) is infinitely far: its distance is ``inf``, never NaN.
"""

from __future__ import annotations

import numpy as np

from flowcore.dynamics._features_kernel import accumulate_distance, accumulate_steps, nearest_distance
from flowcore.errors import DataError

__all__ = ["FeatureRecorder", "FEATURES", "DISTANCE_FEATURES", "features_from_paths"]

FEATURES = ("steps", "path_length", "v0_norm", "vfinal_norm", "displacement", "latent_norm")
DISTANCE_FEATURES = ("dist_mean", "dist_min", "dist_max", "dist_start", "dist_final")


class FeatureRecorder:
    """Streaming accumulators that :func:`flowcore.dynamics.trajectories.iterate` updates every step.

    Parameters
    ----------
    n : int
        Number of starts.
    reference : ndarray of shape (M, k), optional
        Reference attractors for the distance features.
    """

    def __init__(self, n: int, reference: np.ndarray | None = None) -> None:
        self.n = int(n)
        self.path_length = np.zeros(n)
        self.v0_norm = np.full(n, np.nan)
        self.reference = None
        if reference is not None:
            ref = np.ascontiguousarray(np.asarray(reference, np.float32).reshape(len(reference), -1))
            if len(ref) == 0:
                raise DataError("reference attractor set is empty")
            if not np.all(np.isfinite(ref)):
                raise DataError("reference attractors contain NaN or Inf")
            self.reference = ref
            self.d_sum = np.zeros(n)
            self.d_min = np.full(n, np.inf)
            self.d_max = np.full(n, -np.inf)
            self.d_last = np.full(n, np.nan)
            self.d_start = np.full(n, np.nan)
            self.d_count = np.zeros(n, np.int64)
            self._buf = np.empty(0)

    def _dist(self, z: np.ndarray) -> np.ndarray:
        flat = z.reshape(len(z), -1)
        if flat.shape[1] != self.reference.shape[1]:
            raise DataError(f"reference attractors have k={self.reference.shape[1]}, latents k={flat.shape[1]}")
        if len(self._buf) < len(flat):
            self._buf = np.empty(len(flat))
        out = self._buf[: len(flat)]
        nearest_distance(np.ascontiguousarray(flat, np.float32), self.reference, out)
        return out

    def start(self, rows: np.ndarray, z0: np.ndarray) -> None:
        """Rows ``rows`` (B,) enter the batch at ``z0`` (B, *latent_shape)."""
        if self.reference is not None:
            d = self._dist(z0)
            self.d_start[rows] = d
            accumulate_distance(rows, d, self.d_sum, self.d_min, self.d_max, self.d_last, self.d_count)

    def update(self, rows: np.ndarray, z_new: np.ndarray, step_sq: np.ndarray, steps_now: np.ndarray) -> None:
        """One application of f moved rows ``rows`` to ``z_new``; ``steps_now`` counts it."""
        accumulate_steps(rows, step_sq, steps_now, self.path_length, self.v0_norm)
        if self.reference is not None:
            d = self._dist(z_new)
            accumulate_distance(rows, d, self.d_sum, self.d_min, self.d_max, self.d_last, self.d_count)

    def finish(self, z0: np.ndarray, final: np.ndarray, steps: np.ndarray, last_step_sq: np.ndarray) -> dict[str, np.ndarray]:
        """All features as a dict of (N,) float64 arrays."""
        n = len(steps)
        k = int(np.prod(z0.shape[1:], dtype=np.int64))
        f0 = z0.reshape(n, k).astype(np.float64)
        ff = final.reshape(n, k).astype(np.float64)
        out = {
            "steps": steps.astype(np.float64),
            "path_length": self.path_length.copy(),
            "v0_norm": self.v0_norm.copy(),
            "vfinal_norm": np.sqrt(last_step_sq.astype(np.float64)),
            "displacement": np.linalg.norm(ff - f0, axis=1),
            "latent_norm": np.linalg.norm(f0, axis=1),
        }
        if self.reference is not None:
            out.update(
                dist_mean=self.d_sum / np.maximum(self.d_count, 1),
                dist_min=self.d_min.copy(),
                dist_max=self.d_max.copy(),
                dist_start=self.d_start.copy(),
                dist_final=self.d_last.copy(),
            )
        return out


def features_from_paths(path: np.ndarray, path_steps: np.ndarray, reference: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Reference computation of the same features from full stored paths (``record_every=1``).

    Parameters
    ----------
    path : ndarray of shape (N, L, *latent_shape)
        NaN-padded states at steps 0 … T (as :func:`iterate` records with ``record_every=1``).
    path_steps : ndarray of shape (N, L), int — −1 in padding.
    """
    n = len(path)
    flat = path.reshape(n, path.shape[1], -1).astype(np.float64)
    out = {k: np.empty(n) for k in FEATURES}
    ref = None if reference is None else np.asarray(reference, np.float64).reshape(len(reference), -1)
    if ref is not None:
        for k in DISTANCE_FEATURES:
            out[k] = np.empty(n)
    for i in range(n):
        zs = flat[i][path_steps[i] >= 0]
        steps = np.linalg.norm(np.diff(zs, axis=0), axis=1)
        out["steps"][i] = len(zs) - 1
        out["path_length"][i] = steps.sum()
        out["v0_norm"][i] = steps[0]
        out["vfinal_norm"][i] = steps[-1]
        out["displacement"][i] = np.linalg.norm(zs[-1] - zs[0])
        out["latent_norm"][i] = np.linalg.norm(zs[0])
        if ref is not None:
            d = np.sqrt(((zs[:, None, :] - ref[None]) ** 2).sum(-1)).min(1)
            d = np.where(np.isnan(d), np.inf, d)  # a NaN state is infinitely far, as in the kernel
            out["dist_mean"][i], out["dist_min"][i], out["dist_max"][i] = d.mean(), d.min(), d.max()
            out["dist_start"][i], out["dist_final"][i] = d[0], d[-1]
    return out
