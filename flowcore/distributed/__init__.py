"""Trajectories, attractor search and OOD scoring as Ray Data pipelines (``--ray``; issue 22).

Where starts or scoring traffic outgrow one machine, flowcore runs on Ray (the ``flowcore[ray]``
extra), not a scheduler of its own. Nothing here imports Ray until a function is called.

- :func:`connect_ray` — start a local cluster or join one (``"auto"``, ``"ray://host:10001"``);
- :func:`iterate_ray` — ``iterate`` with chunks of starts run by a pool of actors, each holding its
  ONNX Runtime session; equal bit for bit to one process (``settings["ray"]`` says who ran what);
- attractors — :func:`~flowcore.dynamics.attractors.find_attractors` on the gathered endpoints
  (exact; per-worker leader sets do not merge exactly, see :mod:`flowcore.distributed.trajectories`);
- :func:`score_ray` — OOD scores of a detector folder, chunk by chunk on the actors;
- :class:`RayOptions` — actors, threads per actor, one GPU per actor on CUDA runs.
"""

from flowcore.distributed._ray import RAY_MISSING, RayMissingError, connect_ray
from flowcore.distributed.ood import score_ray
from flowcore.distributed.pipeline import RayOptions
from flowcore.distributed.trajectories import iterate_ray

__all__ = ["connect_ray", "iterate_ray", "score_ray", "RayOptions", "RayMissingError", "RAY_MISSING"]
