"""Line figures: named series against a shared x, with an optional second y-axis."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from flowcore.errors import DataError
from flowcore.plots._base import _csv, figure_class, png_bytes

__all__ = ["curves"]


def _null_locator():
    from matplotlib.ticker import NullLocator  # lazy: optional extra matplotlib (flowcore[analysis])

    return NullLocator()


def _series(d: Mapping[str, Any] | None, n: int, what: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, y in (d or {}).items():
        y = np.asarray(y, np.float64)
        if y.shape != (n,):
            raise DataError(f"{what} {name!r} must have shape ({n},) like x; got {y.shape}")
        out[str(name)] = y
    return out


def curves(
    x: Any,
    series: Mapping[str, Any],
    *,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logx: bool = False,
    second: Mapping[str, Any] | None = None,
    second_ylabel: str | None = None,
) -> tuple[bytes, str]:
    """Line plot of named series against x, with an optional second y-axis.

    For memorization vs k, metrics vs checkpoint/epoch (paper Fig. 3b: two y-axes), OMP
    reconstruction MSE vs number of atoms, residuals vs iteration.

    Parameters
    ----------
    x : array-like of shape (n,), float
        Shared abscissa (e.g. k, epoch, number of atoms).
    series : dict of str to array-like of shape (n,), float
        Curves on the left y-axis (solid lines, one colour each); NaN leaves a gap.
    xlabel, ylabel, title : str
    logx : bool
        Log-scaled x-axis (x must then be positive).
    second : dict of str to array-like of shape (n,), float, optional
        Curves on a right-hand y-axis (dashed lines).
    second_ylabel : str, optional
        Label of the right-hand axis.

    Returns
    -------
    png : bytes
    csv : str
        Wide table: column ``x`` then one column per series (``series`` first, then ``second``),
        one row per x value.

    Raises
    ------
    DataError
        Empty ``series``, mismatched lengths, duplicate names across ``series`` and ``second``,
        or non-positive x with ``logx``. BackendError: matplotlib missing.
    """
    xa = np.asarray(x, np.float64)
    if xa.ndim != 1 or len(xa) == 0:
        raise DataError(f"x must be a non-empty 1-D array; got shape {xa.shape}")
    n = len(xa)
    left = _series(series, n, "series")
    right = _series(second, n, "second series")
    if not left:
        raise DataError("curves needs at least one series in `series`")
    dup = set(left) & set(right)
    if dup:
        raise DataError(f"series names must be unique across series and second; both have {sorted(dup)}")
    if logx and not np.all(xa > 0):
        raise DataError("logx=True needs every x > 0; pass logx=False or drop the non-positive points")
    Figure = figure_class()

    fig = Figure(figsize=(5.4, 3.6), dpi=100, layout="constrained")
    ax = fig.subplots()
    from matplotlib import colormaps  # lazy: optional extra matplotlib (flowcore[analysis])

    cmap = colormaps["tab10"]
    lines = []
    for i, (name, y) in enumerate(left.items()):
        lines += ax.plot(xa, y, marker="o", ms=3, lw=1.2, color=cmap(i % 10), label=name)
    if right:
        ax2 = ax.twinx()
        for j, (name, y) in enumerate(right.items()):
            lines += ax2.plot(xa, y, marker="s", ms=3, lw=1.2, ls="--", color=cmap((len(left) + j) % 10), label=name)
        if second_ylabel:
            ax2.set_ylabel(second_ylabel)
    if logx:
        ax.set_xscale("log")
        if n <= 12:  # label the sampled x values themselves (k = 2, 4, …), not powers of ten
            ax.set_xticks(xa, [f"{v:g}" for v in xa.tolist()])
            ax.xaxis.set_minor_locator(_null_locator())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=7)

    names = [*left, *right]
    cols = [*left.values(), *right.values()]
    rows = ((xv, *(c[i] for c in cols)) for i, xv in enumerate(xa.tolist()))
    return png_bytes(fig), _csv(["x", *names], rows)
