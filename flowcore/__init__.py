"""flowcore: a trained autoencoder as a dynamical system on its latent space.

f(z) = E(D(z)); trajectories z_{t+1} = f(z_t); the field V(z) = f(z) − z; its attractors.
Everything runs on ONNX Runtime + NumPy (+ Numba); models come in as FlowBundles exported by
the ``flowcore_torch`` (and ``flowcore_tensorflow``) adapters. This package never imports
torch or tensorflow.
"""

from flowcore.bundle import FlowBundle
from flowcore.dynamics import (
    CONVERGED,
    DIVERGED,
    MAX_STEPS,
    Attractors,
    FieldGrid,
    GroupByCosine,
    GroupByDistance,
    Trajectories,
    field_grid,
    find_attractors,
    group_points,
    iterate,
    vector_field,
)
from flowcore.errors import (
    BackendError,
    BadInputError,
    BundleError,
    DataError,
    ExportError,
    FlowcoreError,
    FlowcoreWarning,
    NotFittedError,
    ParameterError,
    ProviderWarning,
)
from flowcore.runtime import LatentMap

__version__ = "0.1.0"

__all__ = [
    "Attractors",
    "BackendError",
    "BadInputError",
    "BundleError",
    "CONVERGED",
    "DIVERGED",
    "DataError",
    "ExportError",
    "FieldGrid",
    "FlowBundle",
    "FlowcoreError",
    "FlowcoreWarning",
    "GroupByCosine",
    "GroupByDistance",
    "LatentMap",
    "MAX_STEPS",
    "NotFittedError",
    "ParameterError",
    "ProviderWarning",
    "Trajectories",
    "field_grid",
    "find_attractors",
    "group_points",
    "iterate",
    "vector_field",
]
