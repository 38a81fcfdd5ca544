"""``flowcore export`` — saved framework models in, a FlowBundle out.

The core never imports a framework or an adapter by name: adapters register themselves in the
``flowcore.adapters`` entry-point group (``torch = "flowcore_torch"`` in
``adapters/torch/pyproject.toml``), and this command loads the one for the model's framework
only when asked. A missing adapter is one line naming the package to install. A flat
autoencoder (Keras Sequential, torch ``nn.Sequential``) is cut in two with ``--split-at LAYER``;
a torch ``state_dict`` file is named as such (weights without architecture) with the formats to
save instead. Loading never unpickles: ``torch.export.load`` / ``torch.jit.load`` for PyTorch, Keras
``load_model(safe_mode=True)`` and ``tf.saved_model.load`` for TensorFlow.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from flowcore.errors import BackendError, ExportError, OutputError, ParameterError
from flowcore.bundle.flowbundle import FlowBundle
from flowcore.cli._out import bundle_entries, force, out_folder, tree_bytes
from flowcore.cli._args import number

__all__ = ["add_parser", "run", "ADAPTERS", "ENTRY_POINT_GROUP", "framework_of", "load_adapter"]

ENTRY_POINT_GROUP = "flowcore.adapters"
# entry-point name -> (distribution to install, its folder in this repository); the adapters
# themselves are found through ENTRY_POINT_GROUP, never imported by name from the core.
ADAPTERS = {
    "torch": ("flowcore-torch", "adapters/torch"),
    "tensorflow": ("flowcore-tensorflow", "adapters/tensorflow"),
}
_BUNDLE_FILES = ("flow.json", "encoder.onnx", "decoder.onnx")
_TORCH_SUFFIXES = {".pt2", ".pt", ".ts", ".jit", ".pth"}
_TF_SUFFIXES = {".keras", ".h5"}


def add_parser(p, common) -> None:
    """Declare the flags of ``flowcore export`` on its parser ``p`` (entry ``export`` of ``app.COMMANDS``)."""
    src = p.add_argument_group("model (either --encoder and --decoder, or --autoencoder with part names "
                                "or --split-at, or --pretrained)")
    src.add_argument("--encoder", help="encoder file: .pt2, .pt (TorchScript), .keras, or a SavedModel folder "
                                      "(required with --decoder unless --autoencoder is given)")
    src.add_argument("--decoder", help="decoder file, same kinds as --encoder (required with --encoder)")
    src.add_argument("--autoencoder", help="one saved autoencoder holding both halves, same kinds as --encoder "
                                          "(required unless --encoder and --decoder are given)")
    src.add_argument("--encoder-part", default="encoder", help="attribute/layer name of the encoder (default encoder)")
    src.add_argument("--decoder-part", default="decoder", help="attribute/layer name of the decoder (default decoder)")
    src.add_argument("--pretrained", metavar="KIND=FOLDER", default=None,
                     help="a pretrained autoencoder read from a local weights folder, KIND one of taef2, "
                          "autoencoder-kl, autoencoder-kl-scaled, vit-mae (torch adapter; the last three need "
                          "flowcore-torch[foundation]); needs --example with real inputs in the model's range (default: none, "
                          "the model comes from --encoder/--decoder or --autoencoder)")
    src.add_argument("--split-at", metavar="LAYER", default=None,
                     help="cut a flat --autoencoder (Keras Sequential or chain, torch nn.Sequential) after LAYER "
                          "(name or index): encoder = the layers up to and including LAYER, decoder = the rest "
                          "(default: take --encoder-part/--decoder-part)")
    p.add_argument("--example", help="example inputs, file.npy/.npz[:KEY] of shape (N, *input_shape) (float32) "
                                     "(default: random inputs of the model's declared input shape; "
                                     "Keras/TensorFlow only)")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--framework", default="auto", choices=["auto", "torch", "tensorflow"],
                   help="framework of the saved models (default auto: from the file suffix, a folder = SavedModel)")
    p.add_argument("--encoder-output", default=None,
                   help="index or key of the encoder output to use (default: the first of a tuple; a dict's "
                        "'mean', else 'mu', else its first key: a VAE's mean)")
    number(p, "--opset", default=None, help="default-domain ONNX opset of both graphs (default: the adapter's, 18)")
    number(p, "--rtol", default=1e-4,
           help="largest accepted relative error of each ONNX graph against the framework (default 1e-4)")
    p.add_argument("--no-check", action="store_true",
                   help="skip the parity check (not recommended) (default: checked against the framework)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing bundle at --out (default: refuse; only the bundle's files are replaced)")
    common(p)


def framework_of(path: str | Path) -> str:
    """``torch`` or ``tensorflow`` from a model path's suffix (a folder = a TensorFlow SavedModel)."""
    p = Path(path)
    if p.is_dir():
        if (p / "saved_model.pb").is_file():
            return "tensorflow"
        raise ExportError(f"{p} is a folder without saved_model.pb; not a TensorFlow SavedModel")
    if not p.exists():
        raise ExportError(f"no such model file: {p}")
    suffix = p.suffix.lower()
    if suffix in _TORCH_SUFFIXES:
        return "torch"
    if suffix in _TF_SUFFIXES:
        return "tensorflow"
    raise ExportError(f"{p}: cannot tell the framework from {suffix or 'no suffix'!r}; expected .pt2/.pt/.pth "
                        "(PyTorch), .keras (Keras) or a SavedModel folder, or pass --framework")


def load_adapter(framework: str):
    """The adapter module registered for ``framework`` in the ``flowcore.adapters`` entry points.

    Parameters
    ----------
    framework : {"torch", "tensorflow"}
        Entry-point name.

    Returns
    -------
    module
        The adapter (``export``, ``load_model`` and optionally ``example_input``).

    Raises
    ------
    BackendError
        No installed distribution registers ``framework``, or its adapter (or its framework)
        cannot be imported; the message names the package to install.
    """
    dist, folder = ADAPTERS[framework]
    fix = f"pip install {dist}  (from this repository: pip install -e {folder})"
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == framework]
    if not found:
        raise BackendError(f"exporting {framework} models needs the {dist} adapter (no {ENTRY_POINT_GROUP!r} "
                           f"entry point named {framework!r} is installed): {fix}")
    try:
        return found[0].load()
    except ImportError as exc:
        missing = exc.name or str(exc)
        raise BackendError(f"exporting {framework} models needs the {dist} adapter ({missing} cannot be imported): "
                           f"{fix}") from None


def _key(value: str | None) -> Any:
    if value is None:
        return None
    return int(value) if value.lstrip("-").isdigit() else value


def _pretrained_args(args) -> tuple[str, str]:
    """(kind, folder) of ``--pretrained KIND=FOLDER``, after the checks that need nothing loaded."""
    if args.encoder or args.decoder or args.autoencoder or args.split_at is not None:
        raise ParameterError("--pretrained names the whole model; it does not go with --encoder/--decoder, "
                             "--autoencoder or --split-at")
    kind, sep, folder = args.pretrained.partition("=")
    if not sep or not kind or not folder:
        raise ParameterError(f"--pretrained takes KIND=FOLDER (e.g. taef2=models/taef2), got {args.pretrained!r}")
    if not args.example:
        raise ParameterError("--pretrained needs --example: real inputs in the model's range (pretrained weights "
                             "declare no input shape, and parity on random inputs says little about real ones)")
    if args.framework not in ("auto", "torch"):
        raise ParameterError("--pretrained models are torch models (the torch adapter builds them)")
    return kind, folder


def _pretrained(kind: str, folder: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(adapter, encoder, decoder, export kwargs) of the pretrained ``kind`` in ``folder`` (the torch adapter)."""
    adapter = load_adapter("torch")
    kinds = getattr(adapter, "PRETRAINED_KINDS", None)
    if kinds is None:
        raise BackendError("this flowcore-torch has no pretrained loaders: upgrade flowcore-torch")
    if kind not in kinds:
        raise ParameterError(f"--pretrained: unknown kind {kind!r}; choose from {', '.join(kinds)}")
    try:
        enc, dec = adapter.load_pretrained(kind, folder)
    except FileNotFoundError as exc:
        raise ExportError(str(exc).strip()) from None
    except ImportError as exc:
        raise BackendError(f"--pretrained {kind} needs {exc.name or 'its libraries'}: pip install "
                           "'flowcore-torch[foundation]'") from None
    except Exception as exc:  # noqa: BLE001  (weights that do not fit or do not read: corrupt .npz/.safetensors)
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise ExportError(f"--pretrained {kind}={folder}: {lines[0][:300]}") from None
    return adapter, enc, dec, {"preprocessing": kinds[kind], "notes": f"pretrained {kind} from {folder}"}


def _weight_bytes(folder: str) -> int:
    """Bytes of the weight files a --pretrained loader reads (.npz / .safetensors in the folder and its vae/)."""
    root = Path(folder)
    return sum(f.stat().st_size for sub in (root, root / "vae") if sub.is_dir() for f in sub.iterdir()
               if f.is_file() and f.suffix in (".npz", ".safetensors"))


def run(args, out, emit) -> int:
    from flowcore.io import load_array  # noqa: PLC0415

    if args.pretrained:
        return _run_pretrained(args, out, emit, load_array)
    if args.autoencoder:
        if args.encoder or args.decoder:
            raise ParameterError("give either --autoencoder or --encoder/--decoder, not both")
        paths = {"encoder": (args.autoencoder, args.encoder_part), "decoder": (args.autoencoder, args.decoder_part)}
    elif args.encoder and args.decoder:
        paths = {"encoder": (args.encoder, None), "decoder": (args.decoder, None)}
    else:
        raise ParameterError("give --encoder and --decoder, or --autoencoder")
    parts_given = (args.encoder_part, args.decoder_part) != ("encoder", "decoder")
    if args.split_at is not None and (not args.autoencoder or parts_given):
        raise ParameterError("--split-at cuts one flat --autoencoder; it does not go with --encoder/--decoder or "
                             "--encoder-part/--decoder-part")
    frameworks = {framework_of(p) if args.framework == "auto" else args.framework for p, _ in paths.values()}
    if len(frameworks) != 1:
        raise ParameterError(f"encoder and decoder come from different frameworks {sorted(frameworks)}")
    framework = frameworks.pop()
    dest = _bundle_folder(args, 2 * tree_bytes(*{p for p, _ in paths.values()}, args.example))
    adapter = load_adapter(framework)
    if args.split_at is not None:
        enc, dec = adapter.load_split(args.autoencoder, _key(args.split_at))
    else:
        enc = adapter.load_model(paths["encoder"][0], part=paths["encoder"][1])
        dec = adapter.load_model(paths["decoder"][0], part=paths["decoder"][1])
    if args.example:
        example = _example(args.example, load_array)
    else:
        example_for = getattr(adapter, "example_input", None)
        if example_for is None:
            raise ParameterError(f"{framework} models carry no input shape: pass --example data.npz with real inputs")
        example = example_for(enc)
    return _write(args, out, emit, dest, adapter, enc, dec, example, framework, {})


def _bundle_folder(args, nbytes: int):
    """The checked ``--out`` of an export: a folder already holding a bundle needs ``--force``."""
    if (Path(args.out) / "flow.json").is_file() and not force(args):
        raise OutputError(f"{args.out} already holds a FlowBundle; pass --force to replace it (only the bundle's "
                          "files are replaced) or choose another --out")
    return out_folder(args, "export", writes=_BUNDLE_FILES, adopt=bundle_entries(args.out), nbytes=nbytes)


def _example(path: str, load_array) -> np.ndarray:
    """``--example`` as float32."""
    example = load_array(path)
    return example if example.dtype == np.float32 else example.astype(np.float32)


def _run_pretrained(args, out, emit, load_array) -> int:
    kind, folder = _pretrained_args(args)
    dest = _bundle_folder(args, 2 * (_weight_bytes(folder) if Path(folder).is_dir() else 0) + tree_bytes(args.example))
    example = _example(args.example, load_array)
    adapter, enc, dec, extra = _pretrained(kind, folder)  # --out is checked first: loading a big model takes a while
    return _write(args, out, emit, dest, adapter, enc, dec, example, f"pretrained {kind}", extra)


def _write(args, out, emit, dest, adapter, enc, dec, example, what: str, extra: dict[str, Any]) -> int:
    """Export into ``dest``'s staging folder (the bundle appears only when export and parity pass) and report."""
    kwargs: dict[str, Any] = dict(encoder_output=_key(args.encoder_output), check=not args.no_check, rtol=args.rtol,
                                  **extra)
    if args.opset is not None:
        kwargs["opset"] = args.opset
    with dest.staged(prune=True) as tmp:  # the bundle's files replace an earlier bundle's; other files are kept
        adapter.export(enc, dec, example, tmp, overwrite=True, **kwargs)  # tmp is empty: the adapter fills it
    info = FlowBundle.load(args.out).summary()
    emit(out, info, args.json,
         f"exported {what} model to {args.out}: input {tuple(info['input_shape'])}, latent "
         f"{tuple(info['latent_shape'])}, opset {info['encoder'].get('opset')}; parity "
         f"{'checked' if not args.no_check else 'NOT checked'} (rtol {args.rtol:g})")
    return 0
