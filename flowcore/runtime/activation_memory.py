"""How many rows a graph can run at once: its activation memory per row, and the cap that follows.

A real image autoencoder needs far more memory per row while it runs than its latent or its
input suggests: TAEF2 at 256² holds 64 × 256² floats per intermediate map, and ONNX Runtime
keeps about three of them alive at once (50 MB per row, measured 50–58 MB). A batch of 4,096 such
rows would need 200 GB. :func:`row_bytes` estimates the peak per row from the graph alone: shape
inference at batch 1, then the tensors alive at each node in graph order (a tensor lives from the
node that makes it to its last reader; the graph's inputs and outputs count) — what ONNX Runtime's
memory planner reuses. :func:`max_rows` turns that into the most rows in flight within a budget.

The default budget is 2 GiB of activations, or a quarter of the memory available now when that is
less (:func:`flowcore.runtime.host_memory.available_memory`), so the cap only depends on the machine
where memory is short. Rows are computed independently, so the cap changes how a run is driven,
never what it gives (``Trajectories.settings["batch_size"]`` records the rows that were in flight).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, shape_inference

__all__ = ["row_bytes", "max_rows", "default_budget", "DEFAULT_BUDGET", "MARGIN"]

DEFAULT_BUDGET = 2 * 2**30  # bytes of activations in flight at once
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
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for value in [*m.graph.input, *m.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    del m.graph.value_info[:]
    try:
        m = onnx.inliner.inline_local_functions(m) if len(m.functions) else m
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
    if sum(name not in sizes for name in made) > 0.1 * max(len(made), 1):
        return None
    weights = {i.name for i in m.graph.initializer}
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


def default_budget(available: int | None) -> int:
    """:data:`DEFAULT_BUDGET`, or a quarter of ``available`` bytes when that is less (at least 64 MiB)."""
    if available is None:
        return DEFAULT_BUDGET
    return int(max(64 * 2**20, min(DEFAULT_BUDGET, available // 4)))


def max_rows(per_row: int | None, budget: int | None) -> int | None:
    """The most rows whose activations (``per_row`` × :data:`MARGIN`) fit in ``budget`` bytes; None = no cap."""
    if per_row is None or budget is None or per_row <= 0:
        return None
    return max(1, int(budget // (per_row * MARGIN)))
