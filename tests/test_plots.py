"""Figures: PNG bytes plus the CSV of the data drawn, atomic saving, lazy matplotlib import."""

import csv
import io
import os
import subprocess
import sys

import numpy as np
import pytest

from flowcore.errors import BackendError, DataError, ParameterError
from flowcore.dynamics.field import FieldGrid
from flowcore import plots

PNG = b"\x89PNG"


def _rows(text):
    r = list(csv.reader(io.StringIO(text)))
    return r[0], r[1:]


def _num(s):
    return float("nan") if s == "" else float(s)


def _synthetic_grid(n=12, m=10):
    xs = np.linspace(-2, 2, n)
    ys = np.linspace(-1, 3, m)
    gx, gy = np.meshgrid(xs, ys)
    u = (0.5 - gx).astype(np.float32)
    v = (1.0 - gy).astype(np.float32)
    speed = np.hypot(u, v).astype(np.float32)
    return FieldGrid(xs=xs, ys=ys, u=u, v=v, speed=speed, origin=np.zeros(2, np.float32),
                     basis=np.eye(2, dtype=np.float32))


def _check_grid_csv(text, xs, ys, cols, names, kind=None):
    header, rows = _rows(text)
    if kind is not None:
        rows = [r[1:] for r in rows if r[0] == kind]
        header = header[1:]
    assert header == ["x", "y", *names]
    assert len(rows) == len(xs) * len(ys)
    arr = np.array([[float(c) for c in r] for r in rows])
    gx, gy = np.meshgrid(xs, ys)
    np.testing.assert_array_equal(arr[:, 0], gx.ravel())
    np.testing.assert_array_equal(arr[:, 1], gy.ravel())
    for j, c in enumerate(cols):
        np.testing.assert_array_equal(arr[:, 2 + j], np.asarray(c, np.float64).ravel())


def test_field_plot_synthetic_roundtrip():
    g = _synthetic_grid()
    att = np.array([[0.5, 1.0], [-1.0, 2.0]])
    png, text = plots.field_plot(g, attractors=att, title="synthetic")
    assert png.startswith(PNG)
    _check_grid_csv(text, g.xs, g.ys, [g.u, g.v, g.speed], ["u", "v", "speed"], kind="grid")
    header, rows = _rows(text)
    assert header == ["kind", "x", "y", "u", "v", "speed"]
    a = [r for r in rows if r[0] == "attractor"]
    np.testing.assert_array_equal([[float(r[1]), float(r[2])] for r in a], att)
    assert all(r[3:] == ["", "", ""] for r in a)


def test_field_plot_draws_the_start_points():
    g = _synthetic_grid()
    pts = np.array([[0.0, 0.0], [1.5, 2.5], [-1.0, -0.5]])
    png, text = plots.field_plot(g, attractors=np.array([[0.5, 1.0]]), points=pts)
    assert png.startswith(PNG) and png != plots.field_plot(g, attractors=np.array([[0.5, 1.0]]))[0]
    _, rows = _rows(text)
    p = [r for r in rows if r[0] == "point"]
    np.testing.assert_array_equal([[float(r[1]), float(r[2])] for r in p], pts)
    assert all(r[3:] == ["", "", ""] for r in p) and sum(r[0] == "attractor" for r in rows) == 1
    with pytest.raises(DataError, match="points must be plane coordinates"):
        plots.field_plot(g, points=np.zeros((3, 5)))


def test_field_plot_constant_and_nan_field():
    g = _synthetic_grid(4, 4)
    g2 = FieldGrid(xs=g.xs, ys=g.ys, u=np.zeros_like(g.u), v=np.zeros_like(g.v), speed=np.zeros_like(g.speed),
                   origin=g.origin, basis=g.basis)
    assert plots.field_plot(g2)[0].startswith(PNG)
    u = g.u.copy()
    u[0, 0] = np.nan
    g3 = FieldGrid(xs=g.xs, ys=g.ys, u=u, v=g.v, speed=g.speed, origin=g.origin, basis=g.basis)
    assert plots.field_plot(g3)[0].startswith(PNG)


def test_field_plot_bad_shapes():
    g = _synthetic_grid()
    with pytest.raises(DataError, match="project_to_plane"):
        plots.field_plot(g, attractors=np.zeros((2, 3)))
    bad = FieldGrid(xs=g.xs, ys=g.ys, u=g.u.T, v=g.v, speed=g.speed, origin=g.origin, basis=g.basis)
    with pytest.raises(DataError, match="grid.u"):
        plots.field_plot(bad)


def test_project_to_plane():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(5, 2)))
    basis = q.T
    origin = rng.normal(size=5)
    coords = rng.normal(size=(4, 2))
    pts = origin + coords @ basis + 0.0
    np.testing.assert_allclose(plots.project_to_plane(pts, origin, basis), coords, atol=1e-12)
    # an out-of-plane offset does not change the projection
    normal = np.linalg.svd(basis)[2][-1]
    np.testing.assert_allclose(plots.project_to_plane(pts + 3 * normal, origin, basis), coords, atol=1e-12)
    with pytest.raises(DataError):
        plots.project_to_plane(np.zeros((3, 4)), origin, basis)
    with pytest.raises(DataError):
        plots.project_to_plane(pts, np.zeros(4), basis)


def test_field_plot_from_real_field_grid(tmp_path):
    from flowcore.bundle.flowbundle import FlowBundle
    from flowcore.dynamics.field import field_grid
    from flowcore.runtime.latent_map import LatentMap

    from _graphs import two_attractors

    a, b, u = np.array([2.0, 1.0]), np.array([-2.0, -1.0]), np.array([1.0, 0.0])
    lmap = LatentMap(FlowBundle.write(tmp_path / "b", *two_attractors(a, b, u)), providers="cpu")
    g = field_grid(lmap, xlim=(-4, 4), ylim=(-3, 3), n=16)
    png, text = plots.field_plot(g, attractors=plots.project_to_plane(np.stack([a, b]), g.origin, g.basis),
                                 title="two attractors")
    assert png.startswith(PNG)
    _check_grid_csv(text, g.xs, g.ys, [g.u, g.v, g.speed], ["u", "v", "speed"], kind="grid")
    # the field points at the attractor of each half-plane: V = (1 − rho)(t − z)
    header, rows = _rows(text)
    grid = np.array([[float(c) for c in r[1:]] for r in rows if r[0] == "grid"])
    right = grid[grid[:, 0] > 0]
    np.testing.assert_allclose(right[:, 2], 0.5 * (a[0] - right[:, 0]), atol=1e-5)


def test_basin_map_roundtrip():
    xs, ys = np.linspace(0, 1, 7), np.linspace(-1, 1, 5)
    labels = np.arange(35).reshape(5, 7) % 3 - 1  # −1, 0, 1
    png, text = plots.basin_map(xs, ys, labels, title="basins")
    assert png.startswith(PNG)
    _check_grid_csv(text, xs, ys, [labels], ["label"])
    _, rows = _rows(text)
    assert all(r[2].lstrip("-").isdigit() for r in rows)  # integers, not floats
    # many labels (palette wraps) and all-unassigned both draw
    assert plots.basin_map(xs, ys, np.arange(35).reshape(5, 7))[0].startswith(PNG)
    assert plots.basin_map(xs, ys, -np.ones((5, 7), int))[0].startswith(PNG)
    with pytest.raises(DataError, match="shape"):
        plots.basin_map(xs, ys, labels.T)
    with pytest.raises(DataError, match="integers"):
        plots.basin_map(xs, ys, labels + 0.5)


def test_steps_heatmap_roundtrip():
    xs, ys = np.linspace(0, 1, 6), np.linspace(0, 2, 4)
    steps = np.arange(24, dtype=np.int64).reshape(4, 6)
    steps[0, 0] = -1  # did not converge: blank, still in the CSV
    png, text = plots.steps_heatmap(xs, ys, steps, title="steps")
    assert png.startswith(PNG)
    _check_grid_csv(text, xs, ys, [steps], ["steps"])
    fs = steps.astype(float)
    fs[1, 1] = np.nan
    png, text = plots.steps_heatmap(xs, ys, fs)
    assert png.startswith(PNG)
    _, rows = _rows(text)
    assert rows[7][2] == "nan"


@pytest.mark.parametrize("shape", [(1, 6, 6), (6, 6, 1), (6, 6), (36,), (3, 5, 5), (5, 5, 3), (75,)])
def test_decoded_grid_shapes_roundtrip(shape):
    rng = np.random.default_rng(1)
    K = 3
    dec = rng.uniform(size=(K, *shape))
    near = rng.normal(size=(K, *shape))  # outside [0, 1]: min–max scaled for display only
    cos = np.array([0.91, 0.5, -0.25])
    png, text = plots.decoded_grid(dec, near, cos, title="decoded")
    assert png.startswith(PNG)
    header, rows = _rows(text)
    n = int(np.prod(shape))
    assert header == ["index", "role", "cosine", *(f"p{j}" for j in range(n))]
    assert [(r[0], r[1]) for r in rows] == [(str(i), role) for i in range(K) for role in ("decoded", "nearest")]
    for i in range(K):
        d, m = rows[2 * i], rows[2 * i + 1]
        assert float(d[2]) == cos[i] == float(m[2])
        np.testing.assert_array_equal([float(c) for c in d[3:]], dec[i].ravel())
        np.testing.assert_array_equal([float(c) for c in m[3:]], near[i].ravel())


def test_decoded_grid_alone_and_errors():
    dec = np.random.default_rng(2).uniform(size=(10, 1, 4, 4))
    png, text = plots.decoded_grid(dec, ncols=4)
    assert png.startswith(PNG)
    header, rows = _rows(text)
    assert len(rows) == 10 and all(r[1] == "decoded" and r[2] == "" for r in rows)
    with pytest.raises(DataError, match="square"):
        plots.decoded_grid(np.zeros((2, 7)))
    with pytest.raises(DataError, match="nearest"):
        plots.decoded_grid(dec, dec[:3])
    with pytest.raises(DataError, match="cosines"):
        plots.decoded_grid(dec, dec, np.ones(3))
    with pytest.raises(DataError):
        plots.decoded_grid(np.zeros((2, 7, 7, 7)))
    labelled, text2 = plots.decoded_grid(dec, ncols=4, labels=[f"t = {i}" for i in range(10)])
    assert labelled.startswith(PNG) and labelled != png and text2 == text  # captions change the picture, not the data
    with pytest.raises(DataError, match="labels"):
        plots.decoded_grid(dec, labels=["one"])


def test_curves_roundtrip_two_axes_and_logx():
    x = np.array([2.0, 4.0, 8.0, 16.0])
    mem = np.array([0.1, 0.3, 0.6, 0.9])
    std = np.array([0.01, 0.02, np.nan, 0.03])
    err = np.array([0.5, 0.4, 0.35, 0.3])
    png, text = plots.curves(x, {"mem, mean": mem, "mem std": std}, xlabel="k", ylabel="mem", title="t",
                             logx=True, second={"test error": err}, second_ylabel="error")
    assert png.startswith(PNG)
    header, rows = _rows(text)
    assert header == ["x", "mem, mean", "mem std", "test error"]
    arr = np.array([[_num(c) for c in r] for r in rows])
    np.testing.assert_array_equal(arr[:, 0], x)
    np.testing.assert_array_equal(arr[:, 1], mem)
    np.testing.assert_array_equal(arr[:, 2], std)
    np.testing.assert_array_equal(arr[:, 3], err)
    png, text = plots.curves(np.arange(3), {"a": [1, 2, 3]})
    assert png.startswith(PNG) and _rows(text)[0] == ["x", "a"]


def test_curves_errors():
    with pytest.raises(DataError, match="at least one"):
        plots.curves([1, 2], {})
    with pytest.raises(DataError, match="shape"):
        plots.curves([1, 2], {"a": [1, 2, 3]})
    with pytest.raises(DataError, match="unique"):
        plots.curves([1, 2], {"a": [1, 2]}, second={"a": [3, 4]})
    with pytest.raises(DataError, match="logx"):
        plots.curves([0, 2], {"a": [1, 2]}, logx=True)


def test_save_figure(tmp_path):
    png, text = plots.curves([1, 2, 3], {"a": [3, 2, 1]})
    p, c = plots.save_figure(png, text, tmp_path / "figs", "mem_vs_k")
    assert p == tmp_path / "figs" / "mem_vs_k.png" and c == tmp_path / "figs" / "mem_vs_k.csv"
    assert p.read_bytes() == png
    assert c.read_text(encoding="utf-8") == text
    assert sorted(os.listdir(tmp_path / "figs")) == ["mem_vs_k.csv", "mem_vs_k.png"]  # no temp files left
    with pytest.raises(ParameterError, match="stem"):
        plots.save_figure(png, text, tmp_path, "a/b")
    with pytest.raises(DataError, match="PNG"):
        plots.save_figure(b"not png", text, tmp_path, "x")


def test_import_does_not_import_matplotlib():
    code = "import sys, flowcore.plots; print('matplotlib' in sys.modules)"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.dirname(os.path.dirname(plots.__file__)),
                                                    env.get("PYTHONPATH", "")] if p)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_missing_matplotlib_is_one_line(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    g = _synthetic_grid(4, 4)
    calls = [
        lambda: plots.field_plot(g),
        lambda: plots.basin_map(g.xs, g.ys, np.zeros((4, 4), int)),
        lambda: plots.steps_heatmap(g.xs, g.ys, np.zeros((4, 4))),
        lambda: plots.decoded_grid(np.zeros((1, 4, 4))),
        lambda: plots.curves([1, 2], {"a": [1, 2]}),
    ]
    for call in calls:
        with pytest.raises(BackendError) as ei:
            call()
        msg = str(ei.value)
        assert "\n" not in msg and "pip install 'flowcore[analysis]'" in msg
