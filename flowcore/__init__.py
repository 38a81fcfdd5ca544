"""flowcore: a trained autoencoder as a dynamical system on its latent space.

f(z) = E(D(z)); trajectories z_{t+1} = f(z_t); the field V(z) = f(z) − z; its attractors.
Everything runs on ONNX Runtime + NumPy (+ Numba); models come in as FlowBundles exported by
the ``flowcore_torch`` (and ``flowcore_tensorflow``) adapters. This package never imports
torch or tensorflow.

This module is the public API: every name a user needs is importable from ``flowcore`` and
from nowhere else (the sub-packages are private layout; scikit-learn's rule, one public path per
name). Groups:

- model: :class:`FlowBundle`, :class:`LatentMap`; its ONNX graphs: :func:`fuse` (the one graph of f = E∘D),
  :func:`count_subnormals`, :func:`flush_subnormals`
- dynamics: :func:`iterate` (the paper's stopping rules by name: :data:`STOP_RULES`; how it runs: :class:`IterateOptions`) → :class:`Trajectories`; :func:`find_attractors` → :class:`Attractors`
  (grouping rules :class:`GroupByCosine`, :class:`GroupByDistance`); :func:`stability` →
  :class:`Stability`; :func:`vector_field`, :func:`field_grid` → :class:`FieldGrid`;
  :func:`field_map` → :class:`FieldMap` (window fitted to the data, grid basins), :func:`pca_plane`,
  :func:`project_to_plane`;
  start sets :func:`noise_starts`, :func:`data_starts`; the shipped demo model: :func:`demo_paths`
- analyses: :func:`memorization_report` → :class:`MemorizationReport`; :func:`probe` →
  :class:`ProbeReport` (atoms: :func:`noise_dictionary`); :func:`contraction_ratio` → :class:`ContractionReport`;
  :func:`contraction_seeds` → :class:`ContractionSeeds`; :func:`residual_norms` → :class:`ResidualReport`;
  :func:`checkpoint_metrics` → :class:`CheckpointMetrics`; :func:`null_levels`, :func:`rank_at_variance`
- OOD: :class:`OODDetector`, :func:`evaluate` → :class:`OODReport`, :func:`ood_metrics`
- scaling out on Ray (the ``ray`` extra, imported only when called): :func:`connect_ray`, :func:`iterate_ray`
  (same results as :func:`iterate`), :func:`score_ray`, :class:`RayOptions`
- one page per model: :func:`build_report` → :class:`Report`, :func:`render_html` (``flowcore report``)
- errors and warnings: :class:`FlowcoreError` and its subclasses, :class:`FlowcoreWarning` (:class:`FlowcoreDeprecationWarning`)
"""

from flowcore.analysis.checkpoints import CheckpointMetrics, checkpoint_metrics
from flowcore.analysis.contraction import ContractionReport, ContractionSeeds, contraction_ratio, contraction_seeds
from flowcore.analysis.residuals import ResidualReport, residual_norms
from flowcore.analysis.levels import null_levels, rank_at_variance
from flowcore.analysis.memorization import MemorizationReport, memorization_report
from flowcore.analysis.ood import DEFAULT_METHOD, METHODS, OODDetector
from flowcore.analysis.ood.evaluation import OODReport, evaluate
from flowcore.analysis.ood.metrics import ood_metrics
from flowcore.analysis.probing import ProbeReport, noise_dictionary, probe
from flowcore.bundle import FlowBundle
from flowcore.bundle.subnormal import count_subnormals, flush_subnormals
from flowcore.data import demo_paths
from flowcore.distributed import RayOptions, connect_ray, iterate_ray, score_ray
from flowcore.dynamics import (
    CONVERGED,
    DIVERGED,
    MAX_STEPS,
    Attractors,
    FieldGrid,
    FieldMap,
    GroupByCosine,
    GroupByDistance,
    GroupingRule,
    IterateOptions,
    STOP_RULES,
    Stability,
    Trajectories,
    field_grid,
    field_map,
    find_attractors,
    group_points,
    iterate,
    pca_plane,
    project_to_plane,
    stability,
    vector_field,
)
from flowcore.dynamics.starts import data_starts, noise_starts
from flowcore.errors import (
    BackendError,
    BadInputError,
    BundleError,
    DataError,
    ExportError,
    FlowcoreDeprecationWarning,
    FlowcoreError,
    FlowcoreWarning,
    NotFittedError,
    ParameterError,
    ProbeDictionaryWarning,
    ProviderWarning,
)
from flowcore.runtime import LatentMap
from flowcore.runtime.fusion import fuse

from flowcore.report import Report, build_report, render_html  # noqa: E402
from flowcore._version import __version__  # noqa: E402  (one source, read by setuptools)

__all__ = [
    "build_report",
    "render_html",
    "Report",
    "STOP_RULES",
    "RayOptions",
    "connect_ray",
    "iterate_ray",
    "score_ray",
    "fuse",
    "flush_subnormals",
    "count_subnormals",
    "Attractors",
    "BackendError",
    "BadInputError",
    "BundleError",
    "CONVERGED",
    "CheckpointMetrics",
    "ContractionReport",
    "ContractionSeeds",
    "ResidualReport",
    "DEFAULT_METHOD",
    "DIVERGED",
    "DataError",
    "ExportError",
    "FieldGrid",
    "FieldMap",
    "FlowBundle",
    "FlowcoreDeprecationWarning",
    "FlowcoreError",
    "FlowcoreWarning",
    "GroupByCosine",
    "GroupByDistance",
    "GroupingRule",
    "IterateOptions",
    "LatentMap",
    "MAX_STEPS",
    "METHODS",
    "MemorizationReport",
    "NotFittedError",
    "OODDetector",
    "OODReport",
    "ParameterError",
    "ProbeDictionaryWarning",
    "ProbeReport",
    "ProviderWarning",
    "Stability",
    "Trajectories",
    "checkpoint_metrics",
    "contraction_ratio",
    "contraction_seeds",
    "residual_norms",
    "data_starts",
    "demo_paths",
    "evaluate",
    "field_grid",
    "field_map",
    "find_attractors",
    "group_points",
    "iterate",
    "memorization_report",
    "noise_dictionary",
    "noise_starts",
    "null_levels",
    "ood_metrics",
    "pca_plane",
    "probe",
    "project_to_plane",
    "rank_at_variance",
    "stability",
    "vector_field",
]
