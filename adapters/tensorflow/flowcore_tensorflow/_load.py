"""Load saved Keras / TensorFlow models without unpickling: ``.keras`` (safe_mode on), SavedModel."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from flowcore.errors import BadInputError, ExportError

from ._graph import one_line
from ._split import chain_layers, flat_error

__all__ = ["load_model", "example_input", "SUFFIXES"]

SUFFIXES = {".keras": "Keras", ".h5": "Keras (legacy HDF5)"}


class SignatureModel:
    """A SavedModel serving signature called like a model: ``model(x) -> first output``.

    Keeps the loaded root object alive: the signature only references its variables weakly.
    """

    def __init__(self, fn: Any, input_name: str, output_name: str, spec: tf.TensorSpec, root: Any):
        self.fn, self.input_name, self.output_name, self.spec, self.root = fn, input_name, output_name, spec, root

    def __call__(self, x: Any, training: bool = False) -> Any:
        return self.fn(**{self.input_name: x})[self.output_name]


def _as_signature(obj: Any, path: Path, root: Any) -> Any:
    sigs = getattr(obj, "signatures", None)
    if sigs and "serving_default" in sigs:
        fn = sigs["serving_default"]
        _, kw = fn.structured_input_signature
        outs = fn.structured_outputs
        if len(kw) != 1:
            raise ExportError(f"{path}: the serving signature takes {sorted(kw)}; expected one input tensor")
        (name, spec), = kw.items()
        return SignatureModel(fn, name, sorted(outs)[0], spec, root)
    if callable(obj):
        return obj
    raise ExportError(f"{path}: the SavedModel has no serving_default signature and is not callable")


def load_model(path: str | os.PathLike, *, part: str | None = None) -> Any:
    """Load a saved model (or one named part) for :func:`flowcore_tensorflow.export`.

    Parameters
    ----------
    path : path-like
        ``.keras`` (``keras.saving.load_model(safe_mode=True, compile=False)``: no lambda or
        pickled code is deserialised) or a SavedModel folder (``tf.saved_model.load``).
    part : str, optional
        Name of the half to take from a whole autoencoder: a Keras layer/sub-model name
        (``model.get_layer``) or a SavedModel attribute.

    Raises
    ------
    ExportError
        One line, when the file is missing or not a loadable model, or has no layer ``part``
        (a flat chain of layers: the error names ``--split-at``, :func:`load_split`, and lists
        the layers).
    """
    import keras  # noqa: PLC0415

    path = Path(path)
    try:
        if path.is_dir():
            if not (path / "saved_model.pb").is_file():
                raise ExportError(f"{path} is a folder without saved_model.pb; not a SavedModel")
            root = obj = tf.saved_model.load(str(path))
            if part:
                if not hasattr(obj, part):
                    raise ExportError(f"{path} has no attribute {part!r}")
                obj = getattr(obj, part)
            return _as_signature(obj, path, root)
        if not path.is_file():
            raise ExportError(f"no such model file: {path}")
        if path.suffix.lower() not in SUFFIXES:
            raise ExportError(f"{path}: unknown Keras model file type {path.suffix!r}; expected .keras or a SavedModel folder")
        model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
        if part:
            try:
                model = model.get_layer(part)
            except ValueError:
                chain = chain_layers(model)
                if chain is not None:
                    raise flat_error(path, part, chain) from None
                names = [layer.name for layer in model.layers]
                raise ExportError(f"{path} has no layer {part!r}; layers: {names}") from None
        return model
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"{path} is not a loadable TensorFlow/Keras model ({one_line(exc)})") from exc


def example_input(model: Any, n: int = 8, seed: int = 0) -> np.ndarray:
    """Random inputs (n, *input_shape) in [0, 1), float32, from the model's declared input shape.

    Raises
    ------
    BadInputError
        When the model declares no input shape or dynamic non-batch dimensions: pass real
        example inputs instead (``flowcore export --example``).
    """
    shape = None
    if isinstance(model, SignatureModel):
        shape = model.spec.shape.as_list()
    else:
        shape = getattr(model, "input_shape", None)
        if isinstance(shape, list):
            shape = shape[0] if len(shape) == 1 else None
    if shape is None:
        raise BadInputError("the encoder declares no single input shape: pass --example data.npz with real inputs")
    rest = list(shape)[1:]
    if any(d is None for d in rest):
        raise BadInputError(f"the encoder input has dynamic non-batch dimensions {tuple(shape)} that cannot be "
                            "resolved: pass --example data.npz with real inputs to fix them")
    return np.random.default_rng(seed).random((n, *rest), dtype=np.float32)
