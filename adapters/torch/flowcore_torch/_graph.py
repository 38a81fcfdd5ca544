"""One torch module -> one ONNX graph with a dynamic batch axis and fixed I/O names."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import warnings
from typing import Any, Iterator

import onnx
import torch
from torch import nn

from flowcore.errors import ExportError
from flowcore.bundle.export import check_opset, clip_line, exception_lines, name_graph
from flowcore.bundle.export import select_output as _select_output

__all__ = ["export_graph", "one_line", "select_output", "SelectOutput"]

_SHAPE_HINT = "a forward(x) -> tensor module"
_CLASS = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")
# Loggers/warnings of the torch exporter that are noise for a flowcore user.
_NOISY_LOGGERS = ("torch.onnx._internal.exporter._registration",)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first meaningful line`` of an exception message (ANSI codes stripped).

    The dynamo exporter wraps the real cause in a long multi-line explanation; the line after
    ``## Exception summary`` names it, so that line wins when present.
    """
    lines = exception_lines(exc)
    if "## Exception summary" in lines and lines.index("## Exception summary") + 1 < len(lines):
        line = _CLASS.sub(r"\1", lines[lines.index("## Exception summary") + 1])
    elif lines:
        line = f"{type(exc).__name__}: {lines[0]}"
    else:
        line = type(exc).__name__
    return clip_line(line, limit)


class SelectOutput(nn.Module):
    """Wrap a module whose forward returns a tuple/list/dict and return one element.

    Parameters
    ----------
    module : nn.Module
        The wrapped encoder.
    key : int or str
        Index (tuple/list) or key (dict) of the tensor to return.
    """

    def __init__(self, module: nn.Module, key: int | str):
        super().__init__()
        self.module = module
        self.key = key
        self.training = module.training  # a new Module starts in train mode; mirror the wrapped one

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.module(x)[self.key]


def select_output(out: Any, choice: int | str | None, what: str = "encoder") -> int | str | None:
    """:func:`flowcore.bundle.export.select_output` for torch tensors (None: ``out`` is a tensor)."""
    return _select_output(out, choice, lambda t: isinstance(t, torch.Tensor), what)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's known noise (missing torchvision ops, a pytree deprecation)."""
    saved = []
    for name in _NOISY_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.level))
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


def export_graph(
    module: nn.Module, example: torch.Tensor, *, input_name: str, output_name: str, opset: int, what: str
) -> onnx.ModelProto:
    """Export ``module`` (in its current mode) with ``torch.onnx.export(dynamo=True)``.

    Parameters
    ----------
    module : nn.Module
        ``forward(x) -> tensor``.
    example : Tensor of shape (n, ...), n >= 2
        Example input; axis 0 is exported as the dynamic dimension ``batch``.
    input_name, output_name : str
        Names the graph input and output get.
    opset : int
        Default-domain opset of the result (checked).
    what : str
        ``"encoder"`` or ``"decoder"``, for messages.

    Returns
    -------
    onnx.ModelProto
        Weights inline, one input, one output, dynamic batch.

    Raises
    ------
    ExportError
        One line; the exporter's exception is kept as ``__cause__``.
    """
    if _is_script(module):
        return _export_script(module, example, input_name=input_name, output_name=output_name, opset=opset, what=what)
    batch = torch.export.Dim("batch")
    # On failure the exporter prints graph dumps to stderr besides raising; keep them out of a
    # one-line error (the full text stays in __cause__), and pass them through on success.
    captured = io.StringIO()
    try:
        with _quiet_exporter(), contextlib.redirect_stderr(captured):
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                dynamic_shapes=({0: batch},),
                opset_version=opset,
                input_names=[input_name],
                output_names=[output_name],
                external_data=False,
                verbose=False,
                report=False,
            )
            model = program.model_proto
    except Exception as exc:  # the exporter raises many types; all become one line
        raise ExportError(f"torch.onnx.export(dynamo=True) failed for the {what}: {one_line(exc)}") from exc
    if captured.getvalue():
        sys.stderr.write(captured.getvalue())
    check_opset(model, opset, what=what, made="exported", fix="pick opset >= 18 (the torch exporter's native range)")
    name_graph(model, input_name, output_name, what, _SHAPE_HINT)
    return model


def _is_script(module) -> bool:
    inner = module.module if isinstance(module, SelectOutput) else module
    return isinstance(inner, torch.jit.ScriptModule)


def _export_script(module, example, *, input_name: str, output_name: str, opset: int, what: str) -> onnx.ModelProto:
    """TorchScript modules: the dynamo exporter refuses them, the TorchScript-based one takes them."""
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), buf, dynamo=False, opset_version=opset, input_names=[input_name],
                              output_names=[output_name],
                              dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})
        model = onnx.load_from_string(buf.getvalue())
    except Exception as exc:
        raise ExportError(f"torch.onnx.export(dynamo=False) failed for the TorchScript {what}: {one_line(exc)}") from exc
    name_graph(model, input_name, output_name, what, _SHAPE_HINT)
    return model
