"""Regenerate the demo model shipped in ``flowcore/data/demo/``.

Trains a small MLP autoencoder on scikit-learn's 8x8 digits (a few seconds on 2 CPU cores),
exports it with ``flowcore_torch.export`` (parity-checked against torch) and writes::

    <out>/bundle/            FlowBundle: encoder.onnx, decoder.onnx, flow.json
    <out>/digits_test.npz    x: (360, 1, 8, 8) float32 in [0, 1], y: (360,) int64 labels

Deterministic: a fixed seed, one torch thread, a seeded train/test split. The model, the split
and the training recipe are ``flowcore_torch.recipes`` (the tests and the benchmark use the same
one); this script only exports, checks and writes.

Needs torch, scikit-learn and both packages (``pip install -e . -e adapters/torch``)::

    python tools/make_demo_bundle.py [--out flowcore/data/demo] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "flowcore" / "data" / "demo"
N_TEST = 360


def _e(v: float) -> str:
    """0.002 -> '2e-3' (how the bundle's notes write the recipe)."""
    return f"{v:.0e}".replace("e-0", "e-")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT.relative_to(ROOT)})")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the init and the batch order (default 0)")
    p.add_argument("--epochs", type=int, default=150, help="training epochs (default 150, a few seconds)")
    args = p.parse_args(argv)

    try:
        import torch
        import flowcore_torch
        from flowcore_torch.recipes import DIGITS_RECIPE, digits_split, train_digits_autoencoder
        from flowcore import LatentMap, iterate
    except ImportError as exc:
        print(f"error: {exc}; install with: pip install -e '.[cpu,analysis]' -e adapters/torch", file=sys.stderr)
        return 2

    torch.set_num_threads(1)  # one thread throughout: training, the test MSE and the export repeat bit for bit
    t0 = time.perf_counter()
    data = digits_split(args.seed, n_test=N_TEST)
    enc, dec, _ = train_digits_autoencoder(data["x_train"], seed=args.seed, epochs=args.epochs)
    r = DIGITS_RECIPE
    with torch.no_grad():
        xt = torch.from_numpy(data["x_test"])
        mse = float(torch.mean((dec(enc(xt)) - xt) ** 2))
    t_train = time.perf_counter() - t0

    out: Path = args.out
    bundle = flowcore_torch.export(
        enc, dec, data["x_train"][:64], out / "bundle",
        real_inputs=data["x_test"], overwrite=True,
        preprocessing="scikit-learn digits images / 16 as float32 in [0, 1], shape (N, 1, 8, 8)",
        notes=(f"demo MLP autoencoder 64-{r['hidden']}-{r['k']}-{r['hidden']}-64 (Tanh, Sigmoid output), "
               f"Adam lr {_e(r['lr'])}, weight decay {_e(r['weight_decay'])}, {args.epochs} epochs, "
               f"batch {r['batch_size']}, seed {args.seed}; "
               f"trained on {len(data['x_train'])} digits, test MSE {mse:.4f}; tools/make_demo_bundle.py"),
    )
    par = flowcore_torch.parity(bundle, enc, dec, data["x_test"])
    npz = out / "digits_test.npz"
    np.savez(npz, x=data["x_test"], y=data["y_test"])

    lmap = LatentMap(bundle.path, providers="cpu")
    traj = iterate(lmap, lmap.encode(data["x_test"]), tol=1e-6, max_steps=3000, progress=False).summary()

    files = sorted(p for p in out.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    print(f"trained in {t_train:.1f} s: test MSE {mse:.4f}; parity on test digits: "
          f"encoder {par['encoder']:.1e}, decoder {par['decoder']:.1e} (relative)")
    print(f"f = E(D(z)) from {traj['n_starts']} test latents: {traj['converged']} converged, "
          f"median {traj['median_steps_converged']} steps (tol 1e-6, max_steps 3000)")
    for f in files:
        print(f"wrote {f} ({f.stat().st_size / 1024:.1f} KB)")
    print(f"total {total / 1024:.1f} KB; bundle sha256 {bundle.sha256[:16]}…; test data {npz.name}: "
          f"x {data['x_test'].shape} float32, y {data['y_test'].shape} int64")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
