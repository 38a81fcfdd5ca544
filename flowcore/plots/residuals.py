"""The residual-norm figure: per-step median and interquartile band of ‖z_{t+1} − z_t‖ and ‖z_t‖."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from flowcore.errors import DataError
from flowcore.plots._base import _csv, figure_class, png_bytes

__all__ = ["residual_plot"]


def residual_plot(reports: Mapping[str, Any], *, title: str = "") -> tuple[bytes, str]:
    """Two panels against step t (log y): the step norm ‖z_{t+1} − z_t‖ and the state norm ‖z_t‖.

    Parameters
    ----------
    reports : dict of str to ResidualReport
        One labelled run each (e.g. ``{"ID": …, "MNIST": …}``); each gives a median line and a
        shaded 25–75 % band over its starts, per step t = 0 … T−1.
    title : str

    Returns
    -------
    png : bytes
    csv : str
        Long table ``series, step, step_norm_q25, step_norm_median, step_norm_q75,
        state_norm_q25, state_norm_median, state_norm_q75``, one row per series and step.

    Raises
    ------
    DataError
        No report, or a report with no starts. BackendError: matplotlib missing.
    """
    if not reports:
        raise DataError("residual_plot needs at least one report")
    for name, rep in reports.items():
        if rep.n == 0:
            raise DataError(f"residual report {name!r} has no starts")
    Figure = figure_class()
    from matplotlib import colormaps  # lazy: optional extra matplotlib (flowcore[analysis])

    cmap = colormaps["tab10"]
    fig = Figure(figsize=(9.0, 3.6), dpi=100, layout="constrained")
    axes = fig.subplots(1, 2)
    rows = []
    labels = {"step_norm": "step norm ‖z_{t+1} − z_t‖ (latent units)", "state_norm": "state norm ‖z_t‖ (latent units)"}
    for i, (name, rep) in enumerate(reports.items()):
        t = np.arange(rep.steps)
        q = {w: rep.quartiles(w) for w in labels}
        for ax, w in zip(axes, labels):
            lo, med, hi = (np.maximum(a, np.finfo(np.float64).tiny) for a in q[w])  # log y: zeros drawn at the floor
            ax.plot(t, med, lw=1.3, color=cmap(i % 10), label=f"{name} (n = {rep.n}) median")
            ax.fill_between(t, lo, hi, color=cmap(i % 10), alpha=0.25, lw=0)
        rows += [[name, int(s), *(float(q[w][j, s]) for w in labels for j in range(3))] for s in t]
    for ax, (w, label) in zip(axes, labels.items()):
        ax.set_yscale("log")
        ax.set_xlabel("step t (applications of f = E∘D)")
        ax.set_ylabel(label)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize=7, title="median; band = 25–75 %", title_fontsize=7)
    if title:
        fig.suptitle(title)
    header = ["series", "step", "step_norm_q25", "step_norm_median", "step_norm_q75",
              "state_norm_q25", "state_norm_median", "state_norm_q75"]
    return png_bytes(fig), _csv(header, rows)
