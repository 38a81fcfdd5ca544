"""The detector folder: ``detector.json``, ``arrays.npz``, ``bundle/`` and ``checksums.json``.

Written through :meth:`flowcore.outputs.OutputFolder.staged` (complete or absent) with the result
protocol's header (``format``, ``kind``, ``format_version``, ``arrays``); the bundle copy holds
only the files the bundle's manifest lists (manifest, graphs, external data), copied from the
verified bundle and verified again in place. Read back only after every path resolves inside the
folder (no symbolic links, no ``..``), every file listed in ``checksums.json`` matches, the JSON
files are within bounds (size, depth) and ``detector.json`` matches its schema (types, known
methods and scorer classes, parameters in range: checked here, before anything is built from it),
the arrays match theirs, and the bundle (through :meth:`FlowBundle.load`'s checks) has the hash
the detector was fitted on. Unknown top-level keys of ``detector.json`` are tolerated (never
used); unknown keys inside ``params`` and a method's ``params`` are refused (they would reach a
constructor). No code executed on load.
"""

from __future__ import annotations

import inspect
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from flowcore.bundle.files import resolve_inside
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.bundle.manifest import check_relative_path, read_json
from flowcore.errors import BadInputError, ParameterError
from flowcore.io import atomic_write_json, load_npz, save_npz, sha256_file
from flowcore.outputs import OutputFolder
from flowcore.results import FORMAT_PREFIX, Array, check_arrays, header
from flowcore.validation import Interval, Options, SequenceOf, validate_params
from flowcore.analysis.ood.scorers import _CLASSES, METHODS

__all__ = ["KIND", "FORMAT", "FORMAT_VERSION", "save_detector", "write_detector", "read_detector", "restore_state"]

KIND = "ood-detector"
FORMAT = "flowcore." + KIND
FORMAT_VERSION = 2  # 2: the thresholds' calibration (``calibration``, ``<method>/calibration_scores``)
_READS = (1, 2)  # a folder of format 1 has no calibration record: its thresholds are in-sample
_TITLE = "a flowcore detector"
_MAX_JSON = 1 << 20  # detector.json and checksums.json: a real one is a few KB
_MAX_DEPTH = 32
_SHA_LEN = 64
# what OODDetector.params() saves, each checked before OODDetector(**params) sees it
_PARAMS = {
    "methods": [SequenceOf(str)], "default": [str], "contamination": [Interval(float, 0, 1, closed="neither")],
    "bank_source": [Options(str, {"id", "noise"})], "n_noise": [Interval(int, 1, None), None],
    "bank": [Options(str, {"attractors", "endpoints"})], "merge_threshold": [Interval(float, 0, None)],
    "tol": [Interval(float, 0, None, closed="neither")], "max_steps": [Interval(int, 1, None)],
    "batch_size": [Interval(int, 1, None)], "seed": [Interval(int, 0, None)],
    "calibration_split": [Interval(float, 0, 1, closed="left"), Options(str, {"auto"})],
}
_PARAMS_V1 = set(_PARAMS) - {"calibration_split"}  # format 1 (calibration_split absent: in-sample thresholds)
_CALIBRATION_SOURCES = ("file", "split", "fit")


def _schema(meta: dict[str, Any]) -> dict[str, Array]:
    out = {"bank": Array("f", 2, optional=True)}
    for m in meta["methods"]:
        out[f"{m}/fit_scores"] = Array("f", 1, dims=("n_fit",))
        out[f"{m}/calibration_scores"] = Array("f", 1, dims=("n_calib",), optional=True)
    out.update({f"{m}/*": Array("biuf") for m in meta["methods"]})
    return out


def save_detector(det: Any, path: str | os.PathLike, *, copy_bundle: bool = True) -> Path:
    """Write the fitted detector ``det`` into folder ``path`` (see :meth:`OODDetector.save`), staged."""
    path = Path(path)
    if path.exists() and not (path / "detector.json").is_file() and (not path.is_dir() or any(path.iterdir())):
        raise BadInputError(f"{path} exists and is not a flowcore detector folder; choose another --out")
    stale = None if copy_bundle else _own_bundle_copy(path)
    with OutputFolder(path).staged() as tmp:
        write_detector(det, tmp, copy_bundle=copy_bundle, shown=path)
    if stale is not None:  # the new detector.json names the original bundle: the old copy is no longer the detector's
        shutil.rmtree(stale, ignore_errors=True)
    return path


def _own_bundle_copy(path: Path) -> Path | None:
    """``path/bundle`` when an earlier save of a detector wrote it there (every file in it is in that save's
    ``checksums.json``), else None: a folder flowcore did not write is never removed."""
    copy = path / "bundle"
    if os.path.islink(copy) or not copy.is_dir():
        return None
    try:
        sums = read_json(path / "checksums.json", max_bytes=_MAX_JSON, max_depth=2, error=BadInputError,
                         what="checksums file")
    except (BadInputError, OSError):
        return None
    ours = set(sums) if isinstance(sums, dict) else set()
    inside = [p for p in copy.rglob("*")]
    if any(p.is_symlink() or (p.is_file() and p.relative_to(path).as_posix() not in ours) for p in inside):
        return None
    return copy


def write_detector(det: Any, folder: str | os.PathLike, *, copy_bundle: bool = True,
                   shown: str | os.PathLike | None = None) -> Path:
    """Fill the existing empty ``folder`` with the fitted detector's files (no staging of its own).

    The writer behind :func:`save_detector`; a command calls it inside the folder its
    ``OutputFolder.staged()`` yields. ``shown``: the path named in messages (default ``folder``).
    """
    tmp = Path(folder)
    arrays: dict[str, np.ndarray] = {}
    methods = {}
    for m, scorer in det.scorers_.items():
        params, arr = scorer.state()
        methods[m] = {"class": type(scorer).__name__, "params": params, "threshold": det.thresholds_[m],
                      "description": scorer.describe()}
        arrays.update({f"{m}/{k}": v for k, v in arr.items()})
        arrays[f"{m}/fit_scores"] = det.fit_scores_[m]
        if m in det.calibration_scores_:
            arrays[f"{m}/calibration_scores"] = det.calibration_scores_[m]
    if det.bank_ is not None:
        arrays["bank"] = det.bank_
    bundle_path = det._lmap().bundle.path
    meta = {**header(KIND, FORMAT_VERSION), "params": det.params(), "methods": methods,
            "bundle_sha256": det.bundle_sha256_, "bundle_dir": "bundle" if copy_bundle else None,
            "bundle_path": str(Path(bundle_path).resolve()), "bank": det.bank_info_,
            "n_fit": det.n_fit_, "calibration": det.calibration_info_, "score_direction": "higher = more OOD",
            "arrays": sorted(arrays)}
    check_arrays(Path(shown if shown is not None else tmp) / "arrays.npz",
                 {k: np.asarray(v) for k, v in arrays.items()}, _schema(meta))
    save_npz(tmp / "arrays.npz", **arrays)
    if copy_bundle:
        _copy_bundle(det._lmap().bundle, tmp / "bundle", det.bundle_sha256_)
    atomic_write_json(tmp / "detector.json", meta)
    files = ["detector.json", "arrays.npz"] + ([p.relative_to(tmp).as_posix() for p in sorted((tmp / "bundle").rglob("*"))
                                                if p.is_file()] if copy_bundle else [])
    atomic_write_json(tmp / "checksums.json", {f: sha256_file(tmp / f) for f in files})
    return tmp


def _copy_bundle(bundle: FlowBundle, dst: Path, sha256: str) -> None:
    """Copy the files of the verified ``bundle`` (and nothing else) into ``dst``; verify the copy."""
    src = Path(bundle.path)
    for rel in bundle.files:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(resolve_inside(src.resolve(), rel, f"bundle {src}: file"), dst / rel)
    copy = FlowBundle.load(dst)
    if copy.sha256 != sha256:
        raise BadInputError(f"bundle {src} changed since the detector was fitted (sha256 {copy.sha256[:12]}…, "
                            f"fitted on {sha256[:12]}…); fit again")


def _bad(path: Path, field: str, expected: str, got: Any) -> BadInputError:
    if got == "nothing":
        text = "nothing (the field is missing)"
    else:
        text = repr(got) if not isinstance(got, (dict, list)) else f"a {type(got).__name__} of {len(got)} items"
    return BadInputError(f"{path}: field {field!r} must be {expected}, got {text[:80]}")


def _check_scorer(path: Path, m: str, info: Any) -> None:
    where = f"methods.{m}"
    if not isinstance(info, dict):
        raise _bad(path, where, "an object", info)
    klass = _CLASSES.get(info.get("class")) if isinstance(info.get("class"), str) else None
    if klass is None:
        raise _bad(path, f"{where}.class", "one of " + ", ".join(sorted(_CLASSES)), info.get("class", "nothing"))
    params = info.get("params")
    if not isinstance(params, dict):
        raise _bad(path, f"{where}.params", "an object", params if "params" in info else "nothing")
    sig = inspect.signature(klass.__init__)
    known = {n: p.default for n, p in sig.parameters.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise _bad(path, f"{where}.params.{unknown[0]}", f"absent ({klass.__name__} takes {', '.join(known) or 'none'})",
                   params[unknown[0]])
    full = {n: params.get(n, d) for n, d in known.items()}
    missing = [n for n, v in full.items() if v is inspect.Parameter.empty]
    if missing:
        raise _bad(path, f"{where}.params.{missing[0]}", "present", "nothing")
    try:
        validate_params(klass._parameter_constraints, full, caller=f"{path}: field '{where}.params'")
    except ParameterError as exc:
        raise BadInputError(str(exc)) from None
    t = info.get("threshold")
    if not (t in ("inf", "-inf") or (isinstance(t, (int, float)) and not isinstance(t, bool) and not math.isnan(t))):
        raise _bad(path, f"{where}.threshold", "a number (or 'inf')", t if "threshold" in info else "nothing")


def _check_meta(path: Path, meta: dict[str, Any]) -> None:
    """The schema of ``detector.json``: everything OODDetector.load reads, checked before it reads it."""
    params = meta.get("params")
    if not isinstance(params, dict):
        raise _bad(path, "params", "an object of the detector's parameters", params if "params" in meta else "nothing")
    unknown = sorted(set(params) - set(_PARAMS))
    if unknown:
        raise _bad(path, f"params.{unknown[0]}", "absent (unknown detector parameter)", params[unknown[0]])
    try:
        table = _PARAMS if meta.get("format_version") != 1 else {k: v for k, v in _PARAMS.items() if k in _PARAMS_V1}
        validate_params(table, params, caller=f"{path}: field 'params'")
    except ParameterError as exc:
        raise BadInputError(str(exc)) from None
    bad = [m for m in params["methods"] if m not in METHODS]
    if bad:
        raise _bad(path, "params.methods", "names of OOD methods (" + ", ".join(METHODS) + ")", bad[0])
    if params["default"] not in params["methods"]:
        raise _bad(path, "params.default", f"one of params.methods {params['methods']}", params["default"])
    methods = meta.get("methods")
    if not isinstance(methods, dict) or set(methods) != set(params["methods"]):
        raise _bad(path, "methods", f"an object with one entry per method of params.methods {params['methods']}",
                   methods if "methods" in meta else "nothing")
    for m, info in methods.items():
        _check_scorer(path, m, info)
    sha = meta.get("bundle_sha256")
    if not isinstance(sha, str) or len(sha) != _SHA_LEN or any(c not in "0123456789abcdef" for c in sha):
        raise _bad(path, "bundle_sha256", "a sha256 of 64 lowercase hex digits", sha if "bundle_sha256" in meta else "nothing")
    n_fit = meta.get("n_fit")
    if isinstance(n_fit, bool) or not isinstance(n_fit, int) or n_fit < 1:
        raise _bad(path, "n_fit", "a positive int", n_fit if "n_fit" in meta else "nothing")
    _check_calibration(path, meta)
    if meta.get("bank") is not None and not isinstance(meta["bank"], dict):
        raise _bad(path, "bank", "an object or null", meta["bank"])
    bdir = meta.get("bundle_dir")
    if bdir is not None and check_relative_path(bdir) is not None:
        raise BadInputError(f"{path} names a bundle outside the detector folder (field 'bundle_dir' {str(bdir)[:80]!r})")
    if bdir is None and not isinstance(meta.get("bundle_path"), str):
        raise _bad(path, "bundle_path", "a path (the detector has no bundle copy)", meta.get("bundle_path", "nothing"))
    if not isinstance(meta.get("arrays", []), list) or not all(isinstance(a, str) for a in meta.get("arrays", [])):
        raise _bad(path, "arrays", "a list of array names", meta.get("arrays"))


def _check_calibration(path: Path, meta: dict[str, Any]) -> None:
    """``calibration``: absent (format 1, in-sample) or {source, n, fraction, seed} as ``OODDetector.fit`` records it."""
    cal = meta.get("calibration")
    if cal is None and meta.get("format_version") == 1:
        return
    if not isinstance(cal, dict):
        raise _bad(path, "calibration", "an object (source, n, fraction, seed)", cal if "calibration" in meta else "nothing")
    if cal.get("source") not in _CALIBRATION_SOURCES:
        raise _bad(path, "calibration.source", "one of " + ", ".join(_CALIBRATION_SOURCES), cal.get("source", "nothing"))
    n = cal.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise _bad(path, "calibration.n", "a positive int", n if "n" in cal else "nothing")
    f = cal.get("fraction")
    if (cal["source"] == "split") != (f is not None) or (f is not None and (
            isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1)):
        raise _bad(path, "calibration.fraction", "a number in (0, 1) for a split, else null", f)
    seed = cal.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _bad(path, "calibration.seed", "an int or null", seed)


def _read_header(path: Path) -> dict[str, Any]:
    meta = read_json(path, max_bytes=_MAX_JSON, max_depth=_MAX_DEPTH, error=BadInputError, what="detector file")
    if not isinstance(meta, dict):
        raise BadInputError(f"{path}: not a JSON object; not {_TITLE} folder")
    got = meta.get("kind", str(meta.get("format", ""))[len(FORMAT_PREFIX):] or None)
    if meta.get("format") != FORMAT or got != KIND:
        raise BadInputError(f"{path}: field 'kind' is {str(got)[:80]!r}, expected {KIND!r}; not {_TITLE} folder")
    if meta.get("format_version") not in _READS or isinstance(meta.get("format_version"), bool):
        raise BadInputError(f"{path}: field 'format_version' is {str(meta.get('format_version'))[:40]!r}; this "
                            f"flowcore reads versions {', '.join(map(str, _READS))} of {_TITLE}")
    _check_meta(path, meta)
    return meta


def read_detector(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray], Path | str]:
    """Verify a detector folder and read it.

    Returns
    -------
    meta : dict
        ``detector.json``, checked against its schema.
    arrays : dict of str to ndarray
        ``arrays.npz``, checked against the schema.
    bundle : Path or str
        The bundle copy inside the folder, else the recorded original path (either is loaded
        with :meth:`FlowBundle.load`, which verifies it).

    Raises
    ------
    BadInputError
        Not a detector folder, a symbolic link or a path leaving the folder, a file that does
        not match its checksum, or a bad header, field or array (one line naming it).
    """
    path = Path(path)
    if not path.is_dir() or not os.path.lexists(path / "detector.json"):
        raise BadInputError(f"{path} is not a flowcore detector folder (no detector.json)")
    root = path.resolve()
    if not os.path.lexists(path / "checksums.json"):
        raise BadInputError(f"{path}/checksums.json is missing or unreadable; the detector folder is incomplete")
    sums = read_json(path / "checksums.json", max_bytes=_MAX_JSON, max_depth=2, error=BadInputError,
                     what="checksums file")
    if not isinstance(sums, dict):
        raise BadInputError(f"{path}/checksums.json is not a JSON object; the detector folder is incomplete")
    for name, digest in sums.items():
        if check_relative_path(name) is not None:
            raise BadInputError(f"{path}/checksums.json names a file outside the folder: {name[:200]}")
        f = resolve_inside(root, name, f"{path}: file", error=BadInputError)
        if not isinstance(digest, str) or sha256_file(f) != digest:
            raise BadInputError(f"{path / name} does not match its checksum; the detector folder was modified")
    for required in ("detector.json", "arrays.npz"):
        if required not in sums:
            raise BadInputError(f"{path}/checksums.json does not cover {required}")
    meta = _read_header(path / "detector.json")
    arrays = load_npz(resolve_inside(root, "arrays.npz", f"{path}: file", error=BadInputError))
    check_arrays(path / "arrays.npz", arrays, _schema(meta), meta.get("arrays"))
    if meta.get("bundle_dir"):
        bundle = path / meta["bundle_dir"]
        if os.path.islink(bundle) or root not in bundle.resolve().parents:
            raise BadInputError(f"{path}: the bundle copy {meta['bundle_dir']!r} is a symbolic link or leaves the folder")
        return meta, arrays, bundle
    return meta, arrays, meta["bundle_path"]


def restore_state(det: Any, path: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Set a constructed detector's fitted state from :func:`read_detector`'s ``meta`` and ``arrays``.

    The bank (``bank_``, (n_bank, k) or None), the fit facts, the calibration (absent in folders of
    format 1: in-sample) and, per method, the scorer rebuilt from its saved parameters and arrays
    (no code is executed: scorer classes come from a fixed table), its fit scores, calibration
    scores where saved, and its threshold.
    """
    det.bank_ = arrays.get("bank")
    det.bank_info_ = meta.get("bank")
    det.bundle_sha256_ = meta["bundle_sha256"]
    det.n_fit_ = meta["n_fit"]
    det.calibration_info_ = meta.get("calibration")
    det.calibration_scores_ = {}
    det.scorers_, det.fit_scores_, det.thresholds_ = {}, {}, {}
    for m, info in meta["methods"].items():
        klass = _CLASSES.get(info["class"])
        if klass is None:
            raise BadInputError(f"{path}: unknown scorer class {info['class']!r}")
        own = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(m + "/")}
        det.scorers_[m] = klass.from_state(info["params"], own)
        det.fit_scores_[m] = own["fit_scores"]
        if "calibration_scores" in own:
            det.calibration_scores_[m] = own["calibration_scores"]
        det.thresholds_[m] = float(info["threshold"])
