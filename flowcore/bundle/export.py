"""Framework-free helpers shared by the adapters (``flowcore_torch``, ``flowcore_tensorflow``).

For adapter authors: rename graph values, give an exported graph its FlowBundle I/O names, and
measure ONNX-vs-framework parity. Imports only numpy and onnx.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import onnx

from flowcore.errors import ExportError

__all__ = ["rename_value", "set_io_names", "relative_error", "select_output", "parity_inputs", "check_parity",
           "write_staged"]


def rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename value ``old`` to ``new`` everywhere in ``graph`` (inputs, outputs, nodes, subgraphs)."""
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for attr in node.attribute:
            if attr.HasField("g"):
                rename_value(attr.g, old, new)
            for g in attr.graphs:
                rename_value(g, old, new)


def set_io_names(model: onnx.ModelProto, input_name: str, output_name: str, what: str,
                 shape_hint: str = "a model(x) -> tensor") -> None:
    """Make the single graph input ``input_name`` and the single graph output ``output_name``.

    Raises
    ------
    ExportError
        When the graph does not have exactly one (non-initializer) input and one output, or
        already uses a wanted name for another value.
    """
    g = model.graph
    init = {t.name for t in g.initializer}
    ins = [v for v in g.input if v.name not in init]
    if len(ins) != 1 or len(g.output) != 1:
        raise ExportError(
            f"the exported {what} has inputs {[v.name for v in ins]} and outputs {[v.name for v in g.output]}; "
            f"expected one of each ({shape_hint})"
        )
    taken = {n for node in g.node for n in list(node.input) + list(node.output)} | init
    if ins[0].name != input_name:
        if input_name in taken:
            raise ExportError(f"the exported {what} already uses the name {input_name!r} internally")
        rename_value(g, ins[0].name, input_name)
    out = g.output[0]
    if out.name == input_name:  # identity graph: the output is the input itself
        g.node.append(onnx.helper.make_node("Identity", [input_name], [output_name]))
        out.name = output_name
    elif out.name != output_name:
        if output_name in taken:
            raise ExportError(f"the exported {what} already uses the name {output_name!r} internally")
        rename_value(g, out.name, output_name)


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
    (seeded), and the real inputs. Returns ``[("random", (n_random, *shape)), ("real", real)]``, float32."""
    ex = np.asarray(example, np.float64)
    mean, std = float(ex.mean()), float(ex.std())
    rand = np.random.default_rng(seed).standard_normal((n_random, *ex.shape[1:])) * (std if std > 0 else 1.0) + mean
    return [("random", rand.astype(np.float32)), ("real", np.asarray(real, np.float32))]


def check_parity(res: dict, which: str, rtol: float, framework: str, hint: str) -> None:
    """Raise a one-line ExportError when a parity result ``{"n", "encoder", "decoder"}`` exceeds ``rtol``."""
    for graph in ("encoder", "decoder"):
        err = res[graph]
        if not err <= rtol:  # NaN-safe
            raise ExportError(
                f"ONNX/{framework} parity failed: the {graph} on {which} inputs (n={res['n']}) has relative error "
                f"{err:.3g} > rtol {rtol:g}; the graph does not reproduce the {framework} model ({hint})"
            )


def write_staged(path, encoder: onnx.ModelProto, decoder: onnx.ModelProto, *, source: dict,
                 preprocessing: str | None = None, notes: str | None = None, check=None):
    """Write a bundle (graphs named ``x -> z`` and ``z -> x_hat``) in a staging folder beside
    ``path``, run ``check(bundle)`` there (it raises to refuse), then move it into place.

    A failure leaves nothing at ``path`` (and keeps an old bundle there). Returns the FlowBundle
    at ``path``. A bundle that does not validate becomes a one-line ExportError.
    """
    import dataclasses  # noqa: PLC0415
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from flowcore.bundle.flowbundle import FlowBundle, replace_folder  # noqa: PLC0415
    from flowcore.errors import BundleError  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{path.name}.export-", dir=path.parent))
    try:
        try:
            bundle = FlowBundle.write(work / "bundle", encoder, decoder, encoder_input="x", encoder_output="z",
                                      decoder_input="z", decoder_output="x_hat", source=source,
                                      preprocessing=preprocessing, notes=notes)
        except BundleError as exc:
            raise ExportError(f"the exported graphs do not form a valid FlowBundle: {exc}") from exc
        if check is not None:
            check(bundle)
        replace_folder(work / "bundle", path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dataclasses.replace(bundle, path=path)


def select_output(out: Any, choice: Any, is_tensor: Callable[[Any], bool], what: str = "encoder") -> Any:
    """Resolve an adapter's ``encoder_output`` against one forward result.

    ``out`` is a tensor (returns None: nothing to pick), a tuple/list (``choice`` an index,
    default 0) or a dict (``choice`` a key, default ``"mean"``, else ``"mu"``, else the first
    key). ``is_tensor`` tells the framework's tensors apart.

    Raises
    ------
    ExportError
        If ``choice`` does not fit the structure or does not name a tensor.
    """
    if is_tensor(out):
        if choice is not None:
            raise ExportError(
                f"{what} returns a single tensor but encoder_output={choice!r} was given; leave it as None"
            )
        return None
    if isinstance(out, (tuple, list)):
        if len(out) == 0:
            raise ExportError(f"{what} returns an empty {type(out).__name__}; expected a tensor")
        key: int | str = 0 if choice is None else choice
        if isinstance(key, bool) or not isinstance(key, int) or not -len(out) <= key < len(out):
            raise ExportError(
                f"encoder_output={choice!r} does not index the {len(out)}-element {type(out).__name__} the "
                f"{what} returns; pass an int in 0..{len(out) - 1}"
            )
        key = key % len(out)
    elif isinstance(out, dict):
        keys = list(out)
        if not keys:
            raise ExportError(f"{what} returns an empty dict; expected a tensor")
        if choice is None:
            key = next((k for k in ("mean", "mu") if k in out), keys[0])
        elif choice in out:
            key = choice
        else:
            raise ExportError(f"encoder_output={choice!r} is not a key of the dict the {what} returns; keys: {keys}")
    else:
        raise ExportError(
            f"{what} returns {type(out).__name__}; expected a tensor, a tuple/list or a dict of tensors"
        )
    if not is_tensor(out[key]):
        raise ExportError(
            f"{what} output [{key!r}] is {type(out[key]).__name__}, not a tensor; pick another with encoder_output"
        )
    return key
