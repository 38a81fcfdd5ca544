"""Stability of fixed points without autodiff: batched central finite differences.

For B points z* and latent size k, all B·2k perturbed states ``z* ± h e_i`` go through the
fused latent map in one batched ONNX Runtime call (chunked by attractors when large), giving
``J_f(z*)[:, i] ≈ (f(z* + h e_i) − f(z* − h e_i)) / 2h``. Reported per point: the spectral
radius max|λ| (J is not symmetric: eigenvalues may be complex), the spectral norm ‖J‖₂
(ρ ≤ ‖J‖₂; an attractor can expand in single steps), and ``stable`` = ρ < 1 (paper Def. 2).

The rate bound (paper Prop. A.9/A.10) predicts how many steps a start at distance e_0 needs:
with step_t ≈ (1 − ρ) ρ^(t−1) e_0 and the stop ``step_t² < tol``,
``T ≈ 1 + log(√tol / ((1 − ρ) e_0)) / log ρ``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowcore.errors import DataError
from flowcore.results import Array, Result

__all__ = ["Stability", "stability", "predicted_steps", "jacobians"]


def predicted_steps(rho: Any, e0: Any, tol: float) -> np.ndarray:
    """Steps the rate bound predicts for the stop ``‖z_t − z_{t−1}‖² < tol``.

    Parameters
    ----------
    rho : array-like
        Contraction rate (spectral radius) in (0, 1).
    e0 : array-like
        Initial distance ‖z_0 − z*‖.

    Returns
    -------
    ndarray of float64 — NaN where rho ∉ (0, 1).
    """
    rho = np.asarray(rho, np.float64)
    e0 = np.asarray(e0, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = 1.0 + np.log(np.sqrt(tol) / ((1.0 - rho) * e0)) / np.log(rho)
    t = np.where((rho > 0) & (rho < 1), np.maximum(t, 1.0), np.nan)
    return t


def jacobians(lmap, points: Any, *, h: float = 1e-3, relative: bool = True, max_rows: int = 65536) -> np.ndarray:
    """Central-difference Jacobians of f at ``points``.

    Parameters
    ----------
    lmap : LatentMap
    points : array-like of shape (B, *latent_shape) or (B, k)
    h : float, default 1e-3
        Step; with ``relative`` it is ``h · max(1, RMS coordinate of the point)``.
    max_rows : int
        Most perturbed rows sent per ONNX Runtime call (B·2k rows are chunked by points).

    Returns
    -------
    ndarray of shape (B, k, k), float64 — J[b, i, j] = ∂f_i/∂z_j at point b.
    """
    pts = lmap.check_latents(points, "points").reshape(len(np.asarray(points)), -1).astype(np.float64)
    b, k = pts.shape
    if not np.all(np.isfinite(pts)):
        raise DataError("points contain NaN or Inf")
    hs = np.full(b, float(h))
    if relative:
        hs *= np.maximum(1.0, np.sqrt(np.mean(pts**2, axis=1)))
    out = np.empty((b, k, k))
    per = max(1, int(max_rows) // (2 * k))
    eye = np.eye(k)
    for s in range(0, b, per):
        p = pts[s : s + per]
        hh = hs[s : s + per]
        plus = p[:, None, :] + hh[:, None, None] * eye[None]  # (c, k, k): row j = p + h e_j
        minus = p[:, None, :] - hh[:, None, None] * eye[None]
        batch = np.concatenate([plus, minus], axis=1).reshape(-1, k).astype(np.float32)
        f = lmap(batch.reshape(len(batch), *lmap.latent_shape), batch_size=len(batch)).reshape(len(p), 2 * k, k)
        f = f.astype(np.float64)
        # the step actually taken, after rounding the perturbed points to float32: (c, k)
        b3 = batch.reshape(len(p), 2 * k, k).astype(np.float64)
        taken = np.einsum("cjj->cj", b3[:, :k]) - np.einsum("cjj->cj", b3[:, k:])
        # f[:, j] = f(p + h e_j); column j of J is (f(p + h e_j) − f(p − h e_j)) / (actual 2h)
        out[s : s + per] = np.transpose((f[:, :k] - f[:, k:]) / taken[:, :, None], (0, 2, 1))
    return out


@dataclass(frozen=True)
class Stability(Result):
    """Linear stability of B points.

    Attributes
    ----------
    points : ndarray of shape (B, k), float32
    spectral_radius : ndarray of shape (B,), float64 — max |λ(J_f)|
    spectral_norm : ndarray of shape (B,), float64 — ‖J_f‖₂
    stable : ndarray of shape (B,), bool — spectral_radius < 1
    eigenvalues : ndarray of shape (B, k), complex128 — sorted by decreasing modulus
    fixed_point_residual : ndarray of shape (B,), float64 — ‖f(z*) − z*‖
    settings : dict — h, relative, scheme

    Saved as ``stability.npz`` + ``stability.json`` (:class:`flowcore.results.Result`; the
    Jacobians are not saved).
    """

    points: np.ndarray
    spectral_radius: np.ndarray
    spectral_norm: np.ndarray
    stable: np.ndarray
    eigenvalues: np.ndarray
    fixed_point_residual: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)
    jacobians: np.ndarray | None = field(default=None, repr=False)

    kind: ClassVar[str] = "stability"
    schema: ClassVar[dict[str, Array]] = {
        "points": Array("f", 2, dims=("b", "k")),
        "spectral_radius": Array("f", 1, dims=("b",)),
        "spectral_norm": Array("f", 1, dims=("b",)),
        "stable": Array("b", 1, dims=("b",)),
        "eigenvalues_real": Array("f", 2, dims=("b", "k")),
        "eigenvalues_imag": Array("f", 2, dims=("b", "k")),
        "fixed_point_residual": Array("f", 1, dims=("b",)),
    }

    def labels(self) -> list[str]:
        return ["stable" if s else "unstable" for s in self.stable]

    def summary(self) -> dict[str, Any]:
        return {
            "n_points": len(self.points),
            "n_stable": int(self.stable.sum()),
            "spectral_radius": self.spectral_radius.tolist(),
            "spectral_norm": self.spectral_norm.tolist(),
            "label": self.labels(),
            "fixed_point_residual": self.fixed_point_residual.tolist(),
            "settings": dict(self.settings),
        }

    def to_json(self) -> dict[str, Any]:
        return self.summary()

    def _arrays(self) -> dict[str, np.ndarray]:
        return dict(points=self.points, spectral_radius=self.spectral_radius, spectral_norm=self.spectral_norm,
                    stable=self.stable, eigenvalues_real=self.eigenvalues.real,
                    eigenvalues_imag=self.eigenvalues.imag, fixed_point_residual=self.fixed_point_residual)

    @classmethod
    def _from_files(cls, a: dict[str, np.ndarray], meta: dict[str, Any], folder: Path) -> "Stability":
        if a["eigenvalues_real"].shape != a["eigenvalues_imag"].shape:
            raise DataError(f"{folder / 'stability.npz'}: field 'eigenvalues_imag' has shape {a['eigenvalues_imag'].shape}, "
                            f"'eigenvalues_real' {a['eigenvalues_real'].shape}")
        return cls(points=a["points"], spectral_radius=a["spectral_radius"], spectral_norm=a["spectral_norm"],
                   stable=a["stable"], eigenvalues=a["eigenvalues_real"] + 1j * a["eigenvalues_imag"],
                   fixed_point_residual=a["fixed_point_residual"], settings=meta.get("settings", {}))


def stability(lmap, points: Any, *, h: float = 1e-3, relative: bool = True, keep_jacobians: bool = False) -> Stability:
    """Spectral radius, spectral norm and stable/unstable label of f at each point.

    Parameters
    ----------
    lmap : LatentMap
    points : array-like of shape (B, *latent_shape) or (B, k)
        Usually attractor centres or representatives.
    h, relative : see :func:`jacobians`.
    keep_jacobians : bool
        Keep the (B, k, k) Jacobians in the result.
    """
    pts = lmap.check_latents(points, "points")
    b = len(pts)
    flat = pts.reshape(b, -1)
    k = flat.shape[1]
    if b == 0:
        empty = np.empty(0)
        return Stability(points=flat, spectral_radius=empty, spectral_norm=empty, stable=np.empty(0, bool),
                         eigenvalues=np.empty((0, k), complex), fixed_point_residual=empty,
                         settings={"h": h, "relative": relative, "scheme": "central differences"})
    J = jacobians(lmap, pts, h=h, relative=relative)
    eig = np.linalg.eigvals(J)
    order = np.argsort(-np.abs(eig), axis=1)
    eig = np.take_along_axis(eig, order, axis=1)
    radius = np.abs(eig[:, 0])
    norm = np.linalg.norm(J, ord=2, axis=(1, 2))
    resid = np.linalg.norm(lmap(pts).reshape(b, -1).astype(np.float64) - flat, axis=1)
    return Stability(points=flat.astype(np.float32), spectral_radius=radius, spectral_norm=norm, stable=radius < 1.0,
                     eigenvalues=eig, fixed_point_residual=resid,
                     settings={"h": h, "relative": relative, "scheme": "central differences", "rows_per_point": 2 * k},
                     jacobians=J if keep_jacobians else None)


def rate_check(attractors, traj, stab: Stability) -> list[dict[str, Any]]:
    """Measured vs rate-bound-predicted steps for each stable attractor's basin.

    Uses the spectral radius as the rate and e_0 = ‖z_0 − z*‖ for each converged start of the
    basin (the bound is loosest far from z*; paper Fig. 11). Needs ``traj.starts``.
    """
    if traj.starts is None:
        raise DataError("trajectories carry no starts; re-run iterate (it keeps them) to compare with the bound")
    tol = float(traj.settings.get("tol", 1e-6))
    starts = traj.starts.reshape(len(traj.starts), -1).astype(np.float64)
    rows = []
    for g in range(len(stab.points)):
        members = np.flatnonzero(attractors.labels == g)
        entry: dict[str, Any] = {"attractor": g, "basin": int(len(members)), "rho": float(stab.spectral_radius[g]),
                                 "measured_median_steps": float(np.median(traj.steps[members])) if len(members) else None,
                                 "predicted_median_steps": None}
        if len(members) and stab.stable[g]:
            e0 = np.linalg.norm(starts[members] - stab.points[g].astype(np.float64), axis=1)
            pred = predicted_steps(stab.spectral_radius[g], np.maximum(e0, 1e-30), tol)
            entry["predicted_median_steps"] = float(np.nanmedian(pred))
        rows.append(entry)
    return rows
