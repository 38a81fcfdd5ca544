"""The FlowBundle manifest (``flow.json``): bounded JSON reading and the schema, checked before use.

Nothing in a manifest is used before :func:`read_manifest` has checked all of it: the file is at
most :data:`MAX_MANIFEST_BYTES`, nests at most :data:`MAX_DEPTH` levels (measured on the raw
text, before parsing, so a deeply nested file never reaches the recursive parser), is strict
JSON (no ``NaN``/``Infinity``) and matches the schema of its ``format_version``. Every refusal is
one :class:`~flowcore.errors.BundleError` line naming the file and the field.

Format versions
---------------
1
    Hashes of the two graphs only (the shipped demo bundle and bundles of flowcore 0.x before
    external data). Still read; a version-1 bundle whose graphs reference external data is
    refused at load (nothing records those files' hashes), with the fix: re-export.
2
    Written now. Each graph entry also records its ``size`` in bytes and ``external_data``, the
    list of every external-data file ONNX Runtime reads for that graph, each as
    ``{"file": relative POSIX path, "sha256": hex, "size": bytes}``; ``dtype``, ``input_shape``
    and ``latent_shape`` are required.

Unknown keys are refused, everywhere but inside ``source`` (free metadata of string keys and
scalar values): a field this flowcore does not know could carry a meaning it would silently
ignore, so a new field comes with a new ``format_version``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from flowcore.errors import BundleError, FlowcoreError

__all__ = ["MANIFEST", "FORMAT", "FORMAT_VERSION", "READABLE_VERSIONS", "MAX_MANIFEST_BYTES", "MAX_DEPTH",
           "read_json", "json_depth", "read_manifest", "check_manifest", "check_relative_path"]

MANIFEST = "flow.json"
FORMAT = "flowcore.bundle"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_MANIFEST_BYTES = 1 << 20  # 1 MiB: a real manifest is ~1-2 KB
MAX_DEPTH = 16  # a real manifest nests 4 levels (top > encoder > external_data > entry)
MAX_DIMS = 32
MAX_DIM = 2**31 - 1
MAX_TEXT = 1 << 16  # preprocessing, notes, source values
MAX_NAME = 1024  # graph I/O names, paths
MAX_EXTERNAL = 4096  # external-data files per graph
_SHA = re.compile(r"[0-9a-f]{64}")
_TOKEN = re.compile(r'[\[\]{}"\\]')


class _Bad(Exception):
    """An internal schema failure: (field, expected, got); formatted into one line by the caller."""


def _short(value: Any) -> str:
    if isinstance(value, (dict, list)) and len(value) > 8:
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    if len(text) <= 60:
        return text
    return f"a {type(value).__name__} of {len(value)} items" if isinstance(value, (dict, list)) else text[:57] + "..."


def json_depth(text: str, *, stop: int | None = None) -> int:
    """Deepest ``[``/``{`` nesting of JSON ``text``, counted in one linear pass without parsing.

    Brackets inside strings (escapes included) do not count. With ``stop``, returns as soon as the
    depth exceeds it (the value returned is then ``stop + 1``).
    """
    depth = best = 0
    in_string, skip = False, -1
    for m in _TOKEN.finditer(text):
        i, c = m.start(), m.group()
        if i == skip:  # the character after a backslash inside a string
            continue
        if in_string:
            if c == "\\":
                skip = i + 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > best:
                best = depth
                if stop is not None and best > stop:
                    return best
        elif c in "]}":
            depth -= 1
    return best


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (non-standard constant)")


def read_json(path: str | os.PathLike, *, max_bytes: int = MAX_MANIFEST_BYTES, max_depth: int = MAX_DEPTH,
              error: type[FlowcoreError] = BundleError, what: str = "manifest") -> Any:
    """Read a small JSON file safely: a regular file (no symlink), bounded in size and depth, strict JSON.

    Parameters
    ----------
    path : path-like
    max_bytes, max_depth : int
        Limits; a larger or deeper file is refused before it is parsed.
    error : FlowcoreError subclass, default BundleError
        Raised (one line naming ``path``) for every refusal.
    what : str
        What the file is, for the messages (``"manifest"``, ``"detector file"``).
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise error(f"{path} is missing") from None
    except OSError as exc:
        raise error(f"{path} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{path} is a symbolic link; refusing to follow it (copy the file itself into the folder)")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path} is not a regular file")
    if st.st_size > max_bytes:
        raise error(f"{path} is {st.st_size} bytes; a {what} is at most {max_bytes} bytes")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > max_bytes:
        raise error(f"{path} is over {max_bytes} bytes; a {what} is at most {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not valid JSON (not UTF-8 at byte {exc.start})") from None
    if json_depth(text, stop=max_depth) > max_depth:
        raise error(f"{path} nests more than {max_depth} levels deep; a {what} nests at most {max_depth}")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:  # unreachable after the depth check; kept so no parser path can traceback
        raise error(f"{path} nests too deep; a {what} nests at most {max_depth}") from None
    except ValueError as exc:
        raise error(f"{path} is not valid JSON ({str(exc).splitlines()[0]})") from None


# ------------------------------------------------------------------------------------ field checks
def _int(lo: int, hi: int) -> Callable[[Any, str], None]:
    span = f"a non-negative int (at most 2**{hi.bit_length() - 1})" if lo == 0 and hi > 2**32 else f"an int in [{lo}, {hi}]"

    def check(v: Any, f: str) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise _Bad(f, span, v)
    return check


def _text(limit: int, *, empty: bool = True) -> Callable[[Any, str], None]:
    def check(v: Any, f: str) -> None:
        if not isinstance(v, str) or len(v) > limit or (not empty and not v) or "\x00" in v:
            raise _Bad(f, f"a{'' if empty else ' non-empty'} string of at most {limit} characters", v)
    return check


def _optional(inner: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
    def check(v: Any, f: str) -> None:
        if v is not None:
            inner(v, f)
    return check


def _const(value: Any) -> Callable[[Any, str], None]:
    def check(v: Any, f: str) -> None:
        if v != value or type(v) is not type(value):
            raise _Bad(f, repr(value), v)
    return check


def _sha(v: Any, f: str) -> None:
    if not isinstance(v, str) or not _SHA.fullmatch(v):
        raise _Bad(f, "a sha256 of 64 lowercase hex digits", v)


def _shape(v: Any, f: str) -> None:
    if (not isinstance(v, list) or not 1 <= len(v) <= MAX_DIMS
            or any(isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_DIM for d in v)):
        raise _Bad(f, f"a list of 1 to {MAX_DIMS} positive ints", v)


def _plain_name(v: Any, f: str) -> None:
    if (not isinstance(v, str) or not v or len(v) > 255 or v in (".", "..") or "/" in v or "\\" in v
            or "\x00" in v):
        raise _Bad(f, "a plain file name inside the bundle", v)


def check_relative_path(v: Any) -> str | None:
    """Why ``v`` is not a normalised relative POSIX path inside a folder (None when it is one)."""
    if not isinstance(v, str) or not v or len(v) > MAX_NAME or "\x00" in v:
        return f"a relative path of at most {MAX_NAME} characters"
    p = PurePosixPath(v)
    if p.is_absolute() or "\\" in v or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        return "a relative path inside the folder (no '..', no absolute path)"
    if p.as_posix() != v or v.endswith("/"):
        return f"a normalised relative path ({p.as_posix()!r})"
    return None


def _rel_path(v: Any, f: str) -> None:
    why = check_relative_path(v)
    if why:
        raise _Bad(f, why, v)


def _source(v: Any, f: str) -> None:
    if not isinstance(v, dict) or len(v) > 256:
        raise _Bad(f, "an object of at most 256 entries", v)
    for key, val in v.items():
        if len(key) > MAX_NAME:
            raise _Bad(f"{f}.{key[:40]}...", "a key of at most 1024 characters", key)
        if isinstance(val, str):
            _text(MAX_TEXT)(val, f"{f}.{key}")
        elif val is not None and not isinstance(val, (bool, int, float)):
            raise _Bad(f"{f}.{key}", "a string, number, bool or null", val)


def _fields(obj: Any, f: str, spec: dict[str, tuple[Callable[[Any, str], None], bool]]) -> None:
    if not isinstance(obj, dict):
        raise _Bad(f or "(top level)", "a JSON object", obj)
    for key in obj:
        if key not in spec:
            raise _Bad(f"{f}.{key}" if f else key, "absent (unknown field; known: " + ", ".join(spec) + ")", obj[key])
    for key, (check, required) in spec.items():
        name = f"{f}.{key}" if f else key
        if key not in obj:
            if required:
                raise _Bad(name, "present (a required field)", "nothing")
            continue
        check(obj[key], name)


_FILE = {"file": (_rel_path, True), "sha256": (_sha, True), "size": (_int(0, 2**62), True)}


def _external(v: Any, f: str) -> None:
    if not isinstance(v, list) or len(v) > MAX_EXTERNAL:
        raise _Bad(f, f"a list of at most {MAX_EXTERNAL} files", v)
    seen = set()
    for i, entry in enumerate(v):
        _fields(entry, f"{f}[{i}]", _FILE)
        if entry["file"] in seen:
            raise _Bad(f"{f}[{i}].file", "listed once", entry["file"])
        seen.add(entry["file"])


_GRAPH_V1 = {"file": (_plain_name, True), "sha256": (_sha, True), "input": (_text(MAX_NAME, empty=False), True),
             "output": (_text(MAX_NAME, empty=False), True), "opset": (_int(1, 10_000), False),
             "ir_version": (_int(1, 10_000), False)}
_GRAPH_V2 = {**_GRAPH_V1, "size": (_int(0, 2**62), True), "external_data": (_external, True)}


def _graph(spec: dict) -> Callable[[Any, str], None]:
    return lambda v, f: _fields(v, f, spec)


_TOP_V1 = {"format": (_const(FORMAT), True), "format_version": (_const(1), True), "dtype": (_const("float32"), False),
           "input_shape": (_shape, False), "latent_shape": (_shape, False), "encoder": (_graph(_GRAPH_V1), True),
           "decoder": (_graph(_GRAPH_V1), True), "source": (_source, False),
           "preprocessing": (_optional(_text(MAX_TEXT)), False), "notes": (_optional(_text(MAX_TEXT)), False)}
_TOP_V2 = {**_TOP_V1, "format_version": (_const(2), True), "dtype": (_const("float32"), True),
           "input_shape": (_shape, True), "latent_shape": (_shape, True), "encoder": (_graph(_GRAPH_V2), True),
           "decoder": (_graph(_GRAPH_V2), True)}
_SCHEMAS = {1: _TOP_V1, 2: _TOP_V2}


def check_manifest(manifest: Any, where: str | os.PathLike) -> dict[str, Any]:
    """Check a parsed manifest against the schema of its ``format_version``; return it unchanged.

    Raises
    ------
    BundleError
        One line: ``"<where>: field 'encoder.size' must be …, got …"``, or an unknown format/version.
    """
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{where} is not a flowcore manifest (format != {FORMAT!r})")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version not in _SCHEMAS:
        readable = " and ".join(str(v) for v in READABLE_VERSIONS)
        raise BundleError(f"{where} has format_version {_short(version)}; this flowcore reads {readable}"
                          + (" (upgrade flowcore)" if isinstance(version, int) and version > FORMAT_VERSION else ""))
    try:
        _fields(manifest, "", _SCHEMAS[version])
        if manifest["encoder"]["file"] == manifest["decoder"]["file"]:
            raise _Bad("decoder.file", "different from encoder.file", manifest["decoder"]["file"])
    except _Bad as bad:
        field, expected, got = bad.args
        got = got if got == "nothing" else _short(got)
        raise BundleError(f"{where}: field {field!r} must be {expected}, got {got}") from None
    return manifest


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``flow.json`` at ``path`` (bounded, strict JSON) and check it (:func:`check_manifest`)."""
    return check_manifest(read_json(path, what="manifest"), path)
