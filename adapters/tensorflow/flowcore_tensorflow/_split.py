"""One flat saved Keras autoencoder cut in two: encoder = layers up to ``at``, decoder = the rest.

A ``keras.Sequential`` autoencoder (``Flatten, Dense(32), Dense(8, name="code"), Dense(32), …``),
or a functional model whose layers form one chain, has no ``encoder``/``decoder`` layers to
take. :func:`load_split` cuts its layers after the one named (or numbered) ``at`` into two new
``keras.Sequential`` models that share the saved layers (and so their weights).
:func:`layer_table` lists the layers with their output widths for the error that names
``--split-at``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import keras

from flowcore.errors import ExportError

__all__ = ["load_split", "chain_layers", "layer_table", "flat_error"]


def chain_layers(model: Any) -> list[Any] | None:
    """The layers of a flat model in call order (input layers left out), or None when not a chain.

    A ``keras.Sequential`` is a chain; a functional ``keras.Model`` is one when it has one input,
    one output and one layer at every depth of its graph.
    """
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    by_depth = getattr(model, "_operations_by_depth", None)
    if not isinstance(model, keras.Model) or not by_depth:
        return None
    if len(model.inputs) != 1 or len(model.outputs) != 1 or any(len(ops) != 1 for ops in by_depth.values()):
        return None
    ops = [by_depth[d][0] for d in sorted(by_depth, reverse=True)]
    return [op for op in ops if not isinstance(op, keras.layers.InputLayer)]


def _shape(layer: Any) -> tuple | None:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError, TypeError):  # a layer never called has no output
        return None


def layer_table(layers: list[Any]) -> tuple[list[str], str | None]:
    """``["0 flatten (Flatten)", …]`` and the narrowest inner layer (``"code (8 features)"``), if known."""
    rows, inner = [], []
    for i, layer in enumerate(layers):
        rows.append(f"{i} {layer.name} ({type(layer).__name__})")
        shape = _shape(layer)
        if i < len(layers) - 1 and shape is not None and all(isinstance(d, int) for d in shape[1:]):
            inner.append((int(math.prod(shape[1:])), i, layer.name))
    narrowest = None
    if inner:
        width, _, name = min(inner)
        narrowest = f"{name} ({width} features)"
    return rows, narrowest


def flat_error(path: Path, part: str, layers: list[Any]) -> ExportError:
    """The one-line error for a flat model asked for a part it does not have."""
    rows, narrowest = layer_table(layers)
    hint = f"; the narrowest inner layer is {narrowest}" if narrowest else ""
    return ExportError(f"{path} is one flat model (a chain of layers) with no {part!r} layer: pass --split-at LAYER "
                       f"(the encoder's last layer, by name or index) to cut it into encoder and decoder; layers: "
                       f"{', '.join(rows)}{hint}")


def load_split(path: str | os.PathLike, at: int | str) -> tuple[keras.Model, keras.Model]:
    """Load a flat Keras autoencoder and cut it after layer ``at``.

    Parameters
    ----------
    path : path-like
        ``.keras``/``.h5`` file (loaded with ``safe_mode=True``) of a ``keras.Sequential``, or a
        functional model whose layers form one chain, mapping x of shape (n, *input_shape),
        float32, to a reconstruction of the same shape.
    at : int or str
        The encoder's last layer: its name (``"code"``) or index into the layers (input layer
        not counted; negative counts from the end). The decoder is every later layer, so ``at``
        cannot be the last one.

    Returns
    -------
    (keras.Sequential, keras.Sequential)
        Encoder (input -> layer ``at``) and decoder (layer ``at``'s output -> the model's
        output), built on the saved layers: their composition is the saved model.

    Raises
    ------
    ExportError
        One line: the file is not loadable, the model is not a chain of layers, or ``at``
        names no inner layer (the layers are listed, with the narrowest as a hint).
    """
    from ._load import load_model  # noqa: PLC0415  (one loader; _load imports this module)

    path = Path(path)
    model = load_model(path)
    layers = chain_layers(model)
    if layers is None:
        raise ExportError(f"{path} is not one chain of layers (a Sequential or a functional model with one layer per "
                          "depth), so --split-at cannot cut it; use --encoder-part/--decoder-part with the names of "
                          "its halves")
    names = [layer.name for layer in layers]
    if isinstance(at, int) or (isinstance(at, str) and at.lstrip("-").isdigit()):
        i = int(at)
        i = i + len(layers) if i < 0 else i
    else:
        i = names.index(at) if at in names else -1
    if not 0 <= i < len(layers) - 1:
        rows, narrowest = layer_table(layers)
        hint = f"; the narrowest inner layer is {narrowest}" if narrowest else ""
        raise ExportError(f"--split-at {at!r} is not an inner layer of {path} (the decoder needs at least one layer "
                          f"after it); layers: {', '.join(rows)}{hint}")
    in_shape, mid_shape = getattr(model, "input_shape", None), _shape(layers[i])
    if not isinstance(in_shape, tuple) or mid_shape is None:
        raise ExportError(f"{path}: the model was saved without its input shape, so it cannot be cut; build it "
                          "with keras.Input(shape) before saving")
    try:
        encoder = keras.Sequential([keras.Input(in_shape[1:]), *layers[: i + 1]], name=f"{model.name}_encoder")
        decoder = keras.Sequential([keras.Input(mid_shape[1:]), *layers[i + 1:]], name=f"{model.name}_decoder")
    except Exception as exc:  # Keras raises many types on a layer that refuses the new input
        raise ExportError(f"{path}: cannot cut the model after layer {names[i]!r} ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]})") from exc
    return encoder, decoder
