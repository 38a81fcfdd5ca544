"""The latent vector field V(z) = f(z) − z, at points and on a 2-D grid.

For k = 2 the grid lies in the latent plane itself. For k > 2 the grid lies in a plane through
``origin`` spanned by two orthonormal ``basis`` vectors (e.g. the top-2 PCA directions of data
latents, :func:`pca_plane`) and V is projected onto that plane; :func:`project_to_plane` gives
plane coordinates of any latent points. :func:`flowcore.dynamics.field_map.field_map` chooses the
plane and a window that contains the data and the attractors, and adds the grid's basins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowcore.errors import DataError, ParameterError
from flowcore.results import Array, Result

__all__ = ["vector_field", "FieldGrid", "field_grid", "project_to_plane", "pca_plane"]


def vector_field(lmap, z: Any, *, batch_size: int = 4096) -> np.ndarray:
    """V(z) = f(z) − z.

    Parameters
    ----------
    lmap : LatentMap
    z : array-like of shape (N, *latent_shape) or (N, k)

    Returns
    -------
    ndarray of shape (N, *latent_shape), float32
    """
    return lmap.field(z, batch_size=batch_size)


@dataclass(frozen=True)
class FieldGrid(Result):
    """V sampled on an n×n grid of a latent plane.

    Attributes
    ----------
    xs, ys : ndarray of shape (n,), float64
        Plane coordinates of the grid lines.
    u, v : ndarray of shape (n, n), float32
        Field components in the plane (row = y index, column = x index, as matplotlib expects).
    speed : ndarray of shape (n, n), float32
        ‖V‖ in full latent space (not only its in-plane part).
    origin : ndarray of shape (k,), float32
    basis : ndarray of shape (2, k), float32
        Orthonormal rows spanning the plane.
    settings : dict
        xlim, ylim, n, batch_size, providers.

    Saved as ``field_grid.npz`` + ``field_grid.json`` (:class:`flowcore.results.Result`).
    """

    xs: np.ndarray
    ys: np.ndarray
    u: np.ndarray
    v: np.ndarray
    speed: np.ndarray
    origin: np.ndarray
    basis: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    kind: ClassVar[str] = "field_grid"
    schema: ClassVar[dict[str, Array]] = {
        "xs": Array("f", 1, dims=("nx",)),
        "ys": Array("f", 1, dims=("ny",)),
        "u": Array("f", 2, dims=("ny", "nx")),
        "v": Array("f", 2, dims=("ny", "nx")),
        "speed": Array("f", 2, dims=("ny", "nx")),
        "origin": Array("f", 1, dims=("k",)),
        "basis": Array("f", 2, dims=("plane", "k")),
    }
    _NAMES: ClassVar[tuple[str, ...]] = ("xs", "ys", "u", "v", "speed", "origin", "basis")

    def to_json(self) -> dict[str, Any]:
        """Grid size, speed range, plane and settings (plain JSON)."""
        return {"n": [len(self.ys), len(self.xs)], "latent_dim": int(len(self.origin)),
                "speed_min": float(self.speed.min()) if self.speed.size else None,
                "speed_max": float(self.speed.max()) if self.speed.size else None,
                "settings": dict(self.settings)}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self._NAMES}

    @classmethod
    def _from_files(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], folder: Path) -> "FieldGrid":
        if len(arrays["basis"]) != 2:
            raise DataError(f"{folder / 'field_grid.npz'}: field 'basis' has {len(arrays['basis'])} rows, expected 2")
        return cls(**{k: arrays[k] for k in cls._NAMES}, settings=meta.get("settings", {}))


def field_grid(
    lmap,
    *,
    xlim: tuple[float, float] = (-8.0, 8.0),
    ylim: tuple[float, float] = (-8.0, 8.0),
    n: int = 64,
    origin: Any = None,
    basis: Any = None,
    batch_size: int = 4096,
) -> FieldGrid:
    """Sample V on an ``n``×``n`` grid of a latent plane.

    Parameters
    ----------
    lmap : LatentMap
    xlim, ylim : (float, float)
        Plane-coordinate ranges (the paper's Fig. 1 uses U[−8, 8]²).
    n : int
        Points per axis.
    origin : array-like of shape (k,), optional
        Plane origin (default 0).
    basis : array-like of shape (2, k), optional
        Two directions spanning the plane; orthonormalised here. Required when k > 2.
    """
    k = lmap.latent_dim
    if n < 2:
        raise ParameterError(f"grid needs n >= 2, got {n}")
    if basis is None:
        if k != 2:
            raise DataError(f"latent dimension is {k}; give a 2×{k} basis (e.g. top-2 PCA directions) for the plane")
        basis = np.eye(2)
    basis = np.asarray(basis, np.float64)
    if basis.shape != (2, k):
        raise DataError(f"basis must have shape (2, {k}); got {basis.shape}")
    q, r = np.linalg.qr(basis.T)
    if np.min(np.abs(np.diag(r))) < 1e-12:
        raise DataError("basis vectors are linearly dependent")
    q = q * np.sign(np.diag(r))  # keep the given directions' orientation
    basis = q.T
    origin = np.zeros(k) if origin is None else np.asarray(origin, np.float64).reshape(k)
    xs = np.linspace(*xlim, n)
    ys = np.linspace(*ylim, n)
    gx, gy = np.meshgrid(xs, ys)
    pts = origin + gx.reshape(-1, 1) * basis[0] + gy.reshape(-1, 1) * basis[1]
    vfield = lmap.field(pts.astype(np.float32), batch_size=batch_size).reshape(len(pts), k).astype(np.float64)
    u = (vfield @ basis[0]).reshape(n, n)
    v = (vfield @ basis[1]).reshape(n, n)
    speed = np.linalg.norm(vfield, axis=1).reshape(n, n)
    providers = getattr(lmap, "providers", None)
    settings = {"xlim": [float(x) for x in xlim], "ylim": [float(y) for y in ylim], "n": int(n),
                "batch_size": int(batch_size), "providers": list(providers) if providers is not None else None}
    return FieldGrid(xs=xs, ys=ys, u=u.astype(np.float32), v=v.astype(np.float32), speed=speed.astype(np.float32),
                     origin=origin.astype(np.float32), basis=basis.astype(np.float32), settings=settings)


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


def pca_plane(z: Any) -> tuple[np.ndarray, np.ndarray]:
    """The top-2 PCA plane of latent points: their mean and the two leading principal directions.

    Parameters
    ----------
    z : array-like of shape (N, k) or (N, *latent_shape), float, N ≥ 2, k ≥ 2
        Latent points, e.g. ``data_starts(lmap, x)``; trailing axes are flattened to k.

    Returns
    -------
    origin : ndarray of shape (k,), float64
        The mean of ``z``.
    basis : ndarray of shape (2, k), float64
        Orthonormal rows: the right singular vectors of the centred points with the two largest
        singular values (``field_grid(lmap, origin=origin, basis=basis)``).

    Raises
    ------
    DataError
        Fewer than 2 points, k < 2, or non-finite values.
    """
    z = np.asarray(z, np.float64)
    z = z.reshape(len(z), -1) if z.ndim >= 1 else z
    if z.ndim != 2 or len(z) < 2 or z.shape[1] < 2:
        raise DataError(f"the PCA plane needs at least 2 latent points of dimension >= 2; got shape {z.shape}")
    if not np.isfinite(z).all():
        raise DataError("the PCA plane needs finite latent points; got NaN or Inf")
    origin = z.mean(0)
    _, _, vt = np.linalg.svd(z - origin, full_matrices=False)
    return origin, vt[:2]
