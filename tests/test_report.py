"""``flowcore report`` on the demo model: one self-contained page, the same content as JSON, notes, errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from flowcore import demo_paths
from flowcore.report import SECTIONS
from flowcore.report.demo import demo_sets
from tests._cli import one_line, run

SMALL = ["--n-noise", "40", "--n-starts", "80", "--n", "12", "--methods", "recon_error,latent_norm"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    data, test, ood = demo_sets()
    for name, x in (("data", data), ("test", test), ("noise", ood["noise"])):
        np.save(d / f"{name}.npy", x)
    return d


@pytest.fixture(scope="module")
def full(files, tmp_path_factory):
    """(html text, json dict) of the demo model with --test and one OOD set."""
    out_h, out_j = tmp_path_factory.mktemp("h") / "r", tmp_path_factory.mktemp("j") / "r"
    common = [demo_paths()[0], "--data", files / "data.npy", "--test", files / "test.npy",
              "--ood", f"noise={files / 'noise.npy'}", *SMALL, "--quiet"]
    from flowcore.cli import main
    assert main([str(a) for a in ["report", *common, "--out", out_h]]) == 0
    assert main([str(a) for a in ["report", *common, "--format", "json", "--out", out_j]]) == 0
    return (out_h / "report.html").read_text(), json.loads((out_j / "report.json").read_text())


def _data_block(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="flowcore-data">(.*?)</script>', html, re.S)
    assert m, "no data block"
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_page_is_self_contained(full):
    html, _ = full
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "<script" in html and html.count("<script") == 1  # only the JSON block, nothing that runs
    imgs = re.findall(r'<img alt="([^"]+)" src="([^"]+)"', html)
    assert {a for a, _ in imgs} >= {"steps_histogram", "field", "trajectories_on_plane", "decoded_attractors", "probe_mse", "hist_noise",
                                      "roc"}
    assert all(src.startswith("data:image/png;base64,") and len(src) > 2000 for _, src in imgs)
    assert [s for s in re.findall(r'<section id="([^"]+)"', html)] == list(SECTIONS)


def test_json_format_has_the_same_content(full):
    html, data = full
    block = _data_block(html)
    drop = lambda d: [s for s in d["sections"] if s["id"] != "run"]  # noqa: E731  # wall time and command differ
    assert drop(block) == drop(data)
    ood = next(s for s in data["sections"] if s["id"] == "ood")
    rows = ood["tables"][0]["rows"]
    assert {r[0] for r in rows} == {"recon_error", "latent_norm"} and all(0 <= r[2] <= 100 for r in rows)
    mem = next(s for s in data["sections"] if s["id"] == "memorization")
    assert mem["status"] == "ok" and mem["verdict"] and mem["text"][0] == f"verdict: {mem['verdict']}"
    assert next(s for s in data["sections"] if s["id"] == "checkpoints")["status"] == "absent"


def test_absent_inputs_give_notes(files, tmp_path, capsys):
    code, out, err = run(["report", demo_paths()[0], "--data", files / "data.npy", *SMALL, "--format", "json",
                          "--out", tmp_path / "r"], capsys)
    assert code == 0, err
    secs = {s["id"]: s for s in json.loads((tmp_path / "r" / "report.json").read_text())["sections"]}
    for sid in ("memorization", "probing", "ood", "checkpoints"):
        assert secs[sid]["status"] == "absent" and secs[sid]["note"], sid
    assert secs["attractors"]["status"] == "ok" and secs["attractors"]["tables"][0]["rows"]
    assert "written" in out


def test_bad_inputs_are_one_line(files, tmp_path, capsys):
    b = demo_paths()[0]
    code, _, err = run(["report", b, "--data", tmp_path / "missing.npy", "--out", tmp_path / "a"], capsys)
    one_line(code, err, 3)
    code, _, err = run(["report", b, "--data", files / "data.npy", "--ood", "nonsense", "--out", tmp_path / "b"], capsys)
    one_line(code, err, 3)
    code, _, err = run(["report", b, "--data", files / "data.npy", "--n", "1", "--out", tmp_path / "c"], capsys)
    one_line(code, err, 2)
    foreign = tmp_path / "d"
    foreign.mkdir()
    (foreign / "report.html").write_text("mine")
    code, _, err = run(["report", b, "--data", files / "data.npy", *SMALL, "--out", foreign], capsys)
    one_line(code, err, 3)
    assert (foreign / "report.html").read_text() == "mine"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
