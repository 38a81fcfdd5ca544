"""Fuzzing with hypothesis: manifests, arrays and command lines never get a raw exception.

- manifests: random JSON (whole, or one field replaced) in ``flow.json`` → ``FlowBundle.load``
  raises a :class:`~flowcore.errors.BadInputError` subclass (or loads, when the edit left the
  manifest valid) and never anything else;
- arrays: random shapes, dtypes and special values into ``LatentMap.encode``, ``iterate``,
  ``find_attractors`` and ``load_array`` → a flowcore error or a valid result;
- command lines: random flags and values → exit code in {0, 2, 3, 4}, no traceback, and one
  ``error:`` line whenever it is not 0.

Profiles (tests/conftest.py): ``ci`` by default (bounded, derandomized: `make test`), ``long``
with ``HYPOTHESIS_PROFILE=long`` (`make fuzz`).
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, strategies as st
from hypothesis.extra import numpy as hnp

sys.path.insert(0, str(Path(__file__).resolve().parent / "bad_inputs"))

from bi_assets import make_ae  # noqa: E402

from flowcore.bundle.flowbundle import FlowBundle  # noqa: E402
from flowcore.cli import main  # noqa: E402
from flowcore.dynamics.attractors import find_attractors  # noqa: E402
from flowcore.dynamics.trajectories import iterate  # noqa: E402
from flowcore.errors import BadInputError, FlowcoreError  # noqa: E402
from flowcore.io import load_array  # noqa: E402
from flowcore.runtime.latent_map import LatentMap  # noqa: E402


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    FlowBundle.write(root / "bundle", *make_ae(4, 2), source={"framework": "hand-built ONNX"})
    np.save(root / "data.npy", np.random.default_rng(0).uniform(size=(16, 4)).astype(np.float32))
    return {"root": root, "bundle": root / "bundle", "data": root / "data.npy",
            "manifest": json.loads((root / "bundle" / "flow.json").read_text()),
            "lmap": LatentMap(root / "bundle", providers="cpu")}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# a changed value here must be refused; other fields (notes, source, opset…) may be accepted
_REQUIRED = {("format",), ("format_version",), ("input_shape",), ("latent_shape",), ("encoder",), ("decoder",),
             ("encoder", "file"), ("encoder", "sha256"), ("decoder", "file"), ("decoder", "sha256"),
             ("encoder", "input"), ("decoder", "output")}


def _fresh_bundle(assets) -> Path:
    d = Path(tempfile.mkdtemp(dir=assets["root"])) / "b"
    shutil.copytree(assets["bundle"], d)
    return d


def _load_outcome(b: Path):
    try:
        return FlowBundle.load(b)
    except BadInputError as exc:
        assert "\n" not in str(exc).strip(), f"message not one line: {exc!r}"
        return exc
    except BaseException as exc:  # noqa: BLE001 - any other exception is the bug
        pytest.fail(f"FlowBundle.load raised a raw {type(exc).__name__}: {str(exc)[:300]}")


@given(value=json_values)
def test_fuzz_whole_manifest(assets, value):
    b = _fresh_bundle(assets)
    (b / "flow.json").write_text(json.dumps(value))
    assert isinstance(_load_outcome(b), BadInputError)
    shutil.rmtree(b.parent)


@given(key=st.sampled_from(sorted({("format",), ("format_version",), ("dtype",), ("input_shape",), ("latent_shape",),
                                    ("encoder",), ("decoder",), ("source",), ("notes",), ("encoder", "file"),
                                    ("encoder", "sha256"), ("encoder", "input"), ("encoder", "output"),
                                    ("encoder", "opset"), ("decoder", "file"), ("decoder", "sha256"),
                                    ("decoder", "input"), ("decoder", "output"), ("decoder", "ir_version"),
                                    ("extra_key",)})),
       value=json_values)
@example(key=("format_version",), value=[])  # found by the long profile: an unhashable version
def test_fuzz_manifest_field(assets, key, value):
    b = _fresh_bundle(assets)
    m = json.loads((b / "flow.json").read_text())
    target = m
    for k in key[:-1]:
        target = target[k]
    old = target.get(key[-1], object())
    target[key[-1]] = value
    (b / "flow.json").write_text(json.dumps(m))
    got = _load_outcome(b)
    if key in _REQUIRED and value != old:
        assert isinstance(got, BadInputError), f"flow.json with {'.'.join(key)} = {value!r} was accepted"
    shutil.rmtree(b.parent)


dtypes = st.sampled_from([np.float32, np.float64, np.float16, np.int64, np.int8, np.uint8, np.bool_, np.complex64])
arrays = dtypes.flatmap(lambda dt: hnp.arrays(
    dt, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
    elements=hnp.from_dtype(np.dtype(dt), allow_nan=True, allow_infinity=True, allow_subnormal=False) if np.dtype(dt).kind in "fc" else None))
# ONNX Runtime turns on flush-to-zero in this process, so hypothesis cannot draw subnormals itself;
# one (1e-45) comes in as a special value.
special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e38, -1e38, 1e-45, 3.0])


def _flowcore_or_ok(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs), None
    except FlowcoreError as exc:
        assert "\n" not in str(exc).strip(), f"message not one line: {exc!r}"
        return None, exc
    except BaseException as exc:  # noqa: BLE001
        pytest.fail(f"{fn.__name__} raised a raw {type(exc).__name__}: {str(exc)[:300]}")


@given(x=arrays)
def test_fuzz_encode(assets, x):
    z, _ = _flowcore_or_ok(assets["lmap"].encode, x)
    if z is not None:
        assert z.dtype == np.float32 and z.ndim == 2 and z.shape[1] == 2


@given(z=arrays, fill=special, max_steps=st.integers(1, 20))
@example(z=np.zeros((0, 2), np.float32), fill=0.0, max_steps=1)  # found by the long profile: zero rows
def test_fuzz_iterate_and_attractors(assets, z, fill, max_steps):
    if z.size and z.dtype.kind == "f":
        z = z.copy()
        with np.errstate(over="ignore", invalid="ignore"):  # 1e38 into float16 is inf: one more special value
            z.flat[0] = fill
    traj, _ = _flowcore_or_ok(iterate, assets["lmap"], z, max_steps=max_steps, progress=False)
    if traj is None:
        return
    assert traj.final.dtype == np.float32 and len(traj.status) == len(traj.final)
    att, _ = _flowcore_or_ok(find_attractors, traj)
    if att is not None:
        assert len(att.labels) == len(traj.final)


@given(x=arrays, kind=st.sampled_from(["npy", "npz", "npz_key", "bytes"]), raw=st.binary(max_size=64))
def test_fuzz_load_array(assets, x, kind, raw):
    d = Path(tempfile.mkdtemp(dir=assets["root"]))
    spec = d / f"a.{kind[:3]}"
    if kind == "npy":
        np.save(spec, x)
    elif kind in ("npz", "npz_key"):
        np.savez(spec, x=x, y=np.zeros(2))
        spec = f"{spec}:x" if kind == "npz_key" else spec
    else:
        spec = d / "a.npz"
        spec.write_bytes(raw)
    got, _ = _flowcore_or_ok(load_array, spec)
    if got is not None and kind != "bytes":
        np.testing.assert_array_equal(got, x)
    shutil.rmtree(d)


VALUES = ["-1", "0", "1", "3", "2.5", "nan", "inf", "-inf", "1e30", "abc", "", "100000000000000000000", "0x10"]
FLAGS = ["--noise", "--seed", "--tol", "--max-steps", "--batch-size", "--norm-limit", "--record-every", "--threads",
         "--threshold", "--metric", "--h", "--lim", "--n", "--nosie", "--max-step", "--quiet", "--json", "--relative",
         "--device", "--points", "--method", "--all-methods", "--force", "--resume", "-x", "--"]
COMMANDS = ["info", "trajectories", "attractors", "field", "stability", "contraction", "ood", "demo", "nonsense", "--version"]


@given(cmd=st.sampled_from(COMMANDS), flags=st.lists(st.tuples(st.sampled_from(FLAGS), st.sampled_from(VALUES)),
                                                     max_size=5),
       with_data=st.booleans(), with_out=st.sampled_from(["fresh", "file", "none"]))
def test_fuzz_cli(assets, cmd, flags, with_data, with_out):
    d = Path(tempfile.mkdtemp(dir=assets["root"]))
    argv = [cmd]
    if cmd in ("info", "trajectories", "attractors", "field"):
        argv.append(str(assets["bundle"]))
    if with_data and cmd in ("trajectories", "attractors"):
        argv += ["--data", str(assets["data"])]
    for flag, value in flags:
        if flag == "--noise" and value.isdigit() and len(value) < 12 and int(value) > 64:
            value = "64"  # huge in-range start sets belong to the size-check case of the corpus
        argv += [flag, value] if value else [flag]
    if with_out == "fresh":
        argv += ["--out", str(d / "out")]
    elif with_out == "file":
        (d / "file").write_text("user file\n")
        argv += ["--out", str(d / "file")]
    out, err = io.StringIO(), io.StringIO()
    try:
        rc = main(argv, stdout=out, stderr=err)
    except BaseException as exc:  # noqa: BLE001
        pytest.fail(f"main({argv}) raised a raw {type(exc).__name__}: {str(exc)[:300]}")
    text = out.getvalue() + err.getvalue()
    assert rc in (0, 2, 3, 4), f"exit code {rc} for {argv}: {text[-500:]}"
    assert "Traceback" not in text, text
    if rc:
        errors = [ln for ln in err.getvalue().splitlines() if ln.startswith("error:")]
        assert len(errors) == 1, f"{argv}: expected one error line, got {errors}"
    if with_out == "file":
        assert (d / "file").read_text() == "user file\n", f"{argv} overwrote a user file"
    shutil.rmtree(d)
