"""LatentMap: encode, decode and the fused latent map f = E∘D on ONNX Runtime.

``LatentMap(bundle)`` creates its ONNX Runtime sessions once, on first use, through
:mod:`flowcore.runtime._sessions` (options, providers, subnormal flushing), and reuses them. The latent map is
ONE fused graph built with :func:`onnx.compose.merge_models` (decoder then encoder) that also
returns, per row, the squared step ``‖f(z) − z‖²`` and the squared norm ``‖f(z)‖²``, so the
trajectory engine reads only two floats per row besides the new latents.

A LatentMap can also wrap a single latent→latent graph (:meth:`LatentMap.from_graph`): an
encoder with a surrogate decoder, a residual stream. The dynamics code does not care.
"""

from __future__ import annotations

import operator
import os
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.bundle.subnormal import count_subnormals
from flowcore.errors import BackendError, BundleError, ParameterError
from flowcore.runtime.fusion import FUSED_INPUT, FUSED_OUTPUTS, _with_external_data, fuse, graph_to_map
from flowcore.runtime.parity import parity as _parity
from flowcore.runtime._arrays import coerce as _coerce
from flowcore.runtime._sessions import SUBNORMAL_RTOL, SessionMaker, SubnormalWarning
from flowcore.runtime.providers import import_onnxruntime, resolve_providers

if TYPE_CHECKING:
    import onnx  # annotations only: onnx is imported where used (import cost)

__all__ = ["LatentMap", "fuse", "resolve_providers", "import_onnxruntime", "SubnormalWarning", "SUBNORMAL_RTOL"]  # re-exported: fuse (.fusion), providers, the subnormal check (._sessions)


class LatentMap:
    """The latent map ``f(z) = E(D(z))`` of a bundle, on ONNX Runtime.

    Parameters
    ----------
    bundle : FlowBundle or path-like
        The model. A path is loaded (and validated) with :meth:`FlowBundle.load`.
    providers : {"auto", "cpu", "cuda"} or list of str, default "auto"
        ``auto`` = CUDA execution provider when the installed ONNX Runtime offers it, else CPU.
        The providers actually used are in :attr:`providers` and logged.
    session_options : onnxruntime.SessionOptions, optional
        Used as given for every session. When omitted, flowcore makes one with
        ``intra_op_num_threads`` and intra-op spinning off (spinning threads slow a process that
        also runs torch, several-fold on 2 cores).
    intra_op_num_threads : int, optional
        Threads per session (0 or None = ONNX Runtime's default, the physical cores).
    flush_subnormals : bool, default True
        Replace subnormal weights by (signed) zeros in the graphs flowcore builds in memory (the
        bundle on disk and its hashes are unchanged), after checking on a probe batch that the
        outputs agree within ``SUBNORMAL_RTOL``; otherwise the original graph is kept with a
        :class:`SubnormalWarning`. Subnormal weights (left by weight decay) slow ONNX Runtime
        tens of times on x86 CPUs. What was found and flushed is in :attr:`subnormals`.
        flowcore's own session options also set ``session.set_denormal_as_zero``; ONNX Runtime
        then sets flush-to-zero / denormals-are-zero on the threads that run graphs, the calling
        thread included, and it stays set there (NumPy in that thread then treats subnormal
        floats as zero). Pass your own ``session_options`` to avoid that.
    activation_budget : int, "auto" or None, default "auto"
        Bytes of intermediate tensors allowed in flight at once. Every batched call (``encode``,
        ``decode``, ``f``, :func:`flowcore.iterate`) runs at most :meth:`max_rows` rows per
        ``session.run``, from each graph's activation memory per row
        (:mod:`flowcore.runtime.activation_memory`). ``"auto"``: 2 GiB on the CPU, 8 GiB on CUDA
        (fixed, so the rows in flight are the same on every run). None: no cap (the batch sizes
        asked for are used as given).

    Examples
    --------
    >>> lmap = LatentMap("bundle/", providers="cpu")          # doctest: +SKIP
    >>> z = lmap.encode(x)          # (N, *latent_shape) float32  # doctest: +SKIP
    >>> z1 = lmap(z)                # E(D(z))                     # doctest: +SKIP
    """

    def __init__(
        self,
        bundle: FlowBundle | str | os.PathLike,
        *,
        providers: str | Sequence[str] = "auto",
        session_options: Any = None,
        intra_op_num_threads: int | None = None,
        flush_subnormals: bool = True,
        activation_budget: int | str | None = "auto",
    ) -> None:
        if not isinstance(bundle, FlowBundle):
            bundle = FlowBundle.load(bundle)
        self.bundle: FlowBundle | None = bundle
        self.latent_shape: tuple[int, ...] = tuple(bundle.latent_shape)
        self.input_shape: tuple[int, ...] | None = tuple(bundle.input_shape)
        self._maker = SessionMaker(providers, session_options, intra_op_num_threads)
        self._fused_model: onnx.ModelProto | None = None
        self._sessions: dict[str, Any] = {}
        self._fused_run = None
        self._flush = bool(flush_subnormals)
        self._subnormals: dict[str, dict[str, Any]] = {}
        self._budget = _check_budget(activation_budget)
        self._max_rows: dict[str, int | None] = {}

    @classmethod
    def from_graph(
        cls,
        model: onnx.ModelProto | str | os.PathLike,
        *,
        input_name: str | None = None,
        output_name: str | None = None,
        providers: str | Sequence[str] = "auto",
        session_options: Any = None,
        intra_op_num_threads: int | None = None,
        flush_subnormals: bool = True,
        activation_budget: int | str | None = "auto",
    ) -> "LatentMap":
        """A LatentMap from one latent→latent graph ``(N, *s) -> (N, *s)`` (no encode/decode).

        Use it for any latent self-map that is not an encoder/decoder pair in a bundle, e.g. a frozen
        encoder composed with a surrogate decoder (the paper's App. B.8): build one ONNX graph of
        f = E ∘ D, e.g. ``onnx.compose.merge_models(decoder, encoder, io_map=[("x_hat", "x")])``.

        Parameters
        ----------
        model : onnx.ModelProto or path-like
            One input of shape (N, *s) and one output of the same static shape s (N dynamic), float32.
        input_name, output_name : str, optional
            Which input/output when the graph has several (default: the only one).
        providers, session_options, intra_op_num_threads, flush_subnormals, activation_budget
            As for :class:`LatentMap`.

        Returns
        -------
        LatentMap
            ``latent_shape == s``; ``bundle`` and ``input_shape`` are None, so ``encode``/``decode``
            are unavailable; :func:`flowcore.iterate` and the other dynamics work as usual.

        Raises
        ------
        BundleError
            Not a readable ONNX model, or its input and output shapes differ.
        """
        import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

        if not isinstance(model, onnx.ModelProto):
            try:
                model = onnx.load(str(model))
            except Exception as exc:
                raise BundleError(f"{model} is not a readable ONNX model ({type(exc).__name__})") from None
        fused, shape = graph_to_map(model, input_name, output_name)
        self = cls.__new__(cls)
        self.bundle = None
        self.latent_shape = shape
        self.input_shape = None
        self._maker = SessionMaker(providers, session_options, intra_op_num_threads)
        self._fused_model = fused
        self._sessions = {}
        self._fused_run = None
        self._flush = bool(flush_subnormals)
        self._subnormals = {}
        self._budget = _check_budget(activation_budget)
        self._max_rows = {}
        return self

    # ------------------------------------------------------ activation memory
    def max_rows(self, which: str = "fused") -> int | None:
        """The most rows of graph ``which`` (``fused``, ``encoder``, ``decoder``) run at once, None = no cap.

        From the graph's activation memory per row and the ``activation_budget``; computed once per graph.
        """
        if which not in self._max_rows:
            if self._budget is None:
                self._max_rows[which] = None
            else:  # lazy: onnx's import cost; import flowcore needs no ONNX
                from flowcore.runtime.activation_memory import default_budget, max_rows, row_bytes  # noqa: PLC0415

                if which != "fused" and (self.bundle is None or which not in ("encoder", "decoder")):
                    raise BackendError(f"this LatentMap has no {which!r} graph")
                model = self.fused_model if which == "fused" else getattr(self.bundle, which)
                budget = default_budget(self._session(which).get_providers()) if self._budget == "auto" else self._budget
                self._max_rows[which] = max_rows(row_bytes(model), budget)
        return self._max_rows[which]

    def rows_in_flight(self, batch_size: int, which: str = "fused") -> int:
        """``batch_size`` lowered to :meth:`max_rows` of graph ``which`` where that is smaller."""
        rows = operator.index(batch_size)  # a float batch size is a TypeError, as it always was
        if rows < 1:
            raise ParameterError(f"batch_size must be >= 1, got {rows}")
        cap = self.max_rows(which)
        return rows if cap is None else min(rows, cap)

    # --------------------------------------------------------------- sessions
    def _session(self, which: str):
        sess = self._sessions.get(which)
        if sess is not None:
            return sess
        if which == "fused":
            if self._fused_model is None:
                self._fused_model = fuse(self.bundle)
            model = self._fused_model
            source: Any = model.SerializeToString()
        else:
            if self.bundle is None:
                raise BackendError(f"this LatentMap wraps a single latent graph; it has no {which}")
            model = getattr(self.bundle, which)
            # the verified graph in memory, not the file again (it could have changed since load);
            # a graph with external data is read from disk, next to its weights
            source = (str(self.bundle.path / self.bundle.manifest[which]["file"])
                      if self.bundle.manifest[which].get("external_data") else model.SerializeToString())
        if self._flush:  # count and flush before any session: see flowcore.bundle.subnormal (DAZ)
            if which != "fused" and self.bundle is not None:
                model = _with_external_data(model, self.bundle.path)
            sess, self._subnormals[which], flushed = self._maker.flushed(which, model, source,
                                                                         lambda: self._probe(which))
            if flushed is not None and which == "fused":
                self._fused_model = flushed
        else:
            sess = self._maker.new(which, source)
        self._maker.check_providers(which, sess)
        self._sessions[which] = sess
        return sess

    def _probe(self, which: str) -> tuple[str, np.ndarray]:
        """A fixed probe batch for ``which``: (input name, (16, *shape) float32)."""
        rng = np.random.default_rng(0)
        if which == "encoder":
            return self.bundle.encoder_input, rng.random((16, *self.input_shape), dtype=np.float32)
        name = FUSED_INPUT if which == "fused" else self.bundle.decoder_input
        return name, rng.standard_normal((16, *self.latent_shape), dtype=np.float32)

    @property
    def subnormals(self) -> dict[str, dict[str, Any]]:
        """Per graph with a session so far (``encoder``, ``decoder``, ``fused``): subnormal weights found
        (``count``), whether the in-memory graph was flushed (``flushed``) and the probe's relative
        change (``probe_relative_error``). Empty with ``flush_subnormals=False``."""
        return {k: dict(v) for k, v in self._subnormals.items()}

    def count_subnormals(self) -> dict[str, int]:
        """Subnormal values stored in the bundle's graphs as they are on disk: ``{"encoder": n, "decoder": n}``."""
        if self.bundle is None:
            return {"fused": count_subnormals(self.fused_model)}
        return {w: count_subnormals(_with_external_data(getattr(self.bundle, w), self.bundle.path))
                for w in ("encoder", "decoder")}

    # ------------------------------------------------------- engine sessions
    def session_options(self) -> Any:
        """The ONNX Runtime session options every session of this map is created with."""
        return self._maker.options()

    def fused_session(self) -> Any:
        """The ONNX Runtime session of the fused graph (created, its weights flushed, on first use)."""
        return self._session("fused")

    def session_with_provider_options(self, options: dict[str, str]) -> Any:
        """A new session of the fused graph with these options for its first provider (e.g. CUDA graphs)."""
        self._session("fused")  # flushing decided first, as for every engine session
        return self._maker.new("fused", self._fused_model.SerializeToString(), dict(options))

    def helper_session(self, which: str, model: "onnx.ModelProto") -> Any:
        """A session of an engine's helper graph ``model`` (e.g. the iobinding compaction graph) on
        this map's providers and options, ``which`` naming it in errors."""
        return self._maker.new(which, model.SerializeToString())

    @property
    def providers(self) -> list[str]:
        """Providers ONNX Runtime actually uses for the fused graph."""
        return list(self._session("fused").get_providers())

    @property
    def fused_model(self) -> onnx.ModelProto:
        """The fused graph ``z -> (z_next, step_sq, norm_sq)``."""
        if self._fused_model is None:
            self._fused_model = fuse(self.bundle)
        return self._fused_model

    @property
    def latent_dim(self) -> int:
        return int(np.prod(self.latent_shape, dtype=np.int64))

    # ---------------------------------------------------------------- helpers
    def check_latents(self, z: Any, what: str = "latents") -> np.ndarray:
        """Return ``z`` as C-contiguous float32 of shape (N, *latent_shape); flat (N, k) is reshaped."""
        return _coerce(z, self.latent_shape, what)

    def check_inputs(self, x: Any, what: str = "inputs") -> np.ndarray:
        """Return ``x`` as C-contiguous float32 of shape (N, *input_shape); flat (N, m) is reshaped."""
        if self.input_shape is None:
            raise BackendError("this LatentMap wraps a single latent graph; it has no input space")
        return _coerce(x, self.input_shape, what)

    def _run_batched(self, which: str, name_in: str, name_out: str, a: np.ndarray, batch_size: int) -> np.ndarray:
        sess = self._session(which)
        if len(a) == 0:
            out_shape = self.latent_shape if which == "encoder" else self.input_shape
            return np.empty((0, *out_shape), np.float32)
        parts = []
        batch_size = self.rows_in_flight(batch_size, which)
        for i in range(0, len(a), batch_size):
            parts.append(self._run(sess, [name_out], {name_in: a[i : i + batch_size]})[0])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    @staticmethod
    def _run(sess, outputs, feed):
        try:
            return sess.run(outputs, feed)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime failed: {str(exc).splitlines()[0]}") from None

    # -------------------------------------------------------------------- API
    def encode(self, x: Any, *, batch_size: int = 4096) -> np.ndarray:
        """E(x): (N, *input_shape) -> (N, *latent_shape), float32."""
        x = self.check_inputs(x)
        return self._run_batched("encoder", self.bundle.encoder_input, self.bundle.encoder_output, x, batch_size)

    def decode(self, z: Any, *, batch_size: int = 4096) -> np.ndarray:
        """D(z): (N, *latent_shape) -> (N, *input_shape), float32."""
        if self.input_shape is None:
            raise BackendError("this LatentMap wraps a single latent graph; it has no decoder")
        z = self.check_latents(z)
        return self._run_batched("decoder", self.bundle.decoder_input, self.bundle.decoder_output, z, batch_size)

    def step(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One application of f on a checked batch.

        Parameters
        ----------
        z : ndarray of shape (n, *latent_shape), float32, C-contiguous (not re-checked)

        Returns
        -------
        z_next : ndarray of shape (n, *latent_shape), float32
        step_sq : ndarray of shape (n,), float32 — ‖z_next − z‖²
        norm_sq : ndarray of shape (n,), float32 — ‖z_next‖²
        """
        run = self._fused_run
        if run is None:
            run = self._fused_run = self._session("fused").run
        try:
            return run(None, {FUSED_INPUT: z})
        except Exception as exc:
            raise BackendError(f"ONNX Runtime failed: {str(exc).splitlines()[0]}") from None

    def __call__(self, z: Any, *, batch_size: int = 4096) -> np.ndarray:
        """f(z) = E(D(z)) through the fused graph: (N, *latent_shape) -> same, float32."""
        z = self.check_latents(z)
        sess = self._session("fused")
        batch_size = self.rows_in_flight(batch_size)
        parts = [self._run(sess, [FUSED_OUTPUTS[0]], {FUSED_INPUT: z[i : i + batch_size]})[0]
                 for i in range(0, len(z), batch_size)]
        if not parts:
            return np.empty((0, *self.latent_shape), np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def field(self, z: Any, *, batch_size: int = 4096) -> np.ndarray:
        """V(z) = f(z) − z: (N, *latent_shape) float32."""
        z = self.check_latents(z)
        return self(z, batch_size=batch_size) - z

    def parity(self, reference_encode, reference_decode, inputs: Any, *, batch_size: int = 1024) -> dict[str, Any]:
        """Compare this map's encoder and decoder graphs with the model they came from.

        The adapters pass their framework models as plain functions of NumPy batches
        (``(b, *input_shape) -> (b, *latent_shape)`` and back); ``inputs`` is (n, *input_shape)
        float32. Returns ``{"n", "encoder", "decoder"}``, relative errors (lower is better); see
        :func:`flowcore.runtime.parity.parity` for the whole contract and its errors.
        """
        return _parity(self, reference_encode, reference_decode, inputs, batch_size=batch_size)

    def describe(self) -> dict[str, Any]:
        """Plain-JSON description: shapes, providers asked for and used."""
        return {
            "latent_shape": list(self.latent_shape),
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "providers_requested": (self._maker.requested if isinstance(self._maker.requested, str)
                                    else list(self._maker.requested)),
            "providers": self.providers,
            "bundle": None if self.bundle is None else str(self.bundle.path),
            "bundle_sha256": None if self.bundle is None else self.bundle.sha256,
            "flush_subnormals": self._flush,
            "subnormals": self.subnormals,
        }


def _check_budget(budget: Any) -> int | str | None:
    """``activation_budget`` as given ("auto", None or bytes ≥ 1); anything else is one ParameterError line."""
    if budget is None or budget == "auto":
        return budget
    if isinstance(budget, (bool, np.bool_)) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise ParameterError(f"activation_budget must be 'auto', None or a number of bytes >= 1; got {budget!r}")
    return int(budget)
