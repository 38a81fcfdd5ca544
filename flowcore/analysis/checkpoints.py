"""Dynamics across checkpoints (PAPER §3, Fig. 3c–d): distinct attractors, Chamfer, trajectory FPR95.

- :func:`chamfer_similarity` — ``CS(A, B) = ½[mean_a max_b s(a, b) + mean_b max_a s(a, b)]``,
  blocked; cosine by default (matching the dedup rule). Higher = the two sets overlap more.
- :func:`distinct_fraction` — ``n_distinct / n_starts`` after deduplication (Fig. 3c).
- :func:`checkpoint_metrics` — per checkpoint: mem coefficient, test MSE, distinct-attractor
  fraction from train / test / N(0, I) starts, Chamfer similarity of noise vs train attractors,
  and the FPR95 (both conventions) of separating noise-started from train-started trajectories
  with the paper's trajectory score (mean distance to the nearest train attractor; higher =
  more OOD).

FPR95/AUROC: :mod:`flowcore.analysis.ood.metrics` (scikit-learn, the ``analysis`` extra); the rest is NumPy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowcore.analysis._similarity import _flat, _mean_std, _providers, chamfer_similarity
from flowcore.analysis.memorization import memorization_coefficient, reconstruction_mse
from flowcore.dynamics.starts import data_starts, latent_starts, subsample_indices
from flowcore.errors import BackendError, DataError, ParameterError
from flowcore.results import Array, Result
from flowcore.runtime.latent_map import LatentMap
from flowcore.dynamics.attractors import find_attractors
from flowcore.dynamics.grouping_rules import grouping_from_settings
from flowcore.dynamics.iterate_options import IterateOptions
from flowcore.dynamics.trajectories import iterate
from flowcore.analysis.ood.metrics import auroc, fpr95_id_positive, fpr95_ood_positive

__all__ = ["chamfer_similarity", "distinct_fraction", "checkpoint_metrics", "CheckpointMetrics"]

SETS = ("train", "test", "noise")  #: start sets, in the order of the (C, 3) arrays
_STATUS = ("converged", "max_steps", "diverged")
_SCALARS = ("mem_mean", "mem_std", "test_mse", "chamfer_noise_train", "fpr95_id_positive", "fpr95_ood_positive", "auroc")
_PER_SET = ("distinct_fraction", "n_attractors", "median_steps")


@dataclass(frozen=True)
class CheckpointMetrics(Result):
    """The Fig. 3c–d metrics of C checkpoints (see :func:`checkpoint_metrics`).

    Iterating, indexing and ``len`` give the per-checkpoint rows (:meth:`rows`).

    Attributes
    ----------
    checkpoints : tuple
        Label of each checkpoint (str, or its index when it has no path).
    metrics : dict of str to ndarray of shape (C,), float64
        mem_mean, mem_std, test_mse, chamfer_noise_train, fpr95_id_positive, fpr95_ood_positive, auroc.
    distinct_fraction : ndarray of shape (C, 3), float64
        Per start set ``SETS`` (train, test, noise).
    n_attractors : ndarray of shape (C, 3), int64
    median_steps : ndarray of shape (C, 3), float64
        Median steps of converged rows; NaN when none converged (None in the rows).
    score_stats : ndarray of shape (C, 2, 2), float64
        [checkpoint, (train, noise), (mean, std)] of the trajectory score.
    score_n : ndarray of shape (C, 2), int64
        Scored train / noise starts.
    n_nonfinite_scores : ndarray of shape (C,), int64
    status_counts : ndarray of shape (C, 3, 3), int64
        [checkpoint, start set, (converged, max_steps, diverged)].
    providers : tuple
        ONNX Runtime providers of each checkpoint.
    settings : dict
        n_starts, seed, tol, max_steps, metric, threshold, reduce, chamfer_metric, noise, score, fpr95.

    Saved as ``checkpoints.npz`` + ``checkpoints.json`` (:class:`flowcore.results.Result`).
    """

    checkpoints: tuple
    metrics: dict[str, np.ndarray]
    distinct_fraction: np.ndarray
    n_attractors: np.ndarray
    median_steps: np.ndarray
    score_stats: np.ndarray
    score_n: np.ndarray
    n_nonfinite_scores: np.ndarray
    status_counts: np.ndarray
    providers: tuple
    settings: dict[str, Any]

    kind: ClassVar[str] = "checkpoints"
    schema: ClassVar[dict[str, Array]] = {
        **{k: Array("f", 1, dims=("c",)) for k in _SCALARS},
        "distinct_fraction": Array("f", 2, dims=("c", "sets")),
        "n_attractors": Array("iu", 2, dims=("c", "sets")),
        "median_steps": Array("f", 2, dims=("c", "sets")),
        "score_stats": Array("f", 3, dims=("c", "scored", "stat")),
        "score_n": Array("iu", 2, dims=("c", "scored")),
        "n_nonfinite_scores": Array("iu", 1, dims=("c",)),
        "status_counts": Array("iu", 3, dims=("c", "sets", "status")),
    }

    def __len__(self) -> int:
        return len(self.checkpoints)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.row(i)

    def __iter__(self):
        return iter(self.rows())

    def row(self, i: int) -> dict[str, Any]:
        """Checkpoint ``i`` as one plain-JSON dict (the keys :func:`checkpoint_metrics` documents)."""
        m = {k: float(v[i]) for k, v in self.metrics.items()}

        def stats(j: int) -> dict[str, Any]:
            return {"mean": float(self.score_stats[i, j, 0]), "std": float(self.score_stats[i, j, 1]),
                    "n": int(self.score_n[i, j])}

        med = self.median_steps[i]
        return {
            "checkpoint": self.checkpoints[i], "mem_mean": m["mem_mean"], "mem_std": m["mem_std"],
            "test_mse": m["test_mse"],
            "distinct_fraction": {s: float(self.distinct_fraction[i, j]) for j, s in enumerate(SETS)},
            "n_attractors": {s: int(self.n_attractors[i, j]) for j, s in enumerate(SETS)},
            "chamfer_noise_train": m["chamfer_noise_train"], "fpr95_id_positive": m["fpr95_id_positive"],
            "fpr95_ood_positive": m["fpr95_ood_positive"], "auroc": m["auroc"],
            "score_train": stats(0), "score_noise": stats(1), "n_nonfinite_scores": int(self.n_nonfinite_scores[i]),
            "median_steps": {s: (None if np.isnan(med[j]) else float(med[j])) for j, s in enumerate(SETS)},
            "status_counts": {s: {st: int(self.status_counts[i, j, q]) for q, st in enumerate(_STATUS)}
                              for j, s in enumerate(SETS)},
            "settings": {**self.settings, "providers": self.providers[i]},
        }

    def rows(self) -> list[dict[str, Any]]:
        """Every checkpoint's row: the list the ``dynamics`` command prints and writes to dynamics.json."""
        return [self.row(i) for i in range(len(self))]

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> "CheckpointMetrics":
        """Build from rows of :meth:`row` (settings shared by all rows but the providers)."""
        common = {k: v for k, v in rows[0]["settings"].items() if k != "providers"} if rows else {}

        def per_set(key: str, dtype, none=np.nan) -> np.ndarray:
            return np.array([[none if r[key][s] is None else r[key][s] for s in SETS] for r in rows],
                            dtype).reshape(len(rows), len(SETS))

        return cls(
            checkpoints=tuple(r["checkpoint"] for r in rows),
            metrics={k: np.array([r[k] for r in rows], np.float64) for k in _SCALARS},
            distinct_fraction=per_set("distinct_fraction", np.float64), n_attractors=per_set("n_attractors", np.int64),
            median_steps=per_set("median_steps", np.float64),
            score_stats=np.array([[[r[s]["mean"], r[s]["std"]] for s in ("score_train", "score_noise")] for r in rows],
                                 np.float64).reshape(len(rows), 2, 2),
            score_n=np.array([[r["score_train"]["n"], r["score_noise"]["n"]] for r in rows], np.int64).reshape(-1, 2),
            n_nonfinite_scores=np.array([r["n_nonfinite_scores"] for r in rows], np.int64),
            status_counts=np.array([[[r["status_counts"][s][st] for st in _STATUS] for s in SETS] for r in rows],
                                   np.int64).reshape(len(rows), len(SETS), len(_STATUS)),
            providers=tuple(r["settings"].get("providers") for r in rows), settings=common)

    def to_json(self) -> dict[str, Any]:
        """Checkpoint labels, providers and the shared settings (the numbers are in the NPZ)."""
        return {"n_checkpoints": len(self), "checkpoints": list(self.checkpoints), "sets": list(SETS),
                "providers": list(self.providers), "settings": dict(self.settings)}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**self.metrics, **{k: getattr(self, k) for k in ("distinct_fraction", "n_attractors", "median_steps",
                                                                 "score_stats", "score_n", "n_nonfinite_scores",
                                                                 "status_counts")}}

    @classmethod
    def _from_files(cls, a: dict[str, np.ndarray], meta: dict[str, Any], folder: Path) -> "CheckpointMetrics":
        names, providers = list(meta["checkpoints"]), list(meta["providers"])
        if len(names) != len(a["mem_mean"]) or len(providers) != len(names):
            raise DataError(f"{folder / 'checkpoints.json'}: field 'checkpoints' lists {len(names)} checkpoints, "
                            f"the arrays hold {len(a['mem_mean'])}")
        if a["distinct_fraction"].shape[1] != len(SETS) or a["status_counts"].shape[2] != len(_STATUS):
            raise DataError(f"{folder / 'checkpoints.npz'}: field 'distinct_fraction' or 'status_counts' has the "
                            f"wrong number of start sets or statuses")
        return cls(checkpoints=tuple(names), metrics={k: a[k] for k in _SCALARS},
                   **{k: a[k] for k in ("distinct_fraction", "n_attractors", "median_steps", "score_stats", "score_n",
                                        "n_nonfinite_scores", "status_counts")},
                   providers=tuple(providers), settings=dict(meta["settings"]))


def _require_sklearn(what: str) -> None:
    try:
        import sklearn  # noqa: F401  # lazy: optional extra scikit-learn (flowcore[analysis])
    except ImportError:
        raise BackendError(f"{what} needs scikit-learn: pip install 'flowcore[analysis]'") from None


def distinct_fraction(attractors) -> float:
    """``n_attractors / n_starts`` (Fig. 3c), starts that did not converge included in the denominator.

    Parameters
    ----------
    attractors : flowcore.dynamics.attractors.Attractors

    Returns
    -------
    float
        In [0, 1]; 1 = every start found its own attractor (no contraction onto shared points),
        small = few attractors absorb many starts. NaN when there are no starts.
    """
    n = attractors.n_starts
    return float(attractors.n_attractors / n) if n else float("nan")


def _as_map(item: Any, providers: Any):
    if hasattr(item, "step") and hasattr(item, "decode"):
        return item, getattr(getattr(item, "bundle", None), "path", None)
    return LatentMap(item, providers=providers), str(item) if isinstance(item, (str, os.PathLike)) else None


def checkpoint_metrics(
    bundles: list,
    x_train: Any,
    x_test: Any,
    *,
    n_starts: int = 1000,
    seed: int = 0,
    tol: float = 1e-6,
    max_steps: int = 3000,
    metric: str = "cosine",
    threshold: float = 0.99,
    reduce: str = "max",
    chamfer_metric: str = "cosine",
    providers: Any = "cpu",
    batch_size: int = 4096,
    names: list[str] | None = None,
    engine: str = "auto",
) -> CheckpointMetrics:
    """The Fig. 3c–d metrics for each checkpoint, from the same seeded start sets.

    Parameters
    ----------
    bundles : list of FlowBundle, path or LatentMap
        One entry per checkpoint (e.g. along training or over a grid of k / dataset sizes).
    x_train : array-like of shape (N, *input_shape)
        Training samples: train starts and the memorization reference.
    x_test : array-like of shape (n_test, *input_shape)
        Test samples: test starts and the test MSE.
    n_starts : int, default 1000
        Starts per set (paper: 5000): train and test are subsampled without replacement (all
        when smaller), noise draws ``n_starts`` latents from N(0, I). The same indices and noise
        are used for every checkpoint (same ``seed``).
    seed : int, default 0
        train subsample ``seed``, test subsample ``seed + 1``, noise ``seed + 2``.
    tol, max_steps :
        Stopping rule (paper, small AEs: 1e-6, 3000).
    metric, threshold :
        Deduplication (paper: cosine > 0.99).
    reduce : {"max", "min"}, default "max"
        Memorization coefficient, see :func:`memorization_coefficient`.
    chamfer_metric : {"cosine", "euclidean"}, default "cosine"
    providers : default "cpu"
        ONNX Runtime providers for paths / bundles (ignored for ready LatentMaps).
    batch_size : int, default 4096
    names : list of str, optional
        Label per checkpoint (default: the bundle path, else its index).
    engine : str, default "auto"
        Engine of the train/test runs (:mod:`flowcore.dynamics.engines`); the same results with each.

    Returns
    -------
    CheckpointMetrics
        Iterating it (or :meth:`CheckpointMetrics.rows`) gives one dict per checkpoint (plain
        JSON types): ``checkpoint``, ``mem_mean``, ``mem_std`` (over
        deduplicated train attractors, higher = more memorized), ``test_mse`` (lower = better),
        ``distinct_fraction`` and ``n_attractors`` per start set (train/test/noise),
        ``chamfer_noise_train`` (higher = noise attractors look like train attractors),
        ``fpr95_id_positive`` / ``fpr95_ood_positive`` / ``auroc`` of noise-started (positive,
        OOD) vs train-started (ID) trajectories with score ``dist_mean`` (higher = more OOD;
        FPR95 lower = better separated), ``score_train`` / ``score_noise`` mean ± std,
        ``median_steps`` and ``status_counts`` per start set, and ``settings``.

    Notes
    -----
    The trajectory-score reference is the deduplicated train attractors' centres (Euclidean
    nearest), and the train-started trajectories scored are the same ones that produced them
    (in-sample): the score measures how far noise-started flows stay from the learned modes.
    Train starts are therefore iterated twice (once to find the attractors, once to score).
    """
    _require_sklearn("checkpoint_metrics (FPR95/AUROC)")
    if not len(bundles):
        raise DataError("checkpoint_metrics needs at least one checkpoint")
    if names is not None and len(names) != len(bundles):
        raise ParameterError(f"names has {len(names)} entries for {len(bundles)} checkpoints")
    if int(n_starts) < 1:
        raise ParameterError(f"n_starts must be >= 1, got {n_starts}")
    x_train = np.asarray(x_train)
    x_test = np.asarray(x_test)
    n = int(n_starts)
    idx_tr = subsample_indices(len(x_train), n, seed=seed)
    idx_te = subsample_indices(len(x_test), n, seed=seed + 1)
    grouping = grouping_from_settings(metric, threshold)
    it = dict(tol=tol, max_steps=max_steps, batch_size=batch_size, progress=False)  # feature runs: engine auto
    out: list[dict[str, Any]] = []
    for ci, item in enumerate(bundles):
        lmap, path = _as_map(item, providers)
        # noise latents: same draw for every checkpoint of the same latent shape
        z_noise, noise_desc = latent_starts(lmap, "noise", n=n, seed=seed + 2)
        z_sets = {
            "train": (data_starts(lmap, x_train[idx_tr], what="x_train", batch_size=batch_size),
                      {"kind": "train", "size": len(idx_tr), "seed": seed}),
            "test": (data_starts(lmap, x_test[idx_te], what="x_test", batch_size=batch_size),
                     {"kind": "test", "size": len(idx_te), "seed": seed + 1}),
        }
        atts, trajs = {}, {}
        for name, (z0, desc) in z_sets.items():
            trajs[name] = iterate(lmap, z0, options=IterateOptions(engine=engine), **it)
            atts[name] = find_attractors(trajs[name], grouping=grouping, starts=desc)
        train_att = atts["train"]
        if train_att.n_attractors == 0:
            raise DataError(f"checkpoint {ci}: no train start converged (tol={tol}, max_steps={max_steps}); "
                            "raise max_steps or tol")
        ref = train_att.centres.reshape(train_att.n_attractors, -1)
        # noise starts: iterate once, with the reference, for both attractors and scores
        trajs["noise"] = iterate(lmap, z_noise, reference=ref, **it)
        atts["noise"] = find_attractors(trajs["noise"], grouping=grouping, starts=noise_desc)
        s_train = iterate(lmap, z_sets["train"][0], reference=ref, **it).features["dist_mean"]
        s_noise = trajs["noise"].features["dist_mean"]
        # diverged rows can score NaN/Inf: they are maximally far, so they rank as most OOD
        n_nonfinite = int(np.sum(~np.isfinite(s_train)) + np.sum(~np.isfinite(s_noise)))
        big = np.finfo(np.float64).max
        s_train, s_noise = (np.nan_to_num(np.asarray(v, np.float64), nan=big, posinf=big) for v in (s_train, s_noise))
        decoded = lmap.decode(train_att.representatives, batch_size=batch_size)
        mem = memorization_coefficient(decoded, x_train, reduce=reduce)
        mem_stats = _mean_std(mem)
        noise_att = atts["noise"]
        chamfer = (chamfer_similarity(ref, noise_att.centres, metric=chamfer_metric)
                   if noise_att.n_attractors else float("nan"))
        rec = {
            "checkpoint": names[ci] if names is not None else (str(path) if path is not None else ci),
            "mem_mean": mem_stats["mean"],
            "mem_std": mem_stats["std"],
            "test_mse": reconstruction_mse(lmap, x_test, batch_size=batch_size),
            "distinct_fraction": {k: distinct_fraction(a) for k, a in atts.items()},
            "n_attractors": {k: a.n_attractors for k, a in atts.items()},
            "chamfer_noise_train": chamfer,
            "fpr95_id_positive": fpr95_id_positive(s_train, s_noise),
            "fpr95_ood_positive": fpr95_ood_positive(s_train, s_noise),
            "auroc": auroc(s_train, s_noise),
            "score_train": _mean_std(s_train),
            "score_noise": _mean_std(s_noise),
            "n_nonfinite_scores": n_nonfinite,
            "median_steps": {k: (float(np.median(t.steps[t.converged])) if t.converged.any() else None)
                             for k, t in trajs.items()},
            "status_counts": {k: t.counts() for k, t in trajs.items()},
            "settings": {
                "n_starts": n, "seed": int(seed), "tol": float(tol), "max_steps": int(max_steps),
                "metric": metric, "threshold": float(threshold), "reduce": reduce,
                "chamfer_metric": chamfer_metric, "noise": noise_desc,
                "score": "dist_mean: mean over the trajectory (z_0 included, to the stop) of the Euclidean "
                         "distance to the nearest deduplicated train attractor centre; higher = more OOD",
                "fpr95": "ID = train-started, OOD = noise-started",
                "providers": _providers(lmap),
            },
        }
        out.append(rec)
    return CheckpointMetrics.from_rows(out)
