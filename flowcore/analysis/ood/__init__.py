"""OOD detection: the detector suite, its scorers and baselines, metrics, and evaluation as data.

Scores are higher = more out-of-distribution, everywhere (PyOD's conventions).
"""

from flowcore.analysis.ood.detector import (
    DEFAULT_FEATURES,
    DEFAULT_METHOD,
    METHODS,
    Evidence,
    FeatureScore,
    OODDetector,
    TrajectoryScore,
    make_scorer,
)
from flowcore.analysis.ood.single import FeatureDetector, TrajectoryDetector

__all__ = ["Evidence", "OODDetector", "TrajectoryDetector", "FeatureDetector", "TrajectoryScore",
           "FeatureScore", "METHODS", "DEFAULT_METHOD", "DEFAULT_FEATURES", "make_scorer"]
