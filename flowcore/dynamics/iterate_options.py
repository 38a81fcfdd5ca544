"""How :func:`flowcore.dynamics.trajectories.iterate` runs: engine, chunks, checkpoint (one options object).

The stopping rule and what is computed (``tol``, ``max_steps``, ``norm_limit``, ``record_every``,
features) are keywords of ``iterate``; the settings that change only how the work is driven and
that travel together (the engine and its options, chunks of starts, the checkpoint of completed
chunks) are one validated :class:`IterateOptions`, as ONNX Runtime's ``SessionOptions`` holds a
session's settings. None of them changes a row's result.

``iterate``'s old keywords (``engine=``, ``chunk_size=``, ``checkpoint=``, ``cuda_graph=``,
``segment_steps=``) still work for one release with a
:class:`~flowcore.errors.FlowcoreDeprecationWarning`: :func:`options_from_keywords`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from flowcore.dynamics.checkpointing import ChunkStore
from flowcore.errors import FlowcoreDeprecationWarning, ParameterError
from flowcore.validation import Interval, Options, validate_params

__all__ = ["IterateOptions", "ENGINE_CHOICES", "REMOVED_ENGINES", "options_from_keywords"]

#: The values of ``engine`` (:mod:`flowcore.dynamics.engines`).
ENGINE_CHOICES = ("auto", "python", "iobinding")

#: Engines that existed once → the one line that says so (``engine="segment"`` is refused with it).
REMOVED_ENGINES = {
    "segment": "engine 'segment' was removed (it won no case reliably and lost on small models); "
               "engine 'python' gives the same results: use 'python' or 'auto'",
}

#: ``iterate`` keywords that moved into :class:`IterateOptions` (deprecated, one release).
_MOVED = ("engine", "chunk_size", "checkpoint", "cuda_graph")


@dataclass(frozen=True)
class IterateOptions:
    """How :func:`~flowcore.dynamics.trajectories.iterate` drives ONNX Runtime; never what it computes.

    Parameters
    ----------
    engine : {"auto", "python", "iobinding"}, default "auto"
        How ONNX Runtime is driven (:mod:`flowcore.dynamics.engines`); every engine gives the same
        results. ``iobinding`` records no paths or features (``auto`` then runs ``python``).
        ``Trajectories.settings["engine"]`` names the engine that ran. Case is ignored.
    chunk_size : int, optional
        Iterate the starts in chunks of this many rows, each chunk as its own pass (refill only
        from the chunk), so each chunk's rows depend on nothing outside it. Default: one pass.
    checkpoint : ChunkStore, optional
        Write each completed chunk there and read back the chunks already there
        (:mod:`flowcore.dynamics.checkpointing`); needs ``chunk_size``.
    cuda_graph : bool, default False
        ``iobinding`` engine on CUDA: capture and replay CUDA graphs per batch bucket (``auto``
        then picks ``iobinding``).

    Raises
    ------
    ParameterError
        A value of the wrong type or out of range, a removed engine, a checkpoint without
        ``chunk_size``, ``cuda_graph`` with an engine other than ``iobinding`` or ``auto``.

    Examples
    --------
    >>> opts = IterateOptions(engine="python", chunk_size=10_000)
    >>> opts.chunk_size
    10000
    """

    engine: str = "auto"
    chunk_size: int | None = None
    checkpoint: ChunkStore | None = None
    cuda_graph: bool = False

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "engine": [Options(str, set(ENGINE_CHOICES))],
        "chunk_size": [Interval(int, 1, None), None],
        "checkpoint": [ChunkStore, None],
        "cuda_graph": [bool],
    }

    def __post_init__(self) -> None:
        if isinstance(self.engine, str):
            object.__setattr__(self, "engine", self.engine.lower())
            if self.engine in REMOVED_ENGINES:
                raise ParameterError(REMOVED_ENGINES[self.engine])
        validate_params(self._parameter_constraints, self.as_dict(), caller="IterateOptions")
        object.__setattr__(self, "chunk_size", None if self.chunk_size is None else int(self.chunk_size))
        object.__setattr__(self, "cuda_graph", bool(self.cuda_graph))
        if self.checkpoint is not None and self.chunk_size is None:
            raise ParameterError("IterateOptions: a checkpoint needs a chunk_size")
        if self.cuda_graph and self.engine not in ("iobinding", "auto"):
            raise ParameterError(f"IterateOptions: cuda_graph needs engine 'iobinding', not {self.engine!r}")

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (the checkpoint object itself, not a copy)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def options_from_keywords(options: IterateOptions | None, old: dict[str, Any], *, stacklevel: int = 3) -> IterateOptions:
    """``options`` with ``iterate``'s deprecated keywords ``old`` applied, one warning per keyword.

    Raises
    ------
    TypeError
        A keyword ``iterate`` never had (as Python would).
    ParameterError
        ``options`` not an :class:`IterateOptions`; a keyword given both ways.
    """
    if options is not None and not isinstance(options, IterateOptions):
        raise ParameterError(f"iterate: options must be an IterateOptions, got {type(options).__name__}")
    base = options if options is not None else IterateOptions()
    unknown = sorted(set(old) - {*_MOVED, "segment_steps"})
    if unknown:
        raise TypeError(f"iterate() got an unexpected keyword argument {unknown[0]!r}")
    moved = {}
    for name, value in old.items():
        if name == "segment_steps":
            warnings.warn("iterate(segment_steps=...) is deprecated and has no effect: the segment engine was "
                          "removed; drop the keyword", FlowcoreDeprecationWarning, stacklevel=stacklevel)
            continue
        warnings.warn(f"iterate({name}=...) is deprecated; pass options=flowcore.IterateOptions({name}=...) "
                      "(the keyword goes in the next release)", FlowcoreDeprecationWarning, stacklevel=stacklevel)
        if options is not None and getattr(options, name) != getattr(IterateOptions(), name):
            raise ParameterError(f"iterate: {name} given both as a keyword and in options; pass it in options only")
        moved[name] = value
    return replace(base, **moved) if moved else base
