"""How many rows a graph can run at once: its activation memory per row, and the cap that follows.

A real image autoencoder needs far more memory per row while it runs than its latent or its
input suggests: TAEF2 at 256² holds 64 × 256² floats per intermediate map, and ONNX Runtime
keeps about three of them alive at once (50 MB per row, measured 50–58 MB). A batch of 4,096 such
rows would need 200 GB. :func:`row_bytes` estimates the peak per row from the graph alone: shape
inference at batch 1, then the tensors alive at each node in graph order (a tensor lives from the
node that makes it to its last reader; the graph's inputs and outputs count) — what ONNX Runtime's
memory planner reuses. :func:`max_rows` turns that into the most rows in flight within a budget.

The default budget is fixed: 2 GiB of activations on the CPU, 8 GiB on a CUDA device (fixed, not the
memory free at the moment, so the same model runs the same rows on every run; a machine with less
room passes a smaller ``LatentMap(activation_budget=…)``). Rows are computed independently, so the
cap changes how a run is driven, never what it gives (``Trajectories.settings["batch_size"]``
records the rows that were in flight). The estimate copies no weights (large initializers become
typed inputs), so it costs the same for a 2 GB model as for a small one.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, shape_inference

__all__ = ["row_bytes", "max_rows", "default_budget", "DEFAULT_BUDGET", "CUDA_BUDGET", "MARGIN"]

DEFAULT_BUDGET = 2 * 2**30  # bytes of activations in flight at once on the CPU
CUDA_BUDGET = 8 * 2**30  # on a CUDA device (host RAM says nothing about it; 8 GiB fits a 16 GB card)
MARGIN = 1.25  # allocator rounding and kernel scratch above the liveness peak (TAEF2 256²: measured 1.0–1.16×)


def _element_bytes(elem_type: int) -> int:
    try:
        return int(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize)
    except (KeyError, TypeError, ValueError):
        return 4


def row_bytes(model: onnx.ModelProto) -> int | None:
    """Peak bytes of the tensors alive at once per row of ``model`` (batch axis 0), or None if unknown.

    Parameters
    ----------
    model : onnx.ModelProto
        A graph whose inputs and outputs have the batch as their first axis.

    Returns
    -------
    int or None
        The liveness peak at batch 1 (inputs, intermediates and outputs; weights excluded), or
        None when shape inference leaves more than a tenth of the intermediate tensors without a
        static shape (the estimate would then be too low to trust).
    """
    m = _without_weights(model)
    try:
        if len(m.functions):  # liveness needs the tensors inside local functions too
            from onnx import inliner  # noqa: PLC0415  (a submodule `import onnx` does not load)

            m = inliner.inline_local_functions(m)
        m = shape_inference.infer_shapes(m, data_prop=True)
    except Exception:  # noqa: BLE001  (any graph onnx cannot infer: no estimate)
        return None
    sizes: dict[str, int] = {}
    for value in [*m.graph.input, *m.graph.value_info, *m.graph.output]:
        tt = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tt.shape.dim]
        if tt.HasField("shape") and all(d > 0 for d in dims):
            sizes[value.name] = int(np.prod(dims, dtype=np.int64)) * _element_bytes(tt.elem_type)
    made = [name for node in m.graph.node for name in node.output if name]
    missing = [name for name in made if name not in sizes]
    if len(missing) > 0.1 * max(len(made), 1):
        return None
    weights = {i.name for i in model.graph.initializer}
    largest = max((b for name, b in sizes.items() if name not in weights), default=0)
    sizes.update({name: largest for name in missing})  # a tensor without a shape counts as the largest one
    last: dict[str, int] = {}
    for i, node in enumerate(m.graph.node):
        for name in node.input:
            last[name] = i
    end = len(m.graph.node)
    for value in m.graph.output:
        last[value.name] = end
    live = {v.name: sizes.get(v.name, 0) for v in m.graph.input if v.name not in weights}
    peak = sum(live.values())
    for i, node in enumerate(m.graph.node):
        for name in node.output:
            live[name] = sizes.get(name, 0)
        peak = max(peak, sum(live.values()))
        for name in [n for n in live if last.get(n, -1) <= i]:
            del live[name]
    return int(peak)


def _without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose large initializers are typed graph inputs (no weight bytes copied).

    Small initializers (≤ 64 elements: shapes, axes, scalars) stay, so shape inference can read them;
    the batch axis of the graph's inputs and outputs is set to 1.
    """
    m = onnx.ModelProto()
    m.ir_version = model.ir_version
    m.opset_import.extend(model.opset_import)
    m.functions.extend(model.functions)
    g = m.graph
    g.name = model.graph.name
    g.node.extend(model.graph.node)
    g.input.extend(model.graph.input)
    g.output.extend(model.graph.output)
    given = {v.name for v in model.graph.input}
    weights = {i.name for i in model.graph.initializer}
    for init in model.graph.initializer:
        if int(np.prod(init.dims, dtype=np.int64)) <= 64 and not init.external_data:
            g.initializer.append(init)
        elif init.name not in given:
            g.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    for value in [*g.input, *g.output]:
        dims = value.type.tensor_type.shape.dim
        if value.name not in weights and len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    return m


def default_budget(providers: list[str] | None = None) -> int:
    """The ``"auto"`` budget: :data:`CUDA_BUDGET` when the graph runs on CUDA, else :data:`DEFAULT_BUDGET`.

    Fixed numbers, not the memory free at the moment, so the rows in flight (and what ``settings``
    records) are the same on every run of the same model on the same kind of device.
    """
    return CUDA_BUDGET if providers and providers[0] == "CUDAExecutionProvider" else DEFAULT_BUDGET


def max_rows(per_row: int | None, budget: int | None) -> int | None:
    """The most rows whose activations (``per_row`` × :data:`MARGIN`) fit in ``budget`` bytes; None = no cap."""
    if per_row is None or budget is None or per_row <= 0:
        return None
    return max(1, int(budget // (per_row * MARGIN)))
