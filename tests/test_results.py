"""flowcore.results: the one result protocol (folder-atomic save, validating load) and its users."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from flowcore.dynamics.attractors import Attractors
from flowcore.dynamics.field import FieldGrid
from flowcore.dynamics.stability import Stability
from flowcore.dynamics.trajectories import Trajectories
from flowcore.errors import DataError
from flowcore.outputs import OutputFolder
from flowcore.results import Array, Result


@dataclass(frozen=True)
class Toy(Result):
    """Two per-row arrays that must agree in length, an optional matrix, and settings."""

    x: np.ndarray
    label: np.ndarray
    settings: dict[str, Any]
    extra: np.ndarray | None = None

    kind: ClassVar[str] = "toy"
    schema: ClassVar[dict[str, Array]] = {
        "x": Array("f", 2, dims=("n", "k")),
        "label": Array("iu", 1, dims=("n",)),
        "extra": Array("f", 2, dims=("n",), optional=True),
    }

    def to_json(self) -> dict[str, Any]:
        return {"n": len(self.x), "settings": dict(self.settings)}

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {"x": self.x, "label": self.label}
        if self.extra is not None:
            out["extra"] = self.extra
        return out

    @classmethod
    def _from_files(cls, arrays, meta, folder):
        return cls(x=arrays["x"], label=arrays["label"], extra=arrays.get("extra"), settings=meta["settings"])


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    return Toy(x=rng.standard_normal((5, 3)).astype(np.float32), label=np.arange(5, dtype=np.int64),
               settings={"tol": 1e-6, "seed": 3})


def _no_staging(parent: Path) -> None:
    assert not [p.relative_to(parent) for p in parent.rglob("*") if "staging" in p.name or "trash" in p.name]


def test_round_trip_and_header(toy, tmp_path):
    out = toy.save(tmp_path / "r")
    assert sorted(p.name for p in out.iterdir()) == ["toy.json", "toy.npz"]
    meta = json.loads((out / "toy.json").read_text())
    assert (meta["format"], meta["kind"], meta["format_version"]) == ("flowcore.toy", "toy", 1)
    assert meta["arrays"] == ["label", "x"] and meta["settings"] == {"tol": 1e-6, "seed": 3}
    back = Toy.load(out)
    np.testing.assert_array_equal(back.x, toy.x)
    np.testing.assert_array_equal(back.label, toy.label)
    assert back.x.dtype == np.float32 and back.extra is None and back.settings == toy.settings
    _no_staging(tmp_path)


def test_failure_mid_save_leaves_nothing(toy, tmp_path, monkeypatch):
    import flowcore.results as results  # noqa: PLC0415

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(results, "atomic_write_json", boom)  # the npz is already written when this fails
    with pytest.raises(OSError, match="disk full"):
        toy.save(tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert list(tmp_path.iterdir()) == []
    # a composite output fails the same way: nothing of it is left
    with pytest.raises(RuntimeError):
        with OutputFolder(tmp_path / "c").staged() as tmp:
            (tmp / "summary.json").write_text("{}")
            raise RuntimeError("figure failed")
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_keeps_user_files(toy, tmp_path):
    dest = tmp_path / "r"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    (dest / "toy.json").write_text("stale")
    toy.save(dest)
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt", "toy.json", "toy.npz"]
    assert (dest / "notes.txt").read_text() == "mine"
    Toy.load(dest)
    # staged folders put sub-folders in place too, replacing only their own
    with OutputFolder(dest).staged() as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "a.txt").write_text("new")
    with OutputFolder(dest).staged() as tmp:
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("newer")
    assert sorted(p.name for p in (dest / "sub").iterdir()) == ["b.txt"]
    assert (dest / "notes.txt").read_text() == "mine"
    _no_staging(tmp_path)


def test_save_over_a_file_is_refused(toy, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        toy.save(tmp_path / "f")


def _rewrite_npz(folder: Path, **change):
    arrays = dict(np.load(folder / "toy.npz"))
    arrays.update({k: v for k, v in change.items() if v is not None})
    for k in [k for k, v in change.items() if v is None]:
        del arrays[k]
    np.savez(folder / "toy.npz", **arrays)


def _rewrite_json(folder: Path, **change):
    meta = json.loads((folder / "toy.json").read_text())
    meta.update(change)
    (folder / "toy.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("case, pattern", [
    ("missing array", r"toy\.npz lacks the array 'label'"),
    ("unlisted array", r"toy\.npz holds the array 'extra2' that its JSON does not list"),
    ("wrong dtype", r"toy\.npz: array 'label' has dtype float64; expected kind i/u"),
    ("wrong ndim", r"toy\.npz: array 'x' has 1 axes"),
    ("length mismatch", r"toy\.npz: array 'x' has length 4 on axis 0 \(n\) but 'label' has 5"),
    ("wrong kind", r"toy\.json: field 'kind' is 'other'"),
    ("unknown version", r"toy\.json: field 'format_version' is 2"),
    ("unreadable json", r"toy\.json is missing or unreadable"),
    ("no json", r"toy\.json is missing or unreadable \(FileNotFoundError\); not a toy folder"),
    ("missing field", r"toy\.json: field 'settings' is missing"),
])
def test_load_refusals_are_one_line(toy, tmp_path, case, pattern):
    folder = toy.save(tmp_path / "r")
    if case == "missing array":
        _rewrite_npz(folder, label=None)
    elif case == "unlisted array":
        _rewrite_npz(folder, extra2=np.zeros((5, 3)))
    elif case == "wrong dtype":
        _rewrite_npz(folder, label=np.arange(5, dtype=np.float64))
    elif case == "wrong ndim":
        _rewrite_npz(folder, x=np.zeros(5, np.float32))
    elif case == "length mismatch":
        _rewrite_npz(folder, x=np.zeros((4, 3), np.float32))
    elif case == "wrong kind":
        _rewrite_json(folder, kind="other", format="flowcore.other")
    elif case == "unknown version":
        _rewrite_json(folder, format_version=2)
    elif case == "unreadable json":
        (folder / "toy.json").write_text("{not json")
    elif case == "no json":
        (folder / "toy.json").unlink()
    elif case == "missing field":
        meta = json.loads((folder / "toy.json").read_text())
        del meta["settings"]
        (folder / "toy.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=pattern) as info:
        Toy.load(folder)
    assert "\n" not in str(info.value)


def test_schema_checked_on_save_too(tmp_path):
    bad = Toy(x=np.zeros((4, 3), np.float32), label=np.arange(5), settings={})
    with pytest.raises(DataError, match="must agree"):
        bad.save(tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the result classes
def test_trajectories_round_trip_with_path_and_features(tmp_path):
    rng = np.random.default_rng(1)
    n = 6
    tr = Trajectories(final=rng.standard_normal((n, 2, 2)).astype(np.float32), steps=np.arange(n, dtype=np.int32),
                      status=np.array([0, 0, 1, 2, 0, 1], np.int8), last_step_sq=rng.random(n).astype(np.float32),
                      settings={"tol": 1e-6, "features": ["dist_mean", "steps"]},
                      path=rng.standard_normal((n, 3, 2, 2)).astype(np.float32),
                      path_steps=np.tile(np.arange(3, dtype=np.int32), (n, 1)),
                      starts=rng.standard_normal((n, 2, 2)).astype(np.float32),
                      features={"dist_mean": rng.random(n), "steps": rng.random(n)})
    back = Trajectories.load(tr.save(tmp_path / "t"))
    for name in ("final", "steps", "status", "last_step_sq", "path", "path_steps", "starts"):
        np.testing.assert_array_equal(getattr(back, name), getattr(tr, name))
        assert getattr(back, name).dtype == getattr(tr, name).dtype
    assert back.features.keys() == tr.features.keys() and back.settings == tr.settings
    assert back.summary() == tr.summary()
    # a path without its steps is refused
    arrays = dict(np.load(tmp_path / "t" / "trajectories.npz"))
    del arrays["path_steps"]
    np.savez(tmp_path / "t" / "trajectories.npz", **arrays)
    meta = json.loads((tmp_path / "t" / "trajectories.json").read_text())
    meta["arrays"].remove("path_steps")
    (tmp_path / "t" / "trajectories.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="path_steps"):
        Trajectories.load(tmp_path / "t")


def test_attractors_round_trip_and_label_check(tmp_path):
    att = Attractors(centres=np.eye(2, dtype=np.float32), representatives=np.eye(2, dtype=np.float32),
                     labels=np.array([0, 1, -1, 0], np.int64), counts=np.array([2, 1], np.int64),
                     status_counts={"converged": 3, "max_steps": 1, "diverged": 0}, settings={"metric": "cosine"})
    back = Attractors.load(att.save(tmp_path / "a"))
    assert back.summary() == att.summary()
    arrays = dict(np.load(tmp_path / "a" / "attractors.npz"))
    arrays["labels"] = np.array([0, 5, -1, 0], np.int64)
    np.savez(tmp_path / "a" / "attractors.npz", **arrays)
    with pytest.raises(DataError, match="labels"):
        Attractors.load(tmp_path / "a")


def test_stability_round_trip(tmp_path):
    eig = np.array([[0.5 + 0.1j, 0.2 - 0.1j], [1.2 + 0j, 0.1 + 0j]])
    st = Stability(points=np.ones((2, 2), np.float32), spectral_radius=np.abs(eig[:, 0]),
                   spectral_norm=np.array([0.6, 1.3]), stable=np.array([True, False]), eigenvalues=eig,
                   fixed_point_residual=np.array([1e-7, 2e-7]), settings={"h": 1e-3})
    back = Stability.load(st.save(tmp_path / "s"))
    np.testing.assert_array_equal(back.eigenvalues, eig)
    assert back.summary() == st.summary() and back.stable.dtype == bool


def test_field_grid_round_trip(tmp_path):
    xs, ys = np.linspace(-1, 1, 4), np.linspace(-1, 1, 3)
    u = np.arange(12, dtype=np.float32).reshape(3, 4)
    g = FieldGrid(xs=xs, ys=ys, u=u, v=-u, speed=np.abs(u), origin=np.zeros(5, np.float32),
                  basis=np.eye(2, 5, dtype=np.float32), settings={"n": 4})
    back = FieldGrid.load(g.save(tmp_path / "g"))
    for name in ("xs", "ys", "u", "v", "speed", "origin", "basis"):
        np.testing.assert_array_equal(getattr(back, name), getattr(g, name))
    assert back.settings == {"n": 4}
    bad = FieldGrid(xs=xs, ys=ys, u=u.T, v=-u, speed=np.abs(u), origin=np.zeros(5, np.float32),
                    basis=np.eye(2, 5, dtype=np.float32))
    with pytest.raises(DataError, match="'u'"):
        bad.save(tmp_path / "bad")


def test_checkpoint_metrics_round_trip(tmp_path):
    from flowcore.analysis.checkpoints import CheckpointMetrics  # noqa: PLC0415

    def row(name, v):
        sets = ("train", "test", "noise")
        return {"checkpoint": name, "mem_mean": v, "mem_std": 0.1, "test_mse": 0.01 * v,
                "distinct_fraction": dict(zip(sets, (0.1, 0.2, 0.3))), "n_attractors": dict(zip(sets, (1, 2, 3))),
                "chamfer_noise_train": 0.9, "fpr95_id_positive": 0.5, "fpr95_ood_positive": 0.4, "auroc": 0.7,
                "score_train": {"mean": 1.0, "std": 0.5, "n": 10}, "score_noise": {"mean": 2.0, "std": 0.5, "n": 10},
                "n_nonfinite_scores": 0, "median_steps": {"train": 12.0, "test": None, "noise": 30.5},
                "status_counts": {s: {"converged": 8, "max_steps": 1, "diverged": 1} for s in sets},
                "settings": {"n_starts": 10, "seed": 0, "providers": ["CPUExecutionProvider"]}}

    rows = [row("a", 0.8), row(1, 0.9)]
    cm = CheckpointMetrics.from_rows(rows)
    assert cm.rows() == rows and list(cm) == rows and len(cm) == 2 and cm[1] == rows[1]
    back = CheckpointMetrics.load(cm.save(tmp_path / "c"))
    assert back.rows() == rows


def test_analyses_never_import_the_face():
    root = Path(__file__).resolve().parents[1] / "flowcore" / "analysis"
    bad = []
    for py in root.rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{py.name}: {n}" for n in names if n.split(".")[:2] in (["flowcore", "plots"], ["flowcore", "cli"])]
    assert bad == []


def test_a_failed_commit_into_an_existing_folder_changes_nothing(toy, tmp_path, monkeypatch):
    import errno  # noqa: PLC0415
    import os  # noqa: PLC0415

    import flowcore.outputs._marker as marker  # noqa: PLC0415

    dest = toy.save(tmp_path / "r")
    (dest / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    real, calls = os.replace, [0]

    def flaky(src, dst):  # the second rename into the folder (the new npz, after the new json) fails
        if Path(dst).parent == dest:
            calls[0] += 1
            if calls[0] == 2:
                raise OSError(errno.EIO, "I/O error", str(dst))
        real(src, dst)

    monkeypatch.setattr(marker.os, "replace", flaky)
    other = Toy(x=toy.x + 1, label=toy.label, settings={"tol": 1.0})
    with pytest.raises(OSError, match="I/O error"):
        other.save(dest)
    monkeypatch.undo()
    assert calls[0] > 2  # the json had been replaced when the npz failed, and was put back
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    _no_staging(tmp_path)
