"""Grouping rules: how :func:`flowcore.dynamics.attractors.find_attractors` decides that two endpoints are one attractor.

Mapping ≠ grouping (Attractors.jl's ``GroupingConfig``): :func:`flowcore.dynamics.trajectories.iterate`
maps starts to endpoints, and a grouping rule — a small frozen config — labels the endpoints.

- :class:`GroupByCosine` — the paper's rule: the same attractor when cos > threshold (0.99).
- :class:`GroupByDistance` — Euclidean: the same attractor when ‖a − b‖ ≤ threshold, the
  threshold optionally relative to the RMS norm of the endpoints.

Both are exact single linkage at their tolerance (the Numba kernel behind
:func:`flowcore.dynamics.grouping.group_points`) and validate their parameters when built.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

import numpy as np

from flowcore.dynamics.grouping import group_points
from flowcore.errors import ParameterError
from flowcore.validation import Interval, validate_params

__all__ = ["GroupingRule", "GroupByCosine", "GroupByDistance", "grouping_from_settings"]


class GroupingRule:
    """Base of the grouping rules passed to :func:`~flowcore.dynamics.attractors.find_attractors`.

    To add one, implement ``group(points)`` — label the endpoints, ``ndarray of shape (N, k)`` in,
    ``ndarray of shape (N,), int64`` out, groups numbered 0.. in order of first appearance — and
    ``settings()`` — a dict with the keys every saved count carries: ``metric`` (str),
    ``threshold`` (float) and ``relative`` (bool, or None where it does not apply). Make it a
    frozen dataclass that checks its fields against ``_parameter_constraints`` in
    ``__post_init__`` (see :func:`flowcore.validation.validate_params`).
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {}

    def __post_init__(self) -> None:
        validate_params(self._parameter_constraints, self.__dict__, caller=type(self).__name__)

    def group(self, points: Any) -> np.ndarray:  # pragma: no cover - abstract
        """Labels of ``points`` (N, k): ndarray of shape (N,), int64, first appearance order."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """``{"metric": str, "threshold": float, "relative": bool or None}``."""
        raise NotImplementedError


@dataclass(frozen=True)
class GroupByCosine(GroupingRule):
    """Same attractor when the cosine of two endpoints exceeds ``threshold`` (paper: 0.99).

    Parameters
    ----------
    threshold : float in [-1, 1), default 0.99
        Link when cos(a, b) > threshold. Zero endpoints (no direction) form a group of their own.

    Examples
    --------
    >>> GroupByCosine(0.99).settings()
    {'metric': 'cosine', 'threshold': 0.99, 'relative': None}
    """

    threshold: float = 0.99
    _parameter_constraints: ClassVar[dict[str, list]] = {"threshold": [Interval(float, -1.0, 1.0, closed="left")]}

    def group(self, points: Any) -> np.ndarray:
        return group_points(points, metric="cosine", threshold=float(self.threshold))

    def settings(self) -> dict[str, Any]:
        return {"metric": "cosine", "threshold": float(self.threshold), "relative": None}


@dataclass(frozen=True)
class GroupByDistance(GroupingRule):
    """Same attractor when the Euclidean distance of two endpoints is at most the tolerance.

    Parameters
    ----------
    threshold : float ≥ 0, default 1e-3
        The tolerance; with ``relative`` it is multiplied by RMS‖z‖ of the endpoints grouped.
    relative : bool, default False
        Scale-free tolerance (stays sensible when there is a single group).

    Examples
    --------
    >>> GroupByDistance(1e-3, relative=True).settings()
    {'metric': 'euclidean', 'threshold': 0.001, 'relative': True}
    """

    threshold: float = 1e-3
    _: KW_ONLY
    relative: bool = False
    _parameter_constraints: ClassVar[dict[str, list]] = {"threshold": [Interval(float, 0.0, None)],
                                                         "relative": [bool]}

    def group(self, points: Any) -> np.ndarray:
        return group_points(points, metric="euclidean", threshold=float(self.threshold), relative=bool(self.relative))

    def settings(self) -> dict[str, Any]:
        return {"metric": "euclidean", "threshold": float(self.threshold), "relative": bool(self.relative)}


def grouping_from_settings(metric: str = "cosine", threshold: float | None = None,
                           relative: bool = False) -> GroupingRule:
    """The rule for the older ``metric=``/``threshold=``/``relative=`` keywords.

    Parameters
    ----------
    metric : {"cosine", "euclidean"}
    threshold : float, optional
        Default 0.99 for cosine, 1e-3 for euclidean.
    relative : bool
        euclidean only (ignored for cosine, as it always was).

    Raises
    ------
    ParameterError
        An unknown metric or a threshold out of range.
    """
    if metric == "cosine":
        return GroupByCosine(0.99 if threshold is None else threshold)
    if metric == "euclidean":
        return GroupByDistance(1e-3 if threshold is None else threshold, relative=relative)
    raise ParameterError(f"unknown metric {metric!r}; expected 'cosine' or 'euclidean'")
