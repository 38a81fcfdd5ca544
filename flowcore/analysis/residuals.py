"""The residual-norm diagnostic: ‖z_{t+1} − z_t‖ and ‖z_t‖ per step, without storing trajectories.

For starts z_0 of shape (N, *latent_shape) and ``steps`` = T applications of f = E∘D, returns
per start and per step t = 0 … T−1 the step norm ‖f(z_t) − z_t‖ and the state norm ‖z_t‖
(float64, Euclidean over the flattened latent), plus per-step median and quartiles over starts.
Only the current batch's latents are held: memory is O(batch · k + N · T), never N · T · k.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowcore.errors import DataError
from flowcore.results import Array, Result

__all__ = ["ResidualReport", "residual_norms"]

_QUARTILES = (25.0, 50.0, 75.0)


@dataclass(frozen=True)
class ResidualReport(Result):
    """Per-start, per-step norms of one run of f.

    Attributes
    ----------
    step_norm : ndarray of shape (N, T), float64
        ‖z_{t+1} − z_t‖ for t = 0 … T−1.
    state_norm : ndarray of shape (N, T), float64
        ‖z_t‖ for t = 0 … T−1 (the norm of the state the step starts from).
    latent_shape : tuple of int
    settings : dict
        ``steps``, ``batch_size`` and how the starts were made (free-form, from the caller).
    """

    step_norm: np.ndarray
    state_norm: np.ndarray
    latent_shape: tuple[int, ...]
    settings: dict[str, Any]

    kind: ClassVar[str] = "residuals"
    version: ClassVar[int] = 1
    title: ClassVar[str] = "a residual-norm report"
    schema: ClassVar[dict[str, Array]] = {
        "step_norm": Array("f", ndim=2, dims=("n", "t")),
        "state_norm": Array("f", ndim=2, dims=("n", "t")),
    }

    @property
    def n(self) -> int:
        return int(self.step_norm.shape[0])

    @property
    def steps(self) -> int:
        return int(self.step_norm.shape[1])

    def quartiles(self, which: str = "step_norm") -> np.ndarray:
        """ndarray of shape (3, T), float64: the 25th, 50th and 75th percentile over starts per step."""
        a = getattr(self, which)
        if a.shape[0] == 0:
            return np.full((3, a.shape[1]), np.nan)
        return np.percentile(a, _QUARTILES, axis=0)

    def summary(self, at: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
        """One row per reported step (default: 0, 1, T/10, T/2, T−1, deduplicated): median and quartiles."""
        t_last = self.steps - 1
        ts = sorted({t for t in (at or (0, 1, t_last // 10, t_last // 2, t_last)) if 0 <= t <= t_last})
        sq, nq = self.quartiles("step_norm"), self.quartiles("state_norm")
        return [{"step": t, "step_norm_q25": float(sq[0, t]), "step_norm_median": float(sq[1, t]),
                 "step_norm_q75": float(sq[2, t]), "state_norm_q25": float(nq[0, t]),
                 "state_norm_median": float(nq[1, t]), "state_norm_q75": float(nq[2, t])} for t in ts]

    def to_json(self) -> dict[str, Any]:
        """n, steps, latent shape, the summary rows and the settings."""
        return {"n": self.n, "steps": self.steps, "latent_dim": int(np.prod(self.latent_shape, dtype=np.int64)),
                "latent_shape": list(self.latent_shape), "summary": self.summary(), "settings": dict(self.settings)}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"step_norm": self.step_norm, "state_norm": self.state_norm}

    @classmethod
    def _from_files(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], folder: Path) -> "ResidualReport":
        return cls(step_norm=arrays["step_norm"], state_norm=arrays["state_norm"],
                   latent_shape=tuple(int(s) for s in meta["latent_shape"]), settings=dict(meta["settings"]))


def residual_norms(lmap, z0: Any, steps: int, *, batch_size: int = 1024,
                   settings: dict[str, Any] | None = None) -> ResidualReport:
    """Iterate f from ``z0`` for ``steps`` steps, keeping only the norms.

    Parameters
    ----------
    lmap : LatentMap
        Needs ``check_latents`` (→ float32 (N, *latent_shape)), ``latent_shape`` and ``__call__`` (f).
    z0 : array-like of shape (N, *latent_shape) or (N, k)
        The starts.
    steps : int ≥ 1
        T, the number of applications of f.
    batch_size : int ≥ 1, default 1024
        Starts iterated together (each batch runs all T steps before the next starts).
    settings : dict, optional
        Stored as given (how the starts were made).

    Returns
    -------
    ResidualReport
        ``step_norm`` and ``state_norm``, ndarray of shape (N, T), float64.
    """
    if int(steps) < 1:
        raise DataError(f"steps must be >= 1, got {steps}")
    if int(batch_size) < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    steps, batch_size = int(steps), int(batch_size)
    z0 = lmap.check_latents(z0, "starts")
    if not np.all(np.isfinite(z0)):
        raise DataError("starts hold NaN or infinite values")
    n = len(z0)
    step_norm = np.empty((n, steps), np.float64)
    state_norm = np.empty((n, steps), np.float64)
    for i in range(0, n, batch_size):
        z = z0[i: i + batch_size]
        flat = z.reshape(len(z), -1).astype(np.float64)  # each state converted once: this step's z_next is the next z
        for t in range(steps):
            z_next = lmap(z, batch_size=len(z))
            flat_next = z_next.reshape(len(z), -1).astype(np.float64)
            state_norm[i: i + len(z), t] = np.linalg.norm(flat, axis=1)
            step_norm[i: i + len(z), t] = np.linalg.norm(flat_next - flat, axis=1)
            z, flat = z_next, flat_next
    return ResidualReport(step_norm=step_norm, state_norm=state_norm, latent_shape=tuple(lmap.latent_shape),
                          settings={"steps": steps, "batch_size": batch_size, "norm": "Euclidean, float64",
                                    **(settings or {})})
