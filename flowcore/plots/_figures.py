"""Figures of the latent dynamics: field streamlines, basin and steps maps, decoded attractors, curves.

Every figure function returns ``(png_bytes, csv_text)``: the PNG image and the CSV of exactly
the data drawn (floats written with ``repr``, so they parse back bit-exact). :func:`save_figure`
writes both next to each other, atomically.

matplotlib is imported inside the functions, never at import time, and only matplotlib's
``Figure`` with an Agg canvas is used (no pyplot), so the caller's backend is never switched.
A missing matplotlib raises :class:`~flowcore.errors.BackendError` with one line naming
``pip install 'flowcore[analysis]'``.

Examples
--------
>>> from flowcore.dynamics.field import field_grid                      # doctest: +SKIP
>>> from flowcore.plots._figures import field_plot, save_figure         # doctest: +SKIP
>>> png, csv = field_plot(field_grid(lmap, n=32), title="epoch 10")   # doctest: +SKIP
>>> save_figure(png, csv, "figs", "field_epoch10")              # doctest: +SKIP
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from flowcore.errors import BackendError, DataError
from flowcore.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "field_plot",
    "project_to_plane",
    "basin_map",
    "steps_heatmap",
    "decoded_grid",
    "curves",
    "save_figure",
    "figure_class",
    "png_bytes",
    "csv_cell",
]

_UNASSIGNED_GREY = (0.6, 0.6, 0.6)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def figure_class():
    """matplotlib's ``Figure`` (Agg canvas, no pyplot), or one-line BackendError."""
    try:
        from matplotlib.figure import Figure  # noqa: PLC0415
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401, PLC0415
    except ImportError:
        raise BackendError("flowcore figures need matplotlib, which is not installed: "
                           "pip install 'flowcore[analysis]'") from None
    return Figure


def png_bytes(fig) -> bytes:
    """PNG of a Figure drawn on an Agg canvas (dpi 100)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def csv_cell(v: Any) -> str:
    """One CSV cell: floats as ``repr`` (exact round trip), strings quoted when needed."""
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (np.integer,)):
        return str(int(v))
    v = str(v)
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n\r') else v


def _csv(header: list[str], rows) -> str:
    lines = [",".join(csv_cell(h) for h in header)]
    lines += [",".join(csv_cell(c) for c in row) for row in rows]
    return "\n".join(lines) + "\n"


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


# --------------------------------------------------------------------------------------------
# field
# --------------------------------------------------------------------------------------------

def project_to_plane(points: Any, origin: Any, basis: Any) -> np.ndarray:
    """Coordinates of latent points in the plane of a field grid.

    Parameters
    ----------
    points : array-like of shape (M, k) or (M, *latent_shape), float
        Latent points (e.g. attractors); trailing axes are flattened to k.
    origin : array-like of shape (k,), float
        Plane origin (``FieldGrid.origin``).
    basis : array-like of shape (2, k), float
        Orthonormal rows spanning the plane (``FieldGrid.basis``).

    Returns
    -------
    ndarray of shape (M, 2), float64
        ``(points − origin) @ basisᵀ``: the orthogonal projection's plane coordinates.

    Raises
    ------
    DataError
        When the shapes disagree.
    """
    basis = np.asarray(basis, np.float64)
    if basis.ndim != 2 or basis.shape[0] != 2:
        raise DataError(f"basis must have shape (2, k); got {basis.shape}")
    k = basis.shape[1]
    origin = np.asarray(origin, np.float64).reshape(-1)
    if origin.shape != (k,):
        raise DataError(f"origin must have shape ({k},) to match the basis; got {origin.shape}")
    pts = np.asarray(points, np.float64)
    if pts.ndim == 0:
        raise DataError("points must have shape (M, k); got a scalar")
    pts = pts.reshape(len(pts), -1) if pts.ndim > 1 else pts.reshape(1, -1) if pts.size == k else pts
    if pts.ndim != 2 or pts.shape[1] != k:
        raise DataError(f"points must have shape (M, {k}); got {np.asarray(points).shape}")
    return (pts - origin) @ basis.T


def field_plot(grid: Any, *, attractors: Any = None, title: str = "") -> tuple[bytes, str]:
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
    title : str
        Axes title.

    Returns
    -------
    png : bytes
    csv : str
        Columns ``kind,x,y,u,v,speed``: one ``grid`` row per grid point (y-major, row i of the
        arrays then column j), then one ``attractor`` row per attractor with empty u, v, speed.

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
    Figure = figure_class()

    fig = Figure(figsize=(5.0, 4.2), dpi=100, layout="constrained")
    ax = fig.subplots()
    finite = np.isfinite(u) & np.isfinite(v) & np.isfinite(speed)
    if finite.any():
        uu, vv = np.where(finite, u, 0.0), np.where(finite, v, 0.0)
        sp = np.where(finite, speed, np.nan)
        lo, hi = float(np.nanmin(sp)), float(np.nanmax(sp))
        from matplotlib.colors import Normalize  # noqa: PLC0415

        norm = Normalize(lo, hi if hi > lo else lo + 1e-12)
        sm = ax.streamplot(xs, ys, uu, vv, color=np.where(finite, speed, lo), cmap="viridis", norm=norm,
                           density=1.2, linewidth=0.8, arrowsize=0.8)
        fig.colorbar(sm.lines, ax=ax, label="‖V‖ = ‖f(z) − z‖")
    if att is not None and len(att):
        ax.scatter(att[:, 0], att[:, 1], marker="x", s=50, c="red", linewidths=2, zorder=5, label="attractors")
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
    return png_bytes(fig), _csv(["kind", "x", "y", "u", "v", "speed"], rows)


# --------------------------------------------------------------------------------------------
# basin / steps maps
# --------------------------------------------------------------------------------------------

def _palette(n: int) -> np.ndarray:
    from matplotlib import colormaps  # noqa: PLC0415

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
    from matplotlib.patches import Patch  # noqa: PLC0415

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


# --------------------------------------------------------------------------------------------
# decoded attractors
# --------------------------------------------------------------------------------------------

def _as_image(img: np.ndarray, what: str) -> np.ndarray:
    """One image to (H, W) greyscale or (H, W, 3|4) colour, float64."""
    a = np.asarray(img, np.float64)
    if a.ndim == 1:
        n = a.size
        s = math.isqrt(n)
        if s * s == n:
            return a.reshape(s, s)
        s3 = math.isqrt(n // 3)
        if n % 3 == 0 and s3 * s3 * 3 == n:
            return a.reshape(3, s3, s3).transpose(1, 2, 0)
        raise DataError(f"{what}: a flat image needs a square side (n = s² or 3·s²); got n = {n}")
    if a.ndim == 2:
        return a
    if a.ndim == 3:
        if a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
            a = a.transpose(1, 2, 0)  # (C, H, W) → (H, W, C)
        elif a.shape[-1] not in (1, 3, 4):
            raise DataError(f"{what}: image shape {a.shape} is neither (C, H, W) nor (H, W, C) with C in 1, 3, 4")
        return a[..., 0] if a.shape[-1] == 1 else a
    raise DataError(f"{what}: images must be (C, H, W), (H, W, C), (H, W) or flat; got shape {a.shape}")


def _display(img: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Values in [0, 1] shown as is; other ranges min–max scaled (per image)."""
    finite = img[np.isfinite(img)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if lo >= 0.0 and hi <= 1.0:
        lo, hi = 0.0, 1.0
    elif hi <= lo:
        hi = lo + 1.0
    return np.clip((np.nan_to_num(img, nan=lo) - lo) / (hi - lo), 0.0, 1.0), lo, hi


def decoded_grid(decoded: Any, nearest: Any = None, cosines: Any = None, *, title: str = "",
                 ncols: int | None = None) -> tuple[bytes, str]:
    """Image grid of decoded attractors, each beside its nearest training image.

    Parameters
    ----------
    decoded : array-like of shape (K, *input_shape), float
        D(z*) for K attractors. ``input_shape`` is (C, H, W), (H, W, C), (H, W) or flat (n,)
        with n = s² (greyscale s×s) or n = 3·s² (read as (3, s, s)). One channel is drawn grey.
        Values in [0, 1] are shown as is; any other range is min–max scaled per image.
    nearest : array-like of shape (K, *input_shape), float, optional
        The nearest training image of each attractor, drawn to its right.
    cosines : array-like of shape (K,), float, optional
        Cosine similarity of each pair (higher = closer to a training image, i.e. more
        memorised), shown in the attractor's title.
    title : str
        Figure title.
    ncols : int, optional
        Attractors per row (default 8 alone, 4 pairs with ``nearest``).

    Returns
    -------
    png : bytes
    csv : str
        Columns ``index,role,cosine,p0,…,p{n−1}``: one ``decoded`` row per attractor and, with
        ``nearest``, one ``nearest`` row right after it; the pixels are the given image flattened
        in C order (the input values, not the display scaling); ``cosine`` is empty without
        ``cosines``.

    Raises
    ------
    DataError
        Shapes that disagree. BackendError: matplotlib missing.
    """
    dec = np.asarray(decoded, np.float64)
    if dec.ndim < 2 or len(dec) == 0:
        raise DataError(f"decoded must have shape (K, *input_shape) with K ≥ 1; got {dec.shape}")
    K = len(dec)
    near = None
    if nearest is not None:
        near = np.asarray(nearest, np.float64)
        if near.shape != dec.shape:
            raise DataError(f"nearest must have the shape of decoded {dec.shape}; got {near.shape}")
    cos = None
    if cosines is not None:
        cos = np.asarray(cosines, np.float64).reshape(-1)
        if cos.shape != (K,):
            raise DataError(f"cosines must have shape ({K},); got {np.asarray(cosines).shape}")
    if ncols is None:
        ncols = 8 if near is None else 4
    if ncols < 1:
        raise DataError(f"ncols must be ≥ 1; got {ncols}")
    imgs_d = [_as_image(d, "decoded") for d in dec]
    imgs_n = [_as_image(n, "nearest") for n in near] if near is not None else None
    Figure = figure_class()

    per = 2 if near is not None else 1
    c = min(ncols, K)
    nr = math.ceil(K / c)
    fig = Figure(figsize=(1.3 * c * per + 0.2, 1.45 * nr + (0.3 if title else 0.0)), dpi=100,
                 layout="constrained")
    axes = fig.subplots(nr, c * per, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for i in range(K):
        r, col = divmod(i, c)
        pairs = [(imgs_d[i], f"attr {i}" if cos is None else f"attr {i}  cos {cos[i]:.3f}")]
        if imgs_n is not None:
            pairs.append((imgs_n[i], "nearest"))
        for p, (img, label) in enumerate(pairs):
            ax = axes[r, col * per + p]
            shown, _, _ = _display(img)
            if shown.ndim == 2:
                ax.imshow(shown, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(shown, interpolation="nearest")
            ax.set_title(label, fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)

    n_pix = dec[0].size
    header = ["index", "role", "cosine", *(f"p{j}" for j in range(n_pix))]
    rows = []
    for i in range(K):
        cv = "" if cos is None else float(cos[i])
        rows.append((i, "decoded", cv, *dec[i].ravel().tolist()))
        if near is not None:
            rows.append((i, "nearest", cv, *near[i].ravel().tolist()))
    return png_bytes(fig), _csv(header, rows)


# --------------------------------------------------------------------------------------------
# curves
# --------------------------------------------------------------------------------------------

def _null_locator():
    from matplotlib.ticker import NullLocator  # noqa: PLC0415

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
    from matplotlib import colormaps  # noqa: PLC0415

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


# --------------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------------

def save_figure(png: bytes, csv: str, out_dir: str | os.PathLike, stem: str) -> tuple[Path, Path]:
    """Write ``<out_dir>/<stem>.png`` and ``<out_dir>/<stem>.csv`` atomically.

    Parameters
    ----------
    png : bytes
        PNG image (as returned by the figure functions).
    csv : str
        The CSV text of the data drawn.
    out_dir : path-like
        Directory, created when missing.
    stem : str
        File name without extension; no path separators.

    Returns
    -------
    (Path, Path)
        The PNG and CSV paths written.

    Raises
    ------
    DataError
        A stem that is empty or contains a path separator, or a ``png`` that is not PNG bytes.
    """
    if not stem or any(s in stem for s in ("/", "\\", os.sep)) or stem in (".", ".."):
        raise DataError(f"stem must be a plain file name without separators; got {stem!r}")
    if not isinstance(png, (bytes, bytearray)) or not bytes(png[:8]) == b"\x89PNG\r\n\x1a\n":
        raise DataError("png must be the PNG bytes a flowcore.plots figure returns")
    out = Path(out_dir)
    p = atomic_write_bytes(out / f"{stem}.png", bytes(png))
    c = atomic_write_text(out / f"{stem}.csv", csv)
    return p, c
