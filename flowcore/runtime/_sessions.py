"""Every ONNX Runtime session flowcore creates: session options, provider options, subnormal flushing.

One place builds sessions, so every graph of a :class:`~flowcore.runtime.latent_map.LatentMap`
(encoder, decoder, the fused map, the engines' extra graphs) runs with the same providers and
options:

- :func:`default_session_options` — flowcore's ``SessionOptions``: threads, intra-op spinning off,
  denormals-as-zero (``session.set_denormal_as_zero``), warnings off;
- :func:`provider_options` — flowcore's per-provider options (TF32 off on CUDA) plus extras (CUDA graphs);
- :func:`inference_session` — the bare constructor (errors as ONNX Runtime raises them: the doctor
  reports them as findings);
- :class:`SessionMaker` — one map's sessions: its resolved providers and options, one error line
  per failed load, the provider check (no silent fallback) and :meth:`SessionMaker.flushed`,
  which flushes subnormal weights when that keeps the outputs (:mod:`flowcore.bundle.subnormal`).
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from flowcore.bundle.subnormal import flush_subnormals
from flowcore.errors import BackendError, FlowcoreWarning, ProviderWarning
from flowcore.runtime.parity import relative_error
from flowcore.runtime.providers import CUDA, import_onnxruntime, resolve_providers

if TYPE_CHECKING:
    import onnx  # annotations only: onnx is imported where used (import cost)

__all__ = ["default_session_options", "provider_options", "inference_session", "SessionMaker",
           "SubnormalWarning", "SUBNORMAL_RTOL"]

log = logging.getLogger("flowcore")

#: Largest relative change of a graph's outputs (on a fixed probe batch) accepted when its
#: subnormal weights are flushed; the adapters' export tolerance.
SUBNORMAL_RTOL = 1e-4

#: Options flowcore gives each provider: TF32 off on CUDA (ONNX Runtime's CUDA provider turns it on
#: by default, ~1e-3 relative error on float32 MatMul, enough to move a row's stopping step).
_PROVIDER_OPTIONS = {CUDA: {"use_tf32": "0"}}


class SubnormalWarning(FlowcoreWarning):
    """Flushing a graph's subnormal weights changed its outputs; the original graph is used."""


def provider_options(providers: Sequence[str], extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    """The ``provider_options`` list for ``providers``: flowcore's defaults, plus ``extra`` for the first one."""
    out = [dict(_PROVIDER_OPTIONS.get(p, {})) for p in providers]
    if extra and out:
        out[0].update(extra)
    return out


def default_session_options(threads: int | None = None) -> Any:
    """flowcore's ONNX Runtime session options.

    ``intra_op_num_threads`` = ``threads`` (None: ONNX Runtime's default, the physical cores),
    intra-op spinning off (spinning threads slow a process that also runs torch, several-fold on
    2 cores), denormals flushed to zero (``session.set_denormal_as_zero``), warnings off.
    """
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return so


def inference_session(source: Any, *, options: Any = None, providers: Sequence[Any],
                      provider_options: list[dict[str, str]] | None = None) -> Any:
    """``onnxruntime.InferenceSession(source, ...)``: bytes or a path; ``providers`` may hold (name, options) pairs.

    Errors are ONNX Runtime's own (callers that need one line use :meth:`SessionMaker.new`).
    """
    ort = import_onnxruntime()
    kwargs: dict[str, Any] = {"sess_options": options, "providers": list(providers)}
    if provider_options is not None:
        kwargs["provider_options"] = provider_options
    return ort.InferenceSession(source, **kwargs)


class SessionMaker:
    """The sessions of one map: providers resolved once, the same options for every session.

    Parameters
    ----------
    providers : {"auto", "cpu", "cuda"} or list of str
        As asked for (see :func:`flowcore.runtime.providers.resolve_providers`).
    session_options : onnxruntime.SessionOptions, optional
        Used as given; None: :func:`default_session_options` with ``threads``.
    threads : int, optional
        ``intra_op_num_threads`` of the default options.
    """

    def __init__(self, providers: str | Sequence[str] = "auto", session_options: Any = None,
                 threads: int | None = None) -> None:
        self.requested = providers
        self.providers: list[str] = resolve_providers(providers)
        self._session_options = session_options
        self._threads = threads

    def options(self) -> Any:
        """The session options every session is created with."""
        if self._session_options is not None:
            return self._session_options
        return default_session_options(self._threads)

    def new(self, which: str, source: Any, extra: dict[str, str] | None = None) -> Any:
        """A session of ``source`` (bytes or path) on these providers (``extra``: options for the first one).

        Raises
        ------
        BackendError
            ONNX Runtime could not load the graph (one line naming ``which``).
        """
        try:
            return inference_session(source, options=self.options(), providers=self.providers,
                                     provider_options=provider_options(self.providers, extra))
        except BackendError:
            raise
        except Exception as exc:
            with_extra = f" with {extra}" if extra else ""
            raise BackendError(f"ONNX Runtime could not load the {which} graph{with_extra}: "
                               f"{str(exc).splitlines()[0]}") from None

    def check_providers(self, which: str, sess: Any, *, stacklevel: int = 4) -> None:
        """No silent fallback: a :class:`ProviderWarning` (``auto``) or :class:`BackendError` (asked
        explicitly) when ONNX Runtime does not run ``which`` on the first provider asked for."""
        used = sess.get_providers()
        if self.providers[0] not in used:
            msg = f"asked for {self.providers[0]} but ONNX Runtime runs the {which} graph on {used}"
            if isinstance(self.requested, str) and self.requested.lower() == "auto":
                warnings.warn(msg, ProviderWarning, stacklevel=stacklevel)
            else:
                raise BackendError(msg)
        log.info("flowcore: %s graph on %s", which, used[0])

    def flushed(self, which: str, model: "onnx.ModelProto", source: Any,
                probe: Callable[[], tuple[str, np.ndarray]]) -> tuple[Any, dict[str, Any], "onnx.ModelProto | None"]:
        """A session of ``model`` with its subnormal weights flushed when that keeps the outputs, else of ``source``.

        Parameters
        ----------
        which : str
            The graph's name in messages.
        model : onnx.ModelProto
            The graph, external data loaded.
        source : bytes or str
            What the unflushed session loads (the verified bytes, or the file beside its weights).
        probe : callable
            Returns ``(input name, ndarray of shape (16, *input_shape), float32)``, the fixed probe batch.

        Returns
        -------
        session, info, flushed_model
            ``info``: ``count``, ``flushed``, ``rtol``, and ``probe_relative_error`` / ``reason``
            when they apply; ``flushed_model``: the flushed graph when it is used, else None.
        """
        flushed, n = flush_subnormals(model)
        info: dict[str, Any] = {"count": n, "flushed": False, "rtol": SUBNORMAL_RTOL}
        sess = self.new(which, source)
        if n == 0:
            return sess, info, None
        try:
            candidate = self.new(which, flushed.SerializeToString())
        except (BackendError, ValueError):  # a graph over protobuf's 2 GB limit stays as it is
            info["reason"] = "graph too large to rebuild in memory"
            return sess, info, None
        name, batch = probe()
        err = max(relative_error(a, b) for a, b in zip(candidate.run(None, {name: batch}), sess.run(None, {name: batch})))
        info["probe_relative_error"] = err
        if not err <= SUBNORMAL_RTOL:
            warnings.warn(f"flushing {n} subnormal weights of the {which} graph changed its outputs by {err:.2e} "
                          f"(> {SUBNORMAL_RTOL:g}); the original graph is used (expect slow CPU runs)",
                          SubnormalWarning, stacklevel=4)
            return sess, info, None
        info["flushed"] = True
        log.info("flowcore: flushed %d subnormal weights of the %s graph (max relative change %.1e)", n, which, err)
        return candidate, info, flushed
