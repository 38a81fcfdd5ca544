"""Framework-free helpers shared by the adapters (``flowcore_torch``, ``flowcore_tensorflow``).

For adapter authors: rename graph values, give an exported graph its FlowBundle I/O names and
check its opset, check the shapes and dtypes an eager call returned (one-line messages), pick
the latent out of a structured encoder output, shorten exceptions to one line, and write the
bundle through flowcore's one staging primitive (:meth:`flowcore.outputs.OutputFolder.staged`). Measuring ONNX-vs-framework parity (running graphs) is the
runtime layer's: :mod:`flowcore.runtime.parity`. Imports only onnx (and the bundle layer).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from flowcore.errors import BundleError, ExportError
from flowcore.bundle.subnormal import flush_subnormals as _flush_subnormals
from flowcore.bundle.flowbundle import FlowBundle, bundle_output

if TYPE_CHECKING:
    import onnx  # annotations only: onnx is imported where used (import cost)

__all__ = ["rename_value", "set_io_names", "name_graph", "default_opset", "check_opset", "select_output",
           "check_example", "check_real_inputs", "check_latent", "check_decoded", "exception_lines", "clip_line",
           "strip_ansi", "write_staged"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename value ``old`` to ``new`` everywhere in ``graph`` (inputs, outputs, nodes, subgraphs)."""
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for attr in node.attribute:
            if attr.HasField("g"):
                rename_value(attr.g, old, new)
            for g in attr.graphs:
                rename_value(g, old, new)


def set_io_names(model: onnx.ModelProto, input_name: str, output_name: str, what: str,
                 shape_hint: str = "a model(x) -> tensor") -> None:
    """Make the single graph input ``input_name`` and the single graph output ``output_name``.

    Raises
    ------
    ExportError
        When the graph does not have exactly one (non-initializer) input and one output, or
        already uses a wanted name for another value.
    """
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    g = model.graph
    init = {t.name for t in g.initializer}
    ins = [v for v in g.input if v.name not in init]
    if len(ins) != 1 or len(g.output) != 1:
        raise ExportError(
            f"the exported {what} has inputs {[v.name for v in ins]} and outputs {[v.name for v in g.output]}; "
            f"expected one of each ({shape_hint})"
        )
    taken = {n for node in g.node for n in list(node.input) + list(node.output)} | init
    if ins[0].name != input_name:
        if input_name in taken:
            raise ExportError(f"the exported {what} already uses the name {input_name!r} internally")
        rename_value(g, ins[0].name, input_name)
    out = g.output[0]
    if out.name == input_name:  # identity graph: the output is the input itself
        g.node.append(onnx.helper.make_node("Identity", [input_name], [output_name]))
        out.name = output_name
    elif out.name != output_name:
        if output_name in taken:
            raise ExportError(f"the exported {what} already uses the name {output_name!r} internally")
        rename_value(g, out.name, output_name)


def name_graph(model: onnx.ModelProto, input_name: str, output_name: str, what: str, shape_hint: str) -> None:
    """:func:`set_io_names`, then name the graph ``what`` (``"encoder"`` or ``"decoder"``)."""
    set_io_names(model, input_name, output_name, what, shape_hint)
    model.graph.name = what


def default_opset(model: onnx.ModelProto) -> int | None:
    """The default-domain (``""`` / ``"ai.onnx"``) opset of ``model``, or None when it has none."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return None


def check_opset(model: onnx.ModelProto, opset: int, *, what: str, made: str, fix: str) -> None:
    """Refuse a graph whose default-domain opset is not the requested one (the manifest never mislabels).

    ``made`` is the past participle in the message (``"exported"``, ``"converted"``); ``fix`` says
    which opsets the exporter supports.
    """
    got = default_opset(model)
    if got != opset:
        raise ExportError(f"the {what} was {made} with opset {got}, not the requested {opset}; {fix}")


def check_example(shape: tuple[int, ...], dtype: Any, what: str, *, float32: bool, fix: str) -> None:
    """Refuse an example/real input batch that is not float32 of shape (batch >= 1, *input_shape).

    Parameters
    ----------
    shape : tuple of int
        The batch's shape.
    dtype : object
        Its dtype, as the framework prints it (for the message).
    what : str
        ``"example_input"`` or ``"real_inputs"``.
    float32 : bool
        Whether the dtype is float32 (the framework's own comparison).
    fix : str
        How to get float32 in this framework, in parentheses in the message.
    """
    if not float32:
        raise ExportError(f"{what} has dtype {dtype}; FlowBundles are float32: pass a float32 input ({fix})")
    if len(shape) < 2 or shape[0] < 1 or 0 in shape:
        raise ExportError(f"{what} has shape {shape}; expected (batch >= 1, *input_shape) with no empty axis")


def check_real_inputs(real_shape: tuple[int, ...], example_shape: tuple[int, ...]) -> None:
    """Refuse real parity inputs whose per-sample shape differs from the example's."""
    if tuple(real_shape[1:]) != tuple(example_shape[1:]):
        raise ExportError(f"real_inputs have shape {real_shape}; expected (m, *{tuple(example_shape[1:])})")


def check_latent(shape: tuple[int, ...], dtype: Any, *, float32: bool, batch: int) -> None:
    """Refuse an encoder latent that is not float32 of shape (batch, *latent_shape)."""
    if not float32 or len(shape) < 2 or shape[0] != batch:
        raise ExportError(
            f"the encoder's latent has shape {shape} and dtype {dtype} for an input batch of "
            f"{batch}; expected (batch, *latent_shape) float32"
        )


def check_decoded(z_shape: tuple[int, ...], shape: tuple[int, ...], dtype: Any, *, float32: bool,
                  input_shape: tuple[int, ...]) -> None:
    """Refuse a decoder output that is not float32 of the encoder's input shape (f = E(D(z)) needs it)."""
    if shape != input_shape or not float32:
        raise ExportError(
            f"the decoder maps latents {z_shape} to {shape} {dtype}; f = E(D(z)) needs "
            f"it to return the input shape {input_shape} float32"
        )


def strip_ansi(text: str) -> str:
    """``text`` without ANSI colour codes."""
    return _ANSI.sub("", text)


def exception_lines(exc: BaseException) -> list[str]:
    """The non-empty, stripped lines of an exception's message, ANSI codes removed."""
    return [ln.strip() for ln in strip_ansi(str(exc)).strip().splitlines() if ln.strip()]


def clip_line(line: str, limit: int = 300) -> str:
    """``line`` cut to ``limit`` characters (the last one an ellipsis when cut)."""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def write_staged(path, encoder: onnx.ModelProto, decoder: onnx.ModelProto, *, source: dict,
                 preprocessing: str | None = None, notes: str | None = None, check=None, external_data=None,
                 flush_subnormals: bool = True):
    """Write a bundle (graphs named ``x -> z`` and ``z -> x_hat``) in a staging folder beside
    ``path``, run ``check(bundle)`` there (it raises to refuse), then commit it into place.

    Staged by :meth:`flowcore.outputs.OutputFolder.staged` (the caller vetted ``path`` with
    :func:`~flowcore.bundle.flowbundle.check_target`): a failure leaves ``path`` exactly as it
    was (an old bundle there is kept); on success an earlier bundle's files are replaced and
    any other entry is kept. Returns the FlowBundle
    at ``path``. A bundle that does not validate becomes a one-line ExportError. ``external_data``
    is :meth:`FlowBundle.write`'s (default None: external data only for a graph over 2 GB); every
    external-data file is hashed in the manifest. With ``flush_subnormals`` (default) subnormal
    weights are written as zeros of the same sign (:mod:`flowcore.bundle.subnormal`; they slow ONNX
    Runtime tens of times on x86 CPUs) and their counts recorded in ``source``
    (``subnormals_flushed_encoder`` / ``_decoder``); ``check`` then runs on the flushed graphs.
    """
    path = Path(path)
    if flush_subnormals:
        encoder, n_enc = _flush_subnormals(encoder)
        decoder, n_dec = _flush_subnormals(decoder)
        source = {**source, "subnormals_flushed_encoder": n_enc, "subnormals_flushed_decoder": n_dec}
    with bundle_output(path).staged(prune=True) as tmp:
        try:
            bundle = FlowBundle.write_into(tmp, encoder, decoder, encoder_input="x", encoder_output="z",
                                           decoder_input="z", decoder_output="x_hat", source=source,
                                           preprocessing=preprocessing, notes=notes, external_data=external_data,
                                           shown=path)
        except BundleError as exc:
            raise ExportError(f"the exported graphs do not form a valid FlowBundle: {exc}") from exc
        if check is not None:
            check(bundle)
    return dataclasses.replace(bundle, path=path)


def select_output(out: Any, choice: Any, is_tensor: Callable[[Any], bool], what: str = "encoder") -> Any:
    """Resolve an adapter's ``encoder_output`` against one forward result.

    ``out`` is a tensor (returns None: nothing to pick), a tuple/list (``choice`` an index,
    default 0) or a dict (``choice`` a key, default ``"mean"``, else ``"mu"``, else the first
    key). ``is_tensor`` tells the framework's tensors apart.

    Raises
    ------
    ExportError
        If ``choice`` does not fit the structure or does not name a tensor.
    """
    if is_tensor(out):
        if choice is not None:
            raise ExportError(
                f"{what} returns a single tensor but encoder_output={choice!r} was given; leave it as None"
            )
        return None
    if isinstance(out, (tuple, list)):
        if len(out) == 0:
            raise ExportError(f"{what} returns an empty {type(out).__name__}; expected a tensor")
        key: int | str = 0 if choice is None else choice
        if isinstance(key, bool) or not isinstance(key, int) or not -len(out) <= key < len(out):
            raise ExportError(
                f"encoder_output={choice!r} does not index the {len(out)}-element {type(out).__name__} the "
                f"{what} returns; pass an int in 0..{len(out) - 1}"
            )
        key = key % len(out)
    elif isinstance(out, dict):
        keys = list(out)
        if not keys:
            raise ExportError(f"{what} returns an empty dict; expected a tensor")
        if choice is None:
            key = next((k for k in ("mean", "mu") if k in out), keys[0])
        elif choice in out:
            key = choice
        else:
            raise ExportError(f"encoder_output={choice!r} is not a key of the dict the {what} returns; keys: {keys}")
    else:
        raise ExportError(
            f"{what} returns {type(out).__name__}; expected a tensor, a tuple/list or a dict of tensors"
        )
    if not is_tensor(out[key]):
        raise ExportError(
            f"{what} output [{key!r}] is {type(out[key]).__name__}, not a tensor; pick another with encoder_output"
        )
    return key
