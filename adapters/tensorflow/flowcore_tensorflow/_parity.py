"""ONNX Runtime vs TensorFlow parity of an exported bundle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import tensorflow as tf

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.bundle.export import relative_error
from flowcore.errors import ExportError

from ._graph import call_model, select_output

__all__ = ["parity", "relative_error"]


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


def as_array(a: Any, what: str) -> np.ndarray:
    """A float32 ndarray of shape (batch >= 1, ...) from an ndarray or a tf.Tensor."""
    try:
        arr = a.numpy() if tf.is_tensor(a) else np.asarray(a)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"{what} is {type(a).__name__}, not an array; pass an ndarray or tf.Tensor") from exc
    if arr.dtype != np.float32:
        raise ExportError(
            f"{what} has dtype {arr.dtype}; FlowBundles are float32: pass a float32 input "
            "(and use a float32 dtype policy in Keras)"
        )
    if arr.ndim < 2 or arr.shape[0] < 1 or 0 in arr.shape:
        raise ExportError(f"{what} has shape {arr.shape}; expected (batch >= 1, *input_shape) with no empty axis")
    return np.ascontiguousarray(arr)


def to_numpy(t: Any) -> np.ndarray:
    """A framework output as an ndarray (tf.Tensor, ndarray)."""
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


def parity(
    bundle: FlowBundle | str | os.PathLike,
    encoder: Callable[..., Any],
    decoder: Callable[..., Any],
    inputs: Any,
    *,
    encoder_output: int | str | None = None,
    batch_size: int = 1024,
) -> dict[str, Any]:
    """Compare a bundle's graphs (ONNX Runtime, CPU) with the TensorFlow models on ``inputs``.

    The encoders are compared on ``inputs``; both decoders are fed the *TensorFlow* latents, so
    a decoder error is not inflated by the encoder's. Keras models are called with
    ``training=False``, other callables as ``model(x)``.

    Parameters
    ----------
    bundle : FlowBundle or path-like
        The exported bundle.
    encoder, decoder : keras.Model, tf.function or callable
        The models the bundle was exported from.
    inputs : ndarray or tf.Tensor of shape (n, *input_shape), float32
    encoder_output : int or str, optional
        Which element of a tuple/list/dict encoder output is the latent (as in :func:`export`).
    batch_size : int
        Rows per run, to bound memory.

    Returns
    -------
    dict
        ``{"n": int, "encoder": float, "decoder": float}``: relative errors
        max|onnx - tf| / max(max|tf|, 1e-12) (``inf`` on a shape or NaN/Inf mismatch).
        Lower is better.

    Raises
    ------
    ExportError
        If ``inputs`` is not a float32 array of shape (n, *input_shape) with n >= 1.
    """
    b = bundle if isinstance(bundle, FlowBundle) else FlowBundle.load(bundle)
    x = inputs.numpy() if tf.is_tensor(inputs) else np.asarray(inputs)
    if x.dtype != np.float32 or x.ndim < 1 or tuple(x.shape[1:]) != b.input_shape or len(x) == 0:
        raise ExportError(
            f"parity inputs have shape {x.shape} and dtype {x.dtype}; expected (n >= 1, *{b.input_shape}) float32"
        )
    enc_sess = _session(b.path / b.manifest["encoder"]["file"])
    dec_sess = _session(b.path / b.manifest["decoder"]["file"])
    key = None
    z_t, z_o, x_t, x_o = [], [], [], []
    for i, s in enumerate(_chunks(len(x), batch_size)):
        xb = np.ascontiguousarray(x[s])
        out = call_model(encoder, tf.constant(xb))
        if i == 0:
            key = select_output(out, encoder_output)
        zt = out if key is None else out[key]
        xt = call_model(decoder, zt)
        zt_np = to_numpy(zt)
        z_t.append(zt_np)
        x_t.append(to_numpy(xt))
        z_o.append(enc_sess.run([b.encoder_output], {b.encoder_input: xb})[0])
        x_o.append(dec_sess.run([b.decoder_output], {b.decoder_input: np.ascontiguousarray(zt_np, np.float32)})[0])
    return {
        "n": int(len(x)),
        "encoder": relative_error(np.concatenate(z_o), np.concatenate(z_t)),
        "decoder": relative_error(np.concatenate(x_o), np.concatenate(x_t)),
    }
