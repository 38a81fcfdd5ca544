"""FlowBundle: the on-disk exchange format between adapters and the core.

A bundle is a folder::

    flow.json          manifest (format version, names, shapes, dtype, opsets, sha256 + size of every file)
    encoder.onnx       E: (N, *input_shape) -> (N, *latent_shape), float32
    decoder.onnx       D: (N, *latent_shape) -> (N, *input_shape), float32
    *.onnx.data        optional external data (weights kept outside a graph), listed per graph

Loading reads the manifest within bounds and checks it against its schema
(:mod:`flowcore.bundle.manifest`), then resolves every file ONNX Runtime will read inside the
folder, refusing symbolic links and paths that leave it, and verifies each one's size and sha256
(:mod:`flowcore.bundle.files`) before onnx parses anything. The graphs are parsed from the
verified bytes; each external-data reference in them must be a file the manifest lists. Then the
ONNX checker runs, and E's output must match D's input and D's output E's input, with a dynamic
batch axis. Nothing is executed on load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from flowcore.errors import BundleError, FlowcoreError
from flowcore.io import atomic_write_json, to_jsonable
from flowcore.outputs import OutputFolder
from flowcore.bundle.files import (check_extents, external_parts, external_refs, file_record, read_verified,
                                   resolve_inside, verify_file, write_graph)
from flowcore.bundle.graphs import _io, _opset, _static_shape  # noqa: F401  (_io, _static_shape: runtime.fusion)
from flowcore.bundle.manifest import FORMAT, FORMAT_VERSION, MANIFEST, check_manifest, read_manifest

if TYPE_CHECKING:
    import onnx  # annotations only: onnx is imported where used (import cost)

__all__ = ["FlowBundle", "MANIFEST", "FORMAT_VERSION", "check_target", "bundle_entries", "bundle_output"]

_DTYPE = "float32"
_PARTS = ("encoder", "decoder")


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


def _top(rel: str) -> str:
    return Path(rel).parts[0] if Path(rel).parts else rel


def bundle_entries(folder: str | os.PathLike) -> list[str]:
    """Top-level entries an existing FlowBundle's ``flow.json`` lists (itself, graphs, external data).

    Empty when there is no valid manifest: then nothing is adopted.
    """
    try:
        manifest = read_manifest(Path(folder) / MANIFEST)
    except (FlowcoreError, OSError):
        return []
    names = {MANIFEST}
    for part in _PARTS:
        names.add(_top(manifest[part]["file"]))
        names.update(_top(e["file"]) for e in manifest[part].get("external_data", []))
    return sorted(names)


def bundle_output(path: str | os.PathLike) -> OutputFolder:
    """The API's output folder of a bundle written to ``path`` (vetted by :func:`check_target` first).

    Its ``staged(prune=True)`` replaces an earlier bundle's files there (and removes those the new
    bundle does not write, such as its old external data); any other entry is kept.
    """
    return OutputFolder(path, adopt=bundle_entries(path))


def _verify_listed(folder: Path, root: Path, manifest: dict[str, Any]) -> tuple[dict[str, tuple[Path, bytes]], list]:
    """Resolve and verify every file the manifest lists; return the graphs' verified bytes and the records."""
    graphs, records = {}, []
    for part in _PARTS:
        entry = manifest[part]
        if not os.path.lexists(folder / entry["file"]):
            raise BundleError(f"bundle {folder} is missing {entry['file']}")
        gpath = resolve_inside(root, entry["file"], f"bundle {folder}: {part} graph")
        data = read_verified(gpath, entry["sha256"], entry.get("size"), MANIFEST, shown=folder / entry["file"])
        graphs[part] = (gpath, data)
        records.append({"file": entry["file"], "role": f"{part} graph", "size": len(data), "sha256": entry["sha256"]})
        for ext in entry.get("external_data", []):
            epath = resolve_inside(root, ext["file"], f"bundle {folder}: {part} external data")
            verify_file(epath, ext["sha256"], ext["size"], MANIFEST, shown=folder / ext["file"])
            records.append({**ext, "role": f"{part} external data"})
    return graphs, records


def _parse_graph(part: str, gpath: Path, data: bytes, root: Path, manifest: dict[str, Any]) -> onnx.ModelProto:
    """Parse verified graph bytes, tie each external-data reference to a listed file, run the checker."""
    import onnx  # lazy: import cost (onnx ~0.15 s); import flowcore needs no ONNX

    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:
        raise BundleError(f"{gpath} is not a readable ONNX model ({type(exc).__name__})") from None
    refs = external_refs(model, str(gpath))
    listed = {e["file"]: e["size"] for e in manifest[part].get("external_data", [])}
    for r in refs:
        resolve_inside(root, r.location, f"{gpath}: external data of tensor {r.tensor!r}")
        if manifest["format_version"] == 1:
            raise BundleError(f"{gpath} keeps tensor {r.tensor!r} in external data {r.location!r}, but its "
                              f"format_version 1 {MANIFEST} records no hash for it; re-export the bundle with "
                              "this flowcore (FlowBundle.write or an adapter's export)")
        if r.location not in listed:
            raise BundleError(f"{gpath}: external data file {r.location!r} of tensor {r.tensor!r} is not listed "
                              f"in {MANIFEST} ({part}.external_data), so its bytes are unverified; re-export the bundle")
    unused = sorted(set(listed) - {r.location for r in refs})
    if unused:
        raise BundleError(f"{MANIFEST}: {part}.external_data lists {unused[0]!r}, which {gpath.name} does not use")
    check_extents(refs, listed, str(gpath))
    try:
        onnx.checker.check_model(str(gpath))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{gpath} fails the ONNX checker: {first}") from None
    return model


@dataclass(frozen=True)
class FlowBundle:
    """A validated FlowBundle folder.

    Attributes
    ----------
    path : Path
        The bundle folder.
    manifest : dict
        The parsed ``flow.json``, checked against its schema.
    encoder, decoder : onnx.ModelProto
        The graphs (external data, if any, stays on disk next to them).
    input_shape, latent_shape : tuple of int
        Per-sample shapes (no batch axis).
    verified : tuple of dict
        One record per file ONNX Runtime reads, as verified on load: ``file`` (relative path),
        ``role`` (``"encoder graph"``, ``"decoder external data"``…), ``size`` (bytes), ``sha256``.
    """

    path: Path
    manifest: dict[str, Any]
    encoder: onnx.ModelProto = field(repr=False)
    decoder: onnx.ModelProto = field(repr=False)
    input_shape: tuple[int, ...]
    latent_shape: tuple[int, ...]
    verified: tuple[dict[str, Any], ...] = field(default=(), repr=False, compare=False)

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
        """One identity for the whole bundle: a hash of the graph hashes and of any external-data hashes.

        A bundle without external data keeps the identity earlier flowcore versions gave it.
        """
        h = hashlib.sha256()
        h.update(self.manifest["encoder"]["sha256"].encode())
        h.update(self.manifest["decoder"]["sha256"].encode())
        for part in _PARTS:
            for ext in self.manifest[part].get("external_data", []):
                h.update(f"\n{part}:{ext['file']}:{ext['sha256']}".encode())
        return h.hexdigest()

    @property
    def files(self) -> list[str]:
        """Relative paths of every file of the bundle: the manifest, the graphs and their external data."""
        return [MANIFEST] + [r["file"] for r in self.verified]

    # ------------------------------------------------------------------- load
    @classmethod
    def load(cls, path: str | os.PathLike) -> "FlowBundle":
        """Load and validate a bundle folder.

        Raises
        ------
        BundleError
            Missing files, a manifest that is too large, too deep, not JSON or off its schema, a
            symbolic link or a path leaving the folder, a size or hash mismatch, external data
            the manifest does not list, an ONNX checker failure, non-composing shapes or a fixed
            batch axis (one line each).
        """
        folder = Path(path)
        if not folder.is_dir():
            raise BundleError(f"no bundle folder at {folder}")
        mpath = folder / MANIFEST
        if not os.path.lexists(mpath):
            raise BundleError(f"{folder} has no {MANIFEST}; not a FlowBundle")
        root = folder.resolve()
        manifest = read_manifest(mpath)
        graphs, records = _verify_listed(folder, root, manifest)  # every byte ORT reads, before any parsing
        models = {part: _parse_graph(part, gpath, data, root, manifest) for part, (gpath, data) in graphs.items()}
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
        return cls(path=folder, manifest=manifest, encoder=enc, decoder=dec, input_shape=ein, latent_shape=eout,
                   verified=tuple(records))

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
        external_data: bool | Sequence[str] | None = None,
    ) -> "FlowBundle":
        """Write two in-memory graphs as a bundle folder and return it, loaded and validated.

        The folder is filled by :meth:`write_into` in a staging folder and committed by
        flowcore's one staging primitive (:meth:`flowcore.outputs.OutputFolder.staged`), so a
        failed write leaves ``path`` exactly as it was. The graphs given must hold their weights
        in memory.

        Parameters
        ----------
        path : path-like
            Target folder; must not exist unless ``overwrite`` (then it must be a bundle folder
            or empty: the earlier bundle's files are replaced, any other entry is kept).
        encoder, decoder : onnx.ModelProto
            E: (N, *input_shape) -> (N, *latent_shape); D the reverse. float32, dynamic batch.
        encoder_input, encoder_output, decoder_input, decoder_output : str, optional
            Graph input/output names to use when a graph has several.
        source : dict, optional
            Framework, version and exporter that produced the graphs (string keys, scalar values).
        external_data : bool, sequence of {"encoder", "decoder"}, or None, default None
            Keep weights in ``<part>.onnx.data`` beside the graph: None, only for a graph over
            protobuf's 2 GB limit (float tensors of 1 KiB and more); True, both graphs; a list,
            those graphs (every float initializer; integer tensors such as shapes stay inline).
            Each external file is recorded in the manifest (sha256, size).

        Raises
        ------
        BundleError
            ``path`` exists (without ``overwrite``) or is not a bundle folder, or the graphs do
            not form a valid bundle (nothing is written then).
        DiskFullError
            No space left while writing; nothing was written.
        """
        path = Path(path)
        check_target(path, overwrite)
        with bundle_output(path).staged(prune=True) as tmp:
            bundle = cls.write_into(tmp, encoder, decoder, encoder_input=encoder_input,
                                    encoder_output=encoder_output, decoder_input=decoder_input,
                                    decoder_output=decoder_output, source=source, preprocessing=preprocessing,
                                    notes=notes, external_data=external_data, shown=path)
        return dataclasses.replace(bundle, path=path)

    @classmethod
    def write_into(
        cls,
        folder: str | os.PathLike,
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
        external_data: bool | Sequence[str] | None = None,
        shown: str | os.PathLike | None = None,
    ) -> "FlowBundle":
        """Fill the existing empty ``folder`` with a bundle's files; return it loaded from there.

        The writer behind :meth:`write` (no staging of its own): use it inside the folder
        :meth:`flowcore.outputs.OutputFolder.staged` yields. The arguments are :meth:`write`'s;
        ``shown`` is the path named in messages (the final folder, default ``folder``). The
        bundle is loaded and validated before this returns.
        """
        folder = Path(folder)
        names = {
            "encoder": (_io(encoder, "input", encoder_input, "encoder").name,
                        _io(encoder, "output", encoder_output, "encoder").name),
            "decoder": (_io(decoder, "input", decoder_input, "decoder").name,
                        _io(decoder, "output", decoder_output, "decoder").name),
        }
        ein = _static_shape(_io(encoder, "input", names["encoder"][0], "encoder"), "encoder input")
        eout = _static_shape(_io(encoder, "output", names["encoder"][1], "encoder"), "encoder output")
        models = {"encoder": encoder, "decoder": decoder}
        outside = external_parts(external_data, models)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "dtype": _DTYPE,
            "input_shape": list(ein),
            "latent_shape": list(eout),
        }
        for part, model in models.items():
            fname, externals = write_graph(folder, part, model, outside.get(part))
            record = file_record(folder / fname, fname)
            manifest[part] = {
                "file": fname,
                "sha256": record["sha256"],
                "size": record["size"],
                "input": names[part][0],
                "output": names[part][1],
                "opset": _opset(model),
                "ir_version": int(model.ir_version),
                "external_data": externals,
            }
        manifest["source"] = dict(source or {})
        if preprocessing is not None:
            manifest["preprocessing"] = preprocessing
        if notes is not None:
            manifest["notes"] = notes
        check_manifest(to_jsonable(manifest), Path(shown if shown is not None else folder) / MANIFEST)
        atomic_write_json(folder / MANIFEST, manifest)
        return cls.load(folder)  # validated before the caller commits it

    def summary(self) -> dict[str, Any]:
        """Plain-JSON description (what ``flowcore info`` prints), with what load verified under ``verified``."""
        keys = ("file", "input", "output", "opset", "sha256", "size", "external_data")
        n_ext = sum(1 for r in self.verified if r["role"].endswith("external data"))
        return {
            "path": str(self.path),
            "format_version": self.manifest["format_version"],
            "input_shape": list(self.input_shape),
            "latent_shape": list(self.latent_shape),
            "latent_dim": self.latent_dim,
            "dtype": self.manifest.get("dtype", _DTYPE),
            "encoder": {k: self.manifest["encoder"][k] for k in keys if k in self.manifest["encoder"]},
            "decoder": {k: self.manifest["decoder"][k] for k in keys if k in self.manifest["decoder"]},
            "source": self.manifest.get("source", {}),
            "preprocessing": self.manifest.get("preprocessing"),
            "notes": self.manifest.get("notes"),
            "verified": {
                "manifest": f"{MANIFEST} format_version {self.manifest['format_version']}: schema, size and depth OK",
                "hashes": "size and sha256 of each file" if self.manifest["format_version"] >= 2
                          else "sha256 of each graph (format_version 1 records no sizes)",
                "files": [dict(r) for r in self.verified],
                "external_data_files": n_ext,
                "total_bytes": sum(r["size"] for r in self.verified),
                "paths": "every file a regular file inside the bundle folder; no symbolic links",
                "onnx_checker": "passed (encoder, decoder)",
                "shapes": f"E {tuple(self.input_shape)} -> {tuple(self.latent_shape)}, "
                          f"D {tuple(self.latent_shape)} -> {tuple(self.input_shape)}, batch axis dynamic",
            },
        }
