"""Subnormal weights: count them in an ONNX graph and flush them to (signed) zero.

Training with weight decay leaves many weights subnormal (non-zero floats below the smallest
normal number, ``np.finfo(dtype).tiny``). On x86 CPUs every arithmetic operation that touches one
takes a slow microcode path: ONNX Runtime then runs tens of times slower on the same graph,
while the outputs do not change when those weights are set to zero (a subnormal float32 is below
1.2e-38). :func:`flush_subnormals` returns a copy of a graph with every subnormal initializer
value (and every subnormal value of a ``Constant`` node, in subgraphs too) replaced by a zero of
the same sign, which is what flush-to-zero hardware does; :func:`count_subnormals` counts them.

Only float16, float32 and float64 tensors stored in the graph are touched (others, e.g. bfloat16,
are left as they are). Tensors kept in external
data must be loaded into the model first (see :func:`flowcore.runtime.fusion.fuse`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np

if TYPE_CHECKING:
    import onnx  # annotations only: onnx is imported where used (import cost)

__all__ = ["count_subnormals", "flush_subnormals", "subnormal_mask"]

# float dtype -> (unsigned view, exponent mask, mantissa mask, sign mask)
_BITS = {
    np.dtype(np.float16): (np.uint16, 0x7C00, 0x03FF, 0x8000),
    np.dtype(np.float32): (np.uint32, 0x7F800000, 0x007FFFFF, 0x80000000),
    np.dtype(np.float64): (np.uint64, 0x7FF0000000000000, 0x000FFFFFFFFFFFFF, 0x8000000000000000),
}


def subnormal_mask(a: np.ndarray) -> np.ndarray:
    """Where ``a`` is subnormal (exponent bits all zero, mantissa non-zero).

    Read from the bit patterns, not by float comparison: once ONNX Runtime has run a session
    with ``session.set_denormal_as_zero`` the calling thread treats subnormal inputs as zero
    (DAZ), and ``0 < |x| < tiny`` would find none.

    Parameters
    ----------
    a : ndarray, float16, float32 or float64 (other dtypes: no subnormals)

    Returns
    -------
    ndarray of bool, the shape of ``a``
    """
    a = np.asarray(a)
    spec = _BITS.get(a.dtype.newbyteorder("=")) if a.dtype.kind == "f" else None
    if spec is None:
        return np.zeros(a.shape, bool)
    view, exp, man, _ = spec
    bits = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("="), copy=False).view(view)
    return ((bits & view(exp)) == 0) & ((bits & view(man)) != 0)


def _flush(a: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``a`` with the entries under ``mask`` replaced by a zero of the same sign (bit operations)."""
    view, _, _, sign = _BITS[a.dtype.newbyteorder("=")]
    out = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("="), copy=True)
    bits = out.view(view)
    bits[mask] &= view(sign)
    return out


def _tensors(graph: "onnx.GraphProto") -> Iterator["onnx.TensorProto"]:
    """Every TensorProto stored in ``graph``: initializers, Constant values, subgraphs (Loop/If/Scan)."""
    from onnx import AttributeProto  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == AttributeProto.TENSORS:
                yield from attr.tensors
            elif attr.type == AttributeProto.GRAPH:
                yield from _tensors(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _tensors(g)


def _is_external(t: "onnx.TensorProto") -> bool:
    from onnx import TensorProto  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    return t.data_location == TensorProto.EXTERNAL


def count_subnormals(model: "onnx.ModelProto") -> int:
    """Number of subnormal values stored in ``model`` (initializers, constants, subgraphs).

    Tensors held in external data that is not loaded are not read (they count as 0).
    """
    from onnx import numpy_helper  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    n = 0
    for t in _tensors(model.graph):
        if _is_external(t):
            continue
        n += int(subnormal_mask(numpy_helper.to_array(t)).sum())
    return n


def flush_subnormals(model: "onnx.ModelProto") -> tuple["onnx.ModelProto", int]:
    """A copy of ``model`` with every stored subnormal value replaced by a zero of the same sign.

    Parameters
    ----------
    model : onnx.ModelProto
        Left unchanged. External data must already be loaded to be flushed.

    Returns
    -------
    flushed : onnx.ModelProto
        ``model`` itself when nothing was subnormal, else a modified copy.
    count : int
        How many values were flushed.
    """
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX
    from onnx import numpy_helper  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    if count_subnormals(model) == 0:
        return model, 0
    out = onnx.ModelProto.FromString(model.SerializeToString())
    total = 0
    for t in _tensors(out.graph):
        if _is_external(t):
            continue
        a = numpy_helper.to_array(t)
        mask = subnormal_mask(a)
        if not mask.any():
            continue
        total += int(mask.sum())
        t.CopyFrom(numpy_helper.from_array(_flush(a, mask), t.name))
    return out, total
