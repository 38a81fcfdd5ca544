"""``export``: a torch encoder/decoder pair -> a parity-checked FlowBundle folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flowcore.bundle.export import check_decoded, check_example, check_latent, check_real_inputs, write_staged
from flowcore.bundle.flowbundle import FlowBundle, check_target
from flowcore.errors import ExportError

from ._graph import SelectOutput, _is_script, export_graph, one_line, select_output
from ._parity import _device, check_export, eval_mode

__all__ = ["export", "EXPORTER", "INPUT_NAME", "LATENT_NAME", "OUTPUT_NAME"]

EXPORTER = "torch.onnx.export(dynamo=True)"
INPUT_NAME, LATENT_NAME, OUTPUT_NAME = "x", "z", "x_hat"


def _as_tensor(a: Any, what: str) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))
    check_example(tuple(t.shape), t.dtype, what, float32=t.dtype == torch.float32, fix="and call .float() on the models")
    return t.detach()


def _call(module: nn.Module, arg: torch.Tensor, what: str, on: str):
    """Run ``module(arg)``; any failure becomes a one-line ExportError (the cause is kept)."""
    try:
        return module(arg)
    except Exception as exc:
        raise ExportError(f"the {what} fails on {on} of shape {tuple(arg.shape)}: {one_line(exc)}") from exc


def export(
    encoder: nn.Module,
    decoder: nn.Module,
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
    """Export a torch encoder and decoder to a FlowBundle folder, checked against torch.

    Both modules go through ``torch.onnx.export(dynamo=True)`` with the same opset and a
    dynamic batch axis, the graphs are renamed ``x -> z`` (encoder) and ``z -> x_hat``
    (decoder), written with :meth:`flowcore.bundle.FlowBundle.write` (which validates them),
    and, with ``check``, run with ONNX Runtime (CPU) against torch on random and real inputs.
    The folder appears at ``path`` only when every step passed. The models run in eval mode
    under ``torch.no_grad()``; each submodule's previous mode is restored afterwards.

    Parameters
    ----------
    encoder : nn.Module
        ``forward(x)`` with x of shape (n, *input_shape), float32, returning a tensor of shape
        (n, *latent_shape), float32 (any rank, e.g. (n, k) or (n, C, H, W)), or a tuple/list or
        dict holding it (e.g. a VAE's ``(mean, logvar)``).
    decoder : nn.Module
        ``forward(z)`` with z of shape (n, *latent_shape), float32, returning a tensor of shape
        (n, *input_shape), float32.
    example_input : Tensor or ndarray of shape (n, *input_shape), float32
        Traced example. A batch of 1 is repeated to 2, so the batch axis stays dynamic.
    path : path-like
        Bundle folder to create.
    encoder_output : int or str, optional
        Which element of a tuple/list (index) or dict (key) output is the latent. Default: the
        first element of a tuple/list; ``"mean"``, else ``"mu"``, else the first key of a dict.
    opset : int, default 18
        Default-domain ONNX opset of both graphs (the torch exporter is native from 18).
    check : bool, default True
        Run the parity check (recommended: export drift is silent otherwise).
    rtol : float, default 1e-4
        Largest accepted relative error max|onnx - torch| / max(max|torch|, 1e-12), per graph
        and input set.
    real_inputs : Tensor or ndarray of shape (m, *input_shape), float32, optional
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
        The exporter failed, the graphs do not form a valid bundle, or parity exceeds ``rtol``
        (one-line message naming the graph, the input set and the error; the exporter's own
        exception is kept as ``__cause__``). Nothing is left at ``path``.
    BundleError
        ``path`` exists and ``overwrite`` is False (or it is not a bundle folder).

    Examples
    --------
    >>> import flowcore_torch                                            # doctest: +SKIP
    >>> b = flowcore_torch.export(enc, dec, x_train[:64], "bundle/")     # doctest: +SKIP
    >>> b.input_shape, b.latent_shape                                    # doctest: +SKIP
    ((1, 8, 8), (8,))
    """
    if not isinstance(encoder, nn.Module) or not isinstance(decoder, nn.Module):
        raise ExportError(
            f"encoder and decoder must be torch.nn.Module, got {type(encoder).__name__} and {type(decoder).__name__}"
        )
    path = Path(path)
    check_target(path, overwrite)
    x = _as_tensor(example_input, "example_input")
    real = _as_tensor(real_inputs, "real_inputs") if real_inputs is not None else x
    check_real_inputs(tuple(real.shape), tuple(x.shape))
    if x.shape[0] < 2:  # a dynamic dim whose example size is 0/1 gets specialised
        x = x.repeat(2, *([1] * (x.ndim - 1)))

    with eval_mode(encoder, decoder), torch.no_grad():
        x = x.to(_device(encoder))
        out = _call(encoder, x, "encoder", "the example inputs")
        key = select_output(out, encoder_output)
        enc = encoder if key is None else SelectOutput(encoder, key)
        z = out if key is None else out[key]
        check_latent(tuple(z.shape), z.dtype, float32=z.dtype == torch.float32, batch=x.shape[0])
        z = z.to(_device(decoder))
        x_hat = _call(decoder, z, "decoder", "the encoder's latents")
        if not isinstance(x_hat, torch.Tensor):
            raise ExportError(f"the decoder returns {type(x_hat).__name__}; expected a tensor")
        check_decoded(tuple(z.shape), tuple(x_hat.shape), x_hat.dtype, float32=x_hat.dtype == torch.float32,
                      input_shape=tuple(x.shape))
        enc_proto = export_graph(enc, x, input_name=INPUT_NAME, output_name=LATENT_NAME, opset=opset, what="encoder")
        dec_proto = export_graph(decoder, z, input_name=LATENT_NAME, output_name=OUTPUT_NAME, opset=opset, what="decoder")

    exporter = EXPORTER
    if _is_script(encoder) or _is_script(decoder):
        exporter = "torch.onnx.export(dynamo=False) for TorchScript modules, dynamo=True otherwise"
    source = {"framework": "torch", "version": torch.__version__, "exporter": exporter, "opset": int(opset)}
    if key is not None:
        source["encoder_output"] = key

    def check_fn(bundle: FlowBundle) -> None:
        check_export(bundle, encoder, decoder, encoder_output=key, example=x.detach().cpu().numpy(),
                     real=real.cpu().numpy(), rtol=rtol, seed=seed)

    return write_staged(path, enc_proto, dec_proto, source=source, preprocessing=preprocessing, notes=notes,
                        check=check_fn if check else None)
