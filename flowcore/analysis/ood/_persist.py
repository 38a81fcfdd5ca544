"""The detector folder: ``detector.json``, ``arrays.npz``, ``bundle/`` and ``checksums.json``.

Written through :func:`flowcore.results.staged_folder` (complete or absent) with the result
protocol's header (``format``, ``kind``, ``format_version``, ``arrays``); read back only after
every file listed in ``checksums.json`` matches, the header is right, the arrays match their
schema and the bundle's hash is the one the detector was fitted on. No code executed on load.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from flowcore.errors import BadInputError
from flowcore.io import atomic_write_json, load_npz, save_npz, sha256_file
from flowcore.results import Array, check_arrays, header, read_header, staged_folder

__all__ = ["KIND", "FORMAT", "FORMAT_VERSION", "save_detector", "read_detector"]

KIND = "ood-detector"
FORMAT = "flowcore." + KIND
FORMAT_VERSION = 1
_TITLE = "a flowcore detector"


def _schema(meta: dict[str, Any]) -> dict[str, Array]:
    out = {"bank": Array("f", 2, optional=True)}
    for m in meta["methods"]:
        out[f"{m}/fit_scores"] = Array("f", 1, dims=("n_fit",))
    out.update({f"{m}/*": Array("biuf") for m in meta["methods"]})
    return out


def save_detector(det: Any, path: str | os.PathLike, *, copy_bundle: bool = True) -> Path:
    """Write the fitted detector ``det`` into folder ``path`` (see :meth:`OODDetector.save`)."""
    path = Path(path)
    if path.exists() and not (path / "detector.json").is_file() and (not path.is_dir() or any(path.iterdir())):
        raise BadInputError(f"{path} exists and is not a flowcore detector folder; choose another --out")
    arrays: dict[str, np.ndarray] = {}
    methods = {}
    for m, scorer in det.scorers_.items():
        params, arr = scorer.state()
        methods[m] = {"class": type(scorer).__name__, "params": params, "threshold": det.thresholds_[m],
                      "description": scorer.describe()}
        arrays.update({f"{m}/{k}": v for k, v in arr.items()})
        arrays[f"{m}/fit_scores"] = det.fit_scores_[m]
    if det.bank_ is not None:
        arrays["bank"] = det.bank_
    bundle_path = det._lmap().bundle.path
    meta = {**header(KIND, FORMAT_VERSION), "params": det.params(), "methods": methods,
            "bundle_sha256": det.bundle_sha256_, "bundle_dir": "bundle" if copy_bundle else None,
            "bundle_path": str(Path(bundle_path).resolve()), "bank": det.bank_info_,
            "n_fit": det.n_fit_, "score_direction": "higher = more OOD", "arrays": sorted(arrays)}
    check_arrays(path / "arrays.npz", {k: np.asarray(v) for k, v in arrays.items()}, _schema(meta))
    with staged_folder(path) as tmp:
        save_npz(tmp / "arrays.npz", **arrays)
        if copy_bundle:
            shutil.copytree(bundle_path, tmp / "bundle")
        atomic_write_json(tmp / "detector.json", meta)
        files = ["detector.json", "arrays.npz"] + ([p.relative_to(tmp).as_posix() for p in sorted((tmp / "bundle").rglob("*"))
                                                    if p.is_file()] if copy_bundle else [])
        atomic_write_json(tmp / "checksums.json", {f: sha256_file(tmp / f) for f in files})
    return path


def read_detector(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray], Path | str]:
    """Verify a detector folder and read it.

    Returns
    -------
    meta : dict
        ``detector.json``.
    arrays : dict of str to ndarray
        ``arrays.npz``, checked against the schema.
    bundle : Path or str
        The bundle copy inside the folder, else the recorded original path.

    Raises
    ------
    BadInputError
        Not a detector folder, a file that does not match its checksum, or a bad header/array.
    """
    path = Path(path)
    if not (path / "detector.json").is_file():
        raise BadInputError(f"{path} is not a flowcore detector folder (no detector.json)")
    try:
        sums = json.loads((path / "checksums.json").read_text())
    except (OSError, ValueError):
        raise BadInputError(f"{path}/checksums.json is missing or unreadable; the detector folder is incomplete") from None
    if not isinstance(sums, dict):
        raise BadInputError(f"{path}/checksums.json is not a JSON object; the detector folder is incomplete")
    for name, digest in sums.items():
        f = path / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BadInputError(f"{path}/checksums.json names a file outside the folder: {name}")
        if not f.is_file() or sha256_file(f) != digest:
            raise BadInputError(f"{f} does not match its checksum; the detector folder was modified")
    for required in ("detector.json", "arrays.npz"):
        if required not in sums:
            raise BadInputError(f"{path}/checksums.json does not cover {required}")
    meta = read_header(path / "detector.json", KIND, FORMAT_VERSION, title=_TITLE)
    arrays = load_npz(path / "arrays.npz")
    try:
        schema = _schema(meta)
    except (KeyError, TypeError):
        raise BadInputError(f"{path}/detector.json: field 'methods' is missing or malformed") from None
    check_arrays(path / "arrays.npz", arrays, schema, meta.get("arrays"))
    if meta.get("bundle_dir"):
        if Path(meta["bundle_dir"]).is_absolute() or ".." in Path(meta["bundle_dir"]).parts:
            raise BadInputError(f"{path}/detector.json names a bundle outside the detector folder")
        return meta, arrays, path / meta["bundle_dir"]
    return meta, arrays, meta["bundle_path"]
