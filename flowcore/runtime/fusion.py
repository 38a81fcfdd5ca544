"""Fusion: one ONNX graph for the latent map f = E∘D that also reports per-row step sizes.

:func:`fuse` merges a bundle's decoder and encoder with :func:`onnx.compose.merge_models` (after
bringing both to one opset and IR version: tf2onnx writes IR 8 / opset ≤ 18, torch IR 10 /
opset 18+) and appends ``step_sq = ‖f(z) − z‖²`` and ``norm_sq = ‖f(z)‖²`` per row, so the
trajectory engine reads two floats per row besides the new latents. :func:`graph_to_map` does
the same for a single latent→latent graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from flowcore.bundle.flowbundle import _io, _static_shape, FlowBundle
from flowcore.errors import BundleError
from flowcore.bundle.export import rename_value

if TYPE_CHECKING:
    import onnx  # annotations only: onnx is imported where used (import cost)

__all__ = ["fuse", "graph_to_map", "FUSED_INPUT", "FUSED_OUTPUTS"]

FUSED_INPUT = "z"
FUSED_OUTPUTS = ("z_next", "step_sq", "norm_sq")


def _default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


def _normalise(models: Sequence[onnx.ModelProto]) -> list[onnx.ModelProto]:
    """Bring graphs to one default-domain opset and one IR version so they can be merged."""
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    target = max(_default_opset(m) for m in models)
    ir = max(int(m.ir_version) for m in models)
    out = []
    for m in models:
        if _default_opset(m) != target:
            from onnx import version_converter  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

            try:
                m = version_converter.convert_version(m, target)
            except Exception as exc:
                raise BundleError(f"cannot convert graph from opset {_default_opset(m)} to {target}: {exc}") from None
        if m.ir_version != ir:
            m = onnx.ModelProto.FromString(m.SerializeToString())
            m.ir_version = ir
        out.append(m)
    return out


def _with_external_data(model: onnx.ModelProto, folder: Path | None) -> onnx.ModelProto:
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX
    from onnx import TensorProto  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    uses = any(t.data_location == TensorProto.EXTERNAL for t in model.graph.initializer)
    if not uses:
        return model
    if folder is None:
        raise BundleError("graph references external data but no folder was given")
    m = onnx.ModelProto.FromString(model.SerializeToString())
    onnx.external_data_helper.load_external_data_for_model(m, str(folder))
    return m


def _append_step_outputs(graph: onnx.GraphProto, z_in: str, z_out: str, rank: int, opset: int) -> None:
    """Add Identity → z_next, and ReduceSumSquare rows of (z_out − z_in) and z_out.

    ReduceSumSquare takes its axes as an input from opset 18 on, as an attribute before.
    """
    from onnx import TensorProto, helper  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    axes = list(range(1, rank))

    def reduce(src: str, dst: str, name: str) -> onnx.NodeProto:
        if opset >= 18:
            return helper.make_node("ReduceSumSquare", [src, "fc_axes"], [dst], keepdims=0, name=name)
        return helper.make_node("ReduceSumSquare", [src], [dst], axes=axes, keepdims=0, name=name)

    if opset >= 18:
        graph.initializer.append(helper.make_tensor("fc_axes", TensorProto.INT64, [rank - 1], axes))
    graph.node.extend(
        [
            helper.make_node("Identity", [z_out], [FUSED_OUTPUTS[0]], name="fc_out"),
            helper.make_node("Sub", [z_out, z_in], ["fc_diff"], name="fc_sub"),
            reduce("fc_diff", FUSED_OUTPUTS[1], "fc_step"),
            reduce(z_out, FUSED_OUTPUTS[2], "fc_norm"),
        ]
    )
    del graph.output[:]
    dims = ["batch"] + [None] * (rank - 1)
    graph.output.extend(
        [
            helper.make_tensor_value_info(FUSED_OUTPUTS[0], TensorProto.FLOAT, dims),
            helper.make_tensor_value_info(FUSED_OUTPUTS[1], TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info(FUSED_OUTPUTS[2], TensorProto.FLOAT, ["batch"]),
        ]
    )


def fuse(bundle: FlowBundle) -> onnx.ModelProto:
    """Build the fused latent-map graph ``z -> (z_next, step_sq, norm_sq)`` of a bundle.

    Returns
    -------
    onnx.ModelProto
        Input ``z`` of shape (N, *latent_shape); outputs ``z_next`` (N, *latent_shape),
        ``step_sq`` (N,) = ‖z_next − z‖² and ``norm_sq`` (N,) = ‖z_next‖², all float32.
    """
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX
    from onnx import compose  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    dec = _with_external_data(bundle.decoder, bundle.path)
    enc = _with_external_data(bundle.encoder, bundle.path)
    dec, enc = _normalise([dec, enc])
    merged = compose.merge_models(
        dec,
        enc,
        io_map=[(bundle.decoder_output, bundle.encoder_input)],
        prefix1="dec_",
        prefix2="enc_",
        inputs=["dec_" + bundle.decoder_input],
        outputs=["enc_" + bundle.encoder_output],
    )
    graph = merged.graph
    rename_value(graph, "dec_" + bundle.decoder_input, FUSED_INPUT)
    _append_step_outputs(graph, FUSED_INPUT, "enc_" + bundle.encoder_output, 1 + len(bundle.latent_shape),
                         _default_opset(merged))
    graph.name = "flowcore_latent_map"
    try:
        onnx.checker.check_model(merged)
    except Exception as exc:
        raise BundleError(f"fused latent map fails the ONNX checker: {str(exc).splitlines()[0]}") from None
    return merged


def graph_to_map(model: onnx.ModelProto, input_name: str | None, output_name: str | None) -> tuple[onnx.ModelProto, tuple[int, ...]]:
    from onnx import compose  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    vin = _io(model, "input", input_name, "latent map")
    vout = _io(model, "output", output_name, "latent map")
    model = compose.add_prefix(model, "map_")  # copy, and no clash with the names added below
    vin = _io(model, "input", "map_" + vin.name, "latent map")
    vout = _io(model, "output", "map_" + vout.name, "latent map")
    sin = _static_shape(vin, "latent map input")
    sout = _static_shape(vout, "latent map output")
    if sin != sout:
        raise BundleError(f"latent map input shape {sin} differs from its output shape {sout}")
    graph = model.graph
    if vin.name != FUSED_INPUT:
        rename_value(graph, vin.name, FUSED_INPUT)
    out_name = vout.name
    _append_step_outputs(graph, FUSED_INPUT, out_name, 1 + len(sin), _default_opset(model))
    return model, sin
