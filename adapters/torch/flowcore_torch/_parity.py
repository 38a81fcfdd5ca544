"""ONNX Runtime vs torch parity of an exported bundle: torch's side of :mod:`flowcore.runtime.parity`.

Only the torch outputs are made here (eval mode, ``torch.no_grad()``, the device of each module);
running the graphs, chunking and comparing is the core's :meth:`flowcore.runtime.latent_map.LatentMap.parity`.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.runtime.latent_map import LatentMap
from flowcore.runtime.parity import relative_error, require_parity

from ._graph import select_output

__all__ = ["parity", "relative_error", "eval_mode", "check_export"]


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` (and every submodule) in eval mode; restore each one's own mode after."""
    saved = [(m, m.training) for mod in modules for m in mod.modules()]
    try:
        for mod in modules:
            mod.train(False)  # inference mode (dropout off, batch-norm frozen)
        yield
    finally:
        for m, training in saved:
            m.training = training


def _device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def references(encoder: nn.Module, decoder: nn.Module, encoder_output: int | str | None = None
               ) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """The torch models as functions of NumPy batches, for :meth:`LatentMap.parity`.

    Call them inside :func:`eval_mode` and ``torch.no_grad()``. The encoder's latent is picked
    out of a tuple/dict output with ``encoder_output`` (as in :func:`flowcore_torch.export`).

    Returns
    -------
    encode : callable
        (b, *input_shape) float32 ndarray -> (b, *latent_shape) ndarray (on the CPU).
    decode : callable
        (b, *latent_shape) ndarray -> (b, *input_shape) ndarray (on the CPU).
    """
    enc_device, dec_device = _device(encoder), _device(decoder)

    def encode(x: np.ndarray) -> np.ndarray:
        out = encoder(torch.from_numpy(x).to(enc_device))
        key = select_output(out, encoder_output)
        return (out if key is None else out[key]).detach().cpu().numpy()

    def decode(z: np.ndarray) -> np.ndarray:
        return decoder(torch.from_numpy(z).to(dec_device)).detach().cpu().numpy()

    return encode, decode


def parity(
    bundle: FlowBundle | str | os.PathLike,
    encoder: nn.Module,
    decoder: nn.Module,
    inputs: Any,
    *,
    encoder_output: int | str | None = None,
    batch_size: int = 1024,
) -> dict[str, Any]:
    """Compare a bundle's graphs (ONNX Runtime, CPU) with the torch models on ``inputs``.

    The encoders are compared on ``inputs``; both decoders are fed the *torch* latents, so a
    decoder error is not inflated by the encoder's. The torch models run in eval mode under
    ``torch.no_grad()``; their previous modes are restored.

    Parameters
    ----------
    bundle : FlowBundle or path-like
        The exported bundle.
    encoder, decoder : nn.Module
        The torch models the bundle was exported from.
    inputs : ndarray or Tensor of shape (n, *input_shape), float32
    encoder_output : int or str, optional
        Which element of a tuple/dict encoder output is the latent (as in :func:`export`).
    batch_size : int
        Rows per run, to bound memory.

    Returns
    -------
    dict
        ``{"n": int, "encoder": float, "decoder": float}``: relative errors
        max|onnx - torch| / max(max|torch|, 1e-12) (``inf`` on a shape or NaN/Inf mismatch).
        Lower is better.

    Raises
    ------
    ExportError
        If ``inputs`` is not a float32 array of shape (n, *input_shape) with n >= 1.
    """
    x = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    lmap = LatentMap(bundle, providers="cpu")
    with eval_mode(encoder, decoder), torch.no_grad():
        return lmap.parity(*references(encoder, decoder, encoder_output), x, batch_size=batch_size)


def check_export(bundle: FlowBundle, encoder: nn.Module, decoder: nn.Module, *, encoder_output: int | str | None,
                 example: np.ndarray, real: np.ndarray, rtol: float, seed: int) -> None:
    """:func:`flowcore.runtime.parity.require_parity` of a freshly written bundle against torch."""
    with eval_mode(encoder, decoder), torch.no_grad():
        require_parity(LatentMap(bundle, providers="cpu"), *references(encoder, decoder, encoder_output),
                       example=example, real=real, rtol=rtol, seed=seed, framework="torch",
                       hint="Python-side state or data-dependent control flow frozen at export?")
