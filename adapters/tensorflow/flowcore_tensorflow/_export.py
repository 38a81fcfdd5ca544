"""``export``: a TensorFlow/Keras encoder/decoder pair -> a parity-checked FlowBundle folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import keras
import tensorflow as tf
import tf2onnx

from flowcore.bundle.export import check_decoded, check_latent, check_real_inputs, write_staged
from flowcore.bundle.flowbundle import FlowBundle, check_target
from flowcore.errors import ExportError

from ._graph import call_model, convert_graph, one_line, select_output
from ._parity import as_array, check_export

__all__ = ["export", "EXPORTER", "INPUT_NAME", "LATENT_NAME", "OUTPUT_NAME"]

EXPORTER = "tf2onnx.convert.from_function"
INPUT_NAME, LATENT_NAME, OUTPUT_NAME = "x", "z", "x_hat"


def _eager(model: Callable[..., Any], x: Any, what: str) -> Any:
    try:
        return call_model(model, x)
    except ExportError:
        raise
    except Exception as exc:  # user code raises anything; one line, original kept as __cause__
        raise ExportError(f"calling the {what} eagerly failed: {one_line(exc)}") from exc


def _with_shape(t: tf.Tensor, shape: tuple[int, ...]) -> tf.Tensor:
    """``t`` with the static shape (None, *shape) the eager run showed (set_shape refuses a clash)."""
    t = tf.identity(t)
    t.set_shape((None, *shape))
    return t


def export(
    encoder: Callable[..., Any],
    decoder: Callable[..., Any],
    example_input: Any,
    path: str | os.PathLike,
    *,
    encoder_output: int | str | None = None,
    opset: int = 18,
    check: bool = True,
    rtol: float = 1e-4,
    real_inputs: Any = None,
    overwrite: bool = False,
    preprocessing: str | None = None,
    notes: str | None = None,
    seed: int = 0,
) -> FlowBundle:
    """Export a TensorFlow/Keras encoder and decoder to a FlowBundle folder, checked against TF.

    Each model is wrapped in a ``tf.function`` with the input signature
    ``TensorSpec((None, *shape), float32)`` (so the batch axis is dynamic) and converted with
    ``tf2onnx.convert.from_function`` at one opset; the graphs are renamed ``x -> z``
    (encoder) and ``z -> x_hat`` (decoder), written with
    :meth:`flowcore.bundle.FlowBundle.write` (which validates them), and, with ``check``, run
    with ONNX Runtime (CPU) against TensorFlow on random and real inputs. The folder appears at
    ``path`` only when every step passed.

    Keras models (Sequential, Functional, subclassed) are called with ``training=False``; any
    other callable TensorFlow can trace (a ``tf.function``, a ``tf.Module``, a function of
    tensors) is called as ``model(x)``. Both models are first called eagerly on
    ``example_input``: this builds a Keras model that was never called or built, and gives the
    latent and output shapes that are checked. ``tf2onnx.convert.from_keras`` is not used: it
    fails on Keras 3 models.

    Parameters
    ----------
    encoder : keras.Model, tf.function or callable
        ``encoder(x)`` with x of shape (n, *input_shape), float32, returning a tensor of shape
        (n, *latent_shape), float32 (any rank, e.g. (n, k) or (n, H, W, C)), or a tuple/list or
        dict holding it (e.g. a VAE's ``(mean, logvar)``).
    decoder : keras.Model, tf.function or callable
        ``decoder(z)`` with z of shape (n, *latent_shape), float32, returning a tensor of shape
        (n, *input_shape), float32.
    example_input : ndarray or tf.Tensor of shape (n, *input_shape), float32
        Example batch for the eager shape check (any n >= 1; the traced batch axis is ``None``).
    path : path-like
        Bundle folder to create.
    encoder_output : int or str, optional
        Which element of a tuple/list (index) or dict (key) output is the latent. Default: the
        first element of a tuple/list; ``"mean"``, else ``"mu"``, else the first key of a dict.
    opset : int, default 18
        Default-domain ONNX opset of both graphs (tf2onnx 1.17 converts to opsets up to 18,
        with IR version 8). 18 is also what ``flowcore_torch`` writes.
    check : bool, default True
        Run the parity check (recommended: export drift is silent otherwise).
    rtol : float, default 1e-4
        Largest accepted relative error max|onnx - tf| / max(max|tf|, 1e-12), per graph
        and input set.
    real_inputs : ndarray or tf.Tensor of shape (m, *input_shape), float32, optional
        Real data for the parity check; default ``example_input``.
    overwrite : bool, default False
        Replace an existing bundle at ``path`` (only a folder holding ``flow.json``, or an
        empty one; the old bundle stays if the new export fails).
    preprocessing, notes : str, optional
        Free text stored in ``flow.json`` (how inputs must be prepared; anything else).
    seed : int, default 0
        Seed of the random parity inputs.

    Returns
    -------
    FlowBundle
        The written, validated bundle at ``path``.

    Raises
    ------
    ExportError
        Calling a model failed, the converter failed, the graphs do not form a valid bundle,
        or parity exceeds ``rtol`` (one-line message naming the graph, the input set and the
        error; the original exception is kept as ``__cause__``). Nothing is left at ``path``.
    BundleError
        ``path`` exists and ``overwrite`` is False (or it is not a bundle folder).

    Examples
    --------
    >>> import flowcore_tensorflow                                            # doctest: +SKIP
    >>> b = flowcore_tensorflow.export(enc, dec, x_train[:64], "bundle/")     # doctest: +SKIP
    >>> b.input_shape, b.latent_shape                                         # doctest: +SKIP
    ((8, 8, 1), (8,))
    """
    if not callable(encoder) or not callable(decoder):
        raise ExportError(
            f"encoder and decoder must be Keras models or callables TensorFlow can trace, got "
            f"{type(encoder).__name__} and {type(decoder).__name__}"
        )
    path = Path(path)
    check_target(path, overwrite)
    x = as_array(example_input, "example_input")
    real = as_array(real_inputs, "real_inputs") if real_inputs is not None else x
    check_real_inputs(real.shape, x.shape)

    out = _eager(encoder, tf.constant(x), "encoder")
    key = select_output(out, encoder_output)
    z = out if key is None else out[key]
    check_latent(tuple(z.shape), z.dtype.name, float32=z.dtype == tf.float32 and z.shape.rank is not None,
                 batch=x.shape[0])
    latent_shape = tuple(int(d) for d in z.shape[1:])
    x_hat = _eager(decoder, z, "decoder")
    if not tf.is_tensor(x_hat):
        raise ExportError(f"the decoder returns {type(x_hat).__name__}; expected a tensor")
    check_decoded(tuple(z.shape), tuple(x_hat.shape), x_hat.dtype.name, float32=x_hat.dtype == tf.float32,
                  input_shape=x.shape)

    def enc_fn(t: tf.Tensor) -> tf.Tensor:
        o = call_model(encoder, t)
        return _with_shape(o if key is None else o[key], latent_shape)

    def dec_fn(t: tf.Tensor) -> tf.Tensor:
        return _with_shape(call_model(decoder, t), x.shape[1:])

    enc_proto = convert_graph(enc_fn, x.shape[1:], latent_shape, input_name=INPUT_NAME, output_name=LATENT_NAME,
                              opset=opset, what="encoder")
    dec_proto = convert_graph(dec_fn, latent_shape, x.shape[1:], input_name=LATENT_NAME, output_name=OUTPUT_NAME,
                              opset=opset, what="decoder")

    source: dict[str, Any] = {
        "framework": "tensorflow",
        "version": tf.__version__,
        "keras": keras.__version__,
        "exporter": EXPORTER,
        "tf2onnx": tf2onnx.__version__,
        "opset": int(opset),
    }
    if key is not None:
        source["encoder_output"] = key

    def check_fn(bundle: FlowBundle) -> None:
        check_export(bundle, encoder, decoder, encoder_output=key, example=x, real=real, rtol=rtol, seed=seed)

    return write_staged(path, enc_proto, dec_proto, source=source, preprocessing=preprocessing, notes=notes,
                        check=check_fn if check else None)
