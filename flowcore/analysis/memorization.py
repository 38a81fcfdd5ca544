"""Memorization analysis: how close the decoded attractors lie to the training set (PAPER §3).

- :func:`memorization_coefficient` — ``mem(z*) = max_{x ∈ X_train} cos(D(z*), x)`` per attractor,
  images flattened. **Default ``reduce="max"``** (the nearest training point, as in the
  replication); ``reduce="min"`` gives the paper's literal formula, which is the cosine to the
  *farthest* training point (PAPER §6.7 lists it as a typo). Higher = closer to a training sample.
- :func:`null_levels`, :func:`rank_at_variance` — the levels a mem value is read against
  (:mod:`flowcore.analysis.levels`, re-exported here).
- :func:`memorization_report` — iterate, deduplicate, decode, and collect all of the above with
  the test reconstruction MSE into a :class:`MemorizationReport`.

Read the **basin-weighted** mean (each attractor counted by the starts that reach it) beside the
unweighted mean over attractors: one attractor often takes most of the starts, and the report
says which share flows to *flagged* attractors — blank (a near-uniform image, pixel std under
``BLANK_STD`` = 0.1 × the training images' median) or mean-image (cosine to the training mean
image at least its nearest-train cosine: closer to the average image than to any training
image), which are no memorized sample whatever their mem. ``verdict`` reads the basin-weighted
mem against the test-image and noise nulls in one line.

The nearest-neighbour searches (:mod:`flowcore.analysis._similarity`) are blocked over both
sets, so peak extra memory is ``block_size × block_size`` floats whatever the sizes. NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowcore.analysis._similarity import _flat, _mean_std, _nearest, _providers
from flowcore.analysis.levels import BLANK_STD, DOMINANT, _degenerate, _verdict, null_levels, rank_at_variance
from flowcore.dynamics.starts import latent_starts  # re-exported: the start sets live in flowcore.dynamics.starts
from flowcore.errors import DataError
from flowcore.results import Array, Result
from flowcore.validation import renamed_keyword
from flowcore.dynamics.attractors import find_attractors
from flowcore.dynamics.grouping_rules import grouping_from_settings
from flowcore.dynamics.iterate_options import IterateOptions
from flowcore.dynamics.trajectories import iterate

__all__ = [
    "memorization_coefficient",
    "null_levels",
    "rank_at_variance",
    "memorization_report",
    "reconstruction_mse",
    "MemorizationReport",
    "latent_starts",
]


def memorization_coefficient(decoded: Any, x_train: Any, *, reduce: str = "max", block_size: int = 1024,
                             return_index: bool = False, batch: int | None = None):
    """Cosine of each decoded attractor to its nearest training sample.

    Parameters
    ----------
    decoded : array-like of shape (K, *input_shape)
        ``D(z*)`` for K attractors; flattened to (K, m).
    x_train : array-like of shape (N, *input_shape)
        Training samples; flattened to (N, m).
    reduce : {"max", "min"}, default "max"
        "max": ``max_x cos(D(z*), x)`` — the closest training point (replication; default).
        "min": the paper's literal ``min_x cos`` — the *farthest* training point. Always
        ``min ≤ max``, with equality only when every training sample is equally similar.
    block_size : int, default 1024
        Block size over both K and N; never holds an N × K matrix.
    return_index : bool, default False
        Also return the training row attaining each value.
    batch : int, optional
        Deprecated name of ``block_size`` (one release, with a FlowcoreDeprecationWarning).

    Returns
    -------
    mem : ndarray of shape (K,), float64
        In [−1, 1]; higher = closer to a training sample (1.0 = a training sample up to scale).
    index : ndarray of shape (K,), int64
        Only with ``return_index``: row of ``x_train`` attaining ``mem``.

    Raises
    ------
    DataError
        Mismatched feature sizes, NaN/Inf, empty training set, bad ``reduce``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.eye(3)
    >>> memorization_coefficient(x, x).tolist()
    [1.0, 1.0, 1.0]
    """
    block_size = renamed_keyword("memorization_coefficient", "batch", "block_size", batch, block_size, 1024)
    a = _flat(decoded, "decoded")
    b = _flat(x_train, "x_train")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"decoded has {a.shape[1]} features per row but x_train has {b.shape[1]}; "
                        "pass decoded images D(z*), not latents")
    value, index = _nearest(a, b, metric="cosine", reduce=reduce, batch=block_size)
    return (value, index) if return_index else value


@dataclass(frozen=True)
class MemorizationReport(Result):
    """Memorization of one model: mem per attractor, its null levels, rank@level and test MSE.

    Attributes
    ----------
    mem : ndarray of shape (K,), float64
        Nearest-train cosine of each decoded deduplicated attractor (higher = more memorized).
    nearest_index : ndarray of shape (K,), int64
        Row of ``x_train`` attaining ``mem``.
    counts : ndarray of shape (K,), int64
        Starts reaching each attractor.
    attractors : ndarray of shape (K, k), float32
        The attractor latents used (group representatives).
    decoded : ndarray of shape (K, m), float32
        ``D(z*)`` flattened.
    blank : ndarray of shape (K,), bool
        Pixel std of ``D(z*)`` below ``BLANK_STD`` (0.1) × the training images' median pixel std.
    mean_image : ndarray of shape (K,), bool
        ``cos(D(z*), mean training image) ≥`` its nearest-train cosine (max over the training set).
    mean_cosine : ndarray of shape (K,), float64
        ``cos(D(z*), mean training image)``.
    mem_mean, mem_std : float
        Over deduplicated attractors (unweighted; NaN when K = 0).
    mem_weighted_mean : float
        Weighted by basin size (≈ the mean over all converged endpoints): the value the verdict reads.
    flagged_fraction : float
        Share of the converged starts whose attractor is blank or mean-image (NaN when K = 0).
    largest_basin_fraction : float
        Share of the converged starts reaching the largest basin (NaN when K = 0).
    verdict : str
        One line: basin-weighted mem against the test-image and noise nulls, with a caveat when
        flagged attractors, or one attractor, take more than ``DOMINANT`` (half) of the starts.
    null : dict
        :func:`null_levels` output (test / noise mean ± std).
    rank : int
        :func:`rank_at_variance` of ``decoded`` at ``settings["level"]``.
    test_mse : float
        ``mean((D(E(x_test)) − x_test)²)`` over all pixels (lower = better generalization).
    n_attractors, n_starts : int
    median_steps : float or None
        Median steps of converged rows (PAPER §6.1: very fast = degenerate map).
    status_counts : dict
        converged / max_steps / diverged.
    settings : dict
        starts, tol, max_steps, metric, threshold, reduce, level, center, n_noise, seed, providers.

    Saved as ``memorization.npz`` + ``memorization.json`` (:class:`flowcore.results.Result`).
    """

    mem: np.ndarray
    nearest_index: np.ndarray
    counts: np.ndarray
    attractors: np.ndarray = field(repr=False)
    decoded: np.ndarray = field(repr=False)
    blank: np.ndarray
    mean_image: np.ndarray
    mean_cosine: np.ndarray
    mem_mean: float
    mem_std: float
    mem_weighted_mean: float
    flagged_fraction: float
    largest_basin_fraction: float
    verdict: str
    null: dict[str, Any]
    rank: int
    test_mse: float
    n_attractors: int
    n_starts: int
    median_steps: float | None
    status_counts: dict[str, int]
    settings: dict[str, Any]

    kind: ClassVar[str] = "memorization"
    version: ClassVar[int] = 2  # 2: blank / mean-image flags, flagged share, verdict
    schema: ClassVar[dict[str, Array]] = {
        "mem": Array("f", 1, dims=("k",)),
        "nearest_index": Array("iu", 1, dims=("k",)),
        "counts": Array("iu", 1, dims=("k",)),
        "attractors": Array("f", 2, dims=("k",)),
        "decoded": Array("f", 2, dims=("k",)),
        "blank": Array("b", 1, dims=("k",)),
        "mean_image": Array("b", 1, dims=("k",)),
        "mean_cosine": Array("f", 1, dims=("k",)),
    }

    @property
    def flagged(self) -> np.ndarray:
        """ndarray of shape (K,), bool: blank or mean-image attractors."""
        return self.blank | self.mean_image

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON summary (scalars, nulls, settings; the arrays go to the NPZ)."""
        return {
            "mem_mean": self.mem_mean, "mem_std": self.mem_std, "mem_weighted_mean": self.mem_weighted_mean,
            "mem_reduce": self.settings.get("reduce"), "verdict": self.verdict,
            "flagged_attractors": int(self.flagged.sum()), "blank_attractors": int(self.blank.sum()),
            "mean_image_attractors": int(self.mean_image.sum()), "flagged_fraction": self.flagged_fraction,
            "largest_basin_fraction": self.largest_basin_fraction,
            "null_test": self.null.get("test"), "null_noise": self.null.get("noise"), "null": self.null,
            f"rank_at_{int(round(100 * self.settings.get('level', 0.9)))}": self.rank, "rank": self.rank,
            "test_mse": self.test_mse, "n_attractors": self.n_attractors, "n_starts": self.n_starts,
            "median_steps": self.median_steps, "status_counts": dict(self.status_counts),
            "settings": dict(self.settings),
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.schema}

    @classmethod
    def _from_files(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], folder: Path) -> "MemorizationReport":
        def num(v):
            return float("nan") if v is None else float(v)

        return cls(**{n: arrays[n] for n in cls.schema}, mem_mean=num(meta.get("mem_mean")),
                   mem_std=num(meta.get("mem_std")), mem_weighted_mean=num(meta.get("mem_weighted_mean")),
                   flagged_fraction=num(meta.get("flagged_fraction")),
                   largest_basin_fraction=num(meta.get("largest_basin_fraction")), verdict=str(meta.get("verdict", "")),
                   null=meta.get("null", {}), rank=int(meta.get("rank", 0)), test_mse=num(meta.get("test_mse")),
                   n_attractors=int(meta.get("n_attractors", len(arrays["mem"]))), n_starts=int(meta.get("n_starts", 0)),
                   median_steps=meta.get("median_steps"), status_counts=meta.get("status_counts", {}),
                   settings=meta.get("settings", {}))


def reconstruction_mse(lmap, x_test: Any, *, batch_size: int = 4096) -> float:
    """``mean((D(E(x)) − x)²)`` over all samples and pixels, float (lower = better)."""
    x = lmap.check_inputs(x_test, "x_test")
    if len(x) == 0:
        return float("nan")
    rec = lmap.decode(lmap.encode(x, batch_size=batch_size), batch_size=batch_size)
    return float(np.mean((rec.astype(np.float64) - x) ** 2))


def memorization_report(
    lmap,
    x_train: Any,
    x_test: Any,
    *,
    starts: Any = "train",
    n_starts: int | None = None,
    tol: float = 1e-6,
    max_steps: int = 3000,
    metric: str = "cosine",
    threshold: float = 0.99,
    reduce: str = "max",
    level: float = 0.9,
    center: bool = True,
    n_noise: int = 1000,
    seed: int = 0,
    batch_size: int = 4096,
    block_size: int = 1024,
    engine: str = "auto",
    batch: int | None = None,
) -> MemorizationReport:
    """Iterate from a start set, deduplicate, decode, and measure memorization.

    Parameters
    ----------
    lmap : LatentMap
        The model (``encode``, ``decode``, ``step``, ``check_latents``).
    x_train : array-like of shape (N, *input_shape)
        Training samples: the memorization reference (and the starts when ``starts="train"``).
    x_test : array-like of shape (n_test, *input_shape)
        Held-out samples: test MSE and the test null level.
    starts : {"train", "test", "noise"} or array-like, default "train"
        Start set, see :func:`latent_starts`.
    n_starts : int, optional
        Subsample of the start set (all of it by default; 1000 for "noise").
    tol, max_steps :
        Stopping rule of :func:`flowcore.dynamics.trajectories.iterate` (paper, small AEs: 1e-6, 3000).
    metric, threshold :
        Deduplication of :func:`flowcore.dynamics.attractors.find_attractors` (paper: cosine > 0.99).
    reduce : {"max", "min"}, default "max"
        See :func:`memorization_coefficient` (max = nearest training point).
    level, center :
        See :func:`rank_at_variance`.
    n_noise : int, default 1000
        Noise inputs for the noise null level.
    seed : int, default 0
        Start subsampling / noise starts (``seed``) and noise null inputs (``seed + 1``).
    batch_size : int, default 4096
        Rows per ONNX Runtime call and in flight during iteration.
    engine : str, default "auto"
        Trajectory engine (:mod:`flowcore.dynamics.engines`); every engine gives the same results.
    block_size : int, default 1024
        Block size of the nearest-train searches (not ``batch_size``: rows per ONNX Runtime call).
    batch : int, optional
        Deprecated name of ``block_size`` (one release, with a FlowcoreDeprecationWarning).

    Returns
    -------
    MemorizationReport
        mem is computed on the deduplicated attractors' representatives (actual orbit points);
        blank / mean-image flags, the share of starts they take and a one-line verdict of the
        basin-weighted mem against the nulls (module docstring).
    """
    block_size = renamed_keyword("memorization_report", "batch", "block_size", batch, block_size, 1024)
    x_train_c = lmap.check_inputs(x_train, "x_train")
    z0, desc = latent_starts(lmap, starts, x_train=x_train_c, x_test=x_test, n=n_starts, seed=seed)
    traj = iterate(lmap, z0, tol=tol, max_steps=max_steps, batch_size=batch_size, progress=False,
                   options=IterateOptions(engine=engine))
    att = find_attractors(traj, grouping=grouping_from_settings(metric, threshold), starts=desc)
    reps = att.representatives.reshape(att.n_attractors, -1).astype(np.float32)
    decoded = lmap.decode(att.representatives, batch_size=batch_size) if att.n_attractors else \
        np.empty((0, *x_train_c.shape[1:]), np.float32)
    decoded = decoded.reshape(len(decoded), -1)
    if att.n_attractors:
        mem, idx = memorization_coefficient(decoded, x_train_c, reduce=reduce, block_size=block_size, return_index=True)
        rank = rank_at_variance(decoded, level=level, center=center)
        w = att.counts.astype(np.float64)
        weighted = float((mem * w).sum() / w.sum())
        nearest = mem if reduce == "max" else memorization_coefficient(decoded, x_train_c, block_size=block_size)
        flags = _degenerate(decoded, x_train_c, nearest)
        flagged_fraction = float(w[flags["blank"] | flags["mean_image"]].sum() / w.sum())
        largest = float(w.max() / w.sum())
    else:
        mem, idx, rank, weighted = np.empty(0), np.empty(0, np.int64), 0, float("nan")
        flags = {"blank": np.zeros(0, bool), "mean_image": np.zeros(0, bool), "mean_cosine": np.empty(0)}
        flagged_fraction = largest = float("nan")
    stats = _mean_std(mem)
    null = null_levels(x_test, x_train_c, n_noise=n_noise, seed=seed + 1, reduce=reduce, block_size=block_size)
    conv = traj.steps[traj.converged]
    settings = {
        "starts": desc, "tol": float(tol), "max_steps": int(max_steps), "metric": metric,
        "threshold": float(threshold), "reduce": reduce, "level": float(level), "center": bool(center),
        "n_noise": int(n_noise), "seed": int(seed), "attractor_points": "representatives",
        "mem_average": "mem_mean: deduplicated attractors (unweighted); mem_weighted_mean: by basin size",
        "blank_std": BLANK_STD, "dominant": DOMINANT,
        "flags": "blank: pixel std < blank_std x the training images' median pixel std; mean_image: cosine to "
                 "the training mean image >= the nearest-train cosine",
        "providers": _providers(lmap),
    }
    return MemorizationReport(
        mem=mem, nearest_index=idx, counts=att.counts, attractors=reps, decoded=decoded.astype(np.float32),
        blank=flags["blank"], mean_image=flags["mean_image"], mean_cosine=flags["mean_cosine"],
        mem_mean=stats["mean"], mem_std=stats["std"], mem_weighted_mean=weighted,
        flagged_fraction=flagged_fraction, largest_basin_fraction=largest,
        verdict=_verdict(weighted, null, flagged_fraction, largest), null=null, rank=rank,
        test_mse=reconstruction_mse(lmap, x_test, batch_size=batch_size), n_attractors=att.n_attractors,
        n_starts=len(traj), median_steps=float(np.median(conv)) if len(conv) else None,
        status_counts=traj.counts(), settings=settings,
    )
