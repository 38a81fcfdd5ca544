"""The dynamics layer: trajectories of f, the vector field, grouping into attractors, stability, features.

Each Numba kernel sits beside its wrapper (``_*_kernel.py``) with a plain NumPy ``*_ref``.
"""

from flowcore.dynamics.attractors import Attractors, find_attractors
from flowcore.dynamics.field import FieldGrid, field_grid, pca_plane, project_to_plane, vector_field
from flowcore.dynamics.field_map import FieldMap, field_map
from flowcore.dynamics.grouping import group_points
from flowcore.dynamics.grouping_rules import GroupByCosine, GroupByDistance, GroupingRule
from flowcore.dynamics.iterate_options import IterateOptions
from flowcore.dynamics.stability import Stability, stability
from flowcore.dynamics.trajectories import CONVERGED, DIVERGED, MAX_STEPS, STATUS_NAMES, STOP_RULES, Trajectories, iterate

__all__ = ["Attractors", "find_attractors", "FieldGrid", "field_grid", "vector_field", "FieldMap", "field_map",
           "pca_plane", "project_to_plane", "group_points",
           "GroupingRule", "GroupByCosine", "GroupByDistance",
           "Stability", "stability", "Trajectories", "iterate", "IterateOptions", "CONVERGED", "MAX_STEPS", "DIVERGED", "STATUS_NAMES", "STOP_RULES"]
