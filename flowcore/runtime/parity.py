"""Parity of a bundle's graphs (ONNX Runtime) with the model they came from.

The adapters (``flowcore_torch``, ``flowcore_tensorflow``) only turn their framework models into
two plain callables, ``reference_encode(x) -> z`` and ``reference_decode(z) -> x_hat`` on NumPy
arrays; running the graphs, chunking, comparing and the export-time check over random and real
inputs happen here, once. Imports only numpy (ONNX Runtime runs inside the LatentMap given).

For adapter authors: build the two callables (inference mode, no gradients), then call
:meth:`flowcore.runtime.latent_map.LatentMap.parity` to measure, or :func:`require_parity` to
refuse an export whose graphs drift.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from flowcore.errors import ExportError

__all__ = ["relative_error", "parity_inputs", "check_parity", "parity", "require_parity", "Reference"]

Reference = Callable[[np.ndarray], Any]
"""A framework model as a function of one NumPy batch, returning an array-like batch."""


def relative_error(got, ref) -> float:
    """Relative error max|got − ref| / max(max|ref|, 1e-12) of two arrays.

    Parameters
    ----------
    got, ref : array-like of the same shape, any float dtype
        The tested output (ONNX Runtime) and the reference (the framework).

    Returns
    -------
    float
        0 for identical arrays; lower is better. ``inf`` when the shapes differ or the
        non-finite entries (NaN, ±Inf) do not sit at the same places with the same values.
    """
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return float("inf")
    fin_g, fin_r = np.isfinite(got), np.isfinite(ref)
    if not np.array_equal(fin_g, fin_r):
        return float("inf")
    if not fin_r.all():
        nf = ~fin_r
        if not np.array_equal(np.nan_to_num(got[nf]), np.nan_to_num(ref[nf])):  # ±inf must agree
            return float("inf")
    if not fin_r.any():
        return 0.0
    diff = float(np.max(np.abs(got[fin_r] - ref[fin_r])))
    return diff / max(float(np.max(np.abs(ref[fin_r]))), 1e-12)


def parity_inputs(example, real, *, seed: int = 0, n_random: int = 7) -> list[tuple[str, np.ndarray]]:
    """The two parity input sets: ``n_random`` Gaussian inputs with the example's mean and std
    (seeded), and the real inputs.

    Parameters
    ----------
    example : array-like of shape (n, *input_shape)
        Gives the mean, the std and the per-sample shape of the random set.
    real : array-like of shape (m, *input_shape)
        Real data.
    seed : int, default 0
        Seed of the random set (``np.random.default_rng``).
    n_random : int, default 7
        Rows of the random set.

    Returns
    -------
    list of (str, ndarray)
        ``[("random", (n_random, *input_shape) float32), ("real", (m, *input_shape) float32)]``.
    """
    ex = np.asarray(example, np.float64)
    mean, std = float(ex.mean()), float(ex.std())
    rand = np.random.default_rng(seed).standard_normal((n_random, *ex.shape[1:])) * (std if std > 0 else 1.0) + mean
    return [("random", rand.astype(np.float32)), ("real", np.asarray(real, np.float32))]


def check_parity(res: dict, *, which: str, rtol: float, framework: str, hint: str) -> None:
    """Raise a one-line ExportError when a parity result exceeds ``rtol``.

    Parameters
    ----------
    res : dict
        ``{"n": int, "encoder": float, "decoder": float}`` as returned by :func:`parity`.
    which : str
        Name of the input set (``"random"``, ``"real"``), for the message.
    rtol : float
        Largest accepted relative error per graph (NaN fails).
    framework : str
        The reference's name in the message (``"torch"``, ``"TensorFlow"``).
    hint : str
        The likely cause, in parentheses at the end of the message.
    """
    for graph in ("encoder", "decoder"):
        err = res[graph]
        if not err <= rtol:  # NaN-safe
            raise ExportError(
                f"ONNX/{framework} parity failed: the {graph} on {which} inputs (n={res['n']}) has relative error "
                f"{err:.3g} > rtol {rtol:g}; the graph does not reproduce the {framework} model ({hint})"
            )


def parity(lmap, reference_encode: Reference, reference_decode: Reference, inputs: Any, *,
           batch_size: int = 1024) -> dict[str, Any]:
    """Compare a LatentMap's encoder and decoder graphs with reference functions on ``inputs``.

    The encoders are compared on ``inputs``; both decoders are fed the *reference* latents, so a
    decoder error is not inflated by the encoder's. :meth:`LatentMap.parity` calls this.

    Parameters
    ----------
    lmap : LatentMap
        Built from a bundle (it needs ``encode``, ``decode`` and ``input_shape``).
    reference_encode : callable
        ``(b, *input_shape) float32 ndarray -> (b, *latent_shape)`` array-like.
    reference_decode : callable
        ``(b, *latent_shape) ndarray -> (b, *input_shape)`` array-like; it gets the reference
        latents as ``reference_encode`` returned them (dtype kept).
    inputs : ndarray of shape (n, *input_shape), float32
    batch_size : int, default 1024
        Rows per run, to bound memory.

    Returns
    -------
    dict
        ``{"n": int, "encoder": float, "decoder": float}``: relative errors
        max|onnx - reference| / max(max|reference|, 1e-12) (``inf`` on a shape or NaN/Inf
        mismatch). Lower is better.

    Raises
    ------
    ExportError
        If ``inputs`` is not a float32 array of shape (n, *input_shape) with n >= 1.
    """
    x = np.asarray(inputs)
    shape = tuple(lmap.input_shape) if lmap.input_shape is not None else None
    if x.dtype != np.float32 or x.ndim < 1 or tuple(x.shape[1:]) != shape or len(x) == 0:
        raise ExportError(
            f"parity inputs have shape {x.shape} and dtype {x.dtype}; expected (n >= 1, *{shape}) float32"
        )
    z_ref, z_onnx, x_ref, x_onnx = [], [], [], []
    for i in range(0, len(x), batch_size):
        xb = np.ascontiguousarray(x[i : i + batch_size])
        zr = np.asarray(reference_encode(xb))
        z_ref.append(zr)
        x_ref.append(np.asarray(reference_decode(zr)))
        z_onnx.append(lmap.encode(xb, batch_size=len(xb)))
        x_onnx.append(lmap.decode(np.ascontiguousarray(zr, np.float32), batch_size=len(xb)))
    return {
        "n": int(len(x)),
        "encoder": relative_error(np.concatenate(z_onnx), np.concatenate(z_ref)),
        "decoder": relative_error(np.concatenate(x_onnx), np.concatenate(x_ref)),
    }


def require_parity(lmap, reference_encode: Reference, reference_decode: Reference, *, example: Any, real: Any,
                   rtol: float, framework: str, hint: str, seed: int = 0,
                   explain: Callable[[BaseException], str] | None = None) -> list[dict[str, Any]]:
    """The export-time check: :func:`parity` on random and real inputs, refused above ``rtol``.

    Parameters
    ----------
    lmap : LatentMap
        Of the freshly written bundle.
    reference_encode, reference_decode : callable
        As in :func:`parity`.
    example : array-like of shape (n, *input_shape)
        Sets the random inputs (see :func:`parity_inputs`).
    real : array-like of shape (m, *input_shape), float32
        Real inputs.
    rtol : float
        Largest accepted relative error per graph and input set.
    framework, hint : str
        For the message (see :func:`check_parity`).
    seed : int, default 0
        Seed of the random inputs.
    explain : callable, optional
        ``explain(exc) -> str``: one line for an exception raised while comparing (e.g. a model
        that only accepts the example's batch size). With it, such an exception becomes an
        ExportError naming the input set (the original kept as ``__cause__``); without it, it
        propagates unchanged.

    Returns
    -------
    list of dict
        One :func:`parity` result per input set (random, real), all within ``rtol``.

    Raises
    ------
    ExportError
        One line naming the graph, the input set and the error.
    """
    results = []
    for which, inputs in parity_inputs(example, real, seed=seed):
        try:
            res = parity(lmap, reference_encode, reference_decode, inputs)
        except ExportError:
            raise
        except Exception as exc:
            if explain is None:
                raise
            raise ExportError(
                f"the parity check on {which} inputs (batch {len(inputs)}) failed: {explain(exc)}; "
                "the models must accept any batch size"
            ) from exc
        check_parity(res, which=which, rtol=rtol, framework=framework, hint=hint)
        results.append(res)
    return results
