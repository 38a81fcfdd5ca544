"""The latent vector field V(z) = f(z) − z, at points and on a 2-D grid.

For k = 2 the grid lies in the latent plane itself. For k > 2 the grid lies in a plane through
``origin`` spanned by two orthonormal ``basis`` vectors (e.g. the top-2 PCA directions of data
latents) and V is projected onto that plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowcore.errors import DataError, ParameterError
from flowcore.results import Array, Result

__all__ = ["vector_field", "FieldGrid", "field_grid"]


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
