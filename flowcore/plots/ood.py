"""Figures of an OOD report: ID-vs-OOD score histograms per set and ROC curves (matplotlib).

Uses matplotlib's ``Figure`` with an Agg canvas directly, so the caller's pyplot backend is
never switched. Each figure comes with the CSV of the data drawn. :func:`write_report` writes a
whole report folder (the report's own files plus these figures), staged so it is complete or
absent; :func:`write_report_into` fills a given folder with them (a command's staging folder);
:func:`write_report_figures` draws the figures into a folder.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from flowcore.errors import BackendError
from flowcore.io import atomic_write_bytes, atomic_write_text
from flowcore.plots._base import csv_cell, png_bytes
from flowcore.plots._base import figure_class as _plots_figure_class
from flowcore.outputs import OutputFolder

__all__ = ["figure_class", "hist_figure", "roc_figure", "csv_cell", "write_report", "write_report_into",
           "write_report_figures"]


def figure_class():
    """matplotlib's ``Figure`` (see :func:`flowcore.plots.figure_class`); ROC curves also need scikit-learn."""
    Figure = _plots_figure_class()
    try:
        import sklearn  # noqa: F401  # lazy: optional extra scikit-learn (flowcore[analysis])
    except ImportError:
        raise BackendError("OOD report figures need scikit-learn: pip install 'flowcore[analysis]' "
                           "(or save(..., figures=False))") from None
    return Figure


def _grid(n: int, ncols: int = 3) -> tuple[int, int]:
    c = min(ncols, n)
    return math.ceil(n / c), c


def _bins(a: np.ndarray, b: np.ndarray, n: int = 40) -> tuple[np.ndarray, bool]:
    """Shared bin edges; log-spaced when all scores are positive and span over 50×."""
    both = np.concatenate([a, b])
    lo, hi = float(both.min()), float(both.max())
    if lo > 0 and hi / lo > 50:
        return np.geomspace(lo, hi, n + 1), True
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, n + 1), False


def hist_figure(Figure, rep: Any, ood_set: str) -> tuple[bytes, str]:
    methods = rep.methods
    nr, nc = _grid(len(methods))
    fig = Figure(figsize=(3.2 * nc, 2.4 * nr), dpi=100, layout="constrained")
    axes = fig.subplots(nr, nc, squeeze=False).ravel()
    csv = ["method,population,bin_left,bin_right,count"]
    for ax, m in zip(axes, methods):
        a, b = rep.id_scores[m], rep.ood_scores[ood_set][m]
        edges, log = _bins(a, b)
        for pop, s, colour in (("id", a, "tab:blue"), ("ood", b, "tab:red")):
            counts, _ = np.histogram(s, edges)
            ax.hist(s, edges, color=colour, alpha=0.5, label="ID" if pop == "id" else ood_set)
            csv += [f"{m},{pop},{edges[i]!r},{edges[i + 1]!r},{int(c)}" for i, c in enumerate(counts)]
        if log:
            ax.set_xscale("log")
        ax.set_title(f"{m}  AUROC {100 * rep.row(m, ood_set).auroc:.1f}", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes[len(methods):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"ID vs {ood_set}: scores (higher = more OOD)", fontsize=9)
    return png_bytes(fig), "\n".join(csv) + "\n"


def roc_figure(Figure, rep: Any) -> tuple[bytes, str]:
    from sklearn.metrics import roc_curve  # lazy: optional extra scikit-learn (flowcore[analysis])

    sets = rep.ood_sets
    nr, nc = _grid(len(sets))
    fig = Figure(figsize=(3.2 * nc + 1.6, 3.0 * nr), dpi=100, layout="constrained")
    axes = fig.subplots(nr, nc, squeeze=False).ravel()
    csv = ["ood_set,method,fpr,tpr,threshold"]
    for ax, s in zip(axes, sets):
        for m in rep.methods:
            a, b = rep.id_scores[m], rep.ood_scores[s][m]
            y = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
            fpr, tpr, thr = roc_curve(y, np.concatenate([a, b]))
            ax.plot(fpr, tpr, lw=1, label=m)
            name = csv_cell(s)
            csv += [f"{name},{m},{f!r},{t!r},{csv_cell(float(h))}" for f, t, h in zip(fpr.tolist(), tpr.tolist(), thr)]
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls=":")
        ax.set_title(s, fontsize=9)
        ax.set_xlabel("FPR (ID flagged)", fontsize=7)
        ax.set_ylabel("TPR (OOD caught)", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes[len(sets):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=7)
    return png_bytes(fig), "\n".join(csv) + "\n"


def write_report_figures(report: Any, folder: str | os.PathLike, *, Figure=None) -> dict[str, Any]:
    """Draw ``hist_<set>.png`` per OOD set and ``roc.png``, each with its CSV, into ``folder``.

    Parameters
    ----------
    report : OODReport
    folder : path-like
        An existing folder (e.g. the one :meth:`flowcore.outputs.OutputFolder.staged` yields).
    Figure : matplotlib Figure class, optional
        Default :func:`figure_class` (needs matplotlib and scikit-learn).

    Returns
    -------
    dict
        ``{"hist": {set: {"png", "data"}}, "roc": {"png", "data"}}``, the file list for ``report.json``.
    """
    Figure = Figure or figure_class()
    out = Path(folder)
    files: dict[str, Any] = {"hist": {}}
    for s, stem in report.stems.items():
        png, csv = hist_figure(Figure, report, s)
        atomic_write_bytes(out / f"hist_{stem}.png", png)
        atomic_write_text(out / f"hist_{stem}.csv", csv)
        files["hist"][s] = {"png": f"hist_{stem}.png", "data": f"hist_{stem}.csv"}
    png, csv = roc_figure(Figure, report)
    atomic_write_bytes(out / "roc.png", png)
    atomic_write_text(out / "roc.csv", csv)
    files["roc"] = {"png": "roc.png", "data": "roc.csv"}
    return files


def write_report(report: Any, folder: str | os.PathLike, *, figures: bool = True) -> Path:
    """Write an OOD report folder: ``metrics.csv``, ``report.json``, ``scores.npz`` and the figures.

    Everything is staged by :meth:`flowcore.outputs.OutputFolder.staged` and moved into place
    together; an existing folder keeps its other files.

    Raises
    ------
    BackendError
        ``figures`` and matplotlib (or scikit-learn) is not installed; nothing is written then.
    """
    Figure = figure_class() if figures else None
    with OutputFolder(folder).staged() as tmp:
        write_report_into(report, tmp, figures=figures, Figure=Figure)
    return Path(folder)


def write_report_into(report: Any, folder: str | os.PathLike, *, figures: bool = True, Figure=None) -> Path:
    """Fill the existing ``folder`` with the report's files and figures (no staging of its own).

    The writer behind :func:`write_report`; a command calls it inside the folder its
    ``OutputFolder.staged()`` yields. ``Figure``: as :func:`write_report_figures`.
    """
    files = write_report_figures(report, folder, Figure=Figure) if figures else {}
    report.write(folder, extra_json={"files": files})
    return Path(folder)
