"""Shared assets and helpers of the bad-input corpus (see ``make_corpus.py``).

Everything here is generated: small hand-built ONNX autoencoders written as FlowBundles,
input files, one ``attractors --out`` folder and one fitted OOD detector folder. Nothing is
committed as a binary. The assets are built once (per pytest session, or per run of
``make_corpus.py``) and are read-only for the cases: a case copies what it tampers with.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["Case", "Env", "build_env", "snapshot", "flip_byte", "rehash", "Payload", "pickle_npy", "pickle_npz",
           "CASES", "case", "copy_bundle", "edit_manifest", "USAGE", "BAD", "RUNTIME",
           "cli_ok", "make_ae"]

SEED = 0
N_DATA = 64


@dataclass
class Case:
    """One bad input and what flowcore must answer.

    Attributes
    ----------
    argv : list of str, optional
        CLI arguments (``flowcore.cli.main(argv)``); None for an API case.
    call : callable, optional
        API case: a function of no arguments that must raise ``error`` (or return, when ``code`` is 0).
    code : int
        Expected exit code (0 ok, 2 usage, 3 bad input, 4 runtime); for an API case the raised
        error's ``exit_code``.
    error : str, optional
        API case: the flowcore error class (by name) the call must raise.
    names : tuple of str
        Substrings the single ``error:`` line (or the API message) must contain: the file or field.
    forbid : tuple of str
        Substrings that must appear nowhere in stdout/stderr/message (e.g. advice to unpickle).
    out : Path, optional
        The output path given to the command. On failure the case folder is compared whole; on
        success only the files in ``keep`` must be unchanged (flowcore adds its own).
    keep : tuple of Path
        User files inside ``out`` that must survive a successful run byte for byte.
    marker : Path, optional
        A file the pickle payload would create if ever unpickled; it must never exist.
    subprocess : bool
        Run ``python -m flowcore`` in a child process (peak RSS measured with ``os.wait4``).
    rss_mb : int, optional
        Peak RSS bound of the child, in MiB.
    patch : callable, optional
        ``patch(monkeypatch)`` before the run (simulated ENOSPC).
    cleanup : callable, optional
        Run after the case (unmount a tmpfs).
    skip : str, optional
        Why the case cannot run on this machine (e.g. tmpfs not mountable); the case is skipped.
    """

    argv: list[str] | None = None
    call: Callable[[], Any] | None = None
    code: int = 3
    error: str | None = None
    names: tuple[str, ...] = ()
    forbid: tuple[str, ...] = ()
    out: Path | None = None
    keep: tuple[Path, ...] = ()
    marker: Path | None = None
    subprocess: bool = False
    rss_mb: int | None = None
    patch: Callable[[Any], None] | None = None
    cleanup: Callable[[], None] | None = None
    skip: str | None = None
    note: str = ""

    def describe(self) -> dict[str, Any]:
        """Plain-JSON description (``cases.json`` of ``make_corpus.py``)."""
        return {"argv": self.argv, "api": self.call is not None, "code": self.code, "error": self.error,
                "names": list(self.names), "forbid": list(self.forbid), "out": None if self.out is None else str(self.out),
                "keep": [str(k) for k in self.keep], "marker": None if self.marker is None else str(self.marker),
                "subprocess": self.subprocess, "rss_mb": self.rss_mb, "skip": self.skip, "note": self.note}


@dataclass
class Env:
    """Paths of the shared, read-only assets."""

    root: Path
    bundle: Path  # (N, 4) -> k = 2 -> (N, 4), contracting
    bundle3: Path  # (N, 4) -> k = 3 -> (N, 4)
    data: Path  # (64, 4) float32 in [0, 1]
    latents: Path  # (16, 2) float32
    attractors: Path  # `flowcore attractors bundle --data data.npy --out ...`
    detector: Path  # `flowcore ood fit bundle --id data.npy --methods ... --out ...`
    extra: dict[str, Path] = field(default_factory=dict)


# ------------------------------------------------------------------------------ graphs
def _affine(W, b, *, name: str, inp: str, out: str, act: str | None = "Tanh", in_type=None):
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    W = np.asarray(W, np.float32)
    b = np.asarray(b, np.float32)
    nodes = [helper.make_node("MatMul", [inp, f"{name}_W"], [f"{name}_xw"]),
             helper.make_node("Add", [f"{name}_xw", f"{name}_b"], [out if act is None else f"{name}_pre"])]
    if act is not None:
        nodes.append(helper.make_node(act, [f"{name}_pre"], [out]))
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(inp, in_type or TensorProto.FLOAT, ["batch", W.shape[0]])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", W.shape[1]])],
        initializer=[numpy_helper.from_array(W, f"{name}_W"), numpy_helper.from_array(b, f"{name}_b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    return model


def make_ae(m: int = 4, k: int = 2, *, m_out: int | None = None, k_in: int | None = None, seed: int = SEED):
    """(encoder, decoder): E(x) = tanh(x We + be) of (N, m) -> (N, k), D(z) = z Wd + bd of (N, k_in) -> (N, m_out).

    With the defaults f = E∘D is a contraction with a few fixed points.
    """
    rng = np.random.default_rng(seed)
    We = rng.normal(size=(m, k)) * 0.6
    Wd = rng.normal(size=(k_in or k, m_out or m)) * 0.6
    enc = _affine(We, rng.normal(size=k) * 0.3, name="enc", inp="x", out="z")
    dec = _affine(Wd, rng.normal(size=m_out or m) * 0.3, name="dec", inp="z", out="x_hat", act=None)
    return enc, dec


# ------------------------------------------------------------------------------ helpers
def cli_ok(argv: list[str]) -> None:
    """Run ``flowcore.cli.main(argv)`` for an asset; raise when it does not exit 0."""
    from flowcore.cli import main  # noqa: PLC0415

    out, err = io.StringIO(), io.StringIO()
    rc = main(argv + ["--quiet"], stdout=out, stderr=err)
    if rc != 0:
        raise RuntimeError(f"asset command {argv} failed with {rc}: {err.getvalue()}")


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (files by sha256, links by target, folders by name), relative paths."""
    snap: dict[str, str] = {}
    if not os.path.lexists(folder):
        return snap
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(folder).as_posix()
            if p.is_symlink():
                snap[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                snap[rel] = "dir"
            else:
                snap[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


def flip_byte(path: Path, offset: int | None = None) -> None:
    """XOR one byte of ``path`` (the middle one by default) with 0x01."""
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def rehash(bundle: Path, part: str) -> None:
    """Make ``flow.json`` record the current sha256 (and size) of ``part``'s graph file, so only its content is wrong."""
    mpath = bundle / "flow.json"
    m = json.loads(mpath.read_text())
    data = (bundle / m[part]["file"]).read_bytes()
    m[part]["sha256"] = hashlib.sha256(data).hexdigest()
    if "size" in m[part]:
        m[part]["size"] = len(data)
    mpath.write_text(json.dumps(m, indent=2))


class Payload:
    """Unpickling this object opens (creates) ``marker``: a live payload that must never run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def _object_array(marker: Path) -> np.ndarray:
    a = np.empty(2, dtype=object)
    a[0], a[1] = Payload(marker), 1.0
    return a


def pickle_npy(path: Path, marker: Path) -> None:
    """A ``.npy`` holding an object array whose pickle creates ``marker`` when loaded with pickle."""
    np.save(path, _object_array(marker), allow_pickle=True)


def pickle_npz(path: Path, marker: Path, **others: np.ndarray) -> None:
    """An ``.npz`` with the payload array ``x`` (plus ``others``)."""
    np.savez(path, x=_object_array(marker), **others)


# ------------------------------------------------------------------------------ env
def build_env(root: Path) -> Env:
    """Write the shared assets under ``root/shared`` and return their paths (about 2 s)."""
    from flowcore.bundle.flowbundle import FlowBundle  # noqa: PLC0415

    shared = root / "shared"
    if shared.exists():
        shutil.rmtree(shared)
    shared.mkdir(parents=True)
    src = {"framework": "hand-built ONNX", "exporter": "tests/bad_inputs/bi_assets.py"}
    FlowBundle.write(shared / "bundle", *make_ae(4, 2), source=src, notes="bad-input corpus, k=2")
    FlowBundle.write(shared / "bundle3", *make_ae(4, 3, seed=1), source=src, notes="bad-input corpus, k=3")
    rng = np.random.default_rng(SEED)
    np.save(shared / "data.npy", rng.uniform(size=(N_DATA, 4)).astype(np.float32))
    np.save(shared / "latents.npy", rng.normal(size=(16, 2)).astype(np.float32))
    env = Env(root=shared, bundle=shared / "bundle", bundle3=shared / "bundle3", data=shared / "data.npy",
              latents=shared / "latents.npy", attractors=shared / "attractors", detector=shared / "detector")
    cli_ok(["attractors", str(env.bundle), "--data", str(env.data), "--out", str(env.attractors)])
    cli_ok(["ood", "fit", str(env.bundle), "--id", str(env.data), "--methods", "recon_error,latent_norm,trajectory",
            "--default", "recon_error", "--out", str(env.detector)])
    return env


# ------------------------------------------------------------------------------ registry
USAGE, BAD, RUNTIME = 2, 3, 4
CASES: dict[str, Callable[[Env, Path], Case]] = {}


def case(name: str):
    """Register ``builder(env, folder) -> Case`` under ``name`` (unique)."""
    def deco(builder):
        if name in CASES:
            raise ValueError(f"duplicate bad-input case {name!r}")
        CASES[name] = builder
        return builder
    return deco


def copy_bundle(env_bundle: Path, d: Path, name: str = "bundle") -> Path:
    """A private copy of a shared bundle inside the case folder."""
    dst = d / name
    shutil.copytree(env_bundle, dst)
    return dst


def edit_manifest(bundle: Path, edit: Callable[[dict], Any]) -> None:
    """Apply ``edit(manifest_dict)`` to ``bundle/flow.json`` in place."""
    mpath = bundle / "flow.json"
    m = json.loads(mpath.read_text())
    edit(m)
    mpath.write_text(json.dumps(m, indent=2))
