"""``--ray [ADDRESS]`` on ``trajectories``, ``attractors`` and ``ood score``: the CLI side of :mod:`flowcore.distributed`.

``--ray`` alone starts a local Ray cluster for the run (all CPUs of this machine) and stops it at
the end; ``--ray ADDRESS`` joins a running cluster (``auto``, ``ray://host:10001``, ``host:6379``)
and only disconnects. ``--ray-actors N`` sets the pool (default: the cluster's CPUs // threads);
``--threads`` is ONNX Runtime's intra-op threads per actor (default 1). Without ``--ray`` nothing
imports Ray. Results, ``--out`` folders and ``--resume`` are those of one process; a missing Ray
is one line, ``error: --ray needs the ray extra: pip install 'flowcore[ray]'`` (exit 4).
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any, Iterator

from flowcore.cli._args import number

__all__ = ["add_ray", "ray_session", "ray_iterate", "ray_score", "LOCAL"]

LOCAL = "local"  # the value of a bare --ray: start a local cluster


def add_ray(p: argparse.ArgumentParser) -> None:
    """Declare ``--ray [ADDRESS]`` and ``--ray-actors N``."""
    p.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                   help="run the chunks on Ray actors (needs flowcore[ray]): alone, a local cluster on this machine; "
                        "with ADDRESS, a running cluster (auto, ray://HOST:10001); results as one process "
                        "(default: one process, Ray not imported)")
    number(p, "--ray-actors", default=None, metavar="N",
           help="actors in the Ray pool, each with its own ONNX Runtime session (default: the cluster's CPUs / threads)")


def _options(args: argparse.Namespace):
    from flowcore.distributed import RayOptions  # lazy: only a --ray run needs it

    return RayOptions(actors=getattr(args, "ray_actors", None), threads=int(getattr(args, "threads", None) or 1))


@contextlib.contextmanager
def ray_session(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Connect for one command: a local cluster started here is shut down after it; a joined one is left running."""
    from flowcore.distributed import connect_ray  # lazy: only a --ray run needs it

    info = connect_ray(None if args.ray == LOCAL else args.ray)
    try:
        yield info
    finally:
        if info["started"]:
            import ray  # lazy: the ray extra, already imported by connect

            ray.shutdown()


def ray_iterate(args: argparse.Namespace, lmap, z0, **kwargs):
    """``iterate`` for ``trajectories`` / ``attractors`` with ``--ray``: same keywords, chunks on the actors."""
    from flowcore.distributed import iterate_ray  # lazy: only a --ray run needs it

    with ray_session(args) as info:
        traj = iterate_ray(lmap, z0, ray_options=_options(args), **kwargs)
    traj.settings["ray"]["address"] = info["address"]
    return traj


def ray_score(args: argparse.Namespace, det, x, *, method: str, all_methods: bool):
    """``ood score`` with ``--ray``: (scores per method, run info)."""
    from flowcore.distributed import score_ray  # lazy: only a --ray run needs it

    with ray_session(args) as session:
        scores, info = score_ray(args.detector, x, method=method, all_methods=all_methods,
                                 providers=args.device, ray_options=_options(args), detector=det)
    return scores, {**info, "address": session["address"]}
