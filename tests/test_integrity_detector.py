"""Integrity of detector folders: paths resolved inside the folder, no symbolic links, bounded JSON,
``detector.json`` schema-checked before use, and the bundle copy through FlowBundle's own checks."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from flowcore.analysis.ood.detector import OODDetector
from flowcore.bundle.flowbundle import MANIFEST, FlowBundle
from flowcore.errors import BadInputError
from flowcore.io import save_npz

from _graphs import contraction_to
from test_integrity import _cli, _graphs, _one_line, _rehash_graph, _sha


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    d = tmp_path_factory.mktemp("det")
    enc, dec = _graphs()
    bundle = FlowBundle.write(d / "b", enc, dec)
    (d / "b" / "my_notes.txt").write_text("user file, not part of the bundle\n")
    x = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    det = OODDetector(bundle, methods=("recon_error", "knn_mean50"), default="knn_mean50", providers="cpu",
                      calibration_split=0).fit(x)  # 60 rows: too few to hold a split back
    det.save(d / "det")
    save_npz(d / "x.npz", x=x[:4])
    return d


def _det_copy(detector, tmp_path) -> Path:
    shutil.copytree(detector / "det", tmp_path / "det", symlinks=True)
    return tmp_path / "det"


def _rewrite(det: Path, meta: dict | None = None, text: str | None = None) -> None:
    """Write detector.json (crafted) and make checksums.json match every listed file again."""
    if meta is not None or text is not None:
        (det / "detector.json").write_text(text if text is not None else json.dumps(meta))
    sums = json.loads((det / "checksums.json").read_text())
    (det / "checksums.json").write_text(json.dumps({f: _sha(det / f) for f in sums}))


def _score(det: Path, detector: Path, tmp_path: Path, capsys):
    code, out, err = _cli(["ood", "score", str(det), "--data", str(detector / "x.npz"), "--out",
                           str(tmp_path / "s.csv")], capsys)
    assert not (tmp_path / "s.csv").exists()
    return code, err


def test_detector_bundle_copy_holds_only_bundle_files(detector):
    files = sorted(p.relative_to(detector / "det" / "bundle").as_posix()
                   for p in (detector / "det" / "bundle").rglob("*"))
    assert files == ["decoder.onnx", "encoder.onnx", MANIFEST]  # my_notes.txt stayed behind
    assert OODDetector.load(detector / "det", providers="cpu").bundle_sha256_ == FlowBundle.load(detector / "b").sha256


def _drop(key):
    def edit(meta):
        del meta[key]
    return edit


def _put(path, value):
    def edit(meta):
        obj = meta
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return edit


DETECTOR_FUZZ = [
    ("no_params", _drop("params"), ["'params'", "missing"]),
    ("params_list", _put(["params"], [1]), ["'params'"]),
    ("params_tol_negative", _put(["params", "tol"], -1.0), ["'params'", "tol"]),
    ("params_unknown", _put(["params", "evil"], 1), ["'params.evil'"]),
    ("params_method_unknown", _put(["params", "methods"], ["recon_error", "os.system"]), ["'params.methods'"]),
    ("params_default_absent", _put(["params", "default"], "trajectory"), ["'params.default'"]),
    ("methods_missing_entry", _drop("methods"), ["'methods'"]),
    ("class_unknown", _put(["methods", "recon_error", "class"], "builtins.eval"), ["'methods.recon_error.class'"]),
    ("scorer_params_missing", _put(["methods", "knn_mean50", "params"], None), ["'methods.knn_mean50.params'"]),
    ("scorer_param_unknown", _put(["methods", "knn_mean50", "params", "evil"], 1),
     ["'methods.knn_mean50.params.evil'"]),
    ("scorer_param_range", _put(["methods", "knn_mean50", "params", "k"], 0), ["'methods.knn_mean50.params'", "k"]),
    ("threshold_text", _put(["methods", "recon_error", "threshold"], "abc"), ["'methods.recon_error.threshold'"]),
    ("bundle_sha_int", _put(["bundle_sha256"], 5), ["'bundle_sha256'"]),
    ("n_fit_zero", _put(["n_fit"], 0), ["'n_fit'"]),
    ("bundle_dir_escape", _put(["bundle_dir"], "../b"), ["outside the detector folder"]),
    ("kind_other", _put(["kind"], "trajectories"), ["'kind'"]),
]


@pytest.mark.parametrize("edit,words", [f[1:] for f in DETECTOR_FUZZ], ids=[f[0] for f in DETECTOR_FUZZ])
def test_crafted_detector_json_one_line(detector, tmp_path, capsys, edit, words):
    det = _det_copy(detector, tmp_path)
    meta = json.loads((det / "detector.json").read_text())
    edit(meta)
    _rewrite(det, meta)  # checksums match: only the schema can refuse it
    with pytest.raises(BadInputError) as exc:
        OODDetector.load(det, providers="cpu")
    assert len(str(exc.value).splitlines()) == 1
    code, err = _score(det, detector, tmp_path, capsys)
    _one_line(code, err, "detector.json", *words)


def test_detector_json_bounds(detector, tmp_path, capsys):
    det = _det_copy(detector, tmp_path)
    _rewrite(det, text="[" * 200_000 + "]" * 200_000)
    _one_line(*_score(det, detector, tmp_path, capsys), "detector.json", "nests more than 32 levels")
    _rewrite(det, text="{" + '"a": 1,' * 200_000 + '"b": 2}')
    _one_line(*_score(det, detector, tmp_path, capsys), "detector.json", "bytes")


def test_detector_paths(detector, tmp_path, capsys):
    det = _det_copy(detector, tmp_path)
    sums = json.loads((det / "checksums.json").read_text())
    (det / "checksums.json").write_text(json.dumps({**sums, "../x": "0" * 64}))
    _one_line(*_score(det, detector, tmp_path, capsys), "outside the folder")
    (det / "checksums.json").write_text(json.dumps(sums))
    shutil.move(det / "arrays.npz", tmp_path / "arrays.npz")  # same bytes, outside, linked in
    os.symlink(tmp_path / "arrays.npz", det / "arrays.npz")
    _one_line(*_score(det, detector, tmp_path, capsys), "arrays.npz", "symbolic link")


def test_detector_bundle_copy_goes_through_bundle_checks(detector, tmp_path, capsys):
    det = _det_copy(detector, tmp_path)
    p = det / "bundle" / "encoder.onnx"
    data = bytearray(p.read_bytes())
    data[-6] ^= 0x10
    p.write_bytes(bytes(data))
    _rewrite(det)  # the detector's checksums are made to match: flow.json's hash still refuses the graph
    _one_line(*_score(det, detector, tmp_path, capsys), "encoder.onnx", "sha256")
    other, _ = contraction_to(np.array([0.0, 2.0, 0.0], np.float32), 0.5)  # a valid, different encoder
    p.write_bytes(other.SerializeToString())
    _rehash_graph(det / "bundle", "encoder")  # a consistent new bundle is not the one it was fitted on
    _rewrite(det)
    _one_line(*_score(det, detector, tmp_path, capsys), "not the one this detector was fitted on")
    # a symlinked graph inside the copy is refused by the bundle's own checks
    det2 = tmp_path / "det2"
    shutil.copytree(detector / "det", det2)
    shutil.move(det2 / "bundle" / "decoder.onnx", tmp_path / "decoder.onnx")
    os.symlink(tmp_path / "decoder.onnx", det2 / "bundle" / "decoder.onnx")
    _one_line(*_score(det2, detector, tmp_path, capsys), "symbolic link")


def test_resave_without_bundle_copy_removes_only_its_own_old_copy(detector, tmp_path):
    """save(copy_bundle=False) over a folder an earlier save(copy_bundle=True) wrote: the old bundle/ copy
    (every file of it in the old checksums.json) goes, so no stale model sits beside a detector that names
    the original; a bundle/ holding a file flowcore did not write is kept."""
    det = OODDetector.load(detector / "det")
    own = _det_copy(detector, tmp_path)
    assert (own / "bundle").is_dir()
    det.save(own, copy_bundle=False)
    assert not (own / "bundle").exists()
    meta = json.loads((own / "detector.json").read_text())
    assert meta["bundle_dir"] is None
    assert OODDetector.load(own).threshold_ == det.threshold_
    mixed = _det_copy(detector, tmp_path / "mixed")
    (mixed / "bundle" / "mine.txt").write_text("a user's file\n")
    det.save(mixed, copy_bundle=False)
    assert (mixed / "bundle" / "mine.txt").is_file() and (mixed / "bundle" / MANIFEST).is_file()
