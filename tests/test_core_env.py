"""The core as users install it: the BUILT WHEEL in a fresh virtual environment with only its
dependencies and onnxruntime (no torch, no tensorflow, no scikit-learn). There it prints its
version, runs the demo, loads bundles exported by both adapters, iterates, groups and scores,
and its numbers equal those of the development environment bit for bit. Each adapter is
installed from its built wheel too and exports through ``flowcore export``.

Environments: the dependencies live in ``.venv-core`` at the repository root (or
``$FLOWCORE_CORE_VENV``), created once (~15 s) and rebuilt when the wheel's requirements or
constraints.txt change. Every session makes a fresh venv (no pip, ~0.1 s) whose site-packages
holds nothing but the freshly built flowcore wheel, with a ``.pth`` line adding the dependency
environment's site-packages after it; so no editable install, checkout or stale copy of
flowcore can be imported there.
"""

from __future__ import annotations

import email
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from flowcore.analysis.ood.detector import OODDetector
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.cli.demo import run_demo
from flowcore.dynamics.attractors import find_attractors
from flowcore.dynamics.trajectories import iterate
from flowcore.io import save_npz, to_jsonable
from flowcore.runtime.latent_map import LatentMap

from _wheels import source_version, wheels  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
DEPS_VENV = Path(os.environ.get("FLOWCORE_CORE_VENV", ROOT / ".venv-core"))
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}  # nothing leaks in
ENV["TF_CPP_MIN_LOG_LEVEL"] = "2"
FRAMEWORKS = ("torch", "tensorflow", "keras", "sklearn", "matplotlib", "flowcore_torch", "flowcore_tensorflow")


def _requirements(wheel: Path) -> list[str]:
    """The wheel's own requirements plus those of its ``cpu`` extra (onnxruntime)."""
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        reqs = email.message_from_bytes(zf.read(meta)).get_all("Requires-Dist") or []
    keep = []
    for req in reqs:
        spec, _, marker = req.partition(";")
        if not marker.strip() or marker.replace(" ", "").replace("'", '"') == 'extra=="cpu"':
            keep.append(spec.strip())
    return sorted(keep)


def _purelib(py: Path) -> Path:
    out = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True, env=ENV)
    return Path(out.stdout.strip())


def _deps_python(wheel: Path) -> Path:
    """Create (or reuse) the dependency environment: the core wheel's requirements, no flowcore."""
    reqs = _requirements(wheel)
    assert any(r.startswith("onnxruntime") for r in reqs), reqs
    py = DEPS_VENV / "bin" / "python"
    key = hashlib.sha256(b"deps-only v2\n" + "\n".join(reqs).encode()
                         + (ROOT / "constraints.txt").read_bytes()).hexdigest()
    stamp = DEPS_VENV / ".flowcore-core-stamp"
    lock_path = Path(tempfile.gettempdir()) / f"flowcore-core-env-{hashlib.sha256(bytes(DEPS_VENV)).hexdigest()[:12]}.lock"
    with open(lock_path, "w") as lock:  # concurrent sessions wait here while one builds
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (py.exists() and stamp.is_file() and stamp.read_text() == key):
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(DEPS_VENV)], check=True, env=ENV)
            proc = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-c",
                                   str(ROOT / "constraints.txt"), *reqs], capture_output=True, text=True, env=ENV)
            assert proc.returncode == 0, proc.stderr
            stamp.write_text(key)
    return py


@pytest.fixture(scope="session")
def core_python(wheels, tmp_path_factory) -> Path:
    """python of a fresh venv holding only the built core wheel (dependencies via a .pth line)."""
    wheel = wheels["flowcore"]
    deps = _deps_python(wheel)
    venv = tmp_path_factory.mktemp("core-env") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=ENV)
    py = venv / "bin" / "python"
    site = _purelib(py)
    (site / "_flowcore_deps.pth").write_text(f"{_purelib(deps)}\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet",
                           "--disable-pip-version-check", "--no-deps", str(wheel)],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    probe = subprocess.run(
        [str(py), "-c", "import importlib.util as u, importlib.metadata as m, json, flowcore; "
         f"print(json.dumps([[x for x in {FRAMEWORKS!r} if u.find_spec(x)], flowcore.__file__, "
         "json.loads(m.distribution('flowcore').read_text('direct_url.json'))]))"],
        capture_output=True, text=True, check=True, env=ENV, cwd=venv)
    present, init, direct_url = json.loads(probe.stdout)
    assert present == [], f"the core environment has frameworks installed: {present}"
    assert Path(init).parent == site / "flowcore", f"flowcore imported from {init}, not from the installed wheel"
    assert direct_url["url"] == wheel.as_uri() and "archive_info" in direct_url, direct_url
    return py


def _cli(py: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(py), "-m", "flowcore", *args], capture_output=True, text=True, timeout=600, env=ENV)


def _script(py: Path, *args: str) -> subprocess.CompletedProcess:
    """The wheel's ``flowcore`` console script."""
    return subprocess.run([str(py.parent / "flowcore"), *args], capture_output=True, text=True, timeout=600, env=ENV)


@pytest.fixture(scope="module")
def keras_models(torch_digits_ae):
    """The digits AE rebuilt in Keras (same weights): (encoder, decoder)."""
    from test_cross_framework import keras_twin  # noqa: PLC0415  (imports tensorflow)

    return keras_twin(*torch_digits_ae)


@pytest.fixture(scope="module")
def keras_bundle(keras_models, digits, tmp_path_factory):
    """The Keras twin exported with the TensorFlow adapter."""
    import flowcore_tensorflow  # noqa: PLC0415

    enc, dec = keras_models
    return flowcore_tensorflow.export(enc, dec, digits["x_test"][:32], tmp_path_factory.mktemp("tf") / "bundle")


def test_core_env_version(core_python):
    proc = _script(core_python, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"flowcore {source_version('flowcore')}\n"


def test_core_env_demo(core_python, tmp_path):
    proc = _script(core_python, "demo", "--out", str(tmp_path / "core"), "--json", "--quiet", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    core = json.loads(proc.stdout)
    # the embedded bundle and data come from the installed wheel, not the checkout
    site = _purelib(core_python)
    assert Path(core["bundle"]).is_relative_to(site / "flowcore") and Path(core["data"]).is_relative_to(site)
    dev = to_jsonable(run_demo(out_dir=tmp_path / "dev", providers="cpu", progress=False))
    assert core["runs"] == json.loads(json.dumps(dev["runs"]))
    assert json.loads((tmp_path / "core" / "demo_summary.json").read_text())["runs"] == core["runs"]


@pytest.mark.parametrize("which", ["torch", "tensorflow"])
def test_core_env_matches_full_env(core_python, which, request, digits, tmp_path):
    bundle = request.getfixturevalue("digits_bundle" if which == "torch" else "keras_bundle")
    assert bundle.manifest["source"]["framework"] == which
    digits_bundle = bundle
    lmap = LatentMap(digits_bundle, providers="cpu")
    save_npz(tmp_path / "x.npz", x=digits["x_test"])
    # full environment, in process
    traj = iterate(lmap, lmap.encode(digits["x_test"]))
    att = find_attractors(traj)
    # core-only environment, through the CLI
    proc = _cli(core_python, "attractors", str(digits_bundle.path), "--data", str(tmp_path / "x.npz"),
                "--out", str(tmp_path / "core"), "--json", "--quiet", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["attractors"]["n_attractors"] == att.n_attractors
    assert summary["attractors"]["counts"] == att.counts.tolist()
    got = np.load(tmp_path / "core" / "trajectories.npz")
    np.testing.assert_array_equal(got["steps"], traj.steps)
    np.testing.assert_array_equal(got["status"], traj.status)
    np.testing.assert_array_equal(got["final"], traj.final)
    # flowcore info there describes the bundle as the development install does
    proc = _script(core_python, "info", str(digits_bundle.path), "--json")
    assert proc.returncode == 0, proc.stderr
    import io as _io

    from flowcore.cli import main

    dev = _io.StringIO()
    assert main(["info", str(digits_bundle.path), "--json"], stdout=dev) == 0
    assert json.loads(proc.stdout) == json.loads(dev.getvalue())
    assert {k: v for k, v in json.loads(proc.stdout).items() if k != "subnormal_weights"} == \
        json.loads(json.dumps(to_jsonable(FlowBundle.load(digits_bundle.path).summary())))


def test_core_env_python_api(core_python, digits_bundle, digits, tmp_path):
    save_npz(tmp_path / "x.npz", x=digits["x_test"])
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from flowcore import LatentMap, find_attractors, iterate
        lmap = LatentMap(r"{digits_bundle.path}", providers="cpu")
        z = lmap.encode(np.load(r"{tmp_path / 'x.npz'}", allow_pickle=False)["x"])
        traj = iterate(lmap, z, tol=1e-6, max_steps=3000)
        att = find_attractors(traj, metric="euclidean", threshold=1e-3, relative=True)
        np.savez(r"{tmp_path / 'api.npz'}", z=z, f=lmap(z), final=traj.final, steps=traj.steps, status=traj.status,
                 labels=att.labels, counts=att.counts, centres=att.centres)
        bad = sorted(m for m in sys.modules if m.split(".")[0] in {FRAMEWORKS!r})
        assert not bad, bad
        """
    )
    proc = subprocess.run([str(core_python), "-c", code], capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stderr
    got = np.load(tmp_path / "api.npz")
    lmap = LatentMap(digits_bundle, providers="cpu")
    z = lmap.encode(digits["x_test"])
    traj = iterate(lmap, z, tol=1e-6, max_steps=3000)
    att = find_attractors(traj, metric="euclidean", threshold=1e-3, relative=True)
    for name, want in [("z", z), ("f", lmap(z)), ("final", traj.final), ("steps", traj.steps), ("status", traj.status),
                       ("labels", att.labels), ("counts", att.counts), ("centres", att.centres)]:
        np.testing.assert_array_equal(got[name], want, err_msg=name)


def test_core_env_scores_like_full_env(core_python, digits_bundle, digits, tmp_path):
    det = OODDetector(digits_bundle, methods=("trajectory", "features", "knn_mean50"), default="features",
                      providers="cpu")
    det.fit(digits["x_train"]).save(tmp_path / "det")
    x = np.concatenate([digits["x_test"][:100], np.random.default_rng(0).uniform(0, 1, (50, 1, 8, 8)).astype(np.float32)])
    save_npz(tmp_path / "x.npz", x=x)
    proc = _cli(core_python, "ood", "score", str(tmp_path / "det"), "--data", str(tmp_path / "x.npz"),
                "--out", str(tmp_path / "s.csv"), "--all-methods", "--quiet", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    rows = np.genfromtxt(tmp_path / "s.csv", delimiter=",", names=True)
    expect = det.score_all(x)
    np.testing.assert_array_equal(rows["score"], expect["features"])
    np.testing.assert_array_equal(rows["score_trajectory"], expect["trajectory"])
    np.testing.assert_array_equal(rows["score_knn_mean50"], expect["knn_mean50"])


# ----------------------------------------------------------------- adapters from their wheels
_EXPORT = textwrap.dedent(
    """
    import json, sys
    from importlib import metadata
    from flowcore.cli.app import main
    report, argv = sys.argv[1], sys.argv[2:]
    rc = main(argv)
    eps = {ep.name: str(ep.dist.locate_file("")) for ep in metadata.entry_points(group="flowcore.adapters")}
    mods = {name: getattr(sys.modules.get(name), "__file__", None) for name in ("flowcore_torch", "flowcore_tensorflow")}
    open(report, "w").write(json.dumps({"rc": rc, "entry_points": eps, "modules": mods}))
    raise SystemExit(rc)
    """
)


def _saved_model(which: str, root: Path, torch_digits_ae, request) -> list[str]:
    """Save the digits AE the way a user would; returns the `flowcore export` model arguments."""
    if which == "torch":
        import torch  # noqa: PLC0415

        from test_export_cli import AE  # noqa: PLC0415

        ae = AE(*torch_digits_ae).eval()
        x = torch.zeros((16, 1, 8, 8))
        program = torch.export.export(ae, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, str(root / "ae.pt2"))
        return ["--autoencoder", str(root / "ae.pt2")]
    enc, dec = request.getfixturevalue("keras_models")
    enc.save(root / "enc.keras")
    dec.save(root / "dec.keras")
    return ["--encoder", str(root / "enc.keras"), "--decoder", str(root / "dec.keras")]


@pytest.mark.parametrize("which", ["torch", "tensorflow"])
def test_adapter_wheel_exports(wheels, core_python, which, torch_digits_ae, digits_bundle, digits, request, tmp_path):
    dist, module = {"torch": ("flowcore-torch", "flowcore_torch"),
                    "tensorflow": ("flowcore-tensorflow", "flowcore_tensorflow")}[which]
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--target", str(target), str(wheels[dist])],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    save_npz(tmp_path / "x.npz", x=digits["x_test"][:64])
    argv = ["export", *_saved_model(which, tmp_path, torch_digits_ae, request), "--example", str(tmp_path / "x.npz"),
            "--out", str(tmp_path / "b"), "--json"]
    proc = subprocess.run([sys.executable, "-c", _EXPORT, str(tmp_path / "report.json"), *argv], capture_output=True,
                          text=True, timeout=600, env={**ENV, "PYTHONPATH": str(target)})
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    # the adapter came from the installed wheel, found through its entry point
    assert Path(report["modules"][module]).is_relative_to(target), report
    assert Path(report["entry_points"][which]) == target, report
    bundle = FlowBundle.load(tmp_path / "b")
    assert bundle.manifest["source"]["framework"] == which
    assert bundle.input_shape == (1, 8, 8) and bundle.latent_shape == (8,)
    z = LatentMap(digits_bundle, providers="cpu").encode(digits["x_test"])
    np.testing.assert_allclose(LatentMap(bundle, providers="cpu")(z), LatentMap(digits_bundle, providers="cpu")(z),
                               rtol=1e-5, atol=1e-6)
    # and the core wheel alone reads it
    proc = _script(core_python, "info", str(tmp_path / "b"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["source"]["framework"] == which


@pytest.mark.parametrize("suffix, dist", [(".pt2", "flowcore-torch"), (".keras", "flowcore-tensorflow")])
def test_core_env_export_names_the_missing_adapter(core_python, suffix, dist, tmp_path):
    """The core wheel alone has no `flowcore.adapters` entry points: one line naming the package, exit 4."""
    model = tmp_path / f"model{suffix}"
    model.write_bytes(b"never read: the adapter is looked up first")
    proc = _script(core_python, "export", "--autoencoder", str(model), "--out", str(tmp_path / "b"))
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"pip install {dist}" in proc.stderr and "entry point" in proc.stderr
    assert not (tmp_path / "b").exists()
