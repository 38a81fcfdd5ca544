"""Bad detector folders: every file tampered, crafted JSON with matching checksums, symlinks, pickle payloads."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from bi_assets import BAD, Case, case, flip_byte, pickle_npz

DETECTOR_FILES = ("detector.json", "arrays.npz", "checksums.json", "bundle/flow.json", "bundle/encoder.onnx",
                  "bundle/decoder.onnx")


def _copy(env, d: Path) -> Path:
    det = d / "det"
    shutil.copytree(env.detector, det, symlinks=True)
    return det


def _score(env, d: Path, det: Path, *names: str, **kw) -> Case:
    return Case(argv=["ood", "score", str(det), "--data", str(env.data), "--out", str(d / "scores.csv")],
                out=d / "scores.csv", names=names, **kw)


def _resum(det: Path) -> None:
    """Rewrite checksums.json so every listed file matches again (a crafted, self-consistent folder)."""
    sums = json.loads((det / "checksums.json").read_text())
    for name in sums:
        if isinstance(sums[name], str):
            sums[name] = hashlib.sha256((det / name).read_bytes()).hexdigest()
    (det / "checksums.json").write_text(json.dumps(sums, indent=2))


def _tamper_case(rel: str):
    @case("detector_tampered_" + rel.replace("/", "_").replace(".", "_"))
    def _(env, d):
        det = _copy(env, d)
        flip_byte(det / rel)
        # a flipped digest in checksums.json is indistinguishable from a modified file: "checksum" either way
        return _score(env, d, det, Path(rel).name if rel != "checksums.json" else "checksum")


for _rel in DETECTOR_FILES:
    _tamper_case(_rel)


@case("detector_tampered_every_file_api")
def _(env, d):
    """Each file of the detector folder (whatever the writer put there) flipped in turn: every load refuses."""
    from flowcore.analysis.ood.detector import OODDetector  # noqa: PLC0415
    from flowcore.errors import BadInputError  # noqa: PLC0415

    base = _copy(env, d)
    files = sorted(p.relative_to(base).as_posix() for p in base.rglob("*")
                   if p.is_file() and not p.name.startswith(".flowcore-output"))

    def call():
        accepted = []
        for rel in files:
            det = d / ("t_" + rel.replace("/", "_"))
            shutil.copytree(base, det)
            flip_byte(det / rel)
            try:
                OODDetector.load(det, providers="cpu")
                accepted.append(rel)
            except BadInputError:
                pass
            finally:
                shutil.rmtree(det)
        if accepted:
            return f"tampered files accepted: {accepted}"
        raise BadInputError(f"{len(files)} tampered detector files refused: {', '.join(files)}")

    return Case(call=call, error="BadInputError", code=BAD, names=("detector.json", "arrays.npz"))


@case("detector_json_without_params_matching_checksums")
def _(env, d):
    det = _copy(env, d)
    meta = json.loads((det / "detector.json").read_text())
    meta.pop("params")
    (det / "detector.json").write_text(json.dumps(meta, indent=2))
    _resum(det)
    return _score(env, d, det, "params")


@case("detector_json_methods_not_dict_matching_checksums")
def _(env, d):
    det = _copy(env, d)
    meta = json.loads((det / "detector.json").read_text())
    meta["methods"] = ["recon_error"]
    (det / "detector.json").write_text(json.dumps(meta, indent=2))
    _resum(det)
    return _score(env, d, det, "methods")


@case("detector_json_threshold_string_matching_checksums")
def _(env, d):
    det = _copy(env, d)
    meta = json.loads((det / "detector.json").read_text())
    meta["methods"]["recon_error"]["threshold"] = "high"
    (det / "detector.json").write_text(json.dumps(meta, indent=2))
    _resum(det)
    return _score(env, d, det, "threshold")


@case("detector_json_deep_nesting_matching_checksums")
def _(env, d):
    det = _copy(env, d)
    (det / "detector.json").write_text("[" * 200_000 + "]" * 200_000)
    _resum(det)
    return _score(env, d, det, "detector.json")


@case("detector_arrays_live_pickle_matching_checksums")
def _(env, d):
    det = _copy(env, d)
    marker = d / "PWNED_detector"
    arrays = dict(np.load(det / "arrays.npz"))
    pickle_npz(det / "arrays.npz", marker, **arrays)
    meta = json.loads((det / "detector.json").read_text())
    meta["arrays"] = sorted(meta["arrays"] + ["x"])
    (det / "detector.json").write_text(json.dumps(meta, indent=2))
    _resum(det)
    return _score(env, d, det, "arrays.npz", marker=marker, forbid=("allow_pickle", "pickle.load"))


@case("detector_checksums_name_outside")
def _(env, d):
    det = _copy(env, d)
    (d / "secret.txt").write_text("user data\n")
    sums = json.loads((det / "checksums.json").read_text())
    sums["../secret.txt"] = hashlib.sha256(b"user data\n").hexdigest()
    (det / "checksums.json").write_text(json.dumps(sums, indent=2))
    return _score(env, d, det, "secret.txt")


@case("detector_checksums_missing")
def _(env, d):
    det = _copy(env, d)
    (det / "checksums.json").unlink()
    return _score(env, d, det, "checksums.json")


@case("detector_symlink_arrays_outside")
def _(env, d):
    det = _copy(env, d)
    shutil.move(det / "arrays.npz", d / "arrays.npz")
    os.symlink(d / "arrays.npz", det / "arrays.npz")  # same bytes: the checksum matches
    return _score(env, d, det, "arrays.npz")


@case("detector_symlink_bundle_graph_outside")
def _(env, d):
    det = _copy(env, d)
    shutil.move(det / "bundle" / "encoder.onnx", d / "encoder.onnx")
    os.symlink(d / "encoder.onnx", det / "bundle" / "encoder.onnx")
    return _score(env, d, det, "encoder.onnx")


@case("detector_not_a_detector")
def _(env, d):
    (d / "det").mkdir()
    (d / "det" / "notes.txt").write_text("mine\n")
    return _score(env, d, d / "det", "det")


@case("detector_other_bundle_api")
def _(env, d):
    from flowcore.analysis.ood.detector import OODDetector  # noqa: PLC0415

    return Case(call=lambda: OODDetector.load(env.detector, bundle=env.bundle3, providers="cpu"),
                error="BadInputError", code=BAD, names=("bundle3",))


def _single_row_fit(env, d: Path, out: Path) -> Case:
    np.save(d / "x.npy", np.zeros((1, 4), np.float32))
    return Case(argv=["ood", "fit", str(env.bundle), "--id", str(d / "x.npy"), "--out", str(out)], out=out,
                names=("x.npy", "1 row", "knn_kth50"))


@case("ood_fit_single_row")
def _(env, d):
    """One ID row (all methods: the 50-NN baselines need 51): refused before --out or its partial area exists."""
    return _single_row_fit(env, d, d / "det")


@case("ood_fit_single_row_existing_empty_out")
def _(env, d):
    """The same into an existing empty folder: it stays empty (no .flowcore-partial left behind)."""
    (d / "det").mkdir()
    return _single_row_fit(env, d, d / "det")
