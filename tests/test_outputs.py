"""The output-folder policy (flowcore.outputs), for every command that writes.

A user's file in an output folder survives every command with and without ``--force``; a
non-empty folder flowcore did not write is refused (one line, exit 3) and left as it was; an
``--out`` that is a file, read-only, or on a disk without room is refused before anything is
computed; a failure while writing (disk full included) leaves nothing behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.cli.app import main
from flowcore.io import save_npz
from flowcore.outputs import MARKER, read_marker

from _graphs import two_attractors
from _cli import one_line, run

NOTE = "my_notes.txt"


def tree(path: Path) -> dict[str, str]:
    """Every entry under ``path`` (hidden ones too): relative path -> sha256, or "<dir>"."""
    path = Path(path)
    if not path.exists():
        return {}
    out = {}
    for p in sorted(path.rglob("*")):
        out[p.relative_to(path).as_posix()] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out




@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A 2-D two-attractor bundle, data files, an attractors folder and a fitted detector (all fast)."""
    root = tmp_path_factory.mktemp("outputs")
    a, b, u = np.array([2.0, 1.0]), np.array([-1.0, -3.0]), np.array([1.0, 0.0])
    FlowBundle.write(root / "b", *two_attractors(a, b, u))
    rng = np.random.default_rng(0)
    save_npz(root / "x.npz", x=rng.standard_normal((60, 2)).astype(np.float32))
    save_npz(root / "y.npz", x=(3 * rng.standard_normal((30, 2))).astype(np.float32))
    assert main(["attractors", str(root / "b"), "--noise", "40", "--metric", "euclidean", "--threshold", "0.01",
                 "--out", str(root / "att"), "--quiet"]) == 0
    assert main(["ood", "fit", str(root / "b"), "--id", str(root / "x.npz"), "--methods", "trajectory,recon_error",
                 "--default", "trajectory", "--out", str(root / "det"), "--quiet"]) == 0
    return root


@pytest.fixture(scope="module")
def saved_ae(env):
    """A tiny torch autoencoder saved as an ExportedProgram, with example inputs (for `export`)."""
    import torch  # noqa: PLC0415  (fail loudly when missing)

    class AE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = torch.nn.Linear(6, 3), torch.nn.Linear(3, 6)

        def forward(self, x):
            return self.decoder(self.encoder(x))

    torch.manual_seed(0)
    x = torch.randn(8, 6)
    prog = torch.export.export(AE().eval(), (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(prog, str(env / "ae.pt2"))
    save_npz(env / "ex.npz", x=x.numpy())
    return env


def argv(name: str, env: Path, out) -> list:
    b, x, y = env / "b", env / "x.npz", env / "y.npz"
    return {
        "trajectories": ["trajectories", b, "--noise", "40"],
        "attractors": ["attractors", b, "--noise", "40", "--metric", "euclidean", "--threshold", "0.01"],
        "stability": ["stability", env / "att"],
        "field": ["field", b, "--n", "6", "--lim", "4", "--no-figures"],
        "memorization": ["memorization", b, "--train", x, "--test", y, "--no-figures"],
        "dynamics": ["dynamics", b, b, "--train", x, "--test", y, "--n-starts", "20", "--no-figures"],
        "probe": ["probe", b, "--heldout", y, "--train", x, "--no-figures"],
        "contraction": ["contraction", b, "--n", "50", "--seeds", "2"],
        "ood fit": ["ood", "fit", b, "--id", x, "--methods", "trajectory,recon_error", "--default", "trajectory"],
        "ood eval": ["ood", "eval", env / "det", "--id", x, "--ood", f"far={y}"],
        "export": ["export", "--autoencoder", env / "ae.pt2", "--example", env / "ex.npz"],
        "demo": ["demo"],
    }[name] + ["--out", out, "--quiet"]


FOLDER_COMMANDS = ["trajectories", "attractors", "stability", "field", "memorization", "dynamics", "probe",
                   "contraction", "ood fit", "ood eval", "export", "demo"]


@pytest.fixture
def cmd_env(request, env):
    return request.getfixturevalue("saved_ae") if request.param == "export" else env


@pytest.mark.parametrize("cmd_env,name", [(n, n) for n in FOLDER_COMMANDS], indirect=["cmd_env"])
def test_user_file_survives_every_command(cmd_env, name, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / NOTE).write_text("mine, not flowcore's\n")
    note = tree(out)[NOTE]
    before = tree(out)
    # a non-empty folder flowcore did not write: refused, one line, left exactly as it was
    code, _, err = run(argv(name, cmd_env, out), capsys)
    one_line(code, err, 3)
    assert "--force" in err and str(out) in err
    assert tree(out) == before
    # --force: written beside the user's file, which is untouched
    code, _, err = run(argv(name, cmd_env, out) + ["--force"], capsys)
    assert code == 0, err
    assert tree(out)[NOTE] == note
    marker, _ = read_marker(out)
    assert marker is not None and name in marker.runs and NOTE not in marker.files
    meta = json.loads((out / MARKER).read_text())
    assert meta["command"] == name and meta["flowcore_version"] and meta["written_at"] and meta["files_written"]
    assert set(meta["files_written"]) <= set(os.listdir(out))
    # again without --force: the marker says the folder is flowcore's (a bundle still needs --force)
    code, _, err = run(argv(name, cmd_env, out), capsys)
    if name == "export":
        one_line(code, err, 3)
        assert "--force" in err
    else:
        assert code == 0, err
    assert tree(out)[NOTE] == note
    code, _, err = run(argv(name, cmd_env, out) + ["--force"], capsys)
    assert code == 0, err
    assert tree(out)[NOTE] == note and not [n for n in os.listdir(out) if "staging" in n]


def test_stability_writes_into_the_attractors_folder_keeping_user_files(env, tmp_path, capsys):
    att = tmp_path / "att"
    shutil.copytree(env / "att", att)
    (att / NOTE).write_text("mine\n")
    code, _, err = run(["stability", att, "--quiet"], capsys)
    assert code == 0, err
    assert (att / "stability.npz").is_file() and (att / NOTE).read_text() == "mine\n"
    assert {"attractors", "stability"} <= set(read_marker(att)[0].runs)


@pytest.mark.parametrize("cmd_env,name", [(n, n) for n in FOLDER_COMMANDS], indirect=["cmd_env"])
def test_out_naming_an_existing_file_is_refused(cmd_env, name, tmp_path, capsys):
    f = tmp_path / "results"
    f.write_text("a file, not a folder\n")
    code, _, err = run(argv(name, cmd_env, f), capsys)
    one_line(code, err, 3)
    assert "existing file" in err and str(f) in err
    assert f.read_text() == "a file, not a folder\n" and sorted(os.listdir(tmp_path)) == ["results"]


def test_a_users_file_named_like_flowcores_is_refused_in_a_flowcore_folder(env, tmp_path, capsys):
    out = tmp_path / "o"
    assert run(argv("trajectories", env, out), capsys)[0] == 0
    before_marker = (out / MARKER).read_bytes()
    # the user drops their own summary.json into a folder attractors would also write it to
    (out / "summary.json").write_text('{"mine": true}\n')
    os.remove(out / MARKER)
    (out / MARKER).write_bytes(before_marker.replace(b'"summary.json",', b""))  # flowcore never listed it
    before = tree(out)
    for extra in ([], ["--force"]):  # --force never replaces a file flowcore did not write
        code, _, err = run(argv("attractors", env, out) + extra, capsys)
        one_line(code, err, 3)
        assert "summary.json" in err and "not written by flowcore" in err and tree(out) == before


def test_ood_score_file_rules(env, tmp_path, capsys):
    base = ["ood", "score", env / "det", "--data", env / "y.npz", "--quiet"]
    # a folder where the CSV goes
    (tmp_path / "dir").mkdir()
    code, _, err = run(base + ["--out", tmp_path / "dir"], capsys)
    one_line(code, err, 3)
    assert "is a folder" in err and os.listdir(tmp_path / "dir") == []
    # a CSV flowcore did not write: refused without --force, replaced with it
    csv = tmp_path / "scores.csv"
    csv.write_text("the user's own table\n")
    (tmp_path / NOTE).write_text("mine\n")
    code, _, err = run(base + ["--out", csv], capsys)
    one_line(code, err, 3)
    assert "not written by flowcore" in err and csv.read_text() == "the user's own table\n"
    code, _, err = run(base + ["--out", csv, "--force"], capsys)
    assert code == 0, err
    assert csv.read_text().startswith("index,score,prediction")
    # its own CSV: rewritten without --force; the folder stays a plain folder, the note untouched
    code, _, err = run(base + ["--out", csv], capsys)
    assert code == 0, err
    marker, _ = read_marker(tmp_path)
    assert "scores.csv" in marker.files and marker.folder is False
    assert (tmp_path / NOTE).read_text() == "mine\n"
    code, _, err = run(argv("trajectories", env, tmp_path), capsys)  # so a folder command still refuses it
    one_line(code, err, 3)


def test_failure_midway_leaves_nothing(env, tmp_path, capsys):
    out = tmp_path / "f"
    code, _, err = run(["field", env / "b", "--lim", "nan", "--n", "5", "--out", out, "--no-figures"], capsys)
    assert code in (2, 3) and err.startswith("error: ")
    assert not out.exists() and os.listdir(tmp_path) == []
    assert run(argv("field", env, out), capsys)[0] == 0
    (out / NOTE).write_text("mine\n")
    before = tree(out)
    code, _, err = run(["field", env / "b", "--lim", "nan", "--n", "5", "--out", out, "--no-figures"], capsys)
    assert code in (2, 3) and tree(out) == before


PARTIAL = ".flowcore-partial"  # the resume area of long runs (kept for --resume), not a result


def visible(path: Path) -> dict[str, str]:
    """``tree(path)`` without the resume area; {} when nothing else is there."""
    return {k: v for k, v in tree(path).items() if k.split("/")[0] != PARTIAL}


def _disk_full_after(monkeypatch, n_ok: int, *, under: str | None = ".flowcore-staging.") -> None:
    """After ``n_ok`` more writes (of files whose path contains ``under``), every such write fails with ENOSPC."""
    import flowcore.io as fio  # noqa: PLC0415

    real, count = fio._write_file, [0]

    def write(fh, data):
        where = os.readlink(f"/proc/self/fd/{fh.fileno()}")
        if under is None or under in where:
            count[0] += 1
            if count[0] > n_ok:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), fh.name)
        real(fh, data)

    monkeypatch.setattr(fio, "_write_file", write)


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to name open files")


@needs_proc
@pytest.mark.parametrize("name,n_ok", [("trajectories", 1), ("attractors", 3), ("field", 2), ("ood eval", 2),
                                       ("ood fit", 1), ("memorization", 1), ("contraction", 1), ("demo", 0)])
def test_disk_full_on_write_leaves_nothing(env, tmp_path, capsys, monkeypatch, name, n_ok):
    new = tmp_path / "new"
    _disk_full_after(monkeypatch, n_ok)
    code, _, err = run(argv(name, env, new), capsys)
    one_line(code, err, 4)
    assert "no space left" in err.lower()
    assert visible(new) == {} and [p.name for p in tmp_path.iterdir() if p.name != "new"] == []
    monkeypatch.undo()
    old = tmp_path / "old"
    assert run(argv(name, env, old), capsys)[0] == 0
    (old / NOTE).write_text("mine\n")
    before = tree(old)
    _disk_full_after(monkeypatch, n_ok)
    code, _, err = run(argv(name, env, old), capsys)
    one_line(code, err, 4)
    assert visible(old) == before and {p.name for p in tmp_path.iterdir()} <= {"new", "old"}


@needs_proc
def test_disk_full_anywhere_is_one_line(env, tmp_path, capsys, monkeypatch):
    # the very first write of the run fails (a checkpoint chunk of a long run, or a result file)
    _disk_full_after(monkeypatch, 0, under=None)
    code, _, err = run(argv("trajectories", env, tmp_path / "o"), capsys)
    one_line(code, err, 4)
    assert "no space left" in err.lower() and visible(tmp_path / "o") == {}


@needs_proc
def test_disk_full_on_ood_score_leaves_no_csv(env, tmp_path, capsys, monkeypatch):
    _disk_full_after(monkeypatch, 0)
    code, _, err = run(["ood", "score", env / "det", "--data", env / "y.npz", "--out", tmp_path / "s.csv"], capsys)
    one_line(code, err, 4)
    assert os.listdir(tmp_path) == []


def test_too_little_free_space_is_refused_before_computing(env, tmp_path, capsys, monkeypatch):
    import flowcore.outputs._policy as policy  # noqa: PLC0415

    monkeypatch.setattr(policy, "_free_bytes", lambda folder: 4096)
    code, _, err = run(argv("trajectories", env, tmp_path / "o"), capsys)
    one_line(code, err, 4)
    assert "free" in err and os.listdir(tmp_path) == []


_READ_ONLY_CHILD = """
import json, sys
from flowcore.cli.app import main
cases = json.loads(sys.argv[1])
results = {}
for name, argv in cases.items():
    import io
    err = io.StringIO()
    code = main(argv, stdout=io.StringIO(), stderr=err)
    results[name] = [code, err.getvalue()]
loaded = [m for m in ("onnxruntime", "torch", "numba", "sklearn") if m in sys.modules]
print(json.dumps({"results": results, "loaded": loaded}))
"""


def test_read_only_out_is_refused_before_computing(saved_ae, tmp_path):
    env = saved_ae
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "exists").mkdir()
    cases = {}
    for name in FOLDER_COMMANDS:
        cases[f"{name} (new)"] = argv(name, env, ro / name.replace(" ", "_"))
        cases[f"{name} (existing)"] = argv(name, env, ro / "exists")
    cases["ood score"] = ["ood", "score", env / "det", "--data", env / "y.npz", "--out", ro / "s.csv"]
    cases = {k: [str(a) for a in v] for k, v in cases.items()}
    before = tree(ro)
    prefix = []
    if os.geteuid() == 0:  # root writes anywhere: drop the capability that lets it ignore permissions
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a folder read-only for this process")
        drop = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", "--"]
    os.chmod(ro, 0o555)
    os.chmod(ro / "exists", 0o555)
    try:
        proc = subprocess.run(prefix + [sys.executable, "-c", textwrap.dedent(_READ_ONLY_CHILD), json.dumps(cases)],
                              capture_output=True, text=True, timeout=300)
    finally:
        os.chmod(ro, 0o755)
        os.chmod(ro / "exists", 0o755)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for name, (code, err) in got["results"].items():
        one_line(code, err, 3)
        assert "cannot write" in err, (name, err)
    # refused before any model was loaded: no ONNX Runtime, no torch, no numba in the child
    assert got["loaded"] == []
    assert tree(ro) == before


def test_force_adopts_a_bundle_or_detector_written_without_a_marker(saved_ae, tmp_path, capsys):
    from flowcore.analysis.ood.detector import OODDetector  # noqa: PLC0415

    env = saved_ae
    # a bundle the Python API wrote (no marker): --force replaces the files its flow.json lists
    bundle = tmp_path / "bundle"
    shutil.copytree(env / "b", bundle)
    (bundle / NOTE).write_text("mine\n")
    code, _, err = run(argv("export", env, bundle), capsys)
    one_line(code, err, 3)
    code, _, err = run(argv("export", env, bundle) + ["--force"], capsys)
    assert code == 0, err
    assert FlowBundle.load(bundle).latent_shape == (3,) and (bundle / NOTE).read_text() == "mine\n"
    # a detector folder the Python API wrote: --force replaces what its checksums.json covers
    det = tmp_path / "det"
    OODDetector.load(env / "det", providers="cpu").save(det)
    (det / NOTE).write_text("mine\n")
    code, _, err = run(argv("ood fit", env, det), capsys)
    one_line(code, err, 3)
    code, _, err = run(argv("ood fit", env, det) + ["--force"], capsys)
    assert code == 0, err
    assert (det / NOTE).read_text() == "mine\n" and "ood fit" in read_marker(det)[0].runs
    OODDetector.load(det, providers="cpu")
