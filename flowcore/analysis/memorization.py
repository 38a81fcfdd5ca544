"""Memorization analysis: how close the decoded attractors lie to the training set (PAPER §3).

- :func:`memorization_coefficient` — ``mem(z*) = max_{x ∈ X_train} cos(D(z*), x)`` per attractor,
  images flattened. **Default ``reduce="max"``** (the nearest training point, as in the
  replication); ``reduce="min"`` gives the paper's literal formula, which is the cosine to the
  *farthest* training point (PAPER §6.7 lists it as a typo). Higher = closer to a training sample.
- :func:`null_levels` — the same statistic for test images and for uniform noise, the levels a
  mem value must be read against (PAPER §6.4; MNIST replication: 0.856 / 0.519).
- :func:`rank_at_variance` — rank at 90 % of the squared singular-value mass ("generalization
  entropy", App. B.5). Higher = more diverse attractors (better generalization).
- :func:`memorization_report` — iterate, deduplicate, decode, and collect all of the above with
  the test reconstruction MSE into a :class:`MemorizationReport`.

The nearest-neighbour searches are blocked over both sets, so peak extra memory is
``batch × batch`` floats whatever the sizes. NumPy only (no scikit-learn).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowcore.errors import DataError
from flowcore.io import atomic_write_json, load_npz, save_npz

__all__ = [
    "memorization_coefficient",
    "null_levels",
    "rank_at_variance",
    "memorization_report",
    "reconstruction_mse",
    "MemorizationReport",
    "latent_starts",
]

_REDUCE = ("max", "min")
_METRICS = ("cosine", "euclidean")


def _flat(a: Any, what: str) -> np.ndarray:
    """(N, ...) array-like -> (N, m) float64; refuses NaN/Inf and empty feature axes."""
    arr = np.asarray(a)
    if arr.ndim == 0:
        raise DataError(f"{what} must be an array of shape (N, ...), got a scalar")
    arr = arr.reshape(len(arr), int(np.prod(arr.shape[1:], dtype=np.int64))).astype(np.float64, copy=False)
    if arr.shape[1] == 0:
        raise DataError(f"{what} has no features (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{what} contains NaN or Inf")
    return arr


def _unit_rows(a: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; zero rows stay zero (cosine 0 to everything)."""
    n = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.where(n > 0, n, 1.0)


def _nearest(a: np.ndarray, b: np.ndarray, *, metric: str = "cosine", reduce: str = "max",
             batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Best similarity of each row of ``a`` over the rows of ``b``, blocked over both.

    Parameters
    ----------
    a : ndarray of shape (n_a, m), float64
    b : ndarray of shape (n_b, m), float64
    metric : {"cosine", "euclidean"}
        cosine: s = cos(a, b). euclidean: s = −‖a − b‖₂ (a similarity, so max = nearest).
    reduce : {"max", "min"}
        Take the largest (nearest) or smallest (farthest) similarity over ``b``.
    batch : int
        Block size on both axes; peak extra memory ~ batch² float64.

    Returns
    -------
    value : ndarray of shape (n_a,), float64
    index : ndarray of shape (n_a,), int64 — the row of ``b`` that attains ``value`` (first on ties).
    """
    if metric not in _METRICS:
        raise DataError(f"metric must be one of {_METRICS}, got {metric!r}")
    if reduce not in _REDUCE:
        raise DataError(f"reduce must be one of {_REDUCE}, got {reduce!r}")
    if int(batch) < 1:
        raise DataError(f"batch must be >= 1, got {batch}")
    if len(b) == 0:
        raise DataError("the reference set is empty")
    batch = int(batch)
    if metric == "cosine":
        a, b = _unit_rows(a), _unit_rows(b)
    else:
        a_sq, b_sq = (a * a).sum(1), (b * b).sum(1)
    sign = 1.0 if reduce == "max" else -1.0  # work with max of sign*s
    value = np.full(len(a), -np.inf)
    index = np.zeros(len(a), np.int64)
    for i in range(0, len(a), batch):
        ai = a[i:i + batch]
        best = np.full(len(ai), -np.inf)
        arg = np.zeros(len(ai), np.int64)
        for j in range(0, len(b), batch):
            bj = b[j:j + batch]
            g = ai @ bj.T
            if metric == "cosine":
                s = g
            else:
                s = -np.sqrt(np.maximum(a_sq[i:i + batch, None] + b_sq[None, j:j + batch] - 2.0 * g, 0.0))
            s = sign * s
            loc = np.argmax(s, axis=1)
            val = s[np.arange(len(ai)), loc]
            better = val > best  # strict: keeps the first index on ties across blocks
            best[better] = val[better]
            arg[better] = loc[better] + j
        value[i:i + batch] = sign * best
        index[i:i + batch] = arg
    return value, index


def memorization_coefficient(decoded: Any, x_train: Any, *, reduce: str = "max", batch: int = 1024,
                             return_index: bool = False):
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
    batch : int, default 1024
        Block size over both K and N; never holds an N × K matrix.
    return_index : bool, default False
        Also return the training row attaining each value.

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
    a = _flat(decoded, "decoded")
    b = _flat(x_train, "x_train")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"decoded has {a.shape[1]} features per row but x_train has {b.shape[1]}; "
                        "pass decoded images D(z*), not latents")
    value, index = _nearest(a, b, metric="cosine", reduce=reduce, batch=batch)
    return (value, index) if return_index else value


def _mean_std(v: np.ndarray) -> dict[str, float]:
    v = np.asarray(v, np.float64)
    if len(v) == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "n": int(len(v))}


def null_levels(x_test: Any, x_train: Any, *, n_noise: int = 1000, seed: int | np.random.Generator = 0,
                reduce: str = "max", batch: int = 1024) -> dict[str, Any]:
    """Nearest-train cosine of test images and of uniform noise: the nulls for ``mem``.

    Parameters
    ----------
    x_test : array-like of shape (n_test, *input_shape)
    x_train : array-like of shape (N, *input_shape)
    n_noise : int, default 1000
        Noise inputs, uniform in ``[x_train.min(), x_train.max()]`` per feature.
    seed : int or numpy.random.Generator, default 0
    reduce, batch :
        As in :func:`memorization_coefficient`.

    Returns
    -------
    dict
        ``{"test": {"mean", "std", "n"}, "noise": {"mean", "std", "n"}, "noise_range": [lo, hi],
        "reduce", "seed"}`` (plain floats). A ``mem`` near the test level means attractors look
        like unseen data; near 1 means copies of training samples; near the noise level means
        nothing like the data.
    """
    b = _flat(x_train, "x_train")
    t = _flat(x_test, "x_test")
    if t.shape[1] != b.shape[1]:
        raise DataError(f"x_test has {t.shape[1]} features per row but x_train has {b.shape[1]}")
    if int(n_noise) < 0:
        raise DataError(f"n_noise must be >= 0, got {n_noise}")
    rng = np.random.default_rng(seed)
    lo, hi = float(b.min()), float(b.max())
    noise = rng.uniform(lo, hi, size=(int(n_noise), b.shape[1]))
    test_v = _nearest(t, b, reduce=reduce, batch=batch)[0] if len(t) else np.empty(0)
    noise_v = _nearest(noise, b, reduce=reduce, batch=batch)[0] if len(noise) else np.empty(0)
    return {"test": _mean_std(test_v), "noise": _mean_std(noise_v), "noise_range": [lo, hi],
            "reduce": reduce, "seed": seed if isinstance(seed, int) else None}


def rank_at_variance(matrix: Any, *, level: float = 0.9, center: bool = True) -> int:
    """Smallest r with ``Σ_{i≤r} s_i² / Σ_i s_i² ≥ level`` (singular values of the rows).

    Parameters
    ----------
    matrix : array-like of shape (K, ...)
        One row per item (e.g. decoded attractors ``D(Z*)``), flattened to (K, m).
    level : float, default 0.9
        Share of the squared singular-value mass, in (0, 1].
    center : bool, default True
        Subtract the row mean before the SVD (PCA variance). ``False``: raw second moment
        (the paper does not say; a constant offset then counts as one direction).

    Returns
    -------
    int
        In [0, min(K, m)]; 0 when the (centred) matrix is all zeros (e.g. K = 1 centred).
        Higher = more spread (the paper reads it as better generalization).
    """
    if not (0.0 < float(level) <= 1.0):
        raise DataError(f"level must be in (0, 1], got {level}")
    a = _flat(matrix, "matrix")
    if center:
        a = a - a.mean(0, keepdims=True)
    s = np.linalg.svd(a, compute_uv=False)
    energy = s ** 2
    total = energy.sum()
    if not total > 0 or total <= 1e-24 * max(1.0, float(np.abs(a).max()) ** 2):
        return 0
    frac = np.cumsum(energy) / total
    return int(np.argmax(frac >= float(level) - 1e-12) + 1)


def latent_starts(lmap, kind: Any, *, x_train: Any = None, x_test: Any = None, n: int | None = None,
                  seed: int | np.random.Generator = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Start latents ``z_0`` for a start set, and its description for the settings.

    Parameters
    ----------
    lmap : LatentMap
    kind : {"train", "test", "noise"} or array-like of shape (n, *latent_shape)
        "train"/"test": ``E(x)`` of ``n`` samples drawn without replacement (all when ``n`` is
        None or ≥ the set size). "noise": ``n`` draws of N(0, I) in latent space (``n``
        defaults to 1000). An array is used as given.
    seed : int or numpy.random.Generator, default 0

    Returns
    -------
    z0 : ndarray of shape (n, *latent_shape), float32
    desc : dict
        kind, size, seed.
    """
    rng = np.random.default_rng(seed)
    seed_rec = seed if isinstance(seed, int) else None
    if isinstance(kind, str):
        if kind == "noise":
            size = 1000 if n is None else int(n)
            z0 = rng.standard_normal((size, *lmap.latent_shape)).astype(np.float32)
            return z0, {"kind": "noise", "distribution": "N(0, I) latent", "size": size, "seed": seed_rec}
        if kind in ("train", "test"):
            x = x_train if kind == "train" else x_test
            if x is None:
                raise DataError(f"starts={kind!r} needs x_{kind}")
            x = np.asarray(x)
            if n is not None and int(n) < len(x):
                idx = np.sort(rng.choice(len(x), int(n), replace=False))
                x = x[idx]
            return lmap.encode(x), {"kind": kind, "size": len(x), "seed": seed_rec}
        raise DataError(f"starts must be 'train', 'test', 'noise' or an array, got {kind!r}")
    z0 = lmap.check_latents(kind, "starts")
    return z0, {"kind": "array", "size": len(z0), "seed": None}


def _providers(lmap) -> Any:
    try:
        return list(lmap.providers)
    except Exception:  # noqa: BLE001 — a duck-typed map may have none
        return None


@dataclass(frozen=True)
class MemorizationReport:
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
    mem_mean, mem_std : float
        Over deduplicated attractors (unweighted; NaN when K = 0).
    mem_weighted_mean : float
        Weighted by basin size (≈ the mean over all converged endpoints).
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
    """

    mem: np.ndarray
    nearest_index: np.ndarray
    counts: np.ndarray
    attractors: np.ndarray = field(repr=False)
    decoded: np.ndarray = field(repr=False)
    mem_mean: float
    mem_std: float
    mem_weighted_mean: float
    null: dict[str, Any]
    rank: int
    test_mse: float
    n_attractors: int
    n_starts: int
    median_steps: float | None
    status_counts: dict[str, int]
    settings: dict[str, Any]

    _ARRAYS = ("mem", "nearest_index", "counts", "attractors", "decoded")

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON summary (scalars, nulls, settings; the arrays go to the NPZ)."""
        return {
            "mem_mean": self.mem_mean, "mem_std": self.mem_std, "mem_weighted_mean": self.mem_weighted_mean,
            "mem_reduce": self.settings.get("reduce"),
            "null_test": self.null.get("test"), "null_noise": self.null.get("noise"), "null": self.null,
            f"rank_at_{int(round(100 * self.settings.get('level', 0.9)))}": self.rank, "rank": self.rank,
            "test_mse": self.test_mse, "n_attractors": self.n_attractors, "n_starts": self.n_starts,
            "median_steps": self.median_steps, "status_counts": dict(self.status_counts),
            "settings": dict(self.settings),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``memorization.json`` + ``memorization.npz`` into folder ``path`` (atomic)."""
        folder = Path(path)
        save_npz(folder / "memorization.npz", **{k: getattr(self, k) for k in self._ARRAYS})
        atomic_write_json(folder / "memorization.json", self.to_json())
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MemorizationReport":
        """Read a folder written by :meth:`save`, checking that the arrays agree."""
        folder = Path(path)
        arrays = load_npz(folder / "memorization.npz")
        missing = set(cls._ARRAYS) - set(arrays)
        if missing:
            raise DataError(f"{folder}/memorization.npz lacks {sorted(missing)}")
        k = len(arrays["mem"])
        if any(len(arrays[n]) != k for n in cls._ARRAYS):
            raise DataError(f"{folder}/memorization.npz arrays disagree in length")
        try:
            meta = json.loads((folder / "memorization.json").read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{folder}/memorization.json unreadable ({exc})") from None

        def num(v):
            return float("nan") if v is None else float(v)

        return cls(**{n: arrays[n] for n in cls._ARRAYS}, mem_mean=num(meta.get("mem_mean")),
                   mem_std=num(meta.get("mem_std")), mem_weighted_mean=num(meta.get("mem_weighted_mean")),
                   null=meta.get("null", {}), rank=int(meta.get("rank", 0)), test_mse=num(meta.get("test_mse")),
                   n_attractors=int(meta.get("n_attractors", k)), n_starts=int(meta.get("n_starts", 0)),
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
    batch: int = 1024,
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
    batch : int, default 1024
        Block size of the nearest-train search.

    Returns
    -------
    MemorizationReport
        mem is computed on the deduplicated attractors' representatives (actual orbit points).
    """
    from flowcore.dynamics.attractors import find_attractors  # noqa: PLC0415
    from flowcore.dynamics.trajectories import iterate  # noqa: PLC0415

    x_train_c = lmap.check_inputs(x_train, "x_train")
    z0, desc = latent_starts(lmap, starts, x_train=x_train_c, x_test=x_test, n=n_starts, seed=seed)
    traj = iterate(lmap, z0, tol=tol, max_steps=max_steps, batch_size=batch_size, progress=False)
    att = find_attractors(traj, metric=metric, threshold=threshold, starts=desc)
    reps = att.representatives.reshape(att.n_attractors, -1).astype(np.float32)
    decoded = lmap.decode(att.representatives, batch_size=batch_size) if att.n_attractors else \
        np.empty((0, *x_train_c.shape[1:]), np.float32)
    decoded = decoded.reshape(len(decoded), -1)
    if att.n_attractors:
        mem, idx = memorization_coefficient(decoded, x_train_c, reduce=reduce, batch=batch, return_index=True)
        rank = rank_at_variance(decoded, level=level, center=center)
        w = att.counts.astype(np.float64)
        weighted = float((mem * w).sum() / w.sum())
    else:
        mem, idx, rank, weighted = np.empty(0), np.empty(0, np.int64), 0, float("nan")
    stats = _mean_std(mem)
    null = null_levels(x_test, x_train_c, n_noise=n_noise, seed=seed + 1, reduce=reduce, batch=batch)
    conv = traj.steps[traj.converged]
    settings = {
        "starts": desc, "tol": float(tol), "max_steps": int(max_steps), "metric": metric,
        "threshold": float(threshold), "reduce": reduce, "level": float(level), "center": bool(center),
        "n_noise": int(n_noise), "seed": int(seed), "attractor_points": "representatives",
        "mem_average": "deduplicated attractors (unweighted)", "providers": _providers(lmap),
    }
    return MemorizationReport(
        mem=mem, nearest_index=idx, counts=att.counts, attractors=reps, decoded=decoded.astype(np.float32),
        mem_mean=stats["mean"], mem_std=stats["std"], mem_weighted_mean=weighted, null=null, rank=rank,
        test_mse=reconstruction_mse(lmap, x_test, batch_size=batch_size), n_attractors=att.n_attractors,
        n_starts=len(traj), median_steps=float(np.median(conv)) if len(conv) else None,
        status_counts=traj.counts(), settings=settings,
    )
