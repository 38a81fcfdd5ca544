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
from flowcore.errors import BackendError, BundleError, DataError, ProviderWarning
from flowcore.runtime.fusion import FUSED_INPUT, FUSED_OUTPUTS, fuse, graph_to_map
from flowcore.runtime.parity import parity as _parity

if TYPE_CHECKING:
    import onnx  # annotations only: onnx is imported where used (import cost)

__all__ = ["LatentMap", "fuse", "resolve_providers", "import_onnxruntime"]  # fuse: re-exported from .fusion

log = logging.getLogger("flowcore")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def import_onnxruntime():
    """Import ONNX Runtime or fail with one line naming the two extras."""
    try:
        import onnxruntime as ort  # lazy: optional extra onnxruntime (flowcore[cpu] / flowcore[gpu]); also import cost
    except ImportError:
        raise BackendError(
            "ONNX Runtime is not installed: pip install 'flowcore[cpu]' (or 'flowcore[gpu]' on a CUDA machine)"
        ) from None
    return ort


def resolve_providers(providers: str | Sequence[str] = "auto") -> list[str]:
    """Turn ``"auto" | "cpu" | "cuda"`` or an explicit list into an ONNX Runtime provider list.

    ``auto`` means the CUDA execution provider when this ONNX Runtime build offers it, else CPU.
    ``cuda`` fails when the build has no CUDA provider (no silent fallback).
    """
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    if isinstance(providers, str):
        choice = providers.lower()
        if choice == "auto":
            return [CUDA, CPU] if CUDA in available else [CPU]
        if choice == "cpu":
            return [CPU]
        if choice in ("cuda", "gpu"):
            if CUDA not in available:
                raise BackendError(
                    f"device 'cuda' asked for, but this ONNX Runtime build offers {available}; "
                    "install flowcore[gpu] (onnxruntime-gpu) and remove onnxruntime"
                )
            return [CUDA, CPU]
        raise BackendError(f"unknown device {providers!r}; expected auto, cpu or cuda")
    out = list(providers)
    unknown = [p for p in out if p not in available]
    if unknown:
        raise BackendError(f"providers {unknown} are not in this ONNX Runtime build; available: {available}")
    return out


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
        return self

    # --------------------------------------------------------------- sessions
    def _options(self):
        ort = import_onnxruntime()
        if self._session_options is not None:
            return self._session_options
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if self._threads is not None:
            so.intra_op_num_threads = int(self._threads)
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return so

    def _session(self, which: str):
        sess = self._sessions.get(which)
        if sess is not None:
            return sess
        ort = import_onnxruntime()
        if which == "fused":
            if self._fused_model is None:
                self._fused_model = fuse(self.bundle)
            source: Any = self._fused_model.SerializeToString()
        else:
            if self.bundle is None:
                raise BackendError(f"this LatentMap wraps a single latent graph; it has no {which}")
            source = str(self.bundle.path / self.bundle.manifest[which]["file"])
        try:
            sess = ort.InferenceSession(source, sess_options=self._options(), providers=self._providers)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime could not load the {which} graph: {str(exc).splitlines()[0]}") from None
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

        The adapters pass their framework models as plain functions of NumPy batches; see
        :func:`flowcore.runtime.parity.parity` (decoders are fed the reference latents).

        Parameters
        ----------
        reference_encode : callable
            ``(b, *input_shape) float32 ndarray -> (b, *latent_shape)`` array-like.
        reference_decode : callable
            ``(b, *latent_shape) ndarray -> (b, *input_shape)`` array-like.
        inputs : ndarray of shape (n, *input_shape), float32
        batch_size : int, default 1024
            Rows per run.

        Returns
        -------
        dict
            ``{"n": int, "encoder": float, "decoder": float}``: relative errors
            max|onnx - reference| / max(max|reference|, 1e-12); lower is better.

        Raises
        ------
        ExportError
            If ``inputs`` is not a float32 array of shape (n, *input_shape) with n >= 1.
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
        }


def _coerce(a: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        arr = np.asarray(a)
    except Exception:
        raise DataError(f"{what} could not be read as an array") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"{what} have dtype {arr.dtype}; expected a numeric array")
    if arr.ndim < 1:
        raise DataError(f"{what} must have a batch axis; got a scalar")
    k = int(np.prod(shape, dtype=np.int64))
    n = arr.shape[0]
    if tuple(arr.shape[1:]) != tuple(shape):
        if arr.ndim == 2 and arr.shape[1] == k:
            arr = arr.reshape((n, *shape))
        else:
            raise DataError(
                f"{what} have shape {tuple(arr.shape)}; expected (N, {', '.join(map(str, shape))})"
                f"{'' if len(shape) == 1 else f' or (N, {k})'}"
            )
    return np.ascontiguousarray(arr, dtype=np.float32)
