"""``flowcore memorization | dynamics | probe | field`` write their results and summaries."""

import csv
import json

import numpy as np
import pytest

from flowcore.bundle.flowbundle import FlowBundle
from flowcore.cli.app import main
from flowcore.io import save_npz

from _graphs import two_attractors


@pytest.fixture(scope="module")
def data(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("an")
    save_npz(root / "train.npz", x=digits["x_train"][:600])
    save_npz(root / "test.npz", x=digits["x_test"][:120])
    return root


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_memorization_and_probe(digits_bundle, data, tmp_path, capsys):
    b = str(digits_bundle.path)
    assert main(["memorization", b, "--train", str(data / "train.npz"), "--test", str(data / "test.npz"),
                 "--out", str(tmp_path / "mem"), "--json", "--quiet"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["n_attractors"] == len(_rows(tmp_path / "mem" / "memorization.csv")) >= 1
    assert 0 < s["null_noise"]["mean"] < s["null_test"]["mean"] <= 1
    assert s["verdict"].split(":")[0] in ("memorizes", "does not memorize", "inconclusive")
    assert 0 <= s["flagged_fraction"] <= 1 and 0 < s["largest_basin_fraction"] <= 1
    assert main(["probe", b, "--heldout", str(data / "test.npz"), "--train", str(data / "train.npz"),
                 "--atoms", "1,4,8", "--out", str(tmp_path / "probe"), "--quiet"]) == 0
    rows = _rows(tmp_path / "probe" / "probe.csv")
    assert {r["basis"] for r in rows} == {"noise", "orthobasis", "pca"} and len(rows) == 9
    full = [float(r["mse_latent"]) for r in rows if r["basis"] == "pca" and r["atoms"] == "8"]
    assert full[0] == pytest.approx(0.0, abs=1e-6)  # all k = 8 PCA components reconstruct latents exactly
    out = capsys.readouterr().out
    nb = json.loads((tmp_path / "probe" / "probe.json").read_text())["bases"]["noise"]
    assert f"atom{'s' * (nb['dictionary_size'] != 1)}, rank {nb['dictionary_rank']}" in out
    assert ("warning: the noise dictionary has" in out) == any(nb["capped"])  # capped rows are said so
    assert [r["capped"] for r in rows if r["basis"] == "noise"] == [str(c) for c in nb["capped"]]


def test_dynamics_two_checkpoints(digits_bundle, data, tmp_path, capsys):
    b = str(digits_bundle.path)
    assert main(["dynamics", b, b, "--train", str(data / "train.npz"), "--test", str(data / "test.npz"),
                 "--n-starts", "150", "--out", str(tmp_path / "dyn"), "--quiet"]) == 0
    rows = _rows(tmp_path / "dyn" / "dynamics.csv")
    assert len(rows) == 2 and rows[0]["mem_mean"] == rows[1]["mem_mean"]
    assert 0 <= float(rows[0]["fpr95_id_positive"]) <= 1 and 0 < float(rows[0]["distinct_fraction_noise"]) <= 1
    assert len(json.loads((tmp_path / "dyn" / "dynamics.json").read_text())) == 2


def test_field_2d_and_errors(tmp_path, capsys):
    bundle = FlowBundle.write(tmp_path / "m", *two_attractors(np.array([2.0, 1.0]), np.array([-1.0, -3.0]),
                                                              np.array([1.0, 0.0])))
    assert main(["field", str(bundle.path), "--n", "9", "--lim", "4", "--out", str(tmp_path / "f"), "--quiet"]) == 0
    rows = _rows(tmp_path / "f" / "field.csv")
    assert len(rows) == 81
    r = next(r for r in rows if float(r["x"]) == 2.0 and float(r["y"]) == 1.0)  # the attractor: V = 0
    assert abs(float(r["u"])) < 1e-6 and abs(float(r["v"])) < 1e-6
    s = json.loads((tmp_path / "f" / "field.json").read_text())
    assert s["n_attractors"] == 2
    # endpoints stop at a last step < sqrt(tol) = 1e-3, i.e. within rho/(1-rho) * 1e-3 = 1e-3 of the fixed point
    np.testing.assert_allclose(sorted(s["attractors_in_plane"]), [(-1.0, -3.0), (2.0, 1.0)], atol=1e-3)
    assert s["window"] == "given" and s["xlim"] == [-4.0, 4.0] and s["ylim"] == [-4.0, 4.0]
    for stem in ("field_plot", "basin_map", "steps_heatmap"):
        assert (tmp_path / "f" / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    basins = _rows(tmp_path / "f" / "basin_map.csv")
    right = {r["label"] for r in basins if float(r["x"]) > 0}
    left = {r["label"] for r in basins if float(r["x"]) <= 0}
    assert len(right) == 1 and len(left) == 1 and right != left  # the half-plane basins
    capsys.readouterr()
    code = main(["dynamics", str(tmp_path / "nope"), "--train", "a.npz", "--test", "b.npz", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 3 and err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_figures_written(digits_bundle, data, tmp_path, capsys):
    b = str(digits_bundle.path)
    assert main(["memorization", b, "--train", str(data / "train.npz"), "--test", str(data / "test.npz"),
                 "--n-starts", "200", "--out", str(tmp_path / "mem"), "--quiet"]) == 0
    assert main(["field", b, "--data", str(data / "test.npz"), "--n", "10", "--out", str(tmp_path / "f"), "--quiet"]) == 0
    assert main(["probe", b, "--heldout", str(data / "test.npz"), "--train", str(data / "train.npz"),
                 "--atoms", "1,2,8", "--out", str(tmp_path / "p"), "--quiet"]) == 0
    for f in ("mem/decoded_attractors", "f/field_plot", "p/probe_mse"):
        assert (tmp_path / f"{f}.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / f"{f}.csv").is_file()
