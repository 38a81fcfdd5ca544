"""Will the N-row results fit? The size check :func:`flowcore.dynamics.trajectories.iterate` runs first.

Starts stream chunk by chunk (:mod:`flowcore.dynamics.starts`), so what grows with N is only the
N-row result arrays: the final states, the starts kept beside them, steps, status and last step²,
the feature columns when asked for, and the recorded paths. :func:`result_bytes` estimates their
size and :func:`check_result_memory` refuses, before anything is allocated, a run whose results
alone cannot fit in the memory available now.

Available memory is :func:`flowcore.runtime.host_memory.available_memory` (``MemAvailable``, lowered
to the room under a cgroup limit); where it is not known the check is skipped.
"""

from __future__ import annotations

from typing import Sequence

from flowcore.errors import ParameterError
from flowcore.runtime.host_memory import available_memory  # re-exported: where the checks read it

__all__ = ["available_memory", "result_bytes", "check_result_memory", "format_bytes"]

_FEATURE_COLUMNS, _DISTANCE_COLUMNS = 6, 5


def result_bytes(n: int, latent_shape: Sequence[int], *, keep_starts: bool = True, record_every: int | None = None,
                 features: bool = False, reference: bool = False) -> int:
    """Bytes of the N-row result arrays of :func:`~flowcore.dynamics.trajectories.iterate`.

    Parameters
    ----------
    n : int — starts (any size: Python integers, no overflow)
    latent_shape : sequence of int
    keep_starts : bool, default True — the starts are allocated as a result array (a lazy start source)
    record_every : int, optional — paths are counted at their smallest, two states per row
        (the start and the stop) plus the record lists they are assembled from
    features, reference : bool — the float64 feature columns (and the distance columns)

    Returns
    -------
    int
    """
    k = 1
    for d in latent_shape:
        k *= int(d)
    per_row = 4 * k + 4 + 1 + 4  # final, steps, status, last_step_sq
    if keep_starts:
        per_row += 4 * k
    if features or reference:
        per_row += 8 * (_FEATURE_COLUMNS + (_DISTANCE_COLUMNS if reference else 0))
    if record_every:
        per_row += 2 * (2 * (4 * k + 4) + 2 * (8 + 4))  # path + path_steps, and the records assembled into them
    return int(n) * per_row


def format_bytes(b: int) -> str:
    """``b`` bytes as a short human string (``"41.0 GB"``)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if b >= size:
            return f"{b / size:.1f} {unit}"
    return f"{b / 1e3:.1f} kB"


def check_result_memory(n: int, latent_shape: Sequence[int], *, keep_starts: bool = True,
                        record_every: int | None = None, features: bool = False, reference: bool = False,
                        available: int | None = None, what: str | None = None) -> int:
    """Refuse, in one line, a run whose N-row results cannot fit in the available memory.

    Parameters
    ----------
    n, latent_shape, keep_starts, record_every, features, reference
        As :func:`result_bytes`.
    available : int, optional
        Bytes available (default: :func:`available_memory`; None there skips the check).
    what : str, optional
        Names the start set at the head of the message (e.g. ``"--noise 1000000000"``).

    Returns
    -------
    int
        The estimated bytes.

    Raises
    ------
    ParameterError
        The estimate exceeds the available memory; the message names the fix (fewer starts, and
        no ``record_every`` when paths are recorded) — the batch size does not change it.
    """
    need = result_bytes(n, latent_shape, keep_starts=keep_starts, record_every=record_every,
                        features=features, reference=reference)
    if available is None:
        available = available_memory()
    if available is not None and need > available:
        parts = "final states, starts, steps, status" + (", paths" if record_every else "") + \
            (", features" if features or reference else "")
        fix = "use fewer starts (run the start set in parts)" + \
            (", or record no paths (drop --record-every / record_every)" if record_every else "")
        raise ParameterError(f"{what + ': ' if what else ''}{n} starts need at least {format_bytes(need)} for their results ({parts}), "
                             f"but {format_bytes(available)} of memory is available; {fix}")
    return need
