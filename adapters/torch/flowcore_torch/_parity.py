"""ONNX Runtime vs torch parity of an exported bundle."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.bundle.export import relative_error
from flowcore.errors import ExportError

from ._graph import SelectOutput, select_output

__all__ = ["parity", "relative_error", "eval_mode"]


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


def _session(path: Path):
    from flowcore.runtime.latent_map import import_onnxruntime  # noqa: PLC0415  (ORT is an extra of the core)

    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def _chunks(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


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
    b = bundle if isinstance(bundle, FlowBundle) else FlowBundle.load(bundle)
    x = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    if x.dtype != np.float32 or x.ndim < 1 or tuple(x.shape[1:]) != b.input_shape or len(x) == 0:
        raise ExportError(
            f"parity inputs have shape {x.shape} and dtype {x.dtype}; expected (n >= 1, *{b.input_shape}) float32"
        )
    enc_sess = _session(b.path / b.manifest["encoder"]["file"])
    dec_sess = _session(b.path / b.manifest["decoder"]["file"])
    device = _device(encoder)
    z_t, z_o, x_t, x_o = [], [], [], []
    with eval_mode(encoder, decoder), torch.no_grad():
        first = encoder(torch.from_numpy(x[:2]).to(device))
        key = select_output(first, encoder_output)
        enc = encoder if key is None else SelectOutput(encoder, key)
        for s in _chunks(len(x), batch_size):
            xb = np.ascontiguousarray(x[s])
            zt = enc(torch.from_numpy(xb).to(device))
            xt = decoder(zt.to(_device(decoder)))
            zt_np = zt.detach().cpu().numpy()
            z_t.append(zt_np)
            x_t.append(xt.detach().cpu().numpy())
            z_o.append(enc_sess.run([b.encoder_output], {b.encoder_input: xb})[0])
            x_o.append(dec_sess.run([b.decoder_output], {b.decoder_input: np.ascontiguousarray(zt_np, np.float32)})[0])
    return {
        "n": int(len(x)),
        "encoder": relative_error(np.concatenate(z_o), np.concatenate(z_t)),
        "decoder": relative_error(np.concatenate(x_o), np.concatenate(x_t)),
    }
