"""The files ONNX Runtime reads for a bundle: resolving them inside the folder, hashing, external data.

ONNX Runtime reads a graph file and, for every tensor stored outside it
(``TensorProto.data_location == EXTERNAL``), the file named by the tensor's ``location`` entry,
relative to the graph's folder. :func:`external_refs` lists those references straight from the
graph's ``TensorProto`` entries (initializers, sparse initializers, node attributes, subgraphs and
functions) without loading any weights. :func:`resolve_inside` turns a relative path into a file
inside the bundle folder, refusing absolute paths, ``..``, symbolic links in any component and
anything that is not a regular file. :func:`verify_file` checks a file's size and sha256 against
its manifest record; :func:`write_graph` writes a graph, its weights optionally in external data.
Every refusal is one :class:`~flowcore.errors.BundleError` line.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from flowcore.errors import BundleError, FlowcoreError
from flowcore.io import default_mode
from flowcore.bundle.manifest import check_relative_path

if TYPE_CHECKING:
    import onnx  # annotations only: onnx is imported where used (import cost)

__all__ = ["ExternalRef", "resolve_inside", "read_verified", "verify_file", "file_record", "external_refs",
           "check_extents", "initializers", "external_parts", "write_graph"]

_EXTERNAL = 1  # onnx.TensorProto.EXTERNAL (a constant, so listing references needs no onnx import)


@dataclass(frozen=True)
class ExternalRef:
    """One tensor's external data: where it lives and which bytes of that file it takes."""

    tensor: str
    location: str
    offset: int
    length: int | None


def resolve_inside(root: Path, rel: str, what: str, *, error: type[FlowcoreError] = BundleError) -> Path:
    """The regular file ``root/rel``, refusing anything that leaves ``root`` or passes a symbolic link.

    Parameters
    ----------
    root : Path
        The folder, already resolved (``Path.resolve()``).
    rel : str
        A relative POSIX path from a manifest or a graph.
    what : str
        What names the path, for the message (``"encoder.onnx: external data of tensor 'W'"``).
    """
    why = check_relative_path(rel)
    if why is not None:
        kind = "points outside the bundle" if "inside the folder" in why else f"is not {why}"
        raise error(f"{what} {rel!r} {kind}")
    target = root
    for part in PurePosixPath(rel).parts:
        target = target / part
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise error(f"{what} {rel!r} is missing") from None
        except OSError as exc:
            raise error(f"{what} {rel!r} cannot be read ({exc.strerror or type(exc).__name__})") from None
        if stat.S_ISLNK(st.st_mode):
            raise error(f"{what} {rel!r} is a symbolic link; bundles hold their files themselves (copy the file in)")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {rel!r} is not a regular file")
    real = Path(os.path.realpath(target))
    if real != target or root not in real.parents:  # belt and braces: no link and no '..' got through
        raise error(f"{what} {rel!r} points outside the bundle")
    return target


def _digest(path: Path) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def file_record(path: Path, rel: str) -> dict[str, Any]:
    """The manifest record of a file: ``{"file": rel, "sha256": hex, "size": bytes}``."""
    digest, size = _digest(path)
    return {"file": rel, "sha256": digest, "size": size}


def _mismatch(path: Path, what: str, got: str, want: str) -> BundleError:
    return BundleError(f"{path} does not match its sha256 in {what} (got {got[:12]}…, expected {want[:12]}…); "
                       "the file was modified or corrupted")


def _check_size(path: Path, size: int | None, manifest: str, shown: Path) -> None:
    got = os.stat(path).st_size
    if size is not None and got != size:
        raise BundleError(f"{shown} is {got} bytes but {manifest} records {size}; the file was modified or corrupted")


def verify_file(path: Path, sha256: str, size: int | None, manifest: str, *, shown: Path | None = None) -> int:
    """Check ``path`` against its recorded size (when known) and sha256; return its size in bytes.

    ``shown`` is the path the messages name (default ``path``); ``manifest`` the file that records it.
    """
    shown = shown or path
    _check_size(path, size, manifest, shown)
    digest, n = _digest(path)
    if digest != sha256:
        raise _mismatch(shown, manifest, digest, sha256)
    return n


def read_verified(path: Path, sha256: str, size: int | None, manifest: str, *, shown: Path | None = None) -> bytes:
    """The bytes of ``path``, read once, after they match the recorded size and sha256 (what gets parsed)."""
    shown = shown or path
    _check_size(path, size, manifest, shown)
    with open(path, "rb") as fh:
        data = fh.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256 or (size is not None and len(data) != size):
        raise _mismatch(shown, manifest, digest, sha256)
    return data


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[Any]:
    yield from graph.initializer
    for sp in graph.sparse_initializer:
        yield sp.values
        yield sp.indices
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Any) -> Iterator[Any]:
    for node in nodes:
        if node.op_type == "EPContext":
            raise BundleError(f"node {node.name!r} is an ONNX Runtime EPContext node (a compiled cache that reads "
                              "files of its own); export a plain ONNX graph")
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sp in ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(attr.sparse_tensors):
                yield sp.values
                yield sp.indices
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for g in attr.graphs:
                yield from _graph_tensors(g)


def initializers(graph: onnx.GraphProto) -> Iterator[Any]:
    """The initializers of ``graph`` and of every subgraph (If/Loop/Scan bodies), depth first."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from initializers(attr.g)
            for g in attr.graphs:
                yield from initializers(g)


def _int_entry(value: str, key: str, tensor: str, what: str) -> int:
    if not value.isdigit() or len(value) > 19:
        raise BundleError(f"{what}: external data of tensor {tensor!r} has {key} {value[:40]!r}; expected a "
                          "non-negative integer")
    return int(value)


def external_refs(model: onnx.ModelProto, what: str) -> list[ExternalRef]:
    """Every external-data reference of ``model`` (no weights loaded), in graph order.

    Raises
    ------
    BundleError
        A tensor marked external without a location, with a malformed offset/length, or an
        EPContext node.
    """
    tensors = list(_graph_tensors(model.graph))
    for fn in model.functions:
        tensors.extend(_node_tensors(fn.node))
    refs = []
    for t in tensors:
        if t.data_location != _EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        if not loc:
            raise BundleError(f"{what}: tensor {t.name!r} is stored externally but names no location")
        offset = _int_entry(info.get("offset", "0"), "offset", t.name, what)
        length = _int_entry(info["length"], "length", t.name, what) if "length" in info else None
        refs.append(ExternalRef(t.name, loc, offset, length))
    return refs


def check_extents(refs: list[ExternalRef], sizes: dict[str, int], what: str) -> None:
    """Refuse a reference whose bytes (offset + length) run past the end of its file."""
    for r in refs:
        size = sizes[str(PurePosixPath(r.location))]
        end = r.offset + (r.length or 0)
        if r.offset > size or end > size:
            raise BundleError(f"{what}: external data of tensor {r.tensor!r} asks for bytes {r.offset}..{end} "
                              f"of {r.location!r}, which has {size}")


# ----------------------------------------------------------------------------- writing
def _byte_size(model: onnx.ModelProto) -> int:
    try:
        return int(model.ByteSize())
    except Exception:  # a protobuf runtime that cannot size a message over 2 GB: treat it as one
        return 2**31


def external_parts(external_data: bool | Sequence[str] | None, models: dict[str, onnx.ModelProto]) -> dict[str, int]:
    """Which graphs to write with external data, and each one's size threshold (bytes)."""
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    if external_data is None:  # automatic: only a graph protobuf cannot hold (2 GB)
        return {p: 1024 for p, m in models.items() if _byte_size(m) >= onnx.checker.MAXIMUM_PROTOBUF}
    if isinstance(external_data, bool):
        return {p: 0 for p in models} if external_data else {}
    parts = [external_data] if isinstance(external_data, str) else list(external_data)
    bad = [p for p in parts if p not in models]
    if bad:
        raise BundleError(f"external_data names {bad[0]!r}; expected True, False, None or some of ['encoder', 'decoder']")
    return {p: 0 for p in parts}


def write_graph(tmp: Path, part: str, model: onnx.ModelProto, threshold: int | None) -> tuple[str, list]:
    """Write one graph (weights inline, or from ``threshold`` bytes up in ``<part>.onnx.data``); return records."""
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    fname = f"{part}.onnx"
    if external_refs(model, part):
        raise BundleError(f"{part} graph references external data; load it inline first (onnx.load(path))")
    if threshold is None:
        try:
            data = model.SerializeToString()
        except ValueError:
            raise BundleError(f"the {part} graph is over 2 GB; write it with external_data=True") from None
        (tmp / fname).write_bytes(data)
    else:
        m = onnx.ModelProto()
        m.CopyFrom(model)  # marking tensors external changes the proto: never the caller's
        floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
        for t in initializers(m.graph):
            # weights only: integer tensors (shapes, axes) stay inline, ORT's shape inference reads them
            if t.data_type in floats and t.HasField("raw_data") and len(t.raw_data) >= threshold:
                onnx.external_data_helper.set_external_data(t, f"{fname}.data")
        onnx.save_model(m, str(tmp / fname))  # writes the marked tensors to <part>.onnx.data beside it
    saved = onnx.load(str(tmp / fname), load_external_data=False)
    externals = []
    for loc in sorted({r.location for r in external_refs(saved, part)}):
        os.chmod(tmp / loc, default_mode())
        externals.append(file_record(tmp / loc, loc))
    os.chmod(tmp / fname, default_mode())
    return fname, externals
