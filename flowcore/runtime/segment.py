"""The segment graph: up to K applications of f per ONNX Runtime call, the stopping rule inside.

:func:`segment_model` wraps the fused latent map ``z -> (z_next, step_sq, norm_sq)``
(:mod:`flowcore.runtime.fusion`) in one ONNX ``Loop``. Each iteration applies f to the rows
still running, tests the stopping rule of :func:`flowcore.dynamics._step_kernel.check_rows` row by
row, writes every running row's new state, step count, squared step and squared norm at its place
in the call's result arrays (``ScatterND``) and drops the rows that stopped from the running batch
(``Compress``, order kept): a stopped row is never computed again and its results stay as they
were at its stop. The host then tells diverged / converged / max_steps from the values the row
stopped on, in ``check_rows``' order, so a row's state, steps, status and last squared step are
exactly those of the per-step loop. The loop ends after ``trips`` iterations or as soon as no row
is running (``cond`` computed in the graph).

Bookkeeping is kept to 19 small nodes per step: on the CPU each node costs ~5–15 µs whatever
its size, which decides whether a segment beats one call per step (measured: README "Engines").

Inputs
    ``z`` (n, *latent_shape) float32; ``idx`` (n,) int64 = ``arange(n)``; ``steps`` (n,) int32
    (steps taken before this call); ``trips`` int64 scalar (K); ``tol``, ``limit_sq`` float32
    scalars; ``max_steps`` int32 scalar.
Outputs
    ``z_run`` (m, *latent_shape), ``idx_run`` (m,) int64, ``steps_run`` (m,) int32: the m rows
    still running after the call (their places in the input, ascending); ``z_last``
    (n, *latent_shape), ``steps_last`` (n,) int32, ``sq_last``, ``norm_last`` (n,) float32: each
    row's state, steps, ``‖z_t − z_{t−1}‖²`` and ``‖z_t‖²`` at its last step in this call (its
    stop, for the rows not in ``idx_run``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowcore.bundle.export import rename_value
from flowcore.errors import BundleError
from flowcore.runtime.fusion import FUSED_INPUT, FUSED_OUTPUTS, _default_opset

if TYPE_CHECKING:
    import onnx  # annotations only: onnx is imported where used (import cost)

__all__ = ["segment_model", "SEGMENT_INPUTS", "SEGMENT_OUTPUTS"]

SEGMENT_INPUTS = ("z", "idx", "steps", "trips", "tol", "limit_sq", "max_steps")
SEGMENT_OUTPUTS = ("z_run", "idx_run", "steps_run", "z_last", "steps_last", "sq_last", "norm_last")

_P = "sg_"  # prefix of every value this module adds (the fused graph uses dec_/enc_/fc_/map_)


def _body(fused: "onnx.ModelProto", rank: int) -> "onnx.GraphProto":
    """The Loop body: (iter, cond, z, idx, steps, res_z, res_steps, res_last, res_status) -> (cond, same but iter/cond)."""
    from onnx import GraphProto, TensorProto, helper  # lazy: import cost (onnx ~0.15 s)

    g = GraphProto()
    g.CopyFrom(fused.graph)
    rename_value(g, FUSED_INPUT, _P + "z_in")
    z_next, step_sq, norm_sq = FUSED_OUTPUTS
    del g.input[:]
    del g.output[:]
    f, i32, i64, b = TensorProto.FLOAT, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL
    dims = ["m"] + [None] * (rank - 1)
    rdims = ["n"] + [None] * (rank - 1)
    vi = helper.make_tensor_value_info
    state = [("z", f, dims), ("idx", i64, ["m"]), ("steps", i32, ["m"]), ("res_z", f, rdims),
             ("res_steps", i32, ["n"]), ("res_sq", f, ["n"]), ("res_norm", f, ["n"])]
    g.input.extend([vi(_P + "iter", i64, []), vi(_P + "cond_in", b, [])]
                   + [vi(_P + name + "_in", t, d) for name, t, d in state])
    n = helper.make_node
    g.initializer.extend([
        helper.make_tensor(_P + "one", i32, [], [1]),
        helper.make_tensor(_P + "zero64", i64, [], [0]),
        helper.make_tensor(_P + "inf", f, [], [float("inf")]),
        helper.make_tensor(_P + "axis1", i64, [1], [1]),
    ])
    g.node.extend([
        n("Add", [_P + "steps_in", _P + "one"], [_P + "steps_all"]),
        # a row keeps running while its norm is within the limit, its step finite and not small,
        # and it has steps left (check_rows' rule; the host tells diverged / converged / max_steps)
        n("LessOrEqual", [norm_sq, "limit_sq"], [_P + "norm_ok"]),
        n("Less", [step_sq, _P + "inf"], [_P + "sq_finite"]),
        n("And", [_P + "norm_ok", _P + "sq_finite"], [_P + "ok"]),
        n("Less", [step_sq, "tol"], [_P + "conv"]),
        n("GreaterOrEqual", [_P + "steps_all", "max_steps"], [_P + "maxed"]),
        n("Or", [_P + "conv", _P + "maxed"], [_P + "conv_or_max"]),
        n("Not", [_P + "conv_or_max"], [_P + "moving"]),
        n("And", [_P + "ok", _P + "moving"], [_P + "keep"]),
        # every running row's latest state at its place in the call's batch: a row that stops now
        # keeps what it has here, since it leaves the running batch below
        n("Unsqueeze", [_P + "idx_in", _P + "axis1"], [_P + "idx_col"]),
        n("ScatterND", [_P + "res_z_in", _P + "idx_col", z_next], [_P + "res_z_out"]),
        n("ScatterND", [_P + "res_steps_in", _P + "idx_col", _P + "steps_all"], [_P + "res_steps_out"]),
        n("ScatterND", [_P + "res_sq_in", _P + "idx_col", step_sq], [_P + "res_sq_out"]),
        n("ScatterND", [_P + "res_norm_in", _P + "idx_col", norm_sq], [_P + "res_norm_out"]),
        # the rows still running leave the batch compacted (order kept)
        n("Compress", [z_next, _P + "keep"], [_P + "z_out"], axis=0),
        n("Compress", [_P + "idx_in", _P + "keep"], [_P + "idx_out"], axis=0),
        n("Compress", [_P + "steps_all", _P + "keep"], [_P + "steps_out"], axis=0),
        n("Size", [_P + "idx_out"], [_P + "n_running"]),
        n("Greater", [_P + "n_running", _P + "zero64"], [_P + "cond_out"]),
    ])
    g.output.extend([vi(_P + "cond_out", b, [])] + [vi(_P + name + "_out", t, d) for name, t, d in state])
    g.name = "flowcore_segment_body"
    return g


def segment_model(fused: "onnx.ModelProto", latent_rank: int) -> "onnx.ModelProto":
    """Wrap a fused latent map in a ``Loop`` of up to ``trips`` steps with per-row freezing.

    Parameters
    ----------
    fused : onnx.ModelProto
        ``z (n, *s) -> (z_next, step_sq, norm_sq)`` as built by :func:`flowcore.runtime.fusion.fuse`
        (external data already loaded).
    latent_rank : int
        ``len(latent_shape)``; the rank of ``z`` is ``1 + latent_rank``.

    Returns
    -------
    onnx.ModelProto
        Inputs and outputs as in the module docstring (``SEGMENT_INPUTS``, ``SEGMENT_OUTPUTS``).

    Raises
    ------
    BundleError
        The fused graph's opset is below 13 (``Loop`` with these body ops needs opset 13+).
    """
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX
    from onnx import TensorProto, helper  # lazy: import cost (onnx ~0.15 s)

    opset = _default_opset(fused)
    if opset < 13:
        raise BundleError(f"the segment engine needs a graph of opset 13 or newer, got {opset}")
    rank = 1 + int(latent_rank)
    n = helper.make_node
    f = TensorProto.FLOAT
    nodes = [
        n("Shape", ["steps"], [_P + "n_shape"]),
        n("ConstantOfShape", [_P + "n_shape"], [_P + "f0"], value=helper.make_tensor(_P + "zero", f, [1], [0.0])),
        n("Constant", [], [_P + "cond0"], value=helper.make_tensor(_P + "true", TensorProto.BOOL, [], [True])),
        n("Loop", ["trips", _P + "cond0", "z", "idx", "steps", "z", "steps", _P + "f0", _P + "f0"],
          list(SEGMENT_OUTPUTS), body=_body(fused, rank), name=_P + "loop"),
    ]
    dims = ["n"] + [None] * (rank - 1)
    mdims = ["m"] + [None] * (rank - 1)
    vi = helper.make_tensor_value_info
    i32, i64 = TensorProto.INT32, TensorProto.INT64
    graph = helper.make_graph(
        nodes, "flowcore_segment",
        inputs=[vi("z", f, dims), vi("idx", i64, ["n"]), vi("steps", i32, ["n"]), vi("trips", i64, []),
                vi("tol", f, []), vi("limit_sq", f, []), vi("max_steps", i32, [])],
        outputs=[vi("z_run", f, mdims), vi("idx_run", i64, ["m"]), vi("steps_run", i32, ["m"]),
                 vi("z_last", f, dims), vi("steps_last", i32, ["n"]), vi("sq_last", f, ["n"]),
                 vi("norm_last", f, ["n"])],
    )
    opsets = {}
    for imp in fused.opset_import:
        opsets[imp.domain or ""] = max(opsets.get(imp.domain or "", 0), int(imp.version))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              producer_name="flowcore")
    model.ir_version = fused.ir_version
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise BundleError(f"segment graph fails the ONNX checker: {str(exc).splitlines()[0]}") from None
    return model
