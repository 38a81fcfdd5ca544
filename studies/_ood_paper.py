"""The paper's trajectory score, studied (``studies/ood_benchmark.py``): variants and the failure figure.

On a subsample of every far and near test set (``--paper-n`` rows each, and as many ID test
digits) the trajectories are walked once more with :meth:`LatentMap.step` under the detector's
stop rule (‖z_t − z_{t−1}‖² < tol, or max_steps; ‖z‖ > 1e8 or NaN = diverged, infinitely far),
and every variant is accumulated at **every** step, z_0 … z_T, without storing the paths (the
detector's own ``trajectory`` score on the same rows is reported beside them as a check). Variants:

- **bank**: the detector's train attractors (deduplicated), all converged train endpoints,
  converged endpoints of held-out ID digits (the validation split: the paper's "test" bank,
  without touching the reported test rows), converged endpoints of latent N(0, I) starts;
- **distance**: Euclidean or cosine (1 − cos) to the nearest bank point;
- **z0**: the mean includes the start state or not;
- **per-step KNN** (the reviewers' variant): at every state z_t the mean Euclidean distance to
  the 50 nearest *train latents* E(x_train), averaged over the trajectory (with z0);
- **start only** / **end only**: d_0 and d_T to the train attractors (Euclidean).

Scores are reported as computed (higher = more OOD), never flipped.
"""

from __future__ import annotations

import numpy as np

from flowcore import CONVERGED, LatentMap, iterate
from flowcore.analysis.ood.baselines import knn_distances  # private: the blocked KNN helper

__all__ = ["paper_study", "failure_figure", "KNN_K"]

KNN_K = 50
_BIG = 1e300


def _unit(z: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(z, axis=1, keepdims=True)
    return np.divide(z, n, out=np.zeros_like(z), where=n > 0)


def _nearest(bank: np.ndarray, states: np.ndarray, metric: str, k: int = 1) -> np.ndarray:
    """(S,) float64: mean distance of each state to its ``k`` nearest bank rows (inf for non-finite states)."""
    out = np.full(len(states), np.inf)
    ok = np.all(np.isfinite(states), axis=1)
    if metric == "cosine":
        d = knn_distances(_unit(bank), _unit(states[ok]), k, squared=True) / 2.0  # ‖u − v‖²/2 = 1 − cos
    else:
        d = knn_distances(bank, states[ok], k)
    out[ok] = d.mean(1)
    return out


def _endpoints(lmap: LatentMap, z0: np.ndarray, *, tol: float, max_steps: int) -> np.ndarray:
    tr = iterate(lmap, z0, tol=tol, max_steps=max_steps, progress=False)
    return tr.flat_final[tr.status == CONVERGED].astype(np.float64)


def _walk(lmap: LatentMap, z0: np.ndarray, dist: dict, *, tol: float, max_steps: int,
          norm_limit: float = 1e8) -> tuple[dict, dict, dict, np.ndarray]:
    """Iterate every start to its stop, accumulating each ``dist[name](states) -> (n,)`` at every step.

    Returns (mean over z_1 … z_T, value at z_0, value at z_T) per name — dicts of ndarray of shape (N,) —
    and the steps T per start (ndarray of shape (N,), float64).
    """
    n = len(z0)
    z = np.array(z0, np.float32, order="C", copy=True)  # walked in place; the starts stay as given
    first = {v: f(z.reshape(n, -1).astype(np.float64)) for v, f in dist.items()}
    total = {v: np.zeros(n) for v in dist}
    last = {v: a.copy() for v, a in first.items()}
    count = np.zeros(n)
    active = np.arange(n)
    for _ in range(max_steps):
        if len(active) == 0:
            break
        z_next, step_sq, norm_sq = lmap.step(np.ascontiguousarray(z[active]))
        bad = ~np.isfinite(norm_sq) | (norm_sq > norm_limit ** 2) | ~np.isfinite(step_sq)
        flat = z_next.reshape(len(active), -1).astype(np.float64)
        for v, f in dist.items():
            d = np.full(len(active), np.inf)
            if (~bad).any():
                d[~bad] = f(flat[~bad])
            total[v][active] += d
            last[v][active] = d
        count[active] += 1
        z[active] = z_next
        done = bad | (step_sq < tol)
        active = active[~done]
    return {v: t / np.maximum(count, 1) for v, t in total.items()}, first, last, count


def paper_study(det, x_train: np.ndarray, x_val: np.ndarray, sets: dict[str, np.ndarray], *, n_bank: int,
                seed: int) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Scores of every variant on every set.

    Parameters
    ----------
    det : fitted OODDetector (its bundle, tol, max_steps and train attractor bank are used)
    x_train, x_val : ndarray of shape (n, 1, 28, 28), float32 — ID train / held-out validation digits
    sets : dict of str to ndarray of shape (m, 1, 28, 28) — ``"ID test"`` first, then the OOD sets
    n_bank : int — train / validation / noise starts for the endpoint banks
    seed : int — for the noise starts

    Returns
    -------
    scores : dict variant -> dict set -> ndarray of shape (m,), float64 (finite; diverged = 1e300)
    info : dict — bank sizes, per-set latent norms and start distances (for the figure)
    """
    lmap = LatentMap(det.bundle, providers="cpu")
    tol, steps = det.tol, det.max_steps
    z_train = lmap.encode(x_train).reshape(len(x_train), -1).astype(np.float64)
    rng = np.random.default_rng(seed)
    banks = {
        "train attractors": np.asarray(det.bank_, np.float64),
        "train endpoints": _endpoints(lmap, lmap.encode(x_train[:n_bank]), tol=tol, max_steps=steps),
        "held-out endpoints": _endpoints(lmap, lmap.encode(x_val[:n_bank]), tol=tol, max_steps=steps),
        "noise endpoints": _endpoints(lmap, rng.standard_normal((n_bank, *lmap.latent_shape)).astype(np.float32),
                                      tol=tol, max_steps=steps),
    }
    names = list(sets)
    sizes = [len(sets[s]) for s in names]
    z0 = lmap.encode(np.concatenate([sets[s] for s in names]))
    n = len(z0)
    dist = {}
    for bname, bank in banks.items():
        for metric in ("euclidean", "cosine"):
            if len(bank):
                dist[(bname, metric)] = (lambda b, m: lambda st: _nearest(b, st, m))(bank, metric)
    dist["knn"] = lambda st: _nearest(z_train, st, "euclidean", k=KNN_K)
    mean_rest, at0, atT, count = _walk(lmap, z0, dist, tol=tol, max_steps=steps)
    raw: dict[str, np.ndarray] = {}
    for key in dist:
        if key == "knn":
            continue
        bname, metric = key
        raw[f"{bname}, {metric}, with z0"] = (at0[key] + mean_rest[key] * count) / (count + 1)
        raw[f"{bname}, {metric}, without z0"] = np.where(count > 0, mean_rest[key], at0[key])
    raw[f"per-step KNN (mean of {KNN_K} nearest train latents)"] = (at0["knn"] + mean_rest["knn"] * count) / (count + 1)
    raw["start only d_0 (train attractors)"] = at0[("train attractors", "euclidean")]
    raw["end only d_T (train attractors)"] = atT[("train attractors", "euclidean")]
    cuts = np.cumsum([0] + sizes)
    scores = {v: {s: np.nan_to_num(a[cuts[i]:cuts[i + 1]], posinf=_BIG) for i, s in enumerate(names)}
              for v, a in raw.items()}
    znorm = np.linalg.norm(z0.reshape(n, -1), axis=1)
    info = {"bank_sizes": {b: int(len(v)) for b, v in banks.items()}, "median_steps": float(np.median(count)),
            "n_bank_starts": n_bank, "latent_norm": {s: znorm[cuts[i]:cuts[i + 1]] for i, s in enumerate(names)},
            "dist_start": scores["start only d_0 (train attractors)"],
            "attractor_norms": np.linalg.norm(banks["train attractors"], axis=1),
            "steps": {s: count[cuts[i]:cuts[i + 1]] for i, s in enumerate(names)}}
    return scores, info


def failure_figure(info: dict, path, title: str) -> None:
    """Box plots per set: ‖E(x)‖ (attractor norms as a band), d_0 to the nearest train attractor, and the
    steps T to the stop (the trajectory score averages the distance over these T + 1 states)."""
    from flowcore.io import atomic_write_bytes  # noqa: PLC0415
    from flowcore.plots import figure_class, png_bytes  # noqa: PLC0415  (matplotlib, no pyplot: the backend is left alone)

    names = list(info["latent_norm"])
    fig = figure_class()(figsize=(16, 0.42 * len(names) + 1.8))
    axes = fig.subplots(1, 3, sharey=True)
    pos = np.arange(len(names))[::-1]
    an = info["attractor_norms"]
    ax = axes[0]
    ax.axvspan(float(an.min()), float(an.max()), color="tab:green", alpha=0.15, label="train attractor norms (range)")
    ax.boxplot([info["latent_norm"][s] for s in names], positions=pos, vert=False, widths=0.6, showfliers=False)
    ax.set_xlabel("latent norm ||E(x)||")
    ax.legend(loc="lower right", fontsize=8)
    ax = axes[1]
    ax.boxplot([info["dist_start"][s] for s in names], positions=pos, vert=False, widths=0.6, showfliers=False)
    ax.axvline(float(np.median(info["dist_start"][names[0]])), color="tab:blue", ls="--", lw=1, label="ID test median")
    ax.set_xlabel("distance of E(x) to the nearest train attractor (d_0)")
    ax.legend(loc="lower right", fontsize=8)
    ax = axes[2]
    ax.boxplot([info["steps"][s] for s in names], positions=pos, vert=False, widths=0.6, showfliers=False)
    ax.axvline(float(np.median(info["steps"][names[0]])), color="tab:blue", ls="--", lw=1, label="ID test median")
    ax.set_xlabel("steps T until the stop (the score averages d_t over t = 0 … T)")
    ax.legend(loc="lower right", fontsize=8)
    axes[0].set_yticks(pos, names)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write_bytes(path, png_bytes(fig))
