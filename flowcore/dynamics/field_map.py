"""The field map: V on a window of a latent plane that contains the data and the attractors, with basins.

:func:`field_map` is the picture ``flowcore field`` draws, as data: the plane (the latent plane
for k = 2, the top-2 PCA plane of the data latents for k > 2), a window fitted to the starts and
their attractors with a margin (or given), V on an n×n grid of it
(:func:`~flowcore.dynamics.field.field_grid`), and the attractor and step count of every grid
start (:class:`FieldMap`), with counts of what lies inside the window.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowcore.dynamics.attractors import find_attractors
from flowcore.dynamics.field import FieldGrid, field_grid, pca_plane, project_to_plane
from flowcore.dynamics.grouping_rules import GroupByDistance
from flowcore.dynamics.iterate_options import IterateOptions
from flowcore.dynamics.starts import data_starts, noise_starts
from flowcore.dynamics.trajectories import CONVERGED, DIVERGED, Trajectories, iterate
from flowcore.errors import DataError, FlowcoreWarning, ParameterError
from flowcore.results import Array, Result
from flowcore.validation import Interval, validate_params

__all__ = ["FieldMap", "field_map", "GROUPING"]

def _inside(points: np.ndarray, xlim, ylim) -> np.ndarray:
    return ((points[:, 0] >= xlim[0]) & (points[:, 0] <= xlim[1])
            & (points[:, 1] >= ylim[0]) & (points[:, 1] <= ylim[1]))


def _window(points: np.ndarray, margin: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Bounding box of (M, 2) plane points widened by ``margin`` × its span on each side."""
    lims = []
    for lo, hi in zip(points.min(0), points.max(0)):
        span = float(hi - lo)
        if span <= 0:  # one point (or a line): a window of width 2 * max(1, |coordinate|) around it
            span = max(1.0, abs(float(lo)))
            lo, hi = lo - span / 2, hi + span / 2
        lims.append((float(lo - margin * span), float(hi + margin * span)))
    return lims[0], lims[1]


def _window_pair(window: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        (x0, x1), (y0, y1) = window
        x0, x1, y0, y1 = float(x0), float(x1), float(y0), float(y1)
    except (TypeError, ValueError):
        raise ParameterError(f"field_map: window must be ((x_min, x_max), (y_min, y_max)), got {window!r}") from None
    if not all(np.isfinite([x0, x1, y0, y1])) or x0 >= x1 or y0 >= y1:
        raise ParameterError(f"field_map: window must be finite with x_min < x_max and y_min < y_max, got {window!r}")
    return (x0, x1), (y0, y1)


@dataclass(frozen=True)
class FieldMap(Result):
    """The field of f on a window of a latent plane, with the basin of every grid start.

    Attributes
    ----------
    xs, ys, u, v, speed, origin, basis :
        The grid, as in :class:`FieldGrid` (``grid`` gives that object): ``xs`` (nx,), ``ys`` (ny,)
        float64; ``u``, ``v``, ``speed`` (ny, nx) float32; ``origin`` (k,), ``basis`` (2, k) float32.
    labels : ndarray of shape (ny, nx), int64
        Attractor reached from each grid start; −1 when it did not converge.
    steps : ndarray of shape (ny, nx), int64
        Applications of f until each grid start converged; −1 when it did not.
    attractors : ndarray of shape (M, k), float32
        Centres of the attractors reached from the starts and from the grid, grouped together
        (largest basin first), so ``labels`` and ``point_labels`` name the same attractors.
    attractors_plane : ndarray of shape (M, 2), float64
        Their plane coordinates (:func:`project_to_plane`).
    points_plane : ndarray of shape (N, 2), float64
        Plane coordinates of the starts: the data latents, or the N(0, I) starts when no data.
    point_labels : ndarray of shape (N,), int64
        Attractor reached from each start; −1 when it did not converge.
    settings : dict
        ``xlim``, ``ylim``, ``window`` (where they came from), ``margin``, ``plane``, ``starts``
        (kind, count, seed), ``grouping``, ``status_counts`` (grid and starts), ``n``, ``engine``,
        ``providers``.

    Saved as ``field_map.npz`` + ``field_map.json`` (:class:`flowcore.results.Result`).
    """

    xs: np.ndarray
    ys: np.ndarray
    u: np.ndarray
    v: np.ndarray
    speed: np.ndarray
    origin: np.ndarray
    basis: np.ndarray
    labels: np.ndarray
    steps: np.ndarray
    attractors: np.ndarray
    attractors_plane: np.ndarray
    points_plane: np.ndarray
    point_labels: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    kind: ClassVar[str] = "field_map"
    schema: ClassVar[dict[str, Array]] = {
        **FieldGrid.schema,
        "labels": Array("iu", 2, dims=("ny", "nx")),
        "steps": Array("iu", 2, dims=("ny", "nx")),
        "attractors": Array("f", 2, dims=("m", "k")),
        "attractors_plane": Array("f", 2, dims=("m", "plane")),
        "points_plane": Array("f", 2, dims=("points", "plane")),
        "point_labels": Array("iu", 1, dims=("points",)),
    }
    _NAMES: ClassVar[tuple[str, ...]] = (*FieldGrid._NAMES, "labels", "steps", "attractors", "attractors_plane",
                                         "points_plane", "point_labels")

    @property
    def grid(self) -> FieldGrid:
        """The field part alone, as :func:`field_grid` returns it."""
        keep = ("xlim", "ylim", "n", "batch_size", "providers")
        return FieldGrid(**{k: getattr(self, k) for k in FieldGrid._NAMES},
                         settings={k: self.settings[k] for k in keep if k in self.settings})

    @property
    def n_attractors(self) -> int:
        return len(self.attractors)

    @property
    def attractors_inside(self) -> int:
        """How many attractors lie inside the window (closed box)."""
        return int(_inside(self.attractors_plane, self.settings["xlim"], self.settings["ylim"]).sum())

    @property
    def points_inside(self) -> int:
        """How many starts (data latents or noise starts) lie inside the window."""
        return int(_inside(self.points_plane, self.settings["xlim"], self.settings["ylim"]).sum())

    @property
    def basin_fractions(self) -> np.ndarray:
        """ndarray of shape (M,), float64: share of the grid starts reaching each attractor."""
        return np.bincount(self.labels[self.labels >= 0].ravel(), minlength=self.n_attractors) / max(self.labels.size, 1)

    def to_json(self) -> dict[str, Any]:
        """The window and where it came from, what lies inside it, the attractors, speeds and settings."""
        return {"n": [len(self.ys), len(self.xs)], "latent_dim": int(len(self.origin)),
                "xlim": list(self.settings["xlim"]), "ylim": list(self.settings["ylim"]),
                "window": self.settings.get("window"),
                "n_attractors": self.n_attractors, "attractors_inside": self.attractors_inside,
                "n_points": len(self.points_plane), "points_inside": self.points_inside,
                "speed_min": float(np.nanmin(self.speed)) if np.isfinite(self.speed).any() else None,
                "speed_max": float(np.nanmax(self.speed)) if np.isfinite(self.speed).any() else None,
                "attractors_plane": self.attractors_plane.tolist(), "basin_fractions": self.basin_fractions.tolist(),
                "settings": dict(self.settings)}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self._NAMES}

    @classmethod
    def _from_files(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], folder: Path) -> "FieldMap":
        if len(arrays["basis"]) != 2:
            raise DataError(f"{folder / 'field_map.npz'}: field 'basis' has {len(arrays['basis'])} rows, expected 2")
        settings = meta.get("settings", {})
        for key in ("xlim", "ylim"):
            if not (isinstance(settings.get(key), list) and len(settings[key]) == 2):
                raise DataError(f"{folder / 'field_map.json'}: settings.{key} must be [min, max]")
        if arrays["labels"].max(initial=-1) >= len(arrays["attractors"]):
            raise DataError(f"{folder / 'field_map.npz'}: field 'labels' names attractor "
                            f"{int(arrays['labels'].max())} but there are {len(arrays['attractors'])}")
        return cls(**{k: arrays[k] for k in cls._NAMES}, settings=settings)


def _ends(run: Trajectories, origin: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Plane coordinates (M, 2) of the finite endpoints of the rows that did not diverge."""
    keep = (run.status != DIVERGED) & np.isfinite(run.flat_final).all(1)
    return project_to_plane(run.flat_final[keep], origin, basis)


_ROUNDS = 4  # most windows tried: each adds the grid endpoints that left the previous one

_MAP_CONSTRAINTS = {
    "n": [Interval(int, 2, None)],
    "margin": [Interval(float, 0.0, None)],
    "n_noise": [Interval(int, 1, None)],
    "seed": [Interval(int, 0, None)],
}

GROUPING = "euclidean <= 1e-3 x RMS norm of the endpoints"


def field_map(
    lmap,
    *,
    data: Any = None,
    n: int = 48,
    window: Any = None,
    margin: float = 0.1,
    n_noise: int = 1000,
    seed: int = 0,
    engine: str = "auto",
    progress: bool | None = None,
) -> FieldMap:
    """V on a window of a latent plane that contains the data and the attractors, with grid basins.

    The starts are the data latents ``E(data)`` or, without data, ``n_noise`` N(0, I) latents
    (seed ``seed``). The plane is the latent plane for k = 2 and the top-2 PCA plane of the data
    latents for k > 2 (:func:`pca_plane`). The starts are iterated to their endpoints; unless
    ``window`` is given, the window is the bounding box, in the plane, of the starts and of their
    endpoints (diverged rows left out) widened by ``margin`` × its span on each side. V is sampled
    on an ``n``×``n`` grid of the window (:func:`field_grid`) and every grid point is iterated too;
    when a grid start ends outside the window (an attractor the starts did not reach), the window
    is widened to hold that endpoint and the grid sampled again (at most 4 windows). The endpoints
    of the starts and of the grid are grouped together into attractors
    (``GroupByDistance(1e-3, relative=True)``).

    Parameters
    ----------
    lmap : LatentMap
    data : array-like of shape (N, *input_shape), optional
        Inputs whose latents are the starts (and, for k > 2, define the plane). Required when k > 2.
    n : int ≥ 2, default 48
        Grid points per axis.
    window : ((float, float), (float, float)), optional
        ``((x_min, x_max), (y_min, y_max))`` in plane coordinates. Default: from the data and the
        endpoints, as above. A window that leaves starts or attractors outside is reported in
        ``settings`` and warned about (:class:`~flowcore.errors.FlowcoreWarning`).
    margin : float ≥ 0, default 0.1
        Share of the span added on each side of the default window.
    n_noise : int ≥ 1, default 1000
        N(0, I) starts when ``data`` is None.
    seed : int ≥ 0, default 0
        Seed of the noise starts.
    engine : str, default "auto"
        Trajectory engine (:func:`iterate`); every engine gives the same results.
    progress : bool, optional
        Progress bars of the iterations (default: when stderr is a terminal).

    Returns
    -------
    FieldMap
        Grid, field, basin labels and steps (ny, nx), the attractors (M, k) and their plane
        coordinates (M, 2), the starts' plane coordinates (N, 2), and in ``settings`` the window
        (``xlim``, ``ylim``, ``window`` = ``"from data + attractors, 10 % margin"`` or ``"given"``).
        ``attractors_inside`` and ``points_inside`` count what lies inside the window.

    Raises
    ------
    ParameterError
        Bad ``n``, ``margin``, ``n_noise``, ``seed`` or ``window``.
    DataError
        k > 2 without ``data``, fewer than 2 data rows, or data that does not fit the encoder.

    Examples
    --------
    >>> fm = flowcore.field_map(lmap, data=x_test)                       # doctest: +SKIP
    >>> fm.settings["xlim"], fm.attractors_inside, fm.n_attractors       # doctest: +SKIP
    """
    validate_params(_MAP_CONSTRAINTS, {"n": n, "margin": float(margin) if isinstance(margin, int) else margin,
                                       "n_noise": n_noise, "seed": seed}, caller="field_map")
    given = None if window is None else _window_pair(window)
    k = lmap.latent_dim
    if data is not None:
        z = data_starts(lmap, data).reshape(-1, k)
        starts = {"kind": "data", "n": int(len(z))}
    else:
        if k > 2:
            raise DataError(f"the latent dimension is {k}: pass data (field_map(data=...), flowcore field --data FILE): the plane drawn is the top-2 PCA plane of its latents")
        z = noise_starts(lmap.latent_shape, int(n_noise), seed=int(seed)).reshape(-1, k)
        starts = {"kind": "noise", "n": int(n_noise), "seed": int(seed)}
    if k > 2:
        origin, basis = pca_plane(z)
        plane = "top-2 PCA plane of the data latents"
    else:
        origin, basis = np.zeros(2), np.eye(2)
        plane = "latent plane"
    opts = IterateOptions(engine=engine)
    run = iterate(lmap, z.astype(np.float32), progress=progress, options=opts)
    points = project_to_plane(z, origin, basis)
    if window is None:
        box = np.concatenate([points, _ends(run, origin, basis)])
        box = box[np.isfinite(box).all(1)]
        if not len(box):
            raise DataError("field_map: every start latent and endpoint is NaN or Inf; give a window")
        source = f"from {'data' if data is not None else 'noise starts'} + attractors, {100 * float(margin):g} % margin"
    else:
        (xlim, ylim), source = given, "given"
    for _ in range(_ROUNDS):
        if window is None:
            xlim, ylim = _window(box, float(margin))
        grid = field_grid(lmap, xlim=xlim, ylim=ylim, n=n, origin=origin, basis=basis)
        gx, gy = np.meshgrid(grid.xs, grid.ys)
        pts = grid.origin.astype(np.float64) + gx.reshape(-1, 1) * grid.basis[0] + gy.reshape(-1, 1) * grid.basis[1]
        grun = iterate(lmap, pts.astype(np.float32), progress=progress, options=opts)
        if window is not None:
            break
        gends = _ends(grun, origin, basis)
        away = gends[~_inside(gends, xlim, ylim)]
        if not len(away):  # the grid's own attractors are inside too
            break
        box = np.concatenate([box, away])  # a grid start flowed out of the window: widen it and sample again
    both = Trajectories(final=np.concatenate([run.final, grun.final]), steps=np.concatenate([run.steps, grun.steps]),
                        status=np.concatenate([run.status, grun.status]),
                        last_step_sq=np.concatenate([run.last_step_sq, grun.last_step_sq]),
                        settings=dict(grun.settings, n_starts=len(run) + len(grun)))
    att = find_attractors(both, grouping=GroupByDistance(1e-3, relative=True))
    centres = att.centres.reshape(att.n_attractors, k)
    providers = getattr(lmap, "providers", None)
    settings = {**grid.settings, "window": source, "margin": float(margin) if window is None else None,
                "plane": plane, "starts": starts, "grouping": GROUPING, "engine": engine,
                "status_counts": {"grid": grun.counts(), "starts": run.counts()},
                "providers": list(providers) if providers is not None else None}
    fm = FieldMap(**{name: getattr(grid, name) for name in FieldGrid._NAMES},
                  labels=att.labels[len(run):].reshape(n, n),
                  steps=np.where(grun.status == CONVERGED, grun.steps, -1).astype(np.int64).reshape(n, n),
                  attractors=centres.astype(np.float32), attractors_plane=project_to_plane(centres, origin, basis),
                  points_plane=points, point_labels=att.labels[:len(run)], settings=settings)
    if window is not None:
        out_a, out_p = fm.n_attractors - fm.attractors_inside, len(points) - fm.points_inside
        if out_a or out_p:
            what = "data latents" if data is not None else "N(0, I) starts"
            warnings.warn(f"the given window x {list(xlim)}, y {list(ylim)} leaves {out_a} of {fm.n_attractors} "
                          f"attractors and {out_p} of {len(points)} {what} outside; leave the window out to fit "
                          "it to them", FlowcoreWarning, stacklevel=2)
    return fm
