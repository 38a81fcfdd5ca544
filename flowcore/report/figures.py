"""The report's own figures (matplotlib, Agg): each returns ``(png_bytes, csv_text)`` like :mod:`flowcore.plots`.

Axis labels carry units; histograms carry the threshold line; one colour per method (tab10);
checkpoint names are the x ticks.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from flowcore.plots import figure_class, png_bytes

__all__ = ["steps_histogram", "ood_histograms", "roc_plot", "checkpoint_curves", "plane_paths"]

_TAB10 = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
          "tab:olive", "tab:cyan")


def steps_histogram(steps: Mapping[str, Any], *, max_steps: int) -> tuple[bytes, str]:
    """Histogram of steps to stop; ``steps`` name -> (N,) int. Log-spaced bins from 1 to ``max_steps``."""
    fig = figure_class()(figsize=(6.4, 2.8), dpi=100, layout="constrained")
    ax = fig.subplots()
    edges = np.unique(np.geomspace(1, max(2, max_steps + 1), 30).astype(int))
    csv = ["starts,bin_left,bin_right,count"]
    for (name, s), c in zip(steps.items(), _TAB10):
        s = np.maximum(np.asarray(s), 1)
        counts, _ = np.histogram(s, edges)
        ax.hist(s, edges, alpha=0.55, color=c, label=f"{name} (n={len(s)})")
        csv += [f"{name},{edges[i]},{edges[i + 1]},{int(n)}" for i, n in enumerate(counts)]
    ax.axvline(max_steps, color="black", ls="--", lw=1, label=f"max_steps {max_steps}")
    ax.set_xscale("log")
    ax.set_xlabel("steps to stop (iterations of f, log scale)")
    ax.set_ylabel("starts (count)")
    ax.legend(fontsize=7)
    return png_bytes(fig), "\n".join(csv) + "\n"


def ood_histograms(rep: Any, ood_set: str, thresholds: Mapping[str, float]) -> tuple[bytes, str]:
    """Per method: ID vs ``ood_set`` score histograms with the detector's threshold as a dashed line."""
    methods = list(rep.methods)
    fig = figure_class()(figsize=(3.3 * len(methods), 2.7), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(methods)))
    csv = ["method,population,bin_left,bin_right,count"]
    for ax, m in zip(axes, methods):
        a, b = np.asarray(rep.id_scores[m], float), np.asarray(rep.ood_scores[ood_set][m], float)
        both = np.concatenate([a, b])
        both = both[np.isfinite(both)]
        lo, hi = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
        log = lo > 0 and hi / lo > 100  # heavy tails (kNN distances): log bins, as flowcore.plots.ood
        edges = np.geomspace(lo, hi, 31) if log else np.linspace(lo, hi if hi > lo else lo + 1, 31)
        for pop, s, c in (("ID", a, "tab:blue"), (ood_set, b, "tab:red")):
            counts, _ = np.histogram(s[np.isfinite(s)], edges)
            ax.hist(s[np.isfinite(s)], edges, color=c, alpha=0.5, label=pop)
            csv += [f"{m},{pop},{edges[i]!r},{edges[i + 1]!r},{int(n)}" for i, n in enumerate(counts)]
        if log:
            ax.set_xscale("log")
        if m in thresholds:
            ax.axvline(thresholds[m], color="black", ls="--", lw=1.2, label="threshold")
        ax.set_title(f"{m}  AUROC {100 * rep.row(m, ood_set).auroc:.1f} %", fontsize=8)
        ax.set_xlabel("OOD score (higher = more OOD)", fontsize=7)
        ax.set_ylabel("samples (count)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0].legend(fontsize=6)
    return png_bytes(fig), "\n".join(csv) + "\n"


def roc_plot(rep: Any) -> tuple[bytes, str]:
    """ROC curves, one panel per OOD set, one colour per method (the same colour in every panel)."""
    from sklearn.metrics import roc_curve  # lazy: optional extra scikit-learn (flowcore[analysis])

    sets = list(rep.ood_sets)
    fig = figure_class()(figsize=(3.0 * len(sets) + 1.8, 3.0), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(sets)))
    csv = ["ood_set,method,fpr,tpr"]
    for ax, s in zip(axes, sets):
        for m, c in zip(rep.methods, _TAB10):
            a, b = rep.id_scores[m], rep.ood_scores[s][m]
            fpr, tpr, _ = roc_curve(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b])
            ax.plot(fpr, tpr, lw=1.3, color=c, label=m)
            csv += [f"{s},{m},{f!r},{t!r}" for f, t in zip(fpr.tolist(), tpr.tolist())]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls=":")
        ax.set_title(f"ID vs {s}", fontsize=9)
        ax.set_xlabel("false positive rate (ID flagged)", fontsize=7)
        ax.set_ylabel("true positive rate (OOD caught)", fontsize=7)
        ax.tick_params(labelsize=6)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7)
    return png_bytes(fig), "\n".join(csv) + "\n"


def checkpoint_curves(names: Sequence[str], series: Mapping[str, Any], second: Mapping[str, Any]) -> tuple[bytes, str]:
    """Metrics per checkpoint, checkpoint names as x ticks; ``second`` series on a right-hand axis."""
    fig = figure_class()(figsize=(6.4, 3.0), dpi=100, layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(names))
    cols = iter(_TAB10)
    for name, y in series.items():
        ax.plot(x, y, marker="o", color=next(cols), label=name)
    ax.set_ylabel("cosine / fraction (0–1)")
    ax.set_xlabel("checkpoint (training order)")
    ax.set_xticks(x, [str(n) for n in names], rotation=30, fontsize=7)
    ax2 = ax.twinx()
    for name, y in second.items():
        ax2.plot(x, y, marker="s", ls="--", color=next(cols), label=name)
    ax2.set_ylabel("test MSE (input units²)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7)
    csv = ["checkpoint," + ",".join([*series, *second])]
    csv += [f"{n}," + ",".join(repr(float(np.asarray(v)[i])) for v in [*series.values(), *second.values()])
            for i, n in enumerate(names)]
    return png_bytes(fig), "\n".join(csv) + "\n"


def plane_paths(paths: Sequence[Any], attractors: Any, xlim: Sequence[float], ylim: Sequence[float], *,
                plane: str) -> tuple[bytes, str]:
    """Trajectories projected on the field's plane: ``paths`` list of (L_i, 2); ``attractors`` (M, 2)."""
    fig = figure_class()(figsize=(4.6, 4.0), dpi=100, layout="constrained")
    ax = fig.subplots()
    csv = ["trajectory,point,x,y"]
    for i, p in enumerate(paths):
        p = np.asarray(p, float)
        ax.plot(p[:, 0], p[:, 1], lw=0.9, color=_TAB10[i % 10], alpha=0.8)
        ax.plot(p[0, 0], p[0, 1], "o", ms=3, color=_TAB10[i % 10])
        csv += [f"{i},{j},{x!r},{y!r}" for j, (x, y) in enumerate(p.tolist())]
    a = np.asarray(attractors, float).reshape(-1, 2)
    ax.scatter(a[:, 0], a[:, 1], marker="x", color="black", s=30, label="attractors", zorder=3)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(f"{plane}: x (latent units)", fontsize=8)
    ax.set_ylabel("y (latent units)", fontsize=8)
    ax.set_title(f"{len(paths)} trajectories (dot: start) projected on the plane", fontsize=9)
    ax.legend(fontsize=7)
    return png_bytes(fig), "\n".join(csv) + "\n"
