"""Figures over a plane of the latent space: field streamlines, basin map, steps heatmap.

Examples
--------
>>> from flowcore.dynamics.field import field_grid                      # doctest: +SKIP
>>> from flowcore.plots import field_plot, save_figure                 # doctest: +SKIP
>>> png, csv = field_plot(field_grid(lmap, n=32), title="epoch 10")   # doctest: +SKIP
>>> save_figure(png, csv, "figs", "field_epoch10")              # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowcore.dynamics.field import project_to_plane  # the library's; re-exported here for figures
from flowcore.errors import DataError
from flowcore.plots._base import _csv, figure_class, png_bytes

__all__ = ["project_to_plane", "field_plot", "basin_map", "steps_heatmap"]

_UNASSIGNED_GREY = (0.6, 0.6, 0.6)


def _axis(a: Any, name: str) -> np.ndarray:
    a = np.asarray(a, np.float64)
    if a.ndim != 1 or len(a) < 2:
        raise DataError(f"{name} must be a 1-D array of at least 2 grid coordinates; got shape {a.shape}")
    if not np.all(np.diff(a) > 0):
        raise DataError(f"{name} must be strictly increasing")
    return a


def _grid2d(a: Any, name: str, xs: np.ndarray, ys: np.ndarray, dtype=np.float64) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != (len(ys), len(xs)):
        raise DataError(f"{name} must have shape (len(ys), len(xs)) = ({len(ys)}, {len(xs)}); got {a.shape}")
    return a.astype(dtype, copy=False)


def _extent(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float, float, float]:
    """imshow extent with each cell centred on its grid point."""
    dx = (xs[-1] - xs[0]) / (len(xs) - 1) / 2
    dy = (ys[-1] - ys[0]) / (len(ys) - 1) / 2
    return (xs[0] - dx, xs[-1] + dx, ys[0] - dy, ys[-1] + dy)


def _grid_rows(xs: np.ndarray, ys: np.ndarray, *cols: np.ndarray):
    """Rows ``x, y, *values`` over the grid, y-major (row i = ys[i], column j = xs[j])."""
    for i, y in enumerate(ys.tolist()):
        for j, x in enumerate(xs.tolist()):
            yield (x, y, *(c[i][j] for c in cols))


def field_plot(grid: Any, *, attractors: Any = None, points: Any = None, title: str = "") -> tuple[bytes, str]:
    """Streamlines of the latent field V(z) = f(z) − z, coloured by ‖V‖ (viridis).

    Parameters
    ----------
    grid : FieldGrid
        From :func:`flowcore.dynamics.field.field_grid`: ``xs`` (n_x,), ``ys`` (n_y,) evenly spaced plane
        coordinates; ``u``, ``v``, ``speed`` of shape (n_y, n_x). For k > 2 the grid is already a
        plane (``origin``, ``basis``).
    attractors : array-like of shape (M, 2), float, optional
        Attractors in *plane* coordinates, marked with red crosses. For k > 2 project them first
        with ``project_to_plane(points, grid.origin, grid.basis)``.
    points : array-like of shape (N, 2), float, optional
        Start points (e.g. the data latents) in plane coordinates, drawn as small grey dots ("starts").
    title : str
        Axes title.

    Returns
    -------
    png : bytes
    csv : str
        Columns ``kind,x,y,u,v,speed``: one ``grid`` row per grid point (y-major, row i of the
        arrays then column j), then one ``attractor`` row per attractor and one ``point`` row per
        point, each with empty u, v, speed.

    Raises
    ------
    DataError
        Shapes that disagree. BackendError: matplotlib missing.
    """
    xs, ys = _axis(grid.xs, "grid.xs"), _axis(grid.ys, "grid.ys")
    u = _grid2d(grid.u, "grid.u", xs, ys)
    v = _grid2d(grid.v, "grid.v", xs, ys)
    speed = _grid2d(grid.speed, "grid.speed", xs, ys)
    att = None
    if attractors is not None:
        att = np.asarray(attractors, np.float64)
        if att.ndim != 2 or att.shape[1] != 2:
            raise DataError(f"attractors must be plane coordinates of shape (M, 2); got {att.shape} "
                            "(for k > 2 use project_to_plane(points, grid.origin, grid.basis))")
    pts = None
    if points is not None:
        pts = np.asarray(points, np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise DataError(f"points must be plane coordinates of shape (N, 2); got {pts.shape} "
                            "(for k > 2 use project_to_plane(points, grid.origin, grid.basis))")
    Figure = figure_class()

    fig = Figure(figsize=(5.0, 4.2), dpi=100, layout="constrained")
    ax = fig.subplots()
    finite = np.isfinite(u) & np.isfinite(v) & np.isfinite(speed)
    if finite.any():
        uu, vv = np.where(finite, u, 0.0), np.where(finite, v, 0.0)
        sp = np.where(finite, speed, np.nan)
        lo, hi = float(np.nanmin(sp)), float(np.nanmax(sp))
        from matplotlib.colors import Normalize  # lazy: optional extra matplotlib (flowcore[analysis])

        norm = Normalize(lo, hi if hi > lo else lo + 1e-12)
        sm = ax.streamplot(xs, ys, uu, vv, color=np.where(finite, speed, lo), cmap="viridis", norm=norm,
                           density=1.2, linewidth=0.8, arrowsize=0.8)
        fig.colorbar(sm.lines, ax=ax, label="‖V‖ = ‖f(z) − z‖")
    if pts is not None and len(pts):
        ax.scatter(pts[:, 0], pts[:, 1], marker=".", s=6, c="0.35", alpha=0.6, linewidths=0, zorder=4, label="starts")
    if att is not None and len(att):
        ax.scatter(att[:, 0], att[:, 1], marker="x", s=50, c="red", linewidths=2, zorder=5, label="attractors")
    if (att is not None and len(att)) or (pts is not None and len(pts)):
        ax.legend(fontsize=7, loc="upper right")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_xlabel("plane x")
    ax.set_ylabel("plane y")
    if title:
        ax.set_title(title, fontsize=9)

    rows = [("grid", *r) for r in _grid_rows(xs, ys, u.tolist(), v.tolist(), speed.tolist())]
    if att is not None:
        rows += [("attractor", x, y, "", "", "") for x, y in att.tolist()]
    if pts is not None:
        rows += [("point", x, y, "", "", "") for x, y in pts.tolist()]
    return png_bytes(fig), _csv(["kind", "x", "y", "u", "v", "speed"], rows)


def _palette(n: int) -> np.ndarray:
    from matplotlib import colormaps  # lazy: optional extra matplotlib (flowcore[analysis])

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return np.array([cmap(i % cmap.N)[:3] for i in range(n)], np.float64).reshape(n, 3)


def basin_map(xs: Any, ys: Any, labels: Any, *, title: str = "") -> tuple[bytes, str]:
    """Basins of attraction: each grid start coloured by the attractor it reaches.

    Parameters
    ----------
    xs : array-like of shape (n_x,), float
        Increasing plane x coordinates of the grid columns.
    ys : array-like of shape (n_y,), float
        Increasing plane y coordinates of the grid rows.
    labels : array-like of shape (n_y, n_x), int
        Attractor index reached from each start; −1 (diverged or unassigned) is drawn grey.
    title : str

    Returns
    -------
    png : bytes
    csv : str
        Columns ``x,y,label``, one row per grid point (y-major).

    Raises
    ------
    DataError
        Shapes that disagree or non-integer labels. BackendError: matplotlib missing.
    """
    xs, ys = _axis(xs, "xs"), _axis(ys, "ys")
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu" and not (lab.dtype.kind == "f" and np.all(lab == np.round(lab))):
        raise DataError(f"labels must be integers (−1 = unassigned); got dtype {lab.dtype}")
    lab = _grid2d(lab, "labels", xs, ys, np.int64)
    if (lab < -1).any():
        raise DataError(f"labels must be ≥ −1 (−1 = unassigned); got minimum {int(lab.min())}")
    Figure = figure_class()

    found = np.unique(lab[lab >= 0])
    pal = _palette(len(found))
    rgb = np.empty((*lab.shape, 3), np.float64)
    rgb[:] = _UNASSIGNED_GREY
    for c, lbl in zip(pal, found):
        rgb[lab == lbl] = c

    fig = Figure(figsize=(5.0, 4.2), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.imshow(rgb, origin="lower", extent=_extent(xs, ys), interpolation="nearest", aspect="auto")
    from matplotlib.patches import Patch  # lazy: optional extra matplotlib (flowcore[analysis])

    handles = [Patch(color=c, label=f"attractor {int(lbl)}") for c, lbl in list(zip(pal, found))[:20]]
    if (lab == -1).any():
        handles.append(Patch(color=_UNASSIGNED_GREY, label="unassigned (−1)"))
    if handles:
        fig.legend(handles=handles, loc="outside right center", fontsize=7)
    ax.set_xlabel("plane x")
    ax.set_ylabel("plane y")
    ax.set_title(title or "basins of attraction", fontsize=9)
    return png_bytes(fig), _csv(["x", "y", "label"], _grid_rows(xs, ys, lab.tolist()))


def steps_heatmap(xs: Any, ys: Any, steps: Any, *, title: str = "") -> tuple[bytes, str]:
    """Heatmap of the number of iterations each grid start needed to converge.

    Parameters
    ----------
    xs : array-like of shape (n_x,), float
        Increasing plane x coordinates.
    ys : array-like of shape (n_y,), float
        Increasing plane y coordinates.
    steps : array-like of shape (n_y, n_x), int or float
        Steps to converge (lower = faster); negative or NaN values (did not converge) are
        left blank.
    title : str

    Returns
    -------
    png : bytes
    csv : str
        Columns ``x,y,steps``, one row per grid point (y-major), values as given.

    Raises
    ------
    DataError
        Shapes that disagree. BackendError: matplotlib missing.
    """
    xs, ys = _axis(xs, "xs"), _axis(ys, "ys")
    raw = np.asarray(steps)
    if raw.dtype.kind not in "iuf":
        raise DataError(f"steps must be numeric; got dtype {raw.dtype}")
    raw = _grid2d(raw, "steps", xs, ys, raw.dtype)
    Figure = figure_class()

    shown = raw.astype(np.float64)
    shown = np.ma.masked_where(~np.isfinite(shown) | (shown < 0), shown)
    fig = Figure(figsize=(5.0, 4.2), dpi=100, layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(shown, origin="lower", extent=_extent(xs, ys), interpolation="nearest", aspect="auto",
                   cmap="viridis")
    fig.colorbar(im, ax=ax, label="steps to converge")
    ax.set_xlabel("plane x")
    ax.set_ylabel("plane y")
    ax.set_title(title or "steps to converge", fontsize=9)
    return png_bytes(fig), _csv(["x", "y", "steps"], _grid_rows(xs, ys, raw.tolist()))
