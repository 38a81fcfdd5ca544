"""Bad bundles: manifest fuzz, broken and tampered graphs, non-autoencoders, external data, symlinks."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from bi_assets import BAD, Case, case, copy_bundle, edit_manifest, flip_byte, make_ae, rehash


def _info(bundle: Path, *names: str, code: int = BAD, **kw) -> Case:
    return Case(argv=["info", str(bundle)], code=code, names=names or ("flow.json",), **kw)


def _manifest_case(name: str, edit, *names: str):
    @case(f"manifest_{name}")
    def _(env, d):
        b = copy_bundle(env.bundle, d)
        edit_manifest(b, edit)
        return _info(b, *(names or ("flow.json",)))


# ---------------------------------------------------------------- folder and manifest
@case("bundle_missing_folder")
def _(env, d):
    return _info(d / "nope", "nope")


@case("bundle_is_a_file")
def _(env, d):
    (d / "bundle").write_text("not a folder\n")
    return _info(d / "bundle", "bundle")


@case("bundle_no_manifest")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    (b / "flow.json").unlink()
    return _info(b, "flow.json")


@case("manifest_not_json")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    (b / "flow.json").write_text("{format: flowcore.bundle")
    return _info(b, "flow.json")


@case("manifest_empty_file")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    (b / "flow.json").write_bytes(b"")
    return _info(b, "flow.json")


@case("manifest_not_utf8")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    (b / "flow.json").write_bytes(b"\xff\xfe{\x00}")
    return _info(b, "flow.json")


@case("manifest_top_level_list")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    (b / "flow.json").write_text("[1, 2, 3]")
    return _info(b, "flow.json")


@case("manifest_deep_nesting_200000")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    (b / "flow.json").write_text("[" * 200_000 + "]" * 200_000)
    return _info(b, "flow.json")


@case("manifest_deep_nesting_in_notes_api")
def _(env, d):
    from flowcore.bundle.flowbundle import FlowBundle  # noqa: PLC0415

    b = copy_bundle(env.bundle, d)
    text = (b / "flow.json").read_text().rstrip().rstrip("}")
    (b / "flow.json").write_text(text + ', "extra": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "}")
    return Case(call=lambda: FlowBundle.load(b), error="BundleError", code=BAD, names=("flow.json",))


@case("manifest_huge_sparse_100MB")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    with open(b / "flow.json", "wb") as fh:  # a sparse file: 100 MB long, nothing on disk
        fh.write(b'{"format": "flowcore.bundle", "notes": "')
        fh.seek(100 * 2**20)
        fh.write(b'"}')
    return _info(b, "flow.json")


_manifest_case("unknown_version", lambda m: m.update(format_version=99), "format_version")
_manifest_case("version_is_string", lambda m: m.update(format_version="1"), "format_version")
_manifest_case("wrong_format", lambda m: m.update(format="flowcore.detector"), "format")
_manifest_case("input_shape_is_int", lambda m: m.update(input_shape=5), "input_shape")
_manifest_case("latent_shape_zero", lambda m: m.update(latent_shape=[0]), "latent_shape")
_manifest_case("input_shape_negative", lambda m: m.update(input_shape=[-4]), "input_shape")
_manifest_case("input_shape_strings", lambda m: m.update(input_shape=["4"]), "input_shape")
_manifest_case("latent_shape_bool", lambda m: m.update(latent_shape=[True, True]), "latent_shape")
_manifest_case("latent_shape_float", lambda m: m.update(latent_shape=[2.5]), "latent_shape")
_manifest_case("sha256_is_int", lambda m: m["encoder"].update(sha256=12345), "sha256")
_manifest_case("file_is_int", lambda m: m["encoder"].update(file=7), "file")
_manifest_case("entry_is_list", lambda m: m.update(encoder=["encoder.onnx"]), "encoder")
_manifest_case("entry_missing", lambda m: m.pop("decoder"), "decoder")
_manifest_case("file_traversal", lambda m: m["encoder"].update(file="../encoder.onnx"), "file")
_manifest_case("file_absolute", lambda m: m["decoder"].update(file="/etc/passwd"), "file")
_manifest_case("output_name_unknown", lambda m: m["encoder"].update(output="nope"), "nope")


# ---------------------------------------------------------------- graphs
def _graph_case(name: str, mutate, part: str = "encoder", hashed: bool = True):
    @case(f"graph_{name}")
    def _(env, d):
        b = copy_bundle(env.bundle, d)
        mutate(b / f"{part}.onnx")
        if hashed:
            rehash(b, part)  # the hash matches: only the content is wrong
        return _info(b, f"{part}.onnx")


_graph_case("truncated", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]))
_graph_case("random_bytes", lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)))
_graph_case("empty", lambda p: p.write_bytes(b""), part="decoder")
_graph_case("text_file", lambda p: p.write_text("this is not an ONNX model\n"), part="decoder")
_graph_case("tampered_encoder_byte", flip_byte, hashed=False)
_graph_case("tampered_decoder_byte", flip_byte, part="decoder", hashed=False)


@case("tampered_manifest_hash")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    m = json.loads((b / "flow.json").read_text())
    h = m["encoder"]["sha256"]
    m["encoder"]["sha256"] = ("1" if h[0] != "1" else "2") + h[1:]
    (b / "flow.json").write_text(json.dumps(m, indent=2))
    return _info(b, "encoder.onnx")


@case("tampered_bundle_used_by_trajectories")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    flip_byte(b / "decoder.onnx")
    return Case(argv=["trajectories", str(b), "--noise", "8", "--out", str(d / "out")], out=d / "out",
                names=("decoder.onnx",))


def _write_graph(b: Path, part: str, model) -> None:
    import onnx  # noqa: PLC0415

    onnx.save(model, str(b / f"{part}.onnx"))
    rehash(b, part)


@case("swapped_encoder_decoder")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    def swap(m):
        m["encoder"]["file"], m["decoder"]["file"] = m["decoder"]["file"], m["encoder"]["file"]
        m["encoder"]["sha256"], m["decoder"]["sha256"] = m["decoder"]["sha256"], m["encoder"]["sha256"]
    edit_manifest(b, swap)
    return _info(b, "encoder")


@case("non_ae_latent_mismatch")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    _write_graph(b, "decoder", make_ae(4, 2, k_in=3)[1])  # D takes k = 3, E gives k = 2
    return _info(b, "decoder input")


@case("non_ae_output_mismatch")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    _write_graph(b, "decoder", make_ae(4, 2, m_out=5)[1])  # D gives 5 features, E takes 4
    return _info(b, "decoder output")


@case("graph_int_input")
def _(env, d):
    from onnx import TensorProto  # noqa: PLC0415

    from bi_assets import _affine  # noqa: PLC0415

    b = copy_bundle(env.bundle, d)
    _write_graph(b, "encoder", _affine(np.ones((4, 2)), np.zeros(2), name="enc", inp="x", out="z",
                                       in_type=TensorProto.INT64))
    return _info(b, "encoder")


# ---------------------------------------------------------------- symlinks
@case("symlink_graph_outside_bundle")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    (d / "elsewhere").mkdir()
    real = d / "elsewhere" / "encoder.onnx"
    shutil.move(b / "encoder.onnx", real)
    os.symlink(real, b / "encoder.onnx")  # same bytes, hash matches, but outside the folder
    return _info(b, "encoder.onnx")


@case("symlink_graph_inside_bundle")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    (b / "sub").mkdir()
    shutil.move(b / "decoder.onnx", b / "sub" / "real.onnx")
    os.symlink("sub/real.onnx", b / "decoder.onnx")
    return _info(b, "decoder.onnx")


@case("symlink_manifest_outside_bundle")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    shutil.move(b / "flow.json", d / "flow.json")
    os.symlink(d / "flow.json", b / "flow.json")
    return _info(b, "flow.json")


# ---------------------------------------------------------------- external data
def externalize(b: Path, part: str = "encoder", location: str | None = None) -> Path:
    """Move ``part``'s weights into an external-data file and record it the way flowcore's writer does.

    Uses ``FlowBundle.write(..., external_data=True)`` where the writer supports it, so the manifest
    is exactly flowcore's; returns the external-data file.
    """
    import onnx  # noqa: PLC0415

    from flowcore.bundle.flowbundle import FlowBundle  # noqa: PLC0415

    fb = FlowBundle.load(b)
    enc, dec = fb.encoder, fb.decoder
    shutil.rmtree(b)
    try:
        FlowBundle.write(b, enc, dec, source=fb.manifest.get("source"), external_data=[part])
    except TypeError:  # a writer without external-data support: write the files and the hash by hand
        FlowBundle.write(b, enc, dec, source=fb.manifest.get("source"))
        model = onnx.load(str(b / f"{part}.onnx"))
        onnx.save(model, str(b / f"{part}.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=location or f"{part}.onnx.data", size_threshold=0)
        rehash(b, part)
    found = sorted(p for p in b.iterdir() if p.name.startswith(part) and p.suffix != ".onnx")
    return found[0] if found else b / f"{part}.onnx.data"


@case("external_data_control_ok")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    externalize(b)
    return Case(argv=["info", str(b)], code=0, note="control: an untampered external-data bundle loads")


@case("external_data_tampered")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    data = externalize(b)
    flip_byte(data)
    return _info(b, data.name)


@case("external_data_tampered_used_by_attractors")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    data = externalize(b, "decoder")
    flip_byte(data, 3)
    return Case(argv=["attractors", str(b), "--data", str(env.data), "--out", str(d / "out")], out=d / "out",
                names=(data.name,))


@case("external_data_missing")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    externalize(b).unlink()
    return _info(b, "encoder")


@case("external_data_outside_bundle")
def _(env, d):
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, numpy_helper  # noqa: PLC0415

    b = copy_bundle(env.bundle, d)
    model = onnx.load(str(b / "encoder.onnx"))
    t = model.graph.initializer[0]
    raw = numpy_helper.to_array(t).tobytes()
    (d / "outside.data").write_bytes(raw)  # the right weights, but outside the bundle folder
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../outside.data"), ("offset", "0"), ("length", str(len(raw)))):
        e = t.external_data.add()
        e.key, e.value = key, value
    (b / "encoder.onnx").write_bytes(model.SerializeToString())
    rehash(b, "encoder")
    return _info(b, "outside.data")


@case("external_data_symlink_outside")
def _(env, d):
    b = copy_bundle(env.bundle, d)
    data = externalize(b)
    shutil.move(data, d / "moved.data")
    os.symlink(d / "moved.data", data)
    return _info(b, data.name)


@case("api_latentmap_tampered_bundle")
def _(env, d):
    from flowcore.runtime.latent_map import LatentMap  # noqa: PLC0415

    b = copy_bundle(env.bundle, d)
    flip_byte(b / "encoder.onnx")
    return Case(call=lambda: LatentMap(b, providers="cpu"), error="BundleError", code=BAD, names=("encoder.onnx",))
