"""Device-resident stepping of the latent map: IOBinding ping-pong buffers and on-device compaction.

:class:`BoundMap` keeps the latents of the running rows in two preallocated ONNX Runtime buffers on
the map's device (``cuda`` on the CUDA execution provider, ``cpu`` otherwise) and uses them in
turn: a step reads one buffer and writes the other (a prefix of it: the running rows). Only the
per-row squared step and squared norm cross to the host. Rows that stop leave, and new starts
come in, through a small ``Gather``/``Concat`` graph that runs on the same device and writes the
compacted batch into the other buffer; the stopped rows' states are the only latents copied back.
On the CPU execution provider the same code runs with ``cpu`` buffers (no speed gain, ONNX Runtime
issue #10000), so CI exercises all of its logic.

Optional CUDA graphs (``cuda_graph=True``): each step is padded to a fixed batch bucket, and each
(bucket, direction) pair is one captured graph id (two ids per bucket for the ping-pong, fixed
buckets because ONNX Runtime's memory pool does not shrink). A registry refuses a run whose shape
or buffers differ from what its id captured, since a replay checks nothing. The padded rows hold
stale finite values and their outputs are ignored. Bucketing also runs on the CPU (``buckets=True``,
no capture) so its padding and registry logic are tested without a GPU; the lines that only run
with CUDA are marked ``# CUDA-only``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flowcore.errors import BackendError
from flowcore.runtime.fusion import FUSED_INPUT, FUSED_OUTPUTS
from flowcore.runtime.providers import CUDA, import_onnxruntime

__all__ = ["BoundMap", "bucket_sizes", "rows_model"]


def bucket_sizes(capacity: int, smallest: int = 256) -> tuple[int, ...]:
    """Batch buckets: powers of two from ``smallest`` below ``capacity``, then ``capacity`` itself."""
    out = []
    b = int(smallest)
    while b < capacity:
        out.append(b)
        b *= 2
    out.append(int(capacity))
    return tuple(out)


def rows_model(latent_shape: tuple[int, ...]):
    """The compaction graph: ``(src (m, *s), keep (w,), stop (q,), new (r, *s)) ->
    (kept = concat(src[keep], new) (w + r, *s), stopped = src[stop] (q, *s))``, float32 / int64."""
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX
    from onnx import TensorProto, helper  # lazy: import cost (onnx ~0.15 s)

    vi = helper.make_tensor_value_info
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    graph = helper.make_graph(
        [helper.make_node("Gather", ["src", "keep"], ["gathered"], axis=0),
         helper.make_node("Concat", ["gathered", "new"], ["kept"], axis=0),
         helper.make_node("Gather", ["src", "stop"], ["stopped"], axis=0)],
        "flowcore_rows",
        inputs=[vi("src", f, ["m", *latent_shape]), vi("keep", i64, ["w"]), vi("stop", i64, ["q"]),
                vi("new", f, ["r", *latent_shape])],
        outputs=[vi("kept", f, ["w_r", *latent_shape]), vi("stopped", f, ["q", *latent_shape])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="flowcore")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class BoundMap:
    """IOBinding ping-pong stepping of ``lmap``'s fused map for up to ``capacity`` rows.

    Parameters
    ----------
    lmap : LatentMap
        The map; its fused session (and providers) are used as they are.
    capacity : int
        Most rows in flight (the buffers hold ``capacity`` rows each).
    buckets : bool, default False
        Pad every step to the smallest bucket of :func:`bucket_sizes` that holds the running rows.
    cuda_graph : bool, default False
        Capture and replay one CUDA graph per (bucket, direction); implies ``buckets``. Needs the
        CUDA execution provider (a :class:`BackendError` otherwise).

    The running rows' states live in buffer ``self.current`` (rows ``0 .. m-1``).
    """

    def __init__(self, lmap, capacity: int, *, buckets: bool = False, cuda_graph: bool = False) -> None:
        self._ort = ort = import_onnxruntime()
        self.shape = tuple(lmap.latent_shape)
        self.k = int(np.prod(self.shape, dtype=np.int64))
        self.capacity = int(capacity)
        used = lmap.providers
        self.device = "cuda" if used and used[0] == CUDA else "cpu"
        if cuda_graph and self.device != "cuda":
            raise BackendError("CUDA graphs need the CUDA execution provider; this map runs on "
                               f"{used[0] if used else 'no provider'}")
        self.cuda_graph = bool(cuda_graph)
        self.buckets = bucket_sizes(self.capacity) if (buckets or cuda_graph) else None
        if self.cuda_graph:  # CUDA-only: untested without a GPU
            self._sess = lmap.session_with_provider_options({"enable_cuda_graph": "1"})  # CUDA-only
        else:
            self._sess = lmap.fused_session()
        self._rows = lmap.helper_session("compaction", rows_model(self.shape))
        dev = self.device
        zeros = np.zeros((self.capacity, *self.shape), np.float32)
        self._buf = [ort.OrtValue.ortvalue_from_numpy(zeros, dev, 0) for _ in range(2)]
        self._ptr = [b.data_ptr() for b in self._buf]
        self._sq_dev = self._nrm_dev = None
        if self.cuda_graph:  # CUDA-only: outputs stay on the device inside a captured graph
            self._sq_dev = ort.OrtValue.ortvalue_from_shape_and_type((self.capacity,), np.float32, dev, 0)  # CUDA-only
            self._nrm_dev = ort.OrtValue.ortvalue_from_shape_and_type((self.capacity,), np.float32, dev, 0)  # CUDA-only
        self.sq = np.zeros(self.capacity, np.float32)
        self.nrm = np.zeros(self.capacity, np.float32)
        self.current = 0
        self.captured: dict[int, tuple[int, int, int]] = {}  # graph id -> (rows, input ptr, output ptr)
        self._io = self._sess.io_binding()
        self._io_rows = self._rows.io_binding()

    # ------------------------------------------------------------------ helpers
    def _bucket(self, m: int) -> int:
        if self.buckets is None:
            return m
        for b in self.buckets:
            if b >= m:
                return b
        raise BackendError(f"{m} rows exceed the bound buffers' capacity {self.capacity}")

    def _graph_id(self, rows: int, src: int) -> int:
        """The CUDA graph id of a step of ``rows`` (a bucket) reading buffer ``src``; checked against the registry."""
        gid = 2 * self.buckets.index(rows) + src
        want = (rows, self._ptr[src], self._ptr[1 - src])
        seen = self.captured.setdefault(gid, want)
        if seen != want:
            raise BackendError(f"CUDA graph {gid} was captured for {seen[0]} rows on other buffers; refusing "
                               f"to replay it for {rows} rows (a replay checks nothing)")
        return gid

    # --------------------------------------------------------------------- API
    def step(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """Apply f to the ``m`` running rows (buffer ``current`` → the other buffer, which becomes current).

        Returns
        -------
        step_sq, norm_sq : ndarray of shape (m,), float32
            Views of host buffers, valid until the next step.
        """
        if m > self.capacity:
            raise BackendError(f"{m} rows exceed the bound buffers' capacity {self.capacity}")
        rows = self._bucket(m)
        src, dst = self.current, 1 - self.current
        io = self._io
        io.bind_input(FUSED_INPUT, self.device, 0, np.float32, [rows, *self.shape], self._ptr[src])
        io.bind_output(FUSED_OUTPUTS[0], self.device, 0, np.float32, [rows, *self.shape], self._ptr[dst])
        run_options = None
        if self.cuda_graph:  # CUDA-only: untested without a GPU
            io.bind_output(FUSED_OUTPUTS[1], self.device, 0, np.float32, [rows], self._sq_dev.data_ptr())  # CUDA-only
            io.bind_output(FUSED_OUTPUTS[2], self.device, 0, np.float32, [rows], self._nrm_dev.data_ptr())  # CUDA-only
            run_options = self._ort.RunOptions()  # CUDA-only
            run_options.add_run_config_entry("gpu_graph_id", str(self._graph_id(rows, src)))  # CUDA-only
        else:
            if self.buckets is not None:
                self._graph_id(rows, src)  # the registry's check, as with CUDA graphs
            io.bind_output(FUSED_OUTPUTS[1], "cpu", 0, np.float32, [rows], self.sq.ctypes.data)
            io.bind_output(FUSED_OUTPUTS[2], "cpu", 0, np.float32, [rows], self.nrm.ctypes.data)
        try:
            self._sess.run_with_iobinding(io, run_options)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime failed: {str(exc).splitlines()[0]}") from None
        if self.cuda_graph:  # CUDA-only: the two per-row floats cross to the host
            self.sq[:rows] = self._sq_dev.numpy()[:rows]  # CUDA-only
            self.nrm[:rows] = self._nrm_dev.numpy()[:rows]  # CUDA-only
        self.current = dst
        return self.sq[:m], self.nrm[:m]

    def compact(self, m: int, keep: np.ndarray, stop: np.ndarray, new: np.ndarray) -> np.ndarray:
        """Keep rows ``keep`` of the ``m`` running rows, append ``new`` and return the rows ``stop``.

        Parameters
        ----------
        m : int
            Running rows in buffer ``current``.
        keep, stop : ndarray of shape (w,) and (q,), int64
            Positions (among the m) of the rows that keep running / that stopped.
        new : ndarray of shape (r, *latent_shape), float32
            Fresh starts, placed after the kept rows (w + r ≤ capacity).

        Returns
        -------
        ndarray of shape (q, *latent_shape), float32
            The stopped rows' states, copied to the host.
        """
        w, q, r = len(keep), len(stop), len(new)
        if w + r > self.capacity:
            raise BackendError(f"{w + r} rows exceed the bound buffers' capacity {self.capacity}")
        src, dst = self.current, 1 - self.current
        stopped = np.empty((q, *self.shape), np.float32)
        io = self._io_rows
        io.bind_input("src", self.device, 0, np.float32, [m, *self.shape], self._ptr[src])
        io.bind_cpu_input("keep", np.ascontiguousarray(keep, np.int64))
        io.bind_cpu_input("stop", np.ascontiguousarray(stop, np.int64))
        io.bind_cpu_input("new", np.ascontiguousarray(new, np.float32).reshape((r, *self.shape)))
        io.bind_output("kept", self.device, 0, np.float32, [w + r, *self.shape], self._ptr[dst])
        io.bind_output("stopped", "cpu", 0, np.float32, [q, *self.shape], stopped.ctypes.data)
        try:
            self._rows.run_with_iobinding(io)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime failed: {str(exc).splitlines()[0]}") from None
        self.current = dst
        return stopped

    def describe(self) -> dict[str, Any]:
        """Plain JSON: device, capacity, buckets, whether CUDA graphs are on and how many ids were used."""
        return {"device": self.device, "capacity": self.capacity,
                "buckets": None if self.buckets is None else list(self.buckets),
                "cuda_graph": self.cuda_graph, "graph_ids": len(self.captured) if self.cuda_graph else 0}
