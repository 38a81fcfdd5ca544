"""One flat saved ``nn.Sequential`` autoencoder cut in two: encoder = layers ``[0, at]``, decoder = the rest.

A model saved as one ``nn.Sequential`` (``Flatten, Linear, Tanh, Linear(32, 8), Linear(8, 32), …``)
has no ``encoder``/``decoder`` submodules to take. :func:`load_split` cuts its top-level layers
after the one named (or numbered) ``at``: an ExportedProgram (``.pt2``) through
``torch.export.unflatten``, TorchScript (``.pt``) by re-scripting the two runs of its children.
:func:`layer_table` lists the layers (with their output widths when the file records them) for
the error that names ``--split-at``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flowcore.errors import ExportError

from ._graph import one_line

__all__ = ["load_split", "layer_table", "flat_error", "is_flat"]


def _children(module: Any) -> list[tuple[str, Any]]:
    return [(name, child) for name, child in module.named_children()]


def _root_kind(module: Any, program: Any = None) -> str | None:
    """Class name of the saved top-level module (TorchScript keeps it; a program's graph records it)."""
    if program is not None:
        for node in program.graph.nodes:
            for path, kind in (node.meta.get("nn_module_stack") or {}).values():
                if path == "":
                    return kind.rsplit(".", 1)[-1] if isinstance(kind, str) else type(kind).__name__
        return None
    return getattr(module, "original_name", None)


def is_flat(module: Any, program: Any = None) -> bool:
    """An ``nn.Sequential``: top-level children named 0, 1, …, n-1 (and the class, where recorded)."""
    names = [name for name, _ in _children(module)]
    kind = _root_kind(module, program)
    return len(names) >= 2 and names == [str(i) for i in range(len(names))] and kind in (None, "Sequential")


def _widths(program: Any) -> dict[str, tuple[str, int | None]]:
    """Top-level layer name -> (type name, output width = product of non-batch dims) of an ExportedProgram."""
    out: dict[str, tuple[str, int | None]] = {}
    for node in program.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        val = node.meta.get("val")
        if not stack:
            continue
        top = [(path, kind) for path, kind in stack.values() if path != ""]
        if not top:
            continue
        path, kind = top[0]
        name = path.split(".")[0] if isinstance(path, str) else str(path)
        kind = kind.rsplit(".", 1)[-1] if isinstance(kind, str) else type(kind).__name__
        width = None
        if isinstance(val, torch.Tensor) and val.ndim >= 1:
            try:
                width = int(math.prod(int(d) for d in val.shape[1:]))
            except (TypeError, ValueError):  # a symbolic non-batch dimension
                width = None
        out[name] = (kind, width)  # the layer's last node: its output
    return out


def layer_table(module: Any, program: Any = None) -> tuple[list[str], str | None]:
    """``["0 Flatten", "1 Linear", …]`` and the narrowest inner layer (``"3 (8 features)"``), if known.

    Parameters
    ----------
    module : nn.Module
        The loaded flat model (top-level children ``0 … n-1``).
    program : torch.export.ExportedProgram, optional
        Its program, whose graph records every layer's output shape (TorchScript records none).
    """
    widths = _widths(program) if program is not None else {}
    rows, inner = [], []
    names = [name for name, _ in _children(module)]
    for i, (name, child) in enumerate(_children(module)):
        kind, width = widths.get(name, (getattr(child, "original_name", None) or type(child).__name__, None))
        rows.append(f"{name} {kind}")
        if width is not None and i < len(names) - 1:
            inner.append((width, i, name))
    narrowest = None
    if inner:
        width, _, name = min(inner)
        narrowest = f"{name} ({width} features)"
    return rows, narrowest


def flat_error(path: Path, part: str, module: Any, program: Any = None) -> ExportError:
    """The one-line error for a flat Sequential asked for a part it does not have."""
    rows, narrowest = layer_table(module, program)
    hint = f"; the narrowest inner layer is {narrowest}" if narrowest else ""
    return ExportError(f"{path} is one flat nn.Sequential with no {part!r} part: pass --split-at LAYER (the encoder's "
                       f"last layer, by name or index) to cut it into encoder and decoder; layers: "
                       f"{', '.join(rows)}{hint}")


def _index(names: list[str], at: int | str, path: Path, module: Any, program: Any) -> int:
    if isinstance(at, int) or (isinstance(at, str) and at.lstrip("-").isdigit()):
        i = int(at)
        i = i + len(names) if i < 0 else i
    else:
        i = names.index(at) if at in names else -1
    if not 0 <= i < len(names) - 1:
        rows, narrowest = layer_table(module, program)
        hint = f"; the narrowest inner layer is {narrowest}" if narrowest else ""
        raise ExportError(f"--split-at {at!r} is not an inner layer of {path} (the decoder needs at least one layer "
                          f"after it); layers: {', '.join(rows)}{hint}")
    return i


def load_split(path: str | os.PathLike, at: int | str) -> tuple[nn.Module, nn.Module]:
    """Load a flat ``nn.Sequential`` autoencoder and cut it after layer ``at``.

    Parameters
    ----------
    path : path-like
        ``.pt2`` (``torch.export.save``) or TorchScript (``.pt``/``.ts``/``.jit``/``.pth``) of
        one ``nn.Sequential`` mapping x of shape (n, *input_shape), float32, to a reconstruction
        of the same shape.
    at : int or str
        The encoder's last layer: its name (``"3"``) or index (``3``; negative counts from the
        end). The decoder is every later layer, so ``at`` cannot be the last one.

    Returns
    -------
    (nn.Module, nn.Module)
        Encoder (layers ``0 … at``) and decoder (the rest), in eval mode; with TorchScript both
        are ScriptModules. Their composition is the saved model.

    Raises
    ------
    ExportError
        One line: the file is not loadable, its top level is not a Sequential (children
        ``0 … n-1``), or ``at`` names no inner layer (the layers are listed).
    """
    from ._load import FrozenModule, load_model  # noqa: PLC0415  (one loader; _load imports this module)
    from ._saved import describe_pickle  # noqa: PLC0415

    path = Path(path)
    program = None
    if path.suffix.lower() == ".pt2" and path.is_file():
        try:
            program = torch.export.load(str(path))
            module = torch.export.unflatten(program)
        except Exception as exc:
            raise ExportError(describe_pickle(path) or f"{path} is not a loadable ExportedProgram file "
                              f"({one_line(exc)})") from exc
    else:
        module = load_model(path)
    if not is_flat(module, program):
        names = [name for name, _ in _children(module)]
        raise ExportError(f"{path} is not one flat nn.Sequential (its top-level children are {names}), so "
                          "--split-at cannot cut it; use --encoder-part/--decoder-part with the names of its halves")
    children = _children(module)
    i = _index([name for name, _ in children], at, path, module, program)
    layers = [child for _, child in children]
    if program is not None:
        return FrozenModule(nn.Sequential(*layers[: i + 1])), FrozenModule(nn.Sequential(*layers[i + 1:]))
    try:
        halves = torch.jit.script(nn.Sequential(*layers[: i + 1])), torch.jit.script(nn.Sequential(*layers[i + 1:]))
    except Exception as exc:
        raise ExportError(f"{path}: cannot re-script the two halves after layer {at!r} ({one_line(exc)})") from exc
    for half in halves:
        half.train(False)
    return halves
