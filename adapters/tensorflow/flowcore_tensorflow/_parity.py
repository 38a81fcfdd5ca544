"""ONNX Runtime vs TensorFlow parity of an exported bundle: TF's side of :mod:`flowcore.runtime.parity`.

Only the TensorFlow outputs are made here (Keras models with ``training=False``); running the
graphs, chunking and comparing is the core's :meth:`flowcore.runtime.latent_map.LatentMap.parity`.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from flowcore.bundle.export import check_example
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.errors import ExportError
from flowcore.runtime.latent_map import LatentMap
from flowcore.runtime.parity import relative_error, require_parity

from ._graph import call_model, one_line, select_output

__all__ = ["parity", "relative_error", "as_array", "check_export"]


def as_array(a: Any, what: str) -> np.ndarray:
    """A float32 ndarray of shape (batch >= 1, ...) from an ndarray or a tf.Tensor."""
    try:
        arr = a.numpy() if tf.is_tensor(a) else np.asarray(a)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"{what} is {type(a).__name__}, not an array; pass an ndarray or tf.Tensor") from exc
    check_example(arr.shape, arr.dtype, what, float32=arr.dtype == np.float32,
                  fix="and use a float32 dtype policy in Keras")
    return np.ascontiguousarray(arr)


def to_numpy(t: Any) -> np.ndarray:
    """A framework output as an ndarray (tf.Tensor, ndarray)."""
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


def references(encoder: Callable[..., Any], decoder: Callable[..., Any], encoder_output: int | str | None = None
               ) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """The TensorFlow models as functions of NumPy batches, for :meth:`LatentMap.parity`.

    Keras models are called with ``training=False``, other callables as ``model(x)``; the
    encoder's latent is picked out of a tuple/list/dict output with ``encoder_output``.

    Returns
    -------
    encode : callable
        (b, *input_shape) float32 ndarray -> (b, *latent_shape) ndarray.
    decode : callable
        (b, *latent_shape) ndarray -> (b, *input_shape) ndarray.
    """

    def encode(x: np.ndarray) -> np.ndarray:
        out = call_model(encoder, tf.constant(x))
        key = select_output(out, encoder_output)
        return to_numpy(out if key is None else out[key])

    def decode(z: np.ndarray) -> np.ndarray:
        return to_numpy(call_model(decoder, tf.constant(z)))

    return encode, decode


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
    x = inputs.numpy() if tf.is_tensor(inputs) else np.asarray(inputs)
    return LatentMap(bundle, providers="cpu").parity(*references(encoder, decoder, encoder_output), x,
                                                     batch_size=batch_size)


def check_export(bundle: FlowBundle, encoder: Callable[..., Any], decoder: Callable[..., Any], *,
                 encoder_output: int | str | None, example: np.ndarray, real: np.ndarray, rtol: float,
                 seed: int) -> None:
    """:func:`flowcore.runtime.parity.require_parity` of a freshly written bundle against TensorFlow.

    A model that fails on another batch size than the example's is refused in one line.
    """
    require_parity(LatentMap(bundle, providers="cpu"), *references(encoder, decoder, encoder_output),
                   example=example, real=real, rtol=rtol, seed=seed, framework="TensorFlow",
                   hint="Python-side state frozen at trace time, or a layer that behaves differently inside tf.function?",
                   explain=one_line)
