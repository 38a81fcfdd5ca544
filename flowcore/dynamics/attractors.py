"""Attractors: group converged trajectory endpoints into distinct fixed points.

Mapping ≠ grouping: :func:`flowcore.dynamics.trajectories.iterate` maps starts to endpoints with a status
per row; :func:`find_attractors` groups the converged endpoints (paper rule: the same attractor
when cos > 0.99; Euclidean absolute/relative tolerances as options) and returns
:class:`Attractors` with every count carrying the settings that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flowcore.errors import DataError, ParameterError
from flowcore.dynamics.grouping_rules import GroupingRule, grouping_from_settings
from flowcore.results import Array, Result
from flowcore.dynamics.trajectories import CONVERGED, MAX_STEPS, Trajectories

__all__ = ["Attractors", "find_attractors"]


@dataclass(frozen=True)
class Attractors(Result):
    """Distinct attractors reached from a start set.

    Attributes
    ----------
    centres : ndarray of shape (K, *latent_shape), float32
        Mean of each group's endpoints. Groups are numbered by size, largest first.
    representatives : ndarray of shape (K, *latent_shape), float32
        The member endpoint nearest to each mean (an actual point of the map's orbit).
    labels : ndarray of shape (N,), int64
        Attractor of each start; −1 for rows that did not converge (max_steps or diverged).
    counts : ndarray of shape (K,), int64
        Starts per attractor.
    n_starts, n_unassigned : int
        All starts, and those with label −1 (see ``status_counts`` for why).
    status_counts : dict
        converged / max_steps / diverged counts of the trajectories.
    settings : dict
        Grouping metric, threshold, relative flag, plus the trajectory settings (tol, max_steps, …).

    Saved as ``attractors.npz`` + ``attractors.json`` (:class:`flowcore.results.Result`).
    """

    centres: np.ndarray
    representatives: np.ndarray
    labels: np.ndarray
    counts: np.ndarray
    status_counts: dict[str, int]
    settings: dict[str, Any] = field(default_factory=dict)

    kind: ClassVar[str] = "attractors"
    schema: ClassVar[dict[str, Array]] = {
        "centres": Array("f", min_ndim=2, dims=("k",)),
        "representatives": Array("f", min_ndim=2, dims=("k",)),
        "labels": Array("iu", 1, dims=("n",)),
        "counts": Array("iu", 1, dims=("k",)),
    }

    @property
    def n_attractors(self) -> int:
        return len(self.counts)

    @property
    def n_starts(self) -> int:
        return len(self.labels)

    @property
    def n_unassigned(self) -> int:
        return int(np.sum(self.labels < 0))

    @property
    def fractions(self) -> np.ndarray:
        """ndarray of shape (K,), float64: basin fraction, the share of all starts reaching each attractor."""
        return self.counts / max(self.n_starts, 1)

    @property
    def fraction_se(self) -> np.ndarray:
        """ndarray of shape (K,), float64: Bernoulli standard error √(p(1−p)/N) of each fraction."""
        p = self.fractions
        return np.sqrt(p * (1.0 - p) / max(self.n_starts, 1))

    def unassigned_fractions(self) -> dict[str, dict[str, float]]:
        """Share (± s.e.) of starts that ended max_steps or diverged (label −1), reported apart."""
        n = max(self.n_starts, 1)
        out = {}
        for name in ("max_steps", "diverged"):
            p = self.status_counts.get(name, 0) / n
            out[name] = {"fraction": p, "se": float(np.sqrt(p * (1 - p) / n))}
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "n_starts": self.n_starts,
            "n_attractors": self.n_attractors,
            "n_unassigned": self.n_unassigned,
            "status_counts": dict(self.status_counts),
            "counts": self.counts.tolist(),
            "fractions": self.fractions.tolist(),
            "fraction_se": self.fraction_se.tolist(),
            "unassigned": self.unassigned_fractions(),
            "settings": dict(self.settings),
        }

    def to_json(self) -> dict[str, Any]:
        return self.summary()

    def _arrays(self) -> dict[str, np.ndarray]:
        return dict(centres=self.centres, representatives=self.representatives, labels=self.labels,
                    counts=self.counts)

    @classmethod
    def _from_files(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any], folder: Path) -> "Attractors":
        labels, k = arrays["labels"], len(arrays["counts"])
        if len(labels) and labels.max(initial=-1) >= k:
            raise DataError(f"{folder / 'attractors.npz'}: field 'labels' names attractor {int(labels.max())} "
                            f"but there are {k}")
        return cls(centres=arrays["centres"], representatives=arrays["representatives"], labels=labels,
                   counts=arrays["counts"], status_counts=meta.get("status_counts", {}), settings=meta.get("settings", {}))


def find_attractors(
    traj: Trajectories,
    *,
    grouping: GroupingRule | None = None,
    metric: str | None = None,
    threshold: float | None = None,
    relative: bool | None = None,
    include_max_steps: bool = False,
    starts: dict[str, Any] | None = None,
) -> Attractors:
    """Group the converged endpoints of ``traj`` into attractors.

    Parameters
    ----------
    traj : Trajectories
    grouping : GroupingRule, default ``GroupByCosine(0.99)``
        The rule that decides when two endpoints are one attractor
        (:mod:`flowcore.dynamics.grouping_rules`: :class:`GroupByCosine`, :class:`GroupByDistance`).
    metric, threshold, relative :
        The older spelling of ``grouping`` (give one or the other, not both): ``metric`` in
        {"cosine", "euclidean"} (default "cosine"), ``threshold`` (default 0.99, for either
        metric), ``relative`` (euclidean only). ``metric="euclidean", threshold=t,
        relative=r`` is ``GroupByDistance(t, relative=r)``.
    include_max_steps : bool, default False
        Also group rows that hit max_steps (slow rows; not fixed points by the stopping rule).
    starts : dict, optional
        Description of the start set (kind, size, seed, file) recorded in the settings.

    Returns
    -------
    Attractors
        ``settings`` records the rule's ``metric``, ``threshold`` and ``relative``.

    Raises
    ------
    ParameterError
        Both ``grouping`` and the older keywords, a ``grouping`` that is not a rule, or bad values.

    Examples
    --------
    >>> att = find_attractors(traj, grouping=GroupByDistance(1e-3, relative=True))  # doctest: +SKIP
    """
    legacy = {k: v for k, v in (("metric", metric), ("threshold", threshold), ("relative", relative)) if v is not None}
    if grouping is None:
        grouping = grouping_from_settings(legacy.get("metric", "cosine"), legacy.get("threshold", 0.99),
                                          bool(legacy.get("relative", False)))
    elif legacy:
        raise ParameterError(f"find_attractors: give grouping= or {'/'.join(legacy)}=, not both")
    elif not isinstance(grouping, GroupingRule):
        raise ParameterError(f"find_attractors: grouping must be a GroupingRule such as GroupByCosine(0.99), "
                             f"got {grouping!r}")
    keep = traj.status == CONVERGED
    if include_max_steps:
        keep |= traj.status == MAX_STEPS
    pts = traj.flat_final[keep]
    sub = grouping.group(pts)
    n_groups = int(sub.max()) + 1 if len(sub) else 0
    counts = np.bincount(sub, minlength=n_groups).astype(np.int64)
    # renumber by size (largest first), ties by first appearance
    order = np.lexsort((np.arange(n_groups), -counts))
    rank = np.empty(n_groups, np.int64)
    rank[order] = np.arange(n_groups)
    sub = rank[sub]
    counts = counts[order]
    labels = np.full(len(traj), -1, np.int64)
    labels[keep] = sub
    shape = traj.final.shape[1:]
    k = pts.shape[1] if pts.ndim == 2 else int(np.prod(shape))
    centres = np.zeros((n_groups, k), np.float64)
    np.add.at(centres, sub, pts)
    centres /= np.maximum(counts, 1)[:, None]
    # representative: the member nearest its group's mean (one pass, no per-group scan)
    d2 = ((pts - centres[sub]) ** 2).sum(1)
    order_m = np.lexsort((d2, sub))
    first = np.searchsorted(sub[order_m], np.arange(n_groups))
    reps = pts[order_m[first]].astype(np.float32) if n_groups else np.empty((0, k), np.float32)
    settings = {
        "starts": dict(starts) if starts else None,
        **grouping.settings(),
        "include_max_steps": bool(include_max_steps),
        **{f"trajectory_{k_}": v for k_, v in traj.settings.items()},
    }
    return Attractors(
        centres=centres.astype(np.float32).reshape(n_groups, *shape),
        representatives=reps.reshape(n_groups, *shape),
        labels=labels,
        counts=counts,
        status_counts=traj.counts(),
        settings=settings,
    )
