"""One TensorFlow/Keras callable -> one ONNX graph with a dynamic batch axis and fixed I/O names."""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Any, Callable, Iterator

import keras
import onnx
import onnx.numpy_helper
import tensorflow as tf
import tf2onnx

from flowcore.errors import ExportError
from flowcore.bundle.export import check_opset, clip_line, exception_lines, name_graph, strip_ansi
from flowcore.bundle.export import select_output as _select_output

__all__ = ["convert_graph", "call_model", "one_line", "select_output", "BATCH_DIM"]

BATCH_DIM = "batch"
# Python loggers that talk during a conversion; quiet (ERROR and up kept for the message) while
# exporting only, then restored.
_NOISY_LOGGERS = ("tf2onnx", "tensorflow", "absl")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first meaningful line`` of an exception message (ANSI codes stripped).

    Keras 3 opens its call errors with ``Exception encountered when calling X.call().`` and
    names the cause on the next line, so that line wins when present; a ``tf.function``
    error opens with ``in user code:`` and names the cause on its last line.
    """
    lines = exception_lines(exc)
    if len(lines) > 1 and lines[0].startswith("Exception encountered when calling"):
        lines = lines[1:]
    if len(lines) > 1 and lines[0].endswith("in user code:"):  # tf.function: the cause is the last line
        lines = lines[-1:]
    line = f"{type(exc).__name__}: {lines[0].split(' Received args:')[0]}" if lines else type(exc).__name__
    return clip_line(line, limit)


def call_model(model: Callable[..., Any], x: Any) -> Any:
    """Call ``model`` in inference mode: Keras layers/models get ``training=False``, other
    callables (``tf.function``, ``tf.Module``, plain functions) are called as ``model(x)``."""
    if isinstance(model, keras.layers.Layer):
        return model(x, training=False)
    return model(x)


def select_output(out: Any, choice: int | str | None, what: str = "encoder") -> int | str | None:
    """:func:`flowcore.bundle.export.select_output` for TensorFlow tensors (None: ``out`` is a tensor)."""
    return _select_output(out, choice, tf.is_tensor, what)


class _Collect(logging.Handler):
    """Keeps the messages of ERROR records (tf2onnx logs unsupported ops instead of raising)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102
        try:
            self.messages.append(record.getMessage())
        except Exception:  # noqa: BLE001  (a bad log call must not break the export)
            self.messages.append(str(record.msg))


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[_Collect]:
    """Route the converter's Python log records to a collector (nothing printed) and silence
    its warnings, for the duration of one conversion; every logger is restored afterwards."""
    collect = _Collect()
    saved = []
    for name in _NOISY_LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.level, lg.propagate))
        lg.setLevel(logging.ERROR)
        lg.propagate = False
        lg.addHandler(collect)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield collect
    finally:
        for lg, level, propagate in saved:
            lg.removeHandler(collect)
            lg.setLevel(level)
            lg.propagate = propagate


def _fix_shapes(model: onnx.ModelProto, out_shape: tuple[int, ...], what: str) -> None:
    """Name axis 0 of the graph input and output ``batch`` (tf2onnx writes a fresh ``unk__N``
    for each) and fill non-batch output dims tf2onnx left unknown (e.g. after a reshape to
    ``(tf.shape(x)[0], -1)``) with the sizes the eager call returned; parity checks the claim."""
    for vi in (model.graph.input[0], model.graph.output[0]):
        shape = vi.type.tensor_type.shape
        if len(shape.dim) and not shape.dim[0].HasField("dim_value"):
            shape.dim[0].dim_param = BATCH_DIM
    shape = model.graph.output[0].type.tensor_type.shape
    if len(shape.dim) != 1 + len(out_shape):
        return  # rank unknown or different: FlowBundle.write reports it
    for d, want in zip(list(shape.dim)[1:], out_shape):
        if d.HasField("dim_value"):
            if d.dim_value != want:
                raise ExportError(
                    f"the exported {what} declares output dims {[x.dim_value or x.dim_param for x in shape.dim]}"
                    f" but the eager call returned (n, *{out_shape})"
                )
        else:
            d.dim_value = want


def _inline_captures(model: onnx.ModelProto, concrete: Any, what: str) -> None:
    """Turn captured (non-variable) tensors, which tf2onnx makes extra graph inputs, into
    initializers holding their values (e.g. a ``tf.constant`` a function closes over)."""
    captured = list(concrete.captured_inputs)
    if not captured:
        return
    names = {t.name: v for t, v in zip(concrete.inputs[len(concrete.inputs) - len(captured):], captured)}
    keep = []
    for vi in model.graph.input:
        value = names.get(vi.name)
        if value is None:
            keep.append(vi)
            continue
        try:
            arr = value.numpy()
        except Exception as exc:  # a symbolic capture: nothing to inline
            raise ExportError(
                f"the {what} captures the tensor {vi.name!r} that has no value outside its graph; "
                "pass it as a variable or a constant"
            ) from exc
        model.graph.initializer.append(onnx.numpy_helper.from_array(arr, vi.name))
    del model.graph.input[:]
    model.graph.input.extend(keep)


def convert_graph(
    fn: Callable[[tf.Tensor], tf.Tensor],
    sample_shape: tuple[int, ...],
    output_shape: tuple[int, ...],
    *,
    input_name: str,
    output_name: str,
    opset: int,
    what: str,
) -> onnx.ModelProto:
    """Trace ``fn`` with a batch-free signature and convert it with ``tf2onnx.convert.from_function``.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> tensor``, traceable by ``tf.function`` (it is wrapped in one here).
    sample_shape : tuple of int
        Per-sample input shape; the signature is ``TensorSpec((None, *sample_shape), float32)``.
    output_shape : tuple of int
        Per-sample output shape the eager call returned (fills dims tf2onnx leaves unknown).
    input_name, output_name : str
        Names the graph input and output get.
    opset : int
        Default-domain opset of the result (checked).
    what : str
        ``"encoder"`` or ``"decoder"``, for messages.

    Returns
    -------
    onnx.ModelProto
        Weights inline, one input, one output, batch axis symbolic (``"batch"``).

    Raises
    ------
    ExportError
        One line; the converter's exception is kept as ``__cause__``.
    """
    spec = tf.TensorSpec((None, *sample_shape), tf.float32, name=input_name)
    traced = tf.function(fn)
    try:
        with _quiet_exporter() as log:
            concrete = traced.get_concrete_function(spec)  # tf2onnx reuses this trace
            model, _ = tf2onnx.convert.from_function(traced, input_signature=(spec,), opset=opset)
    except ExportError:
        raise
    except Exception as exc:  # tracing and conversion raise many types; all become one line
        raise ExportError(f"tf2onnx.convert.from_function failed for the {what}: {one_line(exc)}") from exc
    _inline_captures(model, concrete, what)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # tf2onnx keeps going past ops it cannot convert (continue_on_error)
        why = log.messages[0] if log.messages else one_line(exc)
        why = strip_ansi(why).strip().splitlines()[0] if why.strip() else type(exc).__name__
        raise ExportError(f"tf2onnx could not convert the {what} to a valid ONNX graph: {why[:300]}") from exc
    check_opset(model, opset, what=what, made="converted", fix=f"pick an opset tf2onnx {tf2onnx.__version__} supports")
    name_graph(model, input_name, output_name, what, "a call(x) -> tensor model")
    _fix_shapes(model, tuple(output_shape), what)
    return model
