"""LatentMap: encode, decode and the fused latent map f = E∘D on ONNX Runtime.

``LatentMap(bundle)`` creates its ONNX Runtime sessions once and reuses them. The latent map is
ONE fused graph built with :func:`onnx.compose.merge_models` (decoder then encoder) that also
returns, per row, the squared step ``‖f(z) − z‖²`` and the squared norm ``‖f(z)‖²``, so the
trajectory engine reads only two floats per row besides the new latents.

A LatentMap can also wrap a single latent→latent graph (:meth:`LatentMap.from_graph`): an
encoder with a surrogate decoder, a residual stream. The dynamics code does not care.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.bundle.subnormal import count_subnormals, flush_subnormals
from flowcore.errors import BackendError, BundleError, FlowcoreWarning, ProviderWarning
from flowcore.runtime.fusion import FUSED_INPUT, FUSED_OUTPUTS, _with_external_data, fuse, graph_to_map
from flowcore.runtime.parity import parity as _parity
from flowcore.runtime.parity import relative_error
from flowcore.runtime._arrays import coerce as _coerce
from flowcore.runtime.segment import segment_model
from flowcore.runtime.providers import default_session_options, import_onnxruntime, provider_options, resolve_providers

if TYPE_CHECKING:
    import onnx  # annotations only: onnx is imported where used (import cost)

__all__ = ["LatentMap", "fuse", "resolve_providers", "import_onnxruntime", "SubnormalWarning", "SUBNORMAL_RTOL"]  # fuse: re-exported from .fusion

log = logging.getLogger("flowcore")

#: Largest relative change of a graph's outputs (on a fixed probe batch) accepted when its
#: subnormal weights are flushed; the adapters' export tolerance.
SUBNORMAL_RTOL = 1e-4


class SubnormalWarning(FlowcoreWarning):
    """Flushing a graph's subnormal weights changed its outputs; the original graph is used."""

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
    ) -> None:
        if not isinstance(bundle, FlowBundle):
            bundle = FlowBundle.load(bundle)
        self.bundle: FlowBundle | None = bundle
        self.latent_shape: tuple[int, ...] = tuple(bundle.latent_shape)
        self.input_shape: tuple[int, ...] | None = tuple(bundle.input_shape)
        self._requested = providers
        self._providers = resolve_providers(providers)
        self._session_options = session_options
        self._threads = intra_op_num_threads
        self._fused_model: onnx.ModelProto | None = None
        self._sessions: dict[str, Any] = {}
        self._fused_run = None
        self._flush = bool(flush_subnormals)
        self._subnormals: dict[str, dict[str, Any]] = {}

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
    ) -> "LatentMap":
        """A LatentMap from one latent→latent graph ``(N, *s) -> (N, *s)`` (no encode/decode)."""
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
        self._requested = providers
        self._providers = resolve_providers(providers)
        self._session_options = session_options
        self._threads = intra_op_num_threads
        self._fused_model = fused
        self._sessions = {}
        self._fused_run = None
        self._flush = bool(flush_subnormals)
        self._subnormals = {}
        return self

    # --------------------------------------------------------------- sessions
    def _options(self):
        if self._session_options is not None:
            return self._session_options
        return default_session_options(self._threads)

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
            sess = self._flushed(which, model, source)
        else:
            sess = self._new_session(which, source)
        used = sess.get_providers()
        if self._providers[0] not in used:
            msg = f"asked for {self._providers[0]} but ONNX Runtime runs the {which} graph on {used}"
            if isinstance(self._requested, str) and self._requested.lower() == "auto":
                warnings.warn(msg, ProviderWarning, stacklevel=3)
            else:
                raise BackendError(msg)
        log.info("flowcore: %s graph on %s", which, used[0])
        self._sessions[which] = sess
        return sess

    def _new_session(self, which: str, source: Any, extra: dict[str, str] | None = None):
        """A session of ``source`` on this map's providers (``extra``: options for the first provider)."""
        ort = import_onnxruntime()
        try:
            return ort.InferenceSession(source, sess_options=self._options(), providers=self._providers,
                                        provider_options=provider_options(self._providers, extra))
        except Exception as exc:
            with_extra = f" with {extra}" if extra else ""
            raise BackendError(f"ONNX Runtime could not load the {which} graph{with_extra}: "
                               f"{str(exc).splitlines()[0]}") from None

    def _probe(self, which: str) -> tuple[str, np.ndarray]:
        """A fixed probe batch for ``which``: (input name, (16, *shape) float32)."""
        rng = np.random.default_rng(0)
        if which == "encoder":
            return self.bundle.encoder_input, rng.random((16, *self.input_shape), dtype=np.float32)
        name = FUSED_INPUT if which == "fused" else self.bundle.decoder_input
        return name, rng.standard_normal((16, *self.latent_shape), dtype=np.float32)

    def _flushed(self, which: str, model: "onnx.ModelProto", source: Any):
        """A session of ``model`` with its subnormal weights flushed when that keeps the outputs, else of ``source``."""
        if which != "fused" and self.bundle is not None:
            model = _with_external_data(model, self.bundle.path)
        flushed, n = flush_subnormals(model)
        info = {"count": n, "flushed": False, "rtol": SUBNORMAL_RTOL}
        self._subnormals[which] = info
        sess = self._new_session(which, source)
        if n == 0:
            return sess
        try:
            candidate = self._new_session(which, flushed.SerializeToString())
        except (BackendError, ValueError):  # a graph over protobuf's 2 GB limit stays as it is
            info["reason"] = "graph too large to rebuild in memory"
            return sess
        name, probe = self._probe(which)
        err = max(relative_error(a, b) for a, b in zip(candidate.run(None, {name: probe}), sess.run(None, {name: probe})))
        info["probe_relative_error"] = err
        if not err <= SUBNORMAL_RTOL:
            warnings.warn(f"flushing {n} subnormal weights of the {which} graph changed its outputs by {err:.2e} "
                          f"(> {SUBNORMAL_RTOL:g}); the original graph is used (expect slow CPU runs)",
                          SubnormalWarning, stacklevel=4)
            return sess
        info["flushed"] = True
        if which == "fused":
            self._fused_model = flushed
        log.info("flowcore: flushed %d subnormal weights of the %s graph (max relative change %.1e)", n, which, err)
        return candidate

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
        return self._options()

    def fused_session(self) -> Any:
        """The ONNX Runtime session of the fused graph (created, its weights flushed, on first use)."""
        return self._session("fused")

    def segment_session(self) -> Any:
        """The session of the segment graph (:mod:`flowcore.runtime.segment`) around the fused graph."""
        sess = self._sessions.get("segment")
        if sess is None:
            self._session("fused")  # flushing decided first: the segment graph wraps the graph iterated
            model = segment_model(self._fused_model, len(self.latent_shape))
            sess = self._sessions["segment"] = self._new_session("segment", model.SerializeToString())
        return sess

    def session_with_provider_options(self, options: dict[str, str]) -> Any:
        """A new session of the fused graph with these options for its first provider (e.g. CUDA graphs)."""
        self._session("fused")  # flushing decided first, as for every engine session
        return self._new_session("fused", self._fused_model.SerializeToString(), dict(options))

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
            "providers_requested": self._requested if isinstance(self._requested, str) else list(self._requested),
            "providers": self.providers,
            "bundle": None if self.bundle is None else str(self.bundle.path),
            "bundle_sha256": None if self.bundle is None else self.bundle.sha256,
            "flush_subnormals": self._flush,
            "subnormals": self.subnormals,
        }
