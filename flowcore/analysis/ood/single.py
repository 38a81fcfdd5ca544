"""One-method detectors: :class:`OODDetector` with its ``methods`` fixed to one scorer.

:class:`TrajectoryDetector` is the paper's score alone; :class:`FeatureDetector` the two-sided
trajectory-feature detector alone. Same parameters, shapes and persistence as :class:`OODDetector`.
"""

from __future__ import annotations

from flowcore.analysis.ood.detector import OODDetector

__all__ = ["TrajectoryDetector", "FeatureDetector"]

class TrajectoryDetector(OODDetector):
    """The paper's detector alone: ``decision_function`` = mean distance to the nearest ID attractor.

    Same parameters as :class:`OODDetector` (``methods`` fixed to ``("trajectory",)``).
    """

    def __init__(self, bundle, **kwargs):
        kwargs.setdefault("methods", ("trajectory",))
        kwargs.setdefault("default", "trajectory")
        super().__init__(bundle, **kwargs)


class FeatureDetector(OODDetector):
    """The two-sided trajectory-feature detector alone (``method="mahalanobis"`` or ``"knn"``)."""

    def __init__(self, bundle, *, method: str = "mahalanobis", **kwargs):
        name = "features" if method == "mahalanobis" else "features_knn"
        kwargs.setdefault("methods", (name,))
        kwargs.setdefault("default", name)
        super().__init__(bundle, **kwargs)
        self.method = method
