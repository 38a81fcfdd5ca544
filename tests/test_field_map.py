"""field_map / ``flowcore field``: the window holds the data and the attractors, and says so.

The regression: ``flowcore field`` drew a fixed ±8 window while a real model's latents and
attractors lay beyond it, silently. Here a small k = 2 digits AE trained for a few seconds
(weight decay off, so its latents spread past ±8) is the real model; the window must contain
every data latent and every attractor reached from the data, and the output must say which
window was used, where it came from and how much lies inside.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from flowcore import (FieldGrid, FieldMap, FlowBundle, FlowcoreWarning, GroupByDistance, LatentMap, DataError,
                      ParameterError, field_map, find_attractors, iterate, pca_plane, project_to_plane)
from flowcore.cli.app import main
from flowcore.io import save_npz

from _graphs import linear_pair, two_attractors


@pytest.fixture(scope="module")
def wide_k2(digits, tmp_path_factory):
    """(bundle path, data file, data latents (360, 2), test inputs) of a real k = 2 digits AE whose latents pass ±8."""
    import flowcore_torch  # noqa: PLC0415  (fail loudly when missing)
    from _models import train_digits_ae  # noqa: PLC0415

    enc, dec = train_digits_ae(digits["x_train"][:500], k=2, seed=0, epochs=80, weight_decay=0.0, lr=1e-2)
    root = tmp_path_factory.mktemp("wide_k2")
    bundle = flowcore_torch.export(enc, dec, digits["x_train"][:64], root / "bundle")
    save_npz(root / "test.npz", x=digits["x_test"])
    z = LatentMap(bundle, providers="cpu").encode(digits["x_test"]).astype(np.float64)
    return bundle.path, root / "test.npz", z, digits["x_test"]


def _data_attractors(path, z):
    lmap = LatentMap(path, providers="cpu")
    run = iterate(lmap, z.astype(np.float32), progress=False)
    return run, find_attractors(run, grouping=GroupByDistance(1e-3, relative=True))


def _inside(points, xs, ys):
    p = np.asarray(points, np.float64).reshape(len(points), 2)
    return (p[:, 0] >= xs[0]) & (p[:, 0] <= xs[-1]) & (p[:, 1] >= ys[0]) & (p[:, 1] <= ys[-1])


def test_default_window_holds_the_data_and_its_attractors(wide_k2, tmp_path, capsys):
    path, data, z, _ = wide_k2
    run, att = _data_attractors(path, z)
    # the case of the bug: this real model's latents and attractors lie beyond the old fixed ±8 window
    assert (np.abs(z).max(1) > 8).sum() >= 10, np.abs(z).max(0)
    centres = att.centres.reshape(att.n_attractors, 2).astype(np.float64)
    assert (np.abs(centres).max(1) > 8).any(), centres
    out = tmp_path / "f"
    assert main(["field", str(path), "--data", str(data), "--n", "12", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    grid = FieldGrid.load(out)
    assert _inside(z, grid.xs, grid.ys).all()  # every data latent is drawn
    assert _inside(centres, grid.xs, grid.ys).all()  # every attractor of the data is drawn
    # the window is the box of the data latents and their endpoints, 10 % of its span added each side
    ends = run.flat_final[run.status != 2].astype(np.float64)
    box = np.concatenate([z, ends])
    lo, hi = box.min(0), box.max(0)
    want = np.stack([lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)], 1)
    np.testing.assert_allclose([grid.xs[[0, -1]], grid.ys[[0, -1]]], want, rtol=1e-9)
    s = json.loads((out / "field.json").read_text())
    assert s["window"] == "from data + attractors, 10 % margin"
    assert s["xlim"] == grid.xs[[0, -1]].tolist() and s["ylim"] == grid.ys[[0, -1]].tolist()
    assert s["points_inside"] == s["n_points"] == len(z) and s["attractors_inside"] == s["n_attractors"] >= 2
    assert _inside(s["attractors_in_plane"], grid.xs, grid.ys).all()
    first = text.splitlines()[0]
    assert f"window x [{s['xlim'][0]:.3g}, {s['xlim'][1]:.3g}] × y [{s['ylim'][0]:.3g}, {s['ylim'][1]:.3g}] " \
           f"(from data + attractors, 10 % margin): {s['n_attractors']} of {s['n_attractors']} attractors and " \
           f"{len(z)} of {len(z)} data latents inside" in first, first
    # the saved FieldMap is the API's answer and its plot marks the data
    fm = FieldMap.load(out)
    assert fm.settings["xlim"] == s["xlim"] and fm.attractors_inside == s["attractors_inside"]
    assert sum(1 for line in (out / "field_plot.csv").read_text().splitlines() if line.startswith("point,")) == len(z)


def test_given_window_reports_and_warns_what_it_leaves_out(wide_k2, tmp_path, capsys):
    path, data, z, _ = wide_k2
    out = tmp_path / "f"
    assert main(["field", str(path), "--data", str(data), "--lim", "8", "--n", "12", "--out", str(out),
                 "--quiet"]) == 0
    cap = capsys.readouterr()
    s = json.loads((out / "field.json").read_text())
    assert s["window"] == "given" and s["xlim"] == [-8.0, 8.0] and s["ylim"] == [-8.0, 8.0]
    n_out_points = int((np.abs(z).max(1) > 8).sum())
    att = np.asarray(s["attractors_in_plane"])
    n_out_att = int((np.abs(att).max(1) > 8).sum())
    assert n_out_points >= 10
    assert s["points_inside"] == len(z) - n_out_points and s["attractors_inside"] == s["n_attractors"] - n_out_att
    assert f"{len(z) - n_out_points} of {len(z)} data latents inside ({n_out_att} attractors and {n_out_points} " \
           "data latents outside)" in cap.out
    warn = [line for line in cap.err.splitlines() if line.startswith("warning: ")]
    assert len(warn) == 1 and f"leaves {n_out_att} of {s['n_attractors']} attractors and {n_out_points} of " \
                                f"{len(z)} data latents outside" in warn[0], cap.err


def test_without_data_the_noise_starts_and_their_attractors_fit(wide_k2, tmp_path, capsys):
    path, _, _, _ = wide_k2
    out = tmp_path / "f"
    assert main(["field", str(path), "--n", "10", "--n-noise", "300", "--out", str(out), "--quiet",
                 "--no-figures"]) == 0
    s = json.loads((out / "field.json").read_text())
    assert s["window"] == "from noise starts + attractors, 10 % margin"
    assert s["points"] == {"kind": "noise", "n": 300, "seed": 0} and s["points_inside"] == s["n_points"] == 300
    assert s["attractors_inside"] == s["n_attractors"] >= 2
    assert "N(0, I) starts inside" in capsys.readouterr().out


def test_field_map_far_attractors_and_half_plane_basins(tmp_path):
    # two fixed points far outside ±8; N(0, I) starts reach both (the basins are the half-planes x > 0, x <= 0)
    a, b = np.array([20.0, 5.0]), np.array([-15.0, -30.0])
    lmap = LatentMap(FlowBundle.write(tmp_path / "m", *two_attractors(a, b, np.array([1.0, 0.0]))), providers="cpu")
    fm = field_map(lmap, n=11, n_noise=200, seed=1)
    assert fm.n_attractors == 2 and fm.attractors_inside == 2 and fm.points_inside == 200
    np.testing.assert_allclose(sorted(fm.attractors_plane.tolist()), [b, a], atol=1e-3)
    (x0, x1), (y0, y1) = fm.settings["xlim"], fm.settings["ylim"]
    assert x0 < -15 < 20 < x1 and y0 < -30 < 5 < y1
    assert fm.settings["window"] == "from noise starts + attractors, 10 % margin"
    # the basin labels are the half-planes, and name the same attractors as the starts' labels
    right = np.argmin(np.linalg.norm(fm.attractors_plane - a, axis=1))
    xs = np.broadcast_to(fm.xs, fm.labels.shape)
    assert (fm.labels[xs > 0] == right).all() and (fm.labels[xs <= 0] == 1 - right).all()
    assert (fm.point_labels[fm.points_plane[:, 0] > 0] == right).all()
    assert (fm.steps > 0).all() and fm.labels.shape == fm.steps.shape == (11, 11)
    # the grid part is field_grid's, and the result saves and loads
    back = FieldMap.load(fm.save(tmp_path / "fm"))
    for name in FieldMap._NAMES:
        np.testing.assert_array_equal(getattr(back, name), getattr(fm, name))
    assert back.to_json() == fm.to_json()
    # a given window that misses an attractor says so
    with pytest.warns(FlowcoreWarning, match="leaves 1 of 2 attractors"):
        small = field_map(lmap, n=5, n_noise=50, window=((-10, 25), (-10, 10)))
    assert small.attractors_inside == 1 and small.settings["window"] == "given"


def test_field_map_pca_plane_for_k_above_2(tmp_path):
    k = 4
    A = np.diag([0.5, 0.5, 0.5, 0.5]).astype(np.float32)
    c = np.array([10.0, 0.0, -4.0, 0.0])  # f(z) = 0.5 z + c: one fixed point 2c
    lmap = LatentMap(FlowBundle.write(tmp_path / "k4", *linear_pair(A, c)), providers="cpu")
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(300, k)) * [20.0, 6.0, 0.5, 0.1]).astype(np.float32)  # encoder: z = 0.5 x + c
    fm = field_map(lmap, data=x, n=6)
    z = x.astype(np.float64) * 0.5 + c
    origin, basis = pca_plane(z)
    np.testing.assert_allclose(fm.origin, origin, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.abs(basis @ np.eye(k)[:2].T), np.eye(2), atol=1e-2)  # the two widest axes
    np.testing.assert_allclose(fm.points_plane, project_to_plane(z, origin, basis), rtol=1e-4, atol=1e-4)
    assert fm.points_inside == 300 and fm.settings["plane"] == "top-2 PCA plane of the data latents"
    assert fm.n_attractors == 1 and fm.attractors_inside == 1  # the fixed point 2c
    np.testing.assert_allclose(fm.attractors[0], 2 * c, atol=2e-3)
    with pytest.raises(DataError, match="pass data"):
        field_map(lmap, n=6)


@pytest.mark.parametrize("kw", [{"n": 1}, {"margin": -0.1}, {"n_noise": 0}, {"seed": -1},
                                {"window": ((1, 0), (0, 1))}, {"window": (0, 1)}, {"window": ((0, np.nan), (0, 1))}])
def test_field_map_bad_parameters(tmp_path, kw):
    lmap = LatentMap(FlowBundle.write(tmp_path / "m", *linear_pair(np.eye(2) * 0.5, np.zeros(2))), providers="cpu")
    with pytest.raises(ParameterError):
        field_map(lmap, **kw)


def test_pca_plane_is_numpys_svd_and_refuses_too_few_points():
    z = np.random.default_rng(3).normal(size=(50, 5)) @ np.diag([5.0, 3.0, 1.0, 0.5, 0.1])
    origin, basis = pca_plane(z)
    np.testing.assert_allclose(origin, z.mean(0))
    np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-12)
    w, v = np.linalg.eigh(np.cov(z.T))
    np.testing.assert_allclose(np.abs(basis @ v[:, ::-1][:, :2]), np.eye(2), atol=1e-8)
    with pytest.raises(DataError, match="at least 2"):
        pca_plane(z[:1])
