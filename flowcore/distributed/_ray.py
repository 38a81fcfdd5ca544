"""The one place flowcore imports Ray (the ``ray`` extra), and the cluster it runs on.

:func:`require_ray` imports ``ray`` and ``ray.data`` or raises :class:`RayMissingError` (one line
naming the extra). :func:`connect_ray` starts a local cluster (``address=None``) or joins one
(``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); a Ray session already open in the process
is used as it is. :func:`actor_pool` spells ``map_batches``' pool of actors in the installed
version's form: ``compute=ActorPoolStrategy(size=n)`` on Ray ≥ 2.51, ``concurrency=n`` before.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flowcore.errors import BackendError

__all__ = ["RayMissingError", "RAY_MISSING", "require_ray", "connect_ray", "actor_pool", "cluster_cpus"]

RAY_MISSING = "--ray needs the ray extra: pip install 'flowcore[ray]'"


class RayMissingError(BackendError):
    """Ray (the ``flowcore[ray]`` extra) is not installed (exit code 4: a missing dependency)."""


def require_ray():
    """The ``ray`` module with ``ray.data`` loaded; :class:`RayMissingError` when the extra is missing."""
    try:
        import ray  # lazy: the ray extra (flowcore[ray]); nothing imports it without --ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayMissingError(RAY_MISSING) from None
    return ray


def connect_ray(address: str | None = None, *, num_cpus: int | None = None,
            object_store_memory: int | None = None) -> dict[str, Any]:
    """Start or join a Ray cluster; returns ``{"address", "started", "cpus", "gpus", "ray"}``.

    Parameters
    ----------
    address : str, optional
        None: a local cluster in this process (``num_cpus`` CPUs, default all); ``"auto"``: the
        cluster ``ray start --head`` runs on this machine; ``"ray://host:10001"``: Ray Client;
        ``"host:6379"``: the head's GCS. A session already open is used as it is.
    num_cpus, object_store_memory : int, optional
        Only for a local cluster this call starts.

    Raises
    ------
    RayMissingError
        Ray is not installed.
    BackendError
        The cluster cannot be reached or started.
    """
    ray = require_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = False
    if not ray.is_initialized():
        _check_reachable(address)
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address is None:
            kwargs.update(num_cpus=num_cpus, object_store_memory=object_store_memory)
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            where = "a local Ray cluster" if address is None else f"the Ray cluster at {address!r}"
            raise BackendError(f"cannot start or reach {where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                               ) from None
        started = True
    _quiet_data(ray)
    res = ray.cluster_resources()
    return {"address": address or "local", "started": started, "cpus": int(res.get("CPU", 0)),
            "gpus": int(res.get("GPU", 0)), "ray": ray.__version__}


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """A ``host:port`` or ``ray://host:port`` address that refuses TCP fails in one line (Ray itself waits minutes)."""
    if address is None or address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise BackendError(f"--ray {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    import socket  # lazy: import cost; only joining a cluster needs it

    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise BackendError(f"cannot reach the Ray cluster at {address!r} ({exc.strerror or type(exc).__name__}); "
                           "start it with `ray start --head`, or check the address") from None


def _quiet_data(ray) -> None:
    """Ray Data's progress bars and per-run INFO lines off: flowcore's commands print their own summary."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1)."""
    return max(1, int(require_ray().cluster_resources().get("CPU", 1)))


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for p in text.split(".")[:3]:
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def actor_pool(n: int) -> dict[str, Any]:
    """``map_batches`` keywords for a pool of ``n`` actors in the installed Ray's spelling."""
    ray = require_ray()
    if _version(ray.__version__) >= (2, 51):
        return {"compute": ray.data.ActorPoolStrategy(size=int(n))}
    return {"concurrency": int(n)}  # Ray 2.9 – 2.50: concurrency= (deprecated from 2.51 on)
