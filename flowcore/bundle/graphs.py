"""Inspecting a graph's interface: its input/output value infos, their shapes and its opset.

Used to write and to validate a bundle (E and D must compose, the batch axis must be dynamic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowcore.errors import BundleError

if TYPE_CHECKING:
    import onnx  # annotations only: onnx is imported where used (import cost)

__all__: list[str] = []  # bundle-internal helpers (runtime.fusion uses _io and _static_shape)


def _value_info_shape(vi: onnx.ValueInfoProto) -> list[int | str | None]:
    """Shape of a graph input/output: ints for fixed dims, names for symbolic, None if unknown."""
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return []
    dims: list[int | str | None] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def _io(model: onnx.ModelProto, kind: str, name: str | None, what: str) -> onnx.ValueInfoProto:
    init = {i.name for i in model.graph.initializer}
    items = [v for v in (model.graph.input if kind == "input" else model.graph.output) if v.name not in init]
    if name is None:
        if len(items) != 1:
            raise BundleError(
                f"{what} has {len(items)} graph {kind}s {[v.name for v in items]}; name the one to use"
            )
        return items[0]
    for v in items:
        if v.name == name:
            return v
    raise BundleError(f"{what} has no {kind} named {name!r}; it has {[v.name for v in items]}")


def _static_shape(vi: onnx.ValueInfoProto, what: str) -> tuple[int, ...]:
    """Non-batch shape of ``vi``; the batch axis must be dynamic, the others fixed."""
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    dims = _value_info_shape(vi)
    if not dims:
        raise BundleError(f"{what} {vi.name!r} has no shape information; export with a fixed rank")
    batch, rest = dims[0], dims[1:]
    if isinstance(batch, int):
        raise BundleError(
            f"{what} {vi.name!r} has a fixed batch axis of {batch}; export with a dynamic batch "
            "(torch: dynamic_shapes with torch.export.Dim, batch >= 2)"
        )
    bad = [d for d in rest if not isinstance(d, int)]
    if bad:
        raise BundleError(
            f"{what} {vi.name!r} has dynamic non-batch dimensions {dims[1:]}; only the batch axis may "
            "be dynamic: export with fixed feature/spatial sizes"
        )
    elem = vi.type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise BundleError(
            f"{what} {vi.name!r} has element type {onnx.TensorProto.DataType.Name(elem)}; expected FLOAT"
        )
    return tuple(int(d) for d in rest)


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise BundleError("graph imports no default-domain opset")
