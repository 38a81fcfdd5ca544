"""Integrity: every file ONNX Runtime reads is hashed and resolved inside the bundle; manifest and
detector-folder schemas are checked before use; each refusal is one line (exit 3 from the CLI)."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from flowcore.bundle.flowbundle import MANIFEST, FlowBundle
from flowcore.cli.app import main
from flowcore.errors import BundleError
from flowcore.runtime.latent_map import LatentMap

from _graphs import contraction_to

DEMO = Path(__file__).resolve().parents[1] / "flowcore" / "data" / "demo" / "bundle"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _graphs():
    return contraction_to(np.array([1.0, -1.0, 0.5], np.float32), 0.5)


@pytest.fixture
def ext_bundle(tmp_path):
    """A bundle whose two graphs keep their weights in external-data files (written by FlowBundle.write)."""
    enc, dec = _graphs()
    return FlowBundle.write(tmp_path / "b", enc, dec, source={"framework": "hand-built"}, external_data=True)


def _manifest(b: Path) -> dict:
    return json.loads((b / MANIFEST).read_text())


def _save_manifest(b: Path, m: dict) -> None:
    (b / MANIFEST).write_text(json.dumps(m))


def _record(b: Path, rel: str) -> dict:
    return {"file": rel, "sha256": _sha(b / rel), "size": (b / rel).stat().st_size}


def _rehash_graph(b: Path, part: str) -> None:
    m = _manifest(b)
    m[part].update({k: v for k, v in _record(b, m[part]["file"]).items() if k != "file"})
    _save_manifest(b, m)


def _set_location(b: Path, part: str, location: str) -> None:
    """Point every external tensor of ``part`` at ``location`` (graph rewritten, its hash updated)."""
    model = onnx.load(str(b / f"{part}.onnx"), load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    (b / f"{part}.onnx").write_bytes(model.SerializeToString())
    _rehash_graph(b, part)


def _cli(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(code, err, *words):
    assert code == 3, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)


# ----------------------------------------------------------------------------- external data
def test_write_records_every_external_file(ext_bundle, tmp_path):
    b = ext_bundle.path
    m = _manifest(b)
    assert m["format_version"] == 2
    for part in ("encoder", "decoder"):
        (entry,) = m[part]["external_data"]
        assert entry == _record(b, f"{part}.onnx.data")
        assert m[part]["size"] == (b / f"{part}.onnx").stat().st_size
    model = onnx.load(str(b / "encoder.onnx"), load_external_data=False)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    # same map as the inline bundle, and the identity covers the external bytes
    inline = FlowBundle.write(tmp_path / "inline", *_graphs())
    z = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    np.testing.assert_array_equal(LatentMap(ext_bundle, providers="cpu")(z), LatentMap(inline, providers="cpu")(z))
    assert {r["role"] for r in ext_bundle.verified} == {"encoder graph", "encoder external data", "decoder graph",
                                                        "decoder external data"}
    assert sorted(ext_bundle.files) == sorted([MANIFEST, "encoder.onnx", "encoder.onnx.data", "decoder.onnx",
                                               "decoder.onnx.data"])


def test_external_data_only_when_asked_or_too_large(tmp_path):
    b = FlowBundle.write(tmp_path / "auto", *_graphs())  # small graphs: inline by default
    assert b.manifest["encoder"]["external_data"] == [] and sorted(p.name for p in b.path.iterdir()) == [
        "decoder.onnx", "encoder.onnx", MANIFEST]
    one = FlowBundle.write(tmp_path / "one", *_graphs(), external_data=["decoder"])
    assert one.manifest["encoder"]["external_data"] == [] and len(one.manifest["decoder"]["external_data"]) == 1
    with pytest.raises(BundleError, match="external_data names 'both'"):
        FlowBundle.write(tmp_path / "bad", *_graphs(), external_data=["both"])
    with pytest.raises(BundleError, match=r"bad[/\\]flow.json: field 'source.x' must be a string, number"):
        FlowBundle.write(tmp_path / "bad", *_graphs(), source={"x": {"nested": 1}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto", "one"], "nothing half-written"


def test_hand_made_external_data_bundle_loads(tmp_path):
    """A bundle made with onnx.save_model(save_as_external_data=True) and a hand-written v2 manifest."""
    base = FlowBundle.write(tmp_path / "base", *_graphs())
    b = tmp_path / "hand"
    shutil.copytree(base.path, b)
    model = onnx.load(str(b / "encoder.onnx"))
    (b / "weights").mkdir()
    onnx.save_model(model, str(b / "encoder.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights/enc.bin", size_threshold=0)
    m = _manifest(b)
    m["encoder"]["external_data"] = [_record(b, "weights/enc.bin")]
    _save_manifest(b, m)
    _rehash_graph(b, "encoder")
    fb = FlowBundle.load(b)
    assert [r["file"] for r in fb.verified] == ["encoder.onnx", "weights/enc.bin", "decoder.onnx"]
    assert fb.sha256 != base.sha256
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_array_equal(LatentMap(fb, providers="cpu").encode(x), LatentMap(base, providers="cpu").encode(x))


def test_tampered_external_data_refused(ext_bundle, tmp_path, capsys):
    b = ext_bundle.path
    z = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    good = LatentMap(b, providers="cpu")(z)
    data = bytearray((b / "encoder.onnx.data").read_bytes())
    data[4] ^= 0x40  # same size, different weights
    (b / "encoder.onnx.data").write_bytes(bytes(data))
    code, out, err = _cli(["info", str(b)], capsys)
    _one_line(code, err, "encoder.onnx.data", "sha256")
    assert out == ""
    with pytest.raises(BundleError, match="encoder.onnx.data does not match its sha256") as exc:
        LatentMap(b, providers="cpu")
    assert exc.value.exit_code == 3
    code, out, err = _cli(["trajectories", str(b), "--noise", "5"], capsys)
    _one_line(code, err, "encoder.onnx.data")
    # restoring the bytes restores the bundle: the refusal was about exactly those bytes
    data[4] ^= 0x40
    (b / "encoder.onnx.data").write_bytes(bytes(data))
    np.testing.assert_array_equal(LatentMap(b, providers="cpu")(z), good)


def test_truncated_external_data_refused_by_size(ext_bundle, capsys):
    p = ext_bundle.path / "decoder.onnx.data"
    p.write_bytes(p.read_bytes()[:-4])
    code, _, err = _cli(["info", str(ext_bundle.path)], capsys)
    _one_line(code, err, "decoder.onnx.data", "bytes but flow.json records")


def test_graph_symlink_outside_refused(tmp_path, capsys):
    b = FlowBundle.write(tmp_path / "b", *_graphs()).path
    (tmp_path / "elsewhere").mkdir()
    shutil.move(b / "encoder.onnx", tmp_path / "elsewhere" / "encoder.onnx")
    os.symlink(tmp_path / "elsewhere" / "encoder.onnx", b / "encoder.onnx")  # same bytes: the hash matches
    code, _, err = _cli(["info", str(b)], capsys)
    _one_line(code, err, "encoder.onnx", "symbolic link")
    with pytest.raises(BundleError, match="symbolic link"):
        LatentMap(b, providers="cpu")


def test_manifest_symlink_refused(tmp_path, capsys):
    b = FlowBundle.write(tmp_path / "b", *_graphs()).path
    shutil.move(b / MANIFEST, tmp_path / MANIFEST)
    os.symlink(tmp_path / MANIFEST, b / MANIFEST)
    _one_line(*_cli(["info", str(b)], capsys)[::2], "flow.json", "symbolic link")


def test_external_data_symlink_refused(ext_bundle, tmp_path, capsys):
    b = ext_bundle.path
    shutil.move(b / "encoder.onnx.data", tmp_path / "real.data")
    os.symlink(tmp_path / "real.data", b / "encoder.onnx.data")  # same bytes, hash and size match
    code, _, err = _cli(["info", str(b)], capsys)
    _one_line(code, err, "encoder.onnx.data", "symbolic link")
    # a link inside the folder is refused too: ORT would follow it wherever it points later
    os.unlink(b / "encoder.onnx.data")
    shutil.move(tmp_path / "real.data", b / "real.data")
    os.symlink("real.data", b / "encoder.onnx.data")
    _one_line(*_cli(["info", str(b)], capsys)[::2], "symbolic link")


def test_external_location_leaving_folder_refused(ext_bundle, tmp_path, capsys):
    b = ext_bundle.path
    shutil.copy(b / "encoder.onnx.data", tmp_path / "x.data")  # the right bytes, outside the folder
    _set_location(b, "encoder", "../x.data")
    code, _, err = _cli(["info", str(b)], capsys)
    _one_line(code, err, "'../x.data'", "outside the bundle")
    # listing it in the manifest does not help: the schema refuses the path itself
    m = _manifest(b)
    m["encoder"]["external_data"] = [{"file": "../x.data", "sha256": _sha(tmp_path / "x.data"), "size": 1}]
    _save_manifest(b, m)
    _one_line(*_cli(["info", str(b)], capsys)[::2], "encoder.external_data[0].file")
    _set_location(b, "encoder", str(tmp_path / "x.data"))  # absolute
    m = _manifest(b)
    m["encoder"]["external_data"] = []
    _save_manifest(b, m)
    _one_line(*_cli(["info", str(b)], capsys)[::2], "outside the bundle")


def test_unlisted_and_unused_external_files_refused(ext_bundle, capsys):
    b = ext_bundle.path
    shutil.copy(b / "encoder.onnx.data", b / "other.data")  # inside, a regular file, correct bytes: unlisted
    _set_location(b, "encoder", "other.data")
    code, _, err = _cli(["info", str(b)], capsys)
    _one_line(code, err, "'other.data'", "not listed")
    m = _manifest(b)  # list the new file and keep the old entry: now the old one is unused
    m["encoder"]["external_data"].append(_record(b, "other.data"))
    _save_manifest(b, m)
    _one_line(*_cli(["info", str(b)], capsys)[::2], "'encoder.onnx.data'", "does not use")
    m["encoder"]["external_data"] = m["encoder"]["external_data"][1:]
    _save_manifest(b, m)
    assert _cli(["info", str(b)], capsys)[0] == 0


def test_external_extent_past_end_refused(ext_bundle, capsys):
    b = ext_bundle.path
    model = onnx.load(str(b / "encoder.onnx"), load_external_data=False)
    for e in model.graph.initializer[0].external_data:
        if e.key == "length":
            e.value = str(10**9)
    (b / "encoder.onnx").write_bytes(model.SerializeToString())
    _rehash_graph(b, "encoder")
    _one_line(*_cli(["info", str(b)], capsys)[::2], "asks for bytes")


def test_version_1_manifest_with_external_data_refused(ext_bundle, capsys):
    b = ext_bundle.path
    m = _manifest(b)
    m["format_version"] = 1
    for part in ("encoder", "decoder"):
        del m[part]["size"], m[part]["external_data"]
    _save_manifest(b, m)
    _one_line(*_cli(["info", str(b)], capsys)[::2], "format_version 1", "re-export")


# ----------------------------------------------------------------------------- old format
def test_old_format_demo_bundle_loads(tmp_path, capsys):
    m = _manifest(DEMO)
    assert m["format_version"] == 1 and "size" not in m["encoder"], "the shipped demo manifest stays as shipped"
    b = FlowBundle.load(DEMO)
    assert b.manifest == m and b.input_shape == (1, 8, 8) and b.latent_shape == (8,)
    assert [(r["file"], r["size"]) for r in b.verified] == [("encoder.onnx", (DEMO / "encoder.onnx").stat().st_size),
                                                            ("decoder.onnx", (DEMO / "decoder.onnx").stat().st_size)]
    code, out, err = _cli(["info", str(DEMO), "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["format_version"] == 1 and info["latent_shape"] == [8]
    assert info["verified"]["external_data_files"] == 0 and len(info["verified"]["files"]) == 2
    code, out, _ = _cli(["info", str(DEMO)], capsys)
    assert code == 0 and "encoder.onnx" in out and "23,888 bytes" in out and "ONNX checker passed" in out
    # a copy still refuses a tampered graph (version 1 has the graph hashes)
    shutil.copytree(DEMO, tmp_path / "d")
    p = tmp_path / "d" / "decoder.onnx"
    p.write_bytes(p.read_bytes()[:-1] + bytes([p.read_bytes()[-1] ^ 1]))
    _one_line(*_cli(["info", str(tmp_path / "d")], capsys)[::2], "decoder.onnx", "sha256")


def test_info_json_lists_external_files(ext_bundle, capsys):
    code, out, _ = _cli(["info", str(ext_bundle.path), "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["format_version"] == 2
    assert info["verified"]["external_data_files"] == 2
    assert info["encoder"]["external_data"][0]["file"] == "encoder.onnx.data"
    assert info["verified"]["total_bytes"] == sum((ext_bundle.path / r).stat().st_size for r in ext_bundle.files[1:])
    code, out, _ = _cli(["info", str(ext_bundle.path)], capsys)
    assert "encoder.onnx.data" in out and "encoder external data" in out and "2 external-data files" in out


# ----------------------------------------------------------------------------- manifest fuzz
def _set(path):
    def edit(m, value):
        obj = m
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return edit


FUZZ = [  # (id, edit, value, words the one line must name)
    ("input_shape_int", _set(["input_shape"]), 5, ["'input_shape'", "positive ints"]),
    ("input_shape_zero", _set(["input_shape"]), [0], ["'input_shape'"]),
    ("input_shape_negative", _set(["input_shape"]), [3, -1], ["'input_shape'"]),
    ("input_shape_float", _set(["input_shape"]), [1.5], ["'input_shape'"]),
    ("input_shape_bool", _set(["input_shape"]), [True], ["'input_shape'"]),
    ("input_shape_empty", _set(["input_shape"]), [], ["'input_shape'"]),
    ("input_shape_huge", _set(["input_shape"]), [2**40], ["'input_shape'"]),
    ("latent_shape_string", _set(["latent_shape"]), "3", ["'latent_shape'"]),
    ("dtype", _set(["dtype"]), "float64", ["'dtype'"]),
    ("sha_int", _set(["encoder", "sha256"]), 123, ["'encoder.sha256'"]),
    ("sha_short", _set(["decoder", "sha256"]), "abc", ["'decoder.sha256'"]),
    ("size_negative", _set(["encoder", "size"]), -1, ["'encoder.size'"]),
    ("size_string", _set(["encoder", "size"]), "10", ["'encoder.size'"]),
    ("external_not_list", _set(["encoder", "external_data"]), "x", ["'encoder.external_data'"]),
    ("external_bad_entry", _set(["encoder", "external_data"]), [{"file": 1}], ["'encoder.external_data[0].file'"]),
    ("opset_string", _set(["encoder", "opset"]), "18", ["'encoder.opset'"]),
    ("input_name_empty", _set(["encoder", "input"]), "", ["'encoder.input'"]),
    ("graph_not_object", _set(["decoder"]), [1, 2], ["'decoder'"]),
    ("file_path", _set(["encoder", "file"]), "sub/encoder.onnx", ["'encoder.file'", "plain file name"]),
    ("unknown_top_key", _set(["extra"]), 1, ["'extra'", "unknown field"]),
    ("unknown_graph_key", _set(["encoder", "weights"]), "w.bin", ["'encoder.weights'", "unknown field"]),
    ("source_nested", _set(["source", "x"]), {"y": 1}, ["'source.x'"]),
    ("notes_int", _set(["notes"]), 123, ["'notes'"]),
    ("version_unknown", _set(["format_version"]), 99, ["format_version 99", "reads 1 and 2"]),
    ("version_string", _set(["format_version"]), "2", ["format_version '2'"]),
    ("version_bool", _set(["format_version"]), True, ["format_version True"]),
    ("format_other", _set(["format"]), "something.else", ["not a flowcore manifest"]),
]


@pytest.mark.parametrize("edit,value,words", [f[1:] for f in FUZZ], ids=[f[0] for f in FUZZ])
def test_manifest_fuzz_one_line(tmp_path, capsys, edit, value, words):
    b = FlowBundle.write(tmp_path / "b", *_graphs()).path
    m = _manifest(b)
    edit(m, value)
    _save_manifest(b, m)
    with pytest.raises(BundleError) as exc:
        FlowBundle.load(b)
    assert len(str(exc.value).splitlines()) == 1
    _one_line(*_cli(["info", str(b)], capsys)[::2], "flow.json", *words)


def test_manifest_missing_field(tmp_path, capsys):
    b = FlowBundle.write(tmp_path / "b", *_graphs()).path
    m = _manifest(b)
    del m["encoder"]["input"]
    _save_manifest(b, m)
    _one_line(*_cli(["info", str(b)], capsys)[::2], "'encoder.input'", "required")


@pytest.mark.parametrize("text,words", [
    ("[" * 200_000 + "]" * 200_000, ["nests more than 16 levels", "at most 16"]),
    ('{"format": "flowcore.bundle", "a": ' + "{" * 5000 + "}" * 5000 + "}", ["nests more than 16 levels"]),
    ('{"format": "flowcore.bundle", "s": "' + '\\"[' * 50_000 + '"}', ["format_version"]),  # escaped quotes
    ('{"format": "flowcore.bundle", "x": NaN}', ["not valid JSON"]),
    ('{"format": "flowcore.bundle", "s": "' + "[" * 100 + '"}', ["format_version"]),  # brackets inside a string
], ids=["deep_200000", "deep_object", "escaped_quotes", "nan", "brackets_in_string"])
def test_manifest_bounds(tmp_path, capsys, text, words):
    b = FlowBundle.write(tmp_path / "b", *_graphs()).path
    (b / MANIFEST).write_text(text)
    _one_line(*_cli(["info", str(b)], capsys)[::2], "flow.json", *words)


def test_manifest_too_large(tmp_path, capsys):
    b = FlowBundle.write(tmp_path / "b", *_graphs()).path
    m = _manifest(b)
    m["notes"] = "x" * (2 << 20)
    _save_manifest(b, m)
    _one_line(*_cli(["info", str(b)], capsys)[::2], "flow.json", "at most 1048576 bytes")
    m["notes"] = "x" * 70_000  # under the file limit, over the field limit
    _save_manifest(b, m)
    _one_line(*_cli(["info", str(b)], capsys)[::2], "'notes'", "65536")
