"""flowcore_tensorflow: export TensorFlow/Keras autoencoders to flowcore FlowBundles (ONNX).

>>> import flowcore_tensorflow                                                  # doctest: +SKIP
>>> bundle = flowcore_tensorflow.export(encoder, decoder, x[:64], "bundle/")   # doctest: +SKIP

:func:`export` traces the encoder and the decoder (Keras 3 models or any callable TensorFlow
can trace) as ``tf.function``s with a ``None`` batch axis, converts them with
``tf2onnx.convert.from_function`` at one opset, names the graphs ``x -> z`` and
``z -> x_hat``, writes the bundle with :meth:`flowcore.bundle.FlowBundle.write` and checks
ONNX Runtime against TensorFlow. :func:`load_split` cuts one saved flat Keras autoencoder (a
Sequential or a chain) into encoder and decoder. :func:`parity` repeats that check on any inputs. The names
and their meaning are those of ``flowcore_torch``. Importing this package imports tensorflow,
keras, tf2onnx and onnx, and does nothing else (no environment variables, no logging set-up).
"""

from ._export import EXPORTER, INPUT_NAME, LATENT_NAME, OUTPUT_NAME, export
from ._load import SUFFIXES, example_input, load_model
from ._parity import parity, relative_error
from ._split import load_split

__version__ = "0.1.0"

__all__ = ["export", "load_model", "load_split", "example_input", "SUFFIXES", "parity", "relative_error", "EXPORTER", "INPUT_NAME", "LATENT_NAME", "OUTPUT_NAME"]
