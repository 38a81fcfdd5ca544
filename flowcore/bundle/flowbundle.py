"""FlowBundle: the on-disk exchange format between adapters and the core.

A bundle is a folder::

    flow.json      manifest (format version, names, shapes, dtype, opsets, sha256, source)
    encoder.onnx   E: (N, *input_shape) -> (N, *latent_shape), float32
    decoder.onnx   D: (N, *latent_shape) -> (N, *input_shape), float32

Loading verifies the hashes, runs the ONNX checker, checks that E's output matches D's input
and D's output matches E's input, that the batch axis is dynamic, and refuses external-data
references that leave the folder. Nothing is executed on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowcore.errors import BundleError
from flowcore.io import atomic_write_json, default_mode, sha256_file

if TYPE_CHECKING:
    import onnx  # annotations only: onnx is imported where used (import cost)

__all__ = ["FlowBundle", "MANIFEST", "FORMAT_VERSION"]

MANIFEST = "flow.json"
FORMAT = "flowcore.bundle"
FORMAT_VERSION = 1
_DTYPE = "float32"


def _value_info_shape(vi: onnx.ValueInfoProto) -> list[int | str | None]:
    """Shape of a graph input/output: ints for fixed dims, names for symbolic, None if unknown."""
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return []
    dims: list[int | str | None] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def _io(model: onnx.ModelProto, kind: str, name: str | None, what: str) -> onnx.ValueInfoProto:
    init = {i.name for i in model.graph.initializer}
    items = [v for v in (model.graph.input if kind == "input" else model.graph.output) if v.name not in init]
    if name is None:
        if len(items) != 1:
            raise BundleError(
                f"{what} has {len(items)} graph {kind}s {[v.name for v in items]}; name the one to use"
            )
        return items[0]
    for v in items:
        if v.name == name:
            return v
    raise BundleError(f"{what} has no {kind} named {name!r}; it has {[v.name for v in items]}")


def _static_shape(vi: onnx.ValueInfoProto, what: str) -> tuple[int, ...]:
    """Non-batch shape of ``vi``; the batch axis must be dynamic, the others fixed."""
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    dims = _value_info_shape(vi)
    if not dims:
        raise BundleError(f"{what} {vi.name!r} has no shape information; export with a fixed rank")
    batch, rest = dims[0], dims[1:]
    if isinstance(batch, int):
        raise BundleError(
            f"{what} {vi.name!r} has a fixed batch axis of {batch}; export with a dynamic batch "
            "(torch: dynamic_shapes with torch.export.Dim, batch >= 2)"
        )
    bad = [d for d in rest if not isinstance(d, int)]
    if bad:
        raise BundleError(
            f"{what} {vi.name!r} has dynamic non-batch dimensions {dims[1:]}; only the batch axis may "
            "be dynamic: export with fixed feature/spatial sizes"
        )
    elem = vi.type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        raise BundleError(
            f"{what} {vi.name!r} has element type {onnx.TensorProto.DataType.Name(elem)}; expected FLOAT"
        )
    return tuple(int(d) for d in rest)


def _check_external_data(model: onnx.ModelProto, folder: Path, what: str) -> None:
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    root = folder.resolve()
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                tensors.append(attr.t)
    for t in tensors:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        loc = {e.key: e.value for e in t.external_data}.get("location", "")
        target = (folder / loc).resolve()
        if os.path.isabs(loc) or root not in target.parents:
            raise BundleError(f"{what}: external data {loc!r} of tensor {t.name!r} points outside the bundle")
        if not target.is_file():
            raise BundleError(f"{what}: external data file {loc!r} of tensor {t.name!r} is missing")


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise BundleError("graph imports no default-domain opset")


def check_target(path: Path, overwrite: bool) -> None:
    """Refuse to write a bundle over anything but an existing bundle (with ``overwrite``) or an empty folder."""
    if not path.exists():
        return
    if not path.is_dir():
        raise BundleError(f"{path} exists and is not a folder; choose another bundle path")
    if not overwrite:
        raise BundleError(f"{path} already exists; pass overwrite=True (CLI: --force) to replace it")
    if any(path.iterdir()) and not (path / MANIFEST).is_file():
        raise BundleError(f"{path} is a non-empty folder that is not a FlowBundle; refusing to replace it")


def replace_folder(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` to ``dst``; an old ``dst`` is moved aside first and removed last."""
    old = None
    if dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
        os.replace(dst, old / dst.name)
    try:
        os.replace(src, dst)
    except BaseException:
        if old is not None:
            os.replace(old / dst.name, dst)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class FlowBundle:
    """A validated FlowBundle folder.

    Attributes
    ----------
    path : Path
        The bundle folder.
    manifest : dict
        The parsed ``flow.json``.
    encoder, decoder : onnx.ModelProto
        The graphs (external data, if any, stays on disk next to them).
    input_shape, latent_shape : tuple of int
        Per-sample shapes (no batch axis).
    """

    path: Path
    manifest: dict[str, Any]
    encoder: onnx.ModelProto = field(repr=False)
    decoder: onnx.ModelProto = field(repr=False)
    input_shape: tuple[int, ...]
    latent_shape: tuple[int, ...]

    # ------------------------------------------------------------------ names
    @property
    def encoder_input(self) -> str:
        return self.manifest["encoder"]["input"]

    @property
    def encoder_output(self) -> str:
        return self.manifest["encoder"]["output"]

    @property
    def decoder_input(self) -> str:
        return self.manifest["decoder"]["input"]

    @property
    def decoder_output(self) -> str:
        return self.manifest["decoder"]["output"]

    @property
    def latent_dim(self) -> int:
        """k, the flattened latent size."""
        k = 1
        for d in self.latent_shape:
            k *= d
        return k

    @property
    def sha256(self) -> str:
        """Hash of the manifest's two graph hashes: one identity for the whole bundle."""
        h = hashlib.sha256()
        h.update(self.manifest["encoder"]["sha256"].encode())
        h.update(self.manifest["decoder"]["sha256"].encode())
        return h.hexdigest()

    # ------------------------------------------------------------------- load
    @classmethod
    def load(cls, path: str | os.PathLike) -> "FlowBundle":
        """Load and validate a bundle folder.

        Raises
        ------
        BundleError
            Missing files, bad JSON, hash mismatch, ONNX checker failure, non-composing shapes,
            fixed batch axis, or external data outside the folder.
        """
        import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

        folder = Path(path)
        if not folder.is_dir():
            raise BundleError(f"no bundle folder at {folder}")
        mpath = folder / MANIFEST
        if not mpath.is_file():
            raise BundleError(f"{folder} has no {MANIFEST}; not a FlowBundle")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{mpath} is not valid JSON ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BundleError(f"{mpath} is not a flowcore manifest (format != {FORMAT!r})")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise BundleError(
                f"{mpath} has format_version {manifest.get('format_version')!r}; this flowcore reads {FORMAT_VERSION}"
            )
        models = {}
        for part in ("encoder", "decoder"):
            entry = manifest.get(part)
            if not isinstance(entry, dict) or not {"file", "sha256", "input", "output"} <= set(entry):
                raise BundleError(f"{mpath}: entry {part!r} must give file, sha256, input and output")
            fname = entry["file"]
            if not isinstance(fname, str) or Path(fname).name != fname or fname in ("", ".", ".."):
                raise BundleError(f"{mpath}: {part} file {fname!r} must be a plain file name inside the bundle")
            gpath = folder / fname
            if not gpath.is_file():
                raise BundleError(f"bundle {folder} is missing {fname}")
            digest = sha256_file(gpath)
            if digest != entry["sha256"]:
                raise BundleError(
                    f"{gpath} does not match its sha256 in {MANIFEST} (got {digest[:12]}…, "
                    f"expected {str(entry['sha256'])[:12]}…); the file was modified or corrupted"
                )
            try:
                model = onnx.load(str(gpath), load_external_data=False)
            except Exception as exc:
                raise BundleError(f"{gpath} is not a readable ONNX model ({type(exc).__name__})") from None
            _check_external_data(model, folder, str(gpath))
            try:
                onnx.checker.check_model(str(gpath))
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BundleError(f"{gpath} fails the ONNX checker: {first}") from None
            models[part] = model
        enc, dec = models["encoder"], models["decoder"]
        ein = _static_shape(_io(enc, "input", manifest["encoder"]["input"], "encoder"), "encoder input")
        eout = _static_shape(_io(enc, "output", manifest["encoder"]["output"], "encoder"), "encoder output")
        din = _static_shape(_io(dec, "input", manifest["decoder"]["input"], "decoder"), "decoder input")
        dout = _static_shape(_io(dec, "output", manifest["decoder"]["output"], "decoder"), "decoder output")
        if eout != din:
            raise BundleError(f"encoder output shape {eout} does not match decoder input shape {din}")
        if dout != ein:
            raise BundleError(f"decoder output shape {dout} does not match encoder input shape {ein}")
        for key, got in (("input_shape", ein), ("latent_shape", eout)):
            if key in manifest and tuple(manifest[key]) != got:
                raise BundleError(f"{mpath}: {key} {tuple(manifest[key])} disagrees with the graphs ({got})")
        return cls(path=folder, manifest=manifest, encoder=enc, decoder=dec, input_shape=ein, latent_shape=eout)

    # ------------------------------------------------------------------ write
    @classmethod
    def write(
        cls,
        path: str | os.PathLike,
        encoder: onnx.ModelProto,
        decoder: onnx.ModelProto,
        *,
        encoder_input: str | None = None,
        encoder_output: str | None = None,
        decoder_input: str | None = None,
        decoder_output: str | None = None,
        source: dict[str, Any] | None = None,
        preprocessing: str | None = None,
        notes: str | None = None,
        overwrite: bool = False,
    ) -> "FlowBundle":
        """Write two in-memory graphs as a bundle folder and return it, loaded and validated.

        The folder is assembled in a temporary sibling and renamed into place, so a failed
        write leaves nothing behind. Graphs must hold their weights inline (no external data).

        Parameters
        ----------
        path : path-like
            Target folder; must not exist unless ``overwrite``.
        encoder, decoder : onnx.ModelProto
            E: (N, *input_shape) -> (N, *latent_shape); D the reverse. float32, dynamic batch.
        encoder_input, encoder_output, decoder_input, decoder_output : str, optional
            Graph input/output names to use when a graph has several.
        source : dict, optional
            Framework, version and exporter that produced the graphs.
        """
        import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

        path = Path(path)
        check_target(path, overwrite)
        names = {
            "encoder": (_io(encoder, "input", encoder_input, "encoder").name,
                        _io(encoder, "output", encoder_output, "encoder").name),
            "decoder": (_io(decoder, "input", decoder_input, "decoder").name,
                        _io(decoder, "output", decoder_output, "decoder").name),
        }
        ein = _static_shape(_io(encoder, "input", names["encoder"][0], "encoder"), "encoder input")
        eout = _static_shape(_io(encoder, "output", names["encoder"][1], "encoder"), "encoder output")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        os.chmod(tmp, default_mode(directory=True))
        try:
            manifest: dict[str, Any] = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "dtype": _DTYPE,
                "input_shape": list(ein),
                "latent_shape": list(eout),
            }
            for part, model in (("encoder", encoder), ("decoder", decoder)):
                for t in model.graph.initializer:
                    if t.data_location == onnx.TensorProto.EXTERNAL:
                        raise BundleError(f"{part} graph references external data; load it inline first")
                fname = f"{part}.onnx"
                (tmp / fname).write_bytes(model.SerializeToString())
                os.chmod(tmp / fname, default_mode())
                manifest[part] = {
                    "file": fname,
                    "sha256": sha256_file(tmp / fname),
                    "input": names[part][0],
                    "output": names[part][1],
                    "opset": _opset(model),
                    "ir_version": int(model.ir_version),
                }
            manifest["source"] = dict(source or {})
            if preprocessing is not None:
                manifest["preprocessing"] = preprocessing
            if notes is not None:
                manifest["notes"] = notes
            atomic_write_json(tmp / MANIFEST, manifest)
            bundle = cls.load(tmp)  # validate before it becomes visible
            replace_folder(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return FlowBundle(path=path, manifest=bundle.manifest, encoder=bundle.encoder, decoder=bundle.decoder,
                          input_shape=bundle.input_shape, latent_shape=bundle.latent_shape)

    def summary(self) -> dict[str, Any]:
        """Plain-JSON description (what ``flowcore info`` prints)."""
        return {
            "path": str(self.path),
            "input_shape": list(self.input_shape),
            "latent_shape": list(self.latent_shape),
            "latent_dim": self.latent_dim,
            "dtype": self.manifest.get("dtype", _DTYPE),
            "encoder": {k: self.manifest["encoder"][k] for k in ("file", "input", "output", "opset", "sha256") if k in self.manifest["encoder"]},
            "decoder": {k: self.manifest["decoder"][k] for k in ("file", "input", "output", "opset", "sha256") if k in self.manifest["decoder"]},
            "source": self.manifest.get("source", {}),
            "preprocessing": self.manifest.get("preprocessing"),
            "notes": self.manifest.get("notes"),
        }
