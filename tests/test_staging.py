"""flowcore's one staging primitive, :meth:`flowcore.outputs.OutputFolder.staged`, and its users.

The contract (success; a failure inside the writer leaves the destination absent or exactly as it
was, with no temporary folder left; an existing folder with a marker; one without a marker is
refused; a full disk), then every entry point that writes a folder (``FlowBundle.write``,
``write_staged`` of the adapters, ``Result.save``, ``OODDetector.save``, ``write_report``, a
command's ``--out``: ``ood fit``) goes through it exactly once: one staging folder, and a failure mid-write
leaves nothing.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from flowcore import FlowBundle, LatentMap, OODDetector, evaluate, find_attractors, iterate, noise_starts
from flowcore.bundle.export import write_staged
from flowcore.plots.ood import write_report
from flowcore.cli.app import main
from flowcore.errors import BundleError, DiskFullError, ExportError, OutputError
from flowcore.io import save_npz
from flowcore.outputs import MARKER, OutputFolder, read_marker

from _graphs import linear_pair, two_attractors
from test_outputs import NOTE, _disk_full_after, needs_proc, tree, visible


def _leftovers(root: Path) -> list[str]:
    """Staging or trash folders anywhere under ``root`` (none may survive a write, failed or not)."""
    return [p.relative_to(root).as_posix() for p in Path(root).rglob("*")
            if "staging" in p.name or p.name.startswith(".trash.")]


@pytest.fixture
def spy(monkeypatch):
    """Count calls of the primitive and temporary folders made (``calls``, ``folders``)."""
    calls, folders = [], []
    real_staged, real_mkdtemp = OutputFolder.staged, tempfile.mkdtemp

    def staged(self, **kw):
        calls.append((self.path, self.command))
        return real_staged(self, **kw)

    def mkdtemp(*a, **k):
        p = real_mkdtemp(*a, **k)
        if not Path(p).name.startswith(".trash."):  # the commit's own trash inside the staging folder
            folders.append(p)
        return p

    monkeypatch.setattr(OutputFolder, "staged", staged)
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    return calls, folders


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ------------------------------------------------------------------------------------ the contract
@pytest.mark.parametrize("command", [None, "c"])
def test_success_creates_the_folder_and_its_parents(tmp_path, command):
    dest = tmp_path / "a" / "b" / "o"
    with OutputFolder(dest, command=command).staged() as tmp:
        assert tmp.is_dir() and list(tmp.iterdir()) == [] and not dest.exists()
        (tmp / "x.json").write_text("1")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "y").write_text("2")
    names = sorted(os.listdir(dest))
    assert names == (["sub", "x.json"] if command is None else [MARKER, "sub", "x.json"])
    assert (dest / "sub" / "y").read_text() == "2" and _leftovers(tmp_path) == []


@pytest.mark.parametrize("command", [None, "c"])
def test_exception_in_the_writer_leaves_nothing(tmp_path, command):
    dest = tmp_path / "a" / "o"
    with pytest.raises(RuntimeError, match="writer failed"):
        with OutputFolder(dest, command=command).staged() as tmp:
            (tmp / "x.json").write_text("1")
            raise RuntimeError("writer failed")
    assert os.listdir(tmp_path) == []  # the parent it created is gone too
    # an existing folder is left exactly as it was
    with OutputFolder(dest, command=command).staged() as tmp:
        (tmp / "x.json").write_text("old")
    (dest / NOTE).write_text("mine")
    before = tree(dest)
    with pytest.raises(RuntimeError):
        with OutputFolder(dest, command=command).staged() as tmp:
            (tmp / "x.json").write_text("new")
            (tmp / "y.json").write_text("new")
            raise RuntimeError("writer failed")
    assert tree(dest) == before and _leftovers(tmp_path) == []


def test_existing_folder_with_marker_is_merged(tmp_path):
    dest = tmp_path / "o"
    with OutputFolder(dest, command="attractors").staged() as tmp:
        (tmp / "a.json").write_text("1")
    (dest / NOTE).write_text("mine")
    with OutputFolder(dest, command="stability").staged() as tmp:  # no check(), no force: the marker suffices
        (tmp / "a.json").write_text("2")
        (tmp / "s.json").write_text("3")
    assert sorted(os.listdir(dest)) == sorted([MARKER, NOTE, "a.json", "s.json"])
    assert (dest / "a.json").read_text() == "2" and (dest / NOTE).read_text() == "mine"
    assert read_marker(dest)[0].files == {"a.json", "s.json"} and _leftovers(tmp_path) == []


def test_existing_folder_without_marker_is_refused_for_a_command(tmp_path):
    dest = tmp_path / "o"
    dest.mkdir()
    (dest / NOTE).write_text("mine")
    before = tree(dest)
    with pytest.raises(OutputError, match="flowcore did not write"):
        with OutputFolder(dest, command="c").staged() as tmp:  # refused at commit even without check()
            (tmp / "a.json").write_text("1")
    assert tree(dest) == before and _leftovers(tmp_path) == []
    # the API (no command) writes beside the user's entries and leaves no marker
    with OutputFolder(dest).staged() as tmp:
        (tmp / "a.json").write_text("1")
    assert sorted(os.listdir(dest)) == sorted([NOTE, "a.json"])


@needs_proc
@pytest.mark.parametrize("command", [None, "c"])
def test_disk_full_is_one_line_and_changes_nothing(tmp_path, monkeypatch, command):
    dest = tmp_path / "o"
    _disk_full_after(monkeypatch, 1)
    with pytest.raises(DiskFullError, match="no space left") as info:
        with OutputFolder(dest, command=command).staged() as tmp:
            save_npz(tmp / "a.npz", a=np.zeros(3))
            save_npz(tmp / "b.npz", b=np.zeros(3))
    assert "\n" not in str(info.value) and os.listdir(tmp_path) == []
    assert ("--out" in str(info.value)) == (command is not None)  # the API's message names no CLI flag


# ------------------------------------------------------------------------- every entry point
def test_flowbundle_write_goes_through_the_primitive(tmp_path, spy, monkeypatch):
    calls, folders = spy
    enc, dec = linear_pair(np.eye(2), np.zeros(2))
    b = FlowBundle.write(tmp_path / "b", enc, dec)
    assert [c[0] for c in calls] == [tmp_path / "b"] and len(folders) == 1
    assert b.path == tmp_path / "b" and FlowBundle.load(b.path).sha256 == b.sha256
    # overwrite replaces the bundle's files, keeps a user's file (the old writer deleted it) ...
    (b.path / NOTE).write_text("mine")
    enc2, dec2 = linear_pair(2 * np.eye(2), np.ones(2))
    b2 = FlowBundle.write(b.path, enc2, dec2, overwrite=True, external_data=True)
    assert sorted(os.listdir(b.path)) == sorted([NOTE, "decoder.onnx", "decoder.onnx.data", "encoder.onnx",
                                                 "encoder.onnx.data", "flow.json"])
    # ... and removes the earlier bundle's files the new one does not write (its external data)
    b3 = FlowBundle.write(b.path, enc, dec, overwrite=True)
    assert sorted(os.listdir(b.path)) == sorted([NOTE, "decoder.onnx", "encoder.onnx", "flow.json"])
    assert FlowBundle.load(b.path).sha256 == b3.sha256 != b2.sha256
    # a full disk mid-write: one DiskFullError line, the bundle and the note unchanged, nothing left over
    import flowcore.bundle.flowbundle as fbm  # noqa: PLC0415

    before = tree(b.path)
    monkeypatch.setattr(fbm, "atomic_write_json", _enospc)
    with pytest.raises(DiskFullError, match="no space left"):
        FlowBundle.write(b.path, enc2, dec2, overwrite=True)
    with pytest.raises(DiskFullError):
        FlowBundle.write(tmp_path / "new", enc2, dec2)
    assert tree(b.path) == before and sorted(os.listdir(tmp_path)) == ["b"] and _leftovers(tmp_path) == []
    with pytest.raises(BundleError, match="already exists"):  # the checks before staging are unchanged
        FlowBundle.write(b.path, enc, dec)


def test_write_staged_stages_once_and_a_refusing_check_leaves_nothing(tmp_path, spy):
    calls, folders = spy
    enc, dec = linear_pair(np.eye(2), np.zeros(2))
    b = write_staged(tmp_path / "w", enc, dec, source={"framework": "numpy"}, check=lambda bundle: None)
    assert [c[0] for c in calls] == [tmp_path / "w"] and len(folders) == 1  # the old one staged twice
    seen = []

    def refuse(bundle):
        seen.append(bundle.path)
        raise ExportError("parity refused")

    before = tree(b.path)
    with pytest.raises(ExportError, match="parity refused"):
        write_staged(tmp_path / "w", linear_pair(3 * np.eye(2), np.zeros(2))[0], dec,
                     source={"framework": "numpy"}, check=refuse)
    assert seen[0] != b.path and not seen[0].exists()  # checked in the staging folder, since removed
    assert tree(b.path) == before and sorted(os.listdir(tmp_path)) == ["w"] and _leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A 2-D two-attractor bundle, its ID data and a detector fitted on them (fast)."""
    root = tmp_path_factory.mktemp("staging")
    FlowBundle.write(root / "b", *two_attractors(np.array([2.0, 1.0]), np.array([-1.0, -3.0]),
                                                 np.array([1.0, 0.0]), 0.8))
    x = np.random.default_rng(0).standard_normal((60, 2)).astype(np.float32)
    save_npz(root / "x.npz", x=x)
    det = OODDetector(root / "b", methods=["recon_error", "latent_norm"], default="recon_error", providers="cpu", progress=False, calibration_split=0).fit(x)
    return root, det


def test_result_save_goes_through_the_primitive(fitted, tmp_path, spy, monkeypatch):
    calls, folders = spy
    root, _ = fitted
    lmap = LatentMap(root / "b", providers="cpu")
    att = find_attractors(iterate(lmap, noise_starts(lmap.latent_shape, 20, seed=0), progress=False))
    assert att.save(tmp_path / "r") == tmp_path / "r"
    assert [c for c in calls] == [(tmp_path / "r", None)] and len(folders) == 1
    (tmp_path / "r" / NOTE).write_text("mine")
    before = tree(tmp_path / "r")
    import flowcore.results as results  # noqa: PLC0415

    monkeypatch.setattr(results, "atomic_write_json", _enospc)  # the npz is written when this fails
    with pytest.raises(DiskFullError):
        att.save(tmp_path / "r")
    assert tree(tmp_path / "r") == before and _leftovers(tmp_path) == []


def test_detector_save_goes_through_the_primitive(fitted, tmp_path, spy, monkeypatch):
    calls, folders = spy
    _, det = fitted
    det.save(tmp_path / "d")
    assert [c[0] for c in calls] == [tmp_path / "d"] and len(folders) == 1
    assert OODDetector.load(tmp_path / "d").methods == det.methods
    (tmp_path / "d" / NOTE).write_text("mine")
    before = tree(tmp_path / "d")
    import flowcore.analysis.ood._persist as persist  # noqa: PLC0415

    monkeypatch.setattr(persist, "sha256_file", _enospc)  # everything but checksums.json is written by then
    for dest in (tmp_path / "d", tmp_path / "new"):
        with pytest.raises(DiskFullError):
            det.save(dest)
    assert tree(tmp_path / "d") == before and sorted(os.listdir(tmp_path)) == ["d"] and _leftovers(tmp_path) == []


def test_ood_fit_command_stages_once_and_a_failure_leaves_nothing(fitted, tmp_path, spy, monkeypatch, capsys):
    calls, folders = spy
    root, _ = fitted
    argv = ["ood", "fit", str(root / "b"), "--id", str(root / "x.npz"), "--methods", "recon_error,latent_norm",
            "--out", str(tmp_path / "det"), "--quiet", "--device", "cpu"]
    assert main(argv) == 0
    # one call of the primitive, one staging folder: the detector's files fill the command's
    # staging folder (the old command staged them a second time inside it)
    assert calls == [(tmp_path / "det", "ood fit")] and len(folders) == 1
    assert read_marker(tmp_path / "det")[0].files == {"arrays.npz", "bundle", "checksums.json", "detector.json"}
    (tmp_path / "det" / NOTE).write_text("mine\n")
    before = tree(tmp_path / "det")
    import flowcore.analysis.ood._persist as persist  # noqa: PLC0415

    monkeypatch.setattr(persist, "sha256_file", _enospc)
    assert main(argv) == 4
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no space left" in err.lower()
    assert visible(tmp_path / "det") == before and _leftovers(tmp_path) == []


def test_write_report_goes_through_the_primitive(fitted, tmp_path, spy, monkeypatch):
    calls, folders = spy
    root, det = fitted
    y = (3 * np.random.default_rng(1).standard_normal((30, 2))).astype(np.float32)
    rep = evaluate(det, np.load(root / "x.npz")["x"], {"far": y})
    write_report(rep, tmp_path / "rep", figures=False)
    assert [c[0] for c in calls] == [tmp_path / "rep"] and len(folders) == 1
    import flowcore.results as results  # noqa: PLC0415

    with monkeypatch.context() as m:
        m.setattr(results, "atomic_write_json", _enospc)
        with pytest.raises(DiskFullError):
            write_report(rep, tmp_path / "rep2", figures=False)
    assert not (tmp_path / "rep2").exists() and _leftovers(tmp_path) == []
