"""flowcore.outputs as an API: the marker, --force's limits, crafted markers, rollback, prune, files.

The commands' side (every writing command, read-only and full disks) is tests/test_outputs.py.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from flowcore.errors import DiskFullError, OutputError
from flowcore.outputs import MARKER, OutputFile, OutputFolder, read_marker

from test_outputs import NOTE, tree


def test_marker_and_any_command_may_add(tmp_path):
    dest = tmp_path / "o"
    with OutputFolder(dest, command="attractors").check(writes=["a.json"]).staged() as tmp:
        (tmp / "a.json").write_text("1")
    with OutputFolder(dest, command="stability").check(writes=["s.json", "a.json"]).staged() as tmp:
        (tmp / "s.json").write_text("2")
    marker, _ = read_marker(dest)
    assert marker.files == {"a.json", "s.json"} and set(marker.runs) == {"attractors", "stability"}
    assert oct(dest.stat().st_mode & 0o777) != "0o700"  # not mkdtemp's private mode


def test_force_never_touches_other_entries(tmp_path):
    dest = tmp_path / "o"
    (dest / "sub").mkdir(parents=True)
    (dest / "sub" / "x").write_text("user's")
    (dest / "summary.json").write_text("user's")
    with pytest.raises(OutputError, match="did not write"):
        OutputFolder(dest, command="trajectories").check()
    # --force writes beside the user's entries, never over one of them (file or folder)
    with pytest.raises(OutputError, match="summary.json exists"):
        OutputFolder(dest, command="x", force=True).check(writes=["summary.json"])
    for name in ("summary.json", "sub"):
        with pytest.raises(OutputError, match=f"{name} exists and was not written by flowcore"):
            with OutputFolder(dest, command="x", force=True).check().staged() as tmp:
                (tmp / "new.json").write_text("flowcore's")
                (tmp / name).mkdir() if name == "sub" else (tmp / name).write_text("flowcore's")
    assert sorted(os.listdir(dest)) == ["sub", "summary.json"]
    assert (dest / "summary.json").read_text() == "user's" and (dest / "sub" / "x").read_text() == "user's"
    with OutputFolder(dest, command="x", force=True).check().staged() as tmp:
        (tmp / "new.json").write_text("flowcore's")
    assert sorted(os.listdir(dest)) == sorted([MARKER, "new.json", "sub", "summary.json"])
    # what a caller vouches for (a bundle's own manifest lists it) is replaced, with --force only
    with pytest.raises(OutputError):
        OutputFolder(dest, command="x", adopt=["summary.json"]).check(writes=["summary.json"])
    with OutputFolder(dest, command="x", force=True, adopt=["summary.json"]).check().staged() as tmp:
        (tmp / "summary.json").write_text("flowcore's")
    assert (dest / "summary.json").read_text() == "flowcore's" and (dest / "sub" / "x").read_text() == "user's"


def test_crafted_markers_grant_nothing(tmp_path):
    dest = tmp_path / "o"
    dest.mkdir()
    (dest / "data.npy").write_text("user's")
    for text in ['{"format": "flowcore.output-folder", "files": ["../../etc/passwd"]}', "[1, 2]", "{" * 100000,
                 '{"format": "other", "files": ["data.npy"]}']:
        (dest / MARKER).write_text(text)
        assert read_marker(dest)[0] is None
        with pytest.raises(OutputError, match="did not write"):
            OutputFolder(dest, command="x").check()
    os.remove(dest / MARKER)
    (tmp_path / "elsewhere.json").write_text('{"format": "flowcore.output-folder", "files": ["data.npy"]}')
    os.symlink(tmp_path / "elsewhere.json", dest / MARKER)
    assert read_marker(dest)[0] is None


def test_a_failed_rename_rolls_everything_back(tmp_path, monkeypatch):
    import flowcore.outputs._marker as mk  # noqa: PLC0415

    dest = tmp_path / "o"
    with OutputFolder(dest, command="c").check().staged() as tmp:
        for n in ("a", "b", "c"):
            (tmp / n).write_text("old " + n)
    (dest / NOTE).write_text("mine")
    before = tree(dest)
    real, count = os.replace, [0]

    def flaky(src, dst):
        if Path(dst).parent == dest:
            count[0] += 1
            if count[0] == 3:  # after a and b were replaced by the new ones
                raise OSError(errno.EIO, "I/O error", str(dst))
        real(src, dst)

    monkeypatch.setattr(mk.os, "replace", flaky)
    with pytest.raises(OSError):
        with OutputFolder(dest, command="c").check().staged() as tmp:
            for n in ("a", "b", "c"):
                (tmp / n).write_text("new " + n)
    monkeypatch.undo()
    assert count[0] > 3 and tree(dest) == before  # the rollback moved the old entries back


def test_prune_removes_only_this_commands_stale_files(tmp_path):
    dest = tmp_path / "o"
    with OutputFolder(dest, command="export").check().staged(prune=True) as tmp:
        (tmp / "flow.json").write_text("{}")
        (tmp / "encoder.onnx.data").write_text("w")
    with OutputFolder(dest, command="other").check().staged() as tmp:
        (tmp / "other.json").write_text("{}")
    (dest / NOTE).write_text("mine")
    with OutputFolder(dest, command="export").check().staged(prune=True) as tmp:
        (tmp / "flow.json").write_text("{}")
    assert sorted(os.listdir(dest)) == sorted([MARKER, "flow.json", "other.json", NOTE])


def test_output_file_api(tmp_path):
    f = OutputFile(tmp_path / "deep" / "s.csv", command="ood score").check()
    f.write_text("a\n")
    assert (tmp_path / "deep" / "s.csv").read_text() == "a\n"
    OutputFile(tmp_path / "deep" / "s.csv", command="ood score").check().write_text("b\n")
    assert (tmp_path / "deep" / "s.csv").read_text() == "b\n"
    with pytest.raises(DiskFullError) as info:
        OutputFolder(tmp_path / "big", command="x").check(nbytes=1 << 62)
    assert info.value.exit_code == 4 and not (tmp_path / "big").exists()
