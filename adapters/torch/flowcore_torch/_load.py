"""Load saved torch models without unpickling: ExportedProgram (.pt2) and TorchScript (.pt).

A ``torch.save`` pickle (a state dict, a training checkpoint, a pickled module) is recognised
(``_saved.describe_pickle``, ``weights_only`` at most) and refused with one line saying what it
is and what to save instead; a flat ``nn.Sequential`` asked for an ``encoder`` part is refused
with the ``--split-at`` hint and its layers.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from flowcore.errors import ExportError

from ._graph import one_line
from ._saved import describe_pickle
from ._split import is_flat, flat_error

__all__ = ["load_model", "SUFFIXES"]

SUFFIXES = {".pt2": "ExportedProgram", ".pt": "TorchScript", ".ts": "TorchScript", ".jit": "TorchScript",
            ".pth": "TorchScript"}


class FrozenModule(nn.Module):
    """Call a loaded graph module as a plain ``nn.Module``; its train/eval mode is fixed at save time."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor):  # noqa: D102
        return self.module(x)

    def train(self, mode: bool = True) -> "FrozenModule":  # the inner graph has no mode to switch
        self.training = mode
        return self


def _part(module, part: str | None, path: Path, program=None):
    if not part:
        return module
    obj = module
    for name in part.split("."):
        if not hasattr(obj, name):
            if obj is module and is_flat(module, program):
                raise flat_error(path, part, module, program)
            raise ExportError(f"{path} has no submodule {part!r} (missing {name!r})")
        obj = getattr(obj, name)
    return obj


def load_model(path: str | os.PathLike, *, part: str | None = None):
    """Load a saved model (or one named submodule) for :func:`flowcore_torch.export`.

    Parameters
    ----------
    path : path-like
        ``.pt2`` (``torch.export.save``; loaded with ``torch.export.load``) or
        ``.pt``/``.ts``/``.jit``/``.pth`` (``torch.jit.save``; loaded with ``torch.jit.load``).
        Neither unpickles arbitrary objects.
    part : str, optional
        Dotted attribute of the half to take (e.g. ``"encoder"``) when the file holds a whole
        autoencoder. For ``.pt2`` this uses ``torch.export.unflatten``.

    Returns
    -------
    nn.Module
        ``forward(x) -> tensor`` (a TorchScript module stays a ScriptModule; the exporter then
        uses the TorchScript-based path).

    Raises
    ------
    ExportError
        One line, when the file is missing, of an unknown kind, or not a loadable model; a
        ``torch.save`` state dict / checkpoint / pickled module is named as such, with the
        formats to save instead; a flat ``nn.Sequential`` without ``part`` names ``--split-at``
        (:func:`flowcore_torch.load_split`) and lists its layers.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no such model file: {path}")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ExportError(f"{path}: unknown torch model file type {path.suffix!r}; expected one of {sorted(SUFFIXES)}")
    try:
        if kind == "ExportedProgram":
            program = torch.export.load(str(path))
            module = torch.export.unflatten(program) if part else program.module()
            return FrozenModule(_part(module, part, path, program))
        module = torch.jit.load(str(path), map_location="cpu")
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(describe_pickle(path) or f"{path} is not a loadable {kind} file ({one_line(exc)})") from exc
    module.train(False)  # inference mode (dropout off, batch-norm frozen)
    return _part(module, part, path)
