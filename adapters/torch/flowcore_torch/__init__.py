"""flowcore_torch: export PyTorch autoencoders to flowcore FlowBundles (ONNX).

>>> import flowcore_torch                                                  # doctest: +SKIP
>>> bundle = flowcore_torch.export(encoder, decoder, x[:64], "bundle/")   # doctest: +SKIP

:func:`export` runs ``torch.onnx.export(dynamo=True)`` on the encoder and the decoder with one
opset and a dynamic batch axis, names the graphs ``x -> z`` and ``z -> x_hat``, writes the
bundle with :meth:`flowcore.bundle.FlowBundle.write` and checks ONNX Runtime against torch.
:func:`load_model` reads a saved ExportedProgram or TorchScript file (a ``torch.save`` state dict
is named as such and refused); :func:`load_split` cuts one saved flat ``nn.Sequential`` into
encoder and decoder. :func:`parity` repeats the parity check on any inputs (the comparison itself is the core's
:meth:`flowcore.runtime.latent_map.LatentMap.parity`; this package only produces torch outputs).
:mod:`flowcore_torch.recipes` holds the digits demo model and its training recipe (import it
explicitly). :mod:`flowcore_torch.foundation` wraps diffusers ``AutoencoderKL`` and transformers
``ViTMAEForPreTraining`` (the ``foundation`` extra, imported only when a model is loaded from a folder);
:func:`load_pretrained` names TAEF2 and those two by kind and reads them from a local folder
(``flowcore export --pretrained KIND=FOLDER``). Importing this package imports torch and onnx and does nothing else.
"""

from . import foundation
from ._export import EXPORTER, INPUT_NAME, LATENT_NAME, OUTPUT_NAME, export
from ._load import SUFFIXES, load_model
from ._parity import parity, relative_error
from ._pretrained import KINDS as PRETRAINED_KINDS
from ._pretrained import load_pretrained
from ._split import load_split

__version__ = "0.1.0"

__all__ = ["foundation", "export", "load_model", "load_split", "load_pretrained", "PRETRAINED_KINDS", "SUFFIXES", "parity", "relative_error", "EXPORTER", "INPUT_NAME", "LATENT_NAME", "OUTPUT_NAME"]
