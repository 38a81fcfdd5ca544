"""``flowcore contraction BUNDLE --out DIR``: σ_out / σ_in of f on N(0, I) latents over seeds (PAPER Fig. 6).

The command's numbers are those of :func:`flowcore.analysis.contraction.contraction_ratio`, seed
by seed, on a trained bundle and on an untrained one exported here; the spread over seeds is
NumPy's mean and sample std; bad flag values are usage errors (exit 2) and a missing bundle is
bad input (exit 3), each one line with nothing written.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from flowcore.analysis.contraction import contraction_ratio
from flowcore.outputs import MARKER
from flowcore.runtime.latent_map import LatentMap

from _cli import one_line, run

FIELDS = ("ratio", "median_coordinate_ratio", "norm_ratio", "sigma_in", "sigma_out")
RATIOS = ("ratio", "median_coordinate_ratio", "norm_ratio")


@pytest.fixture(scope="module")
def untrained_bundle(digits, tmp_path_factory):
    """The digits MLP architecture freshly initialised with seed 0 (never trained), exported."""
    import flowcore_torch  # noqa: PLC0415  (fail loudly when missing)
    from flowcore_torch.recipes import digits_autoencoder  # noqa: PLC0415

    enc, dec = digits_autoencoder(8, seed=0)
    path = tmp_path_factory.mktemp("untrained") / "bundle"
    return flowcore_torch.export(enc, dec, digits["x_train"][:64], path, notes="untrained digits MLP, k=8, seed 0")


@pytest.fixture(params=["trained", "untrained"])
def bundle(request):
    return request.getfixturevalue("digits_bundle" if request.param == "trained" else "untrained_bundle")




def contraction(bundle, out, capsys, *extra):
    code, text, err = run(["contraction", bundle.path, "--device", "cpu", "--out", out, "--quiet", *extra], capsys)
    assert code == 0, err
    return text, json.loads((out / "contraction_seeds.json").read_text())


def test_per_seed_numbers_are_the_apis(bundle, tmp_path, capsys):
    out = tmp_path / "o"
    text, got = contraction(bundle, out, capsys, "--n", "200", "--seeds", "3")
    lmap = LatentMap(bundle, providers="cpu")
    want = [contraction_ratio(lmap, n=200, seed=s) for s in range(3)]
    assert (got["n"], got["seeds"], got["latent_dim"]) == (200, 3, 8)
    assert [r["seed"] for r in got["per_seed"]] == [0, 1, 2]
    for row, rep in zip(got["per_seed"], want):
        assert {k: row[k] for k in FIELDS} == {k: getattr(rep, k) for k in FIELDS}
        assert row["contracts"] is rep.contracts
    for k in RATIOS:
        values = np.array([getattr(rep, k) for rep in want])
        assert got["mean"][k] == float(np.mean(values)) and got["std"][k] == float(np.std(values, ddof=1))
    n_contract = sum(rep.contracts for rep in want)
    assert got["contracting_seeds"] == n_contract and got["contracting_fraction"] == n_contract / 3
    # the CSV: one row per seed, the same numbers (floats written with repr: exact)
    with open(out / "contraction_seeds.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["seed"]) for r in rows] == [0, 1, 2]
    for row, rep in zip(rows, want):
        assert all(float(row[k]) == getattr(rep, k) for k in FIELDS) and row["contracts"] == str(rep.contracts)
    # stdout: the mean ± std of each ratio, the contracting count and the folder
    r, m, nr = (f"{got['mean'][k]:.4g} ± {got['std'][k]:.2g}" for k in RATIOS)
    assert text.splitlines() == [
        f"σ_out / σ_in {r} over 3 seeds (n = 200 N(0, I) latents each); contracts (ratio < 1) on {n_contract} of 3 "
        f"seeds; median coordinate ratio {m}; norm ratio {nr}", f"written {out}"]
    assert sorted(os.listdir(out)) == sorted([MARKER, "contraction_seeds.csv", "contraction_seeds.json",
                                              "contraction_seeds.npz"])


def test_untrained_model_contracts_on_every_seed(untrained_bundle, tmp_path, capsys):
    # the defaults are the paper's protocol: 1,000 N(0, I) latents, 10 seeds
    text, got = contraction(untrained_bundle, tmp_path / "o", capsys)
    assert (got["n"], got["seeds"]) == (1000, 10)
    ratios = [r["ratio"] for r in got["per_seed"]]
    assert len(ratios) == 10 and all(r < 1 for r in ratios), ratios
    assert all(r["contracts"] for r in got["per_seed"]) and got["contracting_seeds"] == 10
    assert got["contracting_fraction"] == 1.0 and got["mean"]["ratio"] < 1
    assert "contracts (ratio < 1) on 10 of 10 seeds" in text


def test_json_stdout_is_the_file(untrained_bundle, tmp_path, capsys):
    out = tmp_path / "o"
    text, got = contraction(untrained_bundle, out, capsys, "--n", "200", "--seeds", "3", "--json")
    stdout = json.loads(text)  # the file adds the result header (kind, version, arrays) for ContractionSeeds.load
    assert {k: got[k] for k in stdout} == stdout and {"format", "kind", "format_version", "arrays"} <= set(got) - set(stdout)
    assert got["settings"]["providers"] == ["CPUExecutionProvider"]


def test_one_seed_has_no_spread(untrained_bundle, tmp_path, capsys):
    text, got = contraction(untrained_bundle, tmp_path / "o", capsys, "--n", "200", "--seeds", "1")
    assert got["std"] == {k: None for k in RATIOS}
    assert got["mean"]["ratio"] == got["per_seed"][0]["ratio"]
    assert "±" not in text and f"σ_out / σ_in {got['mean']['ratio']:.4g} over 1 seed (" in text


@pytest.mark.parametrize("flag,value", [("--n", "1"), ("--n", "nan"), ("--n", "0"), ("--n", "1.5"),
                                        ("--seeds", "0"), ("--seeds", "-1"), ("--seeds", "nan")])
def test_bad_values_are_usage_errors(digits_bundle, flag, value, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["contraction", digits_bundle.path, flag, value, "--out", "o"], capsys)
    line = one_line(code, err, 2)
    assert line.startswith(f"error: {flag}: expected an integer in ") and repr(value) in line, line
    assert out == "" and os.listdir(tmp_path) == []


def test_missing_bundle_and_missing_out(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["contraction", "no_such_bundle", "--out", "o"], capsys)
    assert "no_such_bundle" in one_line(code, err, 3)
    assert out == "" and os.listdir(tmp_path) == []
    code, out, err = run(["contraction", "no_such_bundle"], capsys)
    assert "--out" in one_line(code, err, 2) and os.listdir(tmp_path) == []


def test_the_command_is_the_apis_contraction_seeds(untrained_bundle, tmp_path, capsys):
    # the face only parses, calls and prints: the file is flowcore.contraction_seeds(...).to_json() plus the bundle
    import flowcore  # noqa: PLC0415

    _, got = contraction(untrained_bundle, tmp_path / "o", capsys, "--n", "150", "--seeds", "2")
    rep = flowcore.contraction_seeds(LatentMap(untrained_bundle, providers="cpu"), seeds=2, n=150)
    want = {"bundle": str(untrained_bundle.path.resolve()), **json.loads(json.dumps(rep.to_json()))}
    assert {k: got[k] for k in want} == want
    back = flowcore.ContractionSeeds.load(tmp_path / "o")  # the folder is the API's result: it loads
    assert back.to_json() == rep.to_json()
